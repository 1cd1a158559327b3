/* SPDX-License-Identifier: MIT */
/*
 * supervise.c: the heart of `memguard run`: start the command in its own
 * process group, watch memory at the library's adaptive interval, and when
 * it turns critical ask the command to checkpoint and stop (stop file +
 * signal), then escalate: SIGTERM after --grace, SIGKILL after
 * --kill-after, SIGKILL at once past a hard limit. It reaps, forwards
 * SIGINT / SIGTERM / SIGHUP / SIGQUIT, and returns the exit status.
 *
 * Signals are handled synchronously: they stay blocked and are read from a
 * signalfd in the poll loop, so no work ever happens in a signal handler
 * (the hang Lightning #21406 reports comes from saving inside one). The
 * escalation is a one-way state machine, RUNNING -> REQUESTED ->
 * TERMINATED -> KILLED, so SIGTERM is sent once and never looped on
 * (earlyoom #354 / #373: a SIGTERM-immune process was never killed).
 *
 * Signals go to the child's process group with kill(-pgid). That cannot
 * hit a reused PID: while the leader is our unreaped child its PID, which
 * is the group's ID, cannot be handed out again, and after it is reaped the
 * kernel keeps the group's ID reserved as long as any member lives. PIDs
 * read from /proc are never signalled. memguard becomes a child subreaper,
 * so workers orphaned by the command are reparented to it and reaped.
 */
#define _GNU_SOURCE /* pipe2, signalfd: this file is Linux-only */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum phase { PH_RUNNING, PH_REQUESTED, PH_TERMINATED, PH_KILLED };
static const char *const phase_name[] = {"running", "requested", "terminated", "killed"};

typedef struct sup {
    const run_opts *o;
    mg_ctx *ctx;
    const mg_config *cfg;
    runlog *log;
    int sfd;                    /* signalfd of the blocked signals */
    sigset_t orig_mask;         /* restored in the children */
    pid_t child;                /* also the process group id */
    bool child_done;
    int child_status;           /* waitpid status */
    bool tty_handoff;           /* the child owns the terminal */
    enum phase phase;
    uint64_t deadline_ms;       /* of the current phase */
    uint64_t t0_ms;
    mg_policy_state st;
    mg_level last_level;
    uint64_t last_warn_ms;
    uint64_t next_report_ms;
    pid_t hook;                 /* running --on-warn hook, 0 if none */
    uint64_t hook_deadline_ms;
    char stop_file[PATH_MAX];
    bool stop_file_made;
    bool signal_deferred;       /* the request's signal waits for a handler */
    char reason[256];           /* of the last non-safe verdict */
} sup;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void) { return now_us() / 1000u; }

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "memguard: %s\n", line);
}

/* The verdict as the seed's warning text, without marker and newline. */
static void reason_text(const mg_verdict *v, char *buf, size_t len)
{
    mg_text_opts t = {MG_LANG_EN, false};
    mg_format_warning(v, &t, -1, buf, len);
    char *p = strstr(buf, "] ");
    if (p && buf[0] == '[') memmove(buf, p + 2, strlen(p + 2) + 1);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n') buf[n - 1] = '\0';
}

static void log_event(sup *s, const char *event, const char *extra, const mg_snapshot *snap,
                      const mg_verdict *v)
{
    runlog_event(s->log, event, now_ms() - s->t0_ms, extra, s->cfg, snap, v);
}

/* ---- signals to the child --------------------------------------------------- */

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGTERM: return "SIGTERM";
    case SIGKILL: return "SIGKILL";
    case SIGALRM: return "SIGALRM";
    default: return "signal";
    }
}

static void signal_group(sup *s, int sig)
{
    if (kill(-s->child, sig) != 0 && errno != ESRCH)
        say("cannot send %s to process group %d: %s", sig_name(sig), (int)s->child,
            strerror(errno));
}

/* ---- acting on levels ---------------------------------------------------------- */

static bool past_hard_limit(const sup *s, const mg_snapshot *snap, char *why, size_t len)
{
    if (snap->ram.known && snap->ram.used_frac >= s->o->hard_ram_frac) {
        snprintf(why, len, "RAM %.1f%% >= hard limit %.1f%%", 100.0 * snap->ram.used_frac,
                 100.0 * s->o->hard_ram_frac);
        return true;
    }
    for (unsigned i = 0; i < snap->gpu_count; i++) {
        const mg_gpu *g = &snap->gpus[i];
        if (g->known && g->used_frac >= s->o->hard_gpu_frac) {
            snprintf(why, len, "GPU %u %.1f%% >= hard limit %.1f%%", g->index,
                     100.0 * g->used_frac, 100.0 * s->o->hard_gpu_frac);
            return true;
        }
    }
    return false;
}

static void kill_now(sup *s, const char *why, uint64_t detect_us, const mg_snapshot *snap,
                     const mg_verdict *v)
{
    if (!s->o->dry_run) signal_group(s, SIGKILL);
    double latency = (double)(now_us() - detect_us) / 1000.0;
    char extra[512], q[300];
    json_quote(q, sizeof q, why);
    snprintf(extra, sizeof extra, "\"why\":%s,\"hard\":true,\"dry_run\":%s,\"latency_ms\":%.3f",
             q, s->o->dry_run ? "true" : "false", latency);
    log_event(s, "kill", extra, snap, v);
    say("%s%s: killing process group %d now (SIGKILL)", s->o->dry_run ? "dry run: " : "",
        why, (int)s->child);
    s->phase = PH_KILLED;
}

/* Creates the stop file atomically (temp + rename), so the child never
 * reads half of it. Its content is the reason, for humans. */
static void make_stop_file(sup *s)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->stop_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        say("cannot create the stop file %s: %s (the signal still goes out)", tmp,
            strerror(errno));
        return;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", s->reason);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w != n || rename(tmp, s->stop_file) != 0) {
        say("cannot write the stop file %s: %s", s->stop_file, strerror(errno));
        unlink(tmp);
        return;
    }
    s->stop_file_made = true;
}

/* A request can come while the command is still starting (a Python
 * trainer spends seconds importing torch; a sanitized build, tens of ms
 * before main), before it installs its handler: the signal's default
 * action would then kill it with nothing saved. So during its first
 * STARTUP_MS, a command whose leader neither catches nor ignores the
 * signal yet gets the stop file at once and the signal when it handles
 * it, or when the window ends. A command that never handles it is then
 * stopped by it as before, at most STARTUP_MS later; the hard limits act
 * at once either way. */
#define STARTUP_MS 3000u

/* Whether sig is safe to send to the leader: it has a handler for it or
 * ignores it (SigCgt / SigIgn), so the default action cannot kill it.
 * True when unknown: no reason to hold the signal back then. */
static bool leader_handles(const sup *s, int sig)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->child);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return true;
    buf[n] = '\0';
    const char *ign = strstr(buf, "\nSigIgn:"), *cgt = strstr(buf, "\nSigCgt:");
    if (!ign || !cgt) return true;
    unsigned long long mask = strtoull(ign + 8, NULL, 16) | strtoull(cgt + 8, NULL, 16);
    return (mask >> (sig - 1)) & 1u;
}

static void send_request_signal(sup *s)
{
    if (now_ms() < s->t0_ms + STARTUP_MS && !leader_handles(s, s->o->signo)) {
        s->signal_deferred = true;
        return;
    }
    s->signal_deferred = false;
    signal_group(s, s->o->signo);
}

static void request_stop(sup *s, uint64_t detect_us, const mg_snapshot *snap, const mg_verdict *v)
{
    if (!s->o->dry_run) {
        make_stop_file(s);
        send_request_signal(s);
    }
    double latency = (double)(now_us() - detect_us) / 1000.0;
    char extra[PATH_MAX + 1024], q[300], f[PATH_MAX + 8];
    json_quote(q, sizeof q, s->reason);
    json_quote(f, sizeof f, s->stop_file);
    snprintf(extra, sizeof extra,
             "\"reason\":%s,\"signal\":%d,\"signal_deferred\":%s,\"stop_file\":%s,"
             "\"dry_run\":%s,\"latency_ms\":%.3f,\"grace_ms\":%" PRIu64,
             q, s->o->signo, s->signal_deferred ? "true" : "false", f,
             s->o->dry_run ? "true" : "false", latency, s->o->grace_ms);
    log_event(s, "request", extra, snap, v);
    say("%scritical: %s; asking pid %d to checkpoint and stop (%s, stop file %s), "
        "grace %.0f s",
        s->o->dry_run ? "dry run: " : "", s->reason, (int)s->child, sig_name(s->o->signo),
        s->stop_file, (double)s->o->grace_ms / 1000.0);
    if (s->signal_deferred)
        say("pid %d has no handler for %s yet (starting up): the signal follows when it has "
            "one, within %.0f s of its start", (int)s->child, sig_name(s->o->signo),
            STARTUP_MS / 1000.0);
    s->phase = PH_REQUESTED;
    s->deadline_ms = now_ms() + s->o->grace_ms;
}

static void run_hook(sup *s, mg_level level)
{
    if (!s->o->on_warn || s->hook) return;
    pid_t pid = fork();
    if (pid < 0) {
        say("cannot start --on-warn hook: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        char pidbuf[32];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)s->child);
        setenv("MEMGUARD_LEVEL", mg_level_name(level), 1);
        setenv("MEMGUARD_REASON", s->reason, 1);
        setenv("MEMGUARD_PID", pidbuf, 1);
        sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
        execl(s->o->on_warn, s->o->on_warn, (char *)NULL);
        _exit(127);
    }
    s->hook = pid;
    s->hook_deadline_ms = now_ms() + s->o->hook_timeout_ms;
}

static void warn(sup *s, mg_level level, const mg_snapshot *snap, const mg_verdict *v)
{
    uint64_t now = now_ms();
    bool fresh = s->last_level == MG_LEVEL_SAFE;
    if (!fresh && now - s->last_warn_ms < s->o->warn_every_ms) return;
    s->last_warn_ms = now;
    char buf[512];
    mg_text_opts t = cli_text_opts(&s->o->c);
    mg_format_warning(v, &t, -1, buf, sizeof buf);
    fprintf(stderr, "memguard: %s", buf);
    char extra[400], q[300];
    json_quote(q, sizeof q, s->reason);
    snprintf(extra, sizeof extra, "\"reason\":%s", q);
    log_event(s, "warn", extra, snap, v);
    run_hook(s, level);
}

/* One sample and what follows from it. Returns the milliseconds until the
 * next one, from the same sample. */
static uint32_t check(sup *s)
{
    mg_snapshot snap;
    mg_verdict v;
    uint64_t detect_us = now_us();
    mg_sample(s->ctx, &snap);
    mg_level level = mg_classify(s->cfg, &snap, &s->st, &v);
    if (level != MG_LEVEL_SAFE) reason_text(&v, s->reason, sizeof s->reason);

    uint64_t now = now_ms();
    if (s->o->log_path && now >= s->next_report_ms) {
        log_event(s, "sample", NULL, &snap, &v);
        s->next_report_ms = now + s->o->report_interval_ms;
    }
    char why[160];
    if (level == MG_LEVEL_CRITICAL && s->phase < PH_KILLED &&
        past_hard_limit(s, &snap, why, sizeof why)) {
        kill_now(s, why, detect_us, &snap, &v);
    } else if (level == MG_LEVEL_CRITICAL && s->phase == PH_RUNNING) {
        /* Act on the first critical sample, after one re-read agrees (a
         * page-cache burst can come and go between two reads). */
        mg_sample(s->ctx, &snap);
        level = mg_classify(s->cfg, &snap, &s->st, &v);
        if (level == MG_LEVEL_CRITICAL) {
            reason_text(&v, s->reason, sizeof s->reason);
            if (past_hard_limit(s, &snap, why, sizeof why))
                kill_now(s, why, detect_us, &snap, &v);
            else
                request_stop(s, detect_us, &snap, &v);
        }
    } else if (level == MG_LEVEL_WARN && s->phase == PH_RUNNING) {
        warn(s, level, &snap, &v);
    }
    s->last_level = level;
    return mg_next_poll_ms(s->cfg, &snap);
}

/* Time-driven escalation; never repeats a step. */
static void escalate(sup *s)
{
    uint64_t now = now_ms();
    if (s->signal_deferred && s->phase == PH_REQUESTED) send_request_signal(s);
    if (s->phase == PH_REQUESTED && now >= s->deadline_ms) {
        say("%spid %d still running %.0f s after the request: sending SIGTERM",
            s->o->dry_run ? "dry run: " : "", (int)s->child, (double)s->o->grace_ms / 1000.0);
        if (!s->o->dry_run) signal_group(s, SIGTERM);
        log_event(s, "term", s->o->dry_run ? "\"dry_run\":true" : "\"dry_run\":false", NULL,
                  NULL);
        s->phase = PH_TERMINATED;
        s->deadline_ms = now + s->o->kill_after_ms;
    } else if (s->phase == PH_TERMINATED && now >= s->deadline_ms) {
        say("%spid %d still running %.0f s after SIGTERM: sending SIGKILL",
            s->o->dry_run ? "dry run: " : "", (int)s->child,
            (double)s->o->kill_after_ms / 1000.0);
        if (!s->o->dry_run) signal_group(s, SIGKILL);
        log_event(s, "kill", s->o->dry_run ? "\"hard\":false,\"dry_run\":true"
                                           : "\"hard\":false,\"dry_run\":false", NULL, NULL);
        s->phase = PH_KILLED;
    }
    if (s->hook && now >= s->hook_deadline_ms) {
        say("--on-warn hook %s ran past %.0f s: killing it", s->o->on_warn,
            (double)s->o->hook_timeout_ms / 1000.0);
        kill(s->hook, SIGKILL); /* our unreaped child: its PID is still ours */
        s->hook_deadline_ms = UINT64_MAX;
    }
}

/* ---- reaping and signals ------------------------------------------------------- */

static void reap(sup *s)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == s->child) {
            s->child_done = true;
            s->child_status = st;
        } else if (pid == s->hook) {
            s->hook = 0;
        }
    }
}

static void handle_signals(sup *s)
{
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            reap(s);
        } else if (!s->child_done) {
            /* Forward what the user sent memguard to the whole job. */
            log_event(s, "forward", sig == SIGINT ? "\"signal\":2" : sig == SIGTERM
                      ? "\"signal\":15" : sig == SIGHUP ? "\"signal\":1" : "\"signal\":3",
                      NULL, NULL);
            signal_group(s, sig);
        }
    }
}

/* Waits up to timeout_ms for signals, handling them. */
static void wait_events(sup *s, uint64_t timeout_ms)
{
    struct pollfd p = {s->sfd, POLLIN, 0};
    int t = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    if (poll(&p, 1, t) > 0) handle_signals(s);
}

/* ---- start-up ------------------------------------------------------------------ */

static int spawn(sup *s)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) != 0) {
        say("cannot create a pipe: %s", strerror(errno));
        return MG_EXIT_ERROR;
    }
    char sigbuf[16], pidbuf[32];
    snprintf(sigbuf, sizeof sigbuf, "%d", s->o->signo);
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    setenv("MEMGUARD_STOP_FILE", s->stop_file, 1);
    setenv("MEMGUARD_STOP_SIGNAL", sigbuf, 1);
    setenv("MEMGUARD_SUPERVISOR_PID", pidbuf, 1);

    pid_t pid = fork();
    if (pid < 0) {
        say("cannot fork: %s", strerror(errno));
        return MG_EXIT_ERROR;
    }
    if (pid == 0) {
        setpgid(0, 0);
        /* SIGTTOU is blocked here (inherited mask), so a member of a
         * background group may take the terminal. */
        if (s->tty_handoff) tcsetpgrp(STDIN_FILENO, getpid());
        /* Undo memguard's own protection: the job is what the kernel
         * should pick when all else fails, not memguard. */
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t w = write(fd, "0", 1);
            (void)w;
            close(fd);
        }
        sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
        execvp(s->o->argv[0], s->o->argv);
        int e = errno;
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(ep[1]);
    setpgid(pid, pid); /* both sides, so no signal can race the child's own call */
    s->child = pid;
    int e = 0;
    ssize_t n;
    do n = read(ep[0], &e, sizeof e); while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        int st;
        waitpid(pid, &st, 0);
        say("cannot run '%s': %s", s->o->argv[0], strerror(e));
        return e == ENOENT ? 127 : 126;
    }
    return 0;
}

static int exit_status(const sup *s)
{
    int st = s->child_status;
    if (s->o->dry_run || s->phase == PH_RUNNING) {
        if (WIFEXITED(st)) return WEXITSTATUS(st);
        return 128 + WTERMSIG(st);
    }
    if (WIFEXITED(st)) {
        int code = WEXITSTATUS(st);
        if (s->phase == PH_REQUESTED && (code == 0 || code == MG_EXIT_MEMSTOP)) {
            say("pid %d saved and stopped after the memory request (exit %d)", (int)s->child,
                MG_EXIT_MEMSTOP);
            return MG_EXIT_MEMSTOP;
        }
        if (s->phase == PH_REQUESTED) return code; /* it failed on its own */
    } else {
        int sig = WTERMSIG(st);
        if (sig != s->o->signo && sig != SIGTERM && sig != SIGKILL) return 128 + sig;
    }
    say("pid %d was stopped without a checkpoint (exit %d)", (int)s->child, MG_EXIT_MEMKILL);
    return MG_EXIT_MEMKILL;
}

/* After the command exits: members of its group still alive (workers it
 * left behind) get SIGTERM, then SIGKILL after --kill-after. */
static void clean_up_group(sup *s)
{
    if (kill(-s->child, 0) != 0) return;
    say("process group %d outlived its leader: sending SIGTERM", (int)s->child);
    kill(-s->child, SIGTERM);
    uint64_t deadline = now_ms() + s->o->kill_after_ms;
    while (kill(-s->child, 0) == 0 && now_ms() < deadline) wait_events(s, 50);
    if (kill(-s->child, 0) == 0) {
        say("process group %d still alive: sending SIGKILL", (int)s->child);
        kill(-s->child, SIGKILL);
        for (int i = 0; i < 100 && kill(-s->child, 0) == 0; i++) wait_events(s, 20);
    }
}

int supervise(const run_opts *o, mg_ctx *ctx)
{
    sup s = {0};
    s.o = o;
    s.ctx = ctx;
    s.cfg = mg_ctx_config(ctx);
    s.t0_ms = now_ms();
    s.sfd = -1;
    if (o->stop_file) {
        snprintf(s.stop_file, sizeof s.stop_file, "%s", o->stop_file);
    } else {
        const char *dir = getenv("XDG_RUNTIME_DIR");
        snprintf(s.stop_file, sizeof s.stop_file, "%s/memguard-%d.stop",
                 dir && *dir ? dir : "/tmp", (int)getpid());
    }
    unlink(s.stop_file); /* a stale request must not stop the new run */

    s.log = runlog_open(o->log_path);
    if (!s.log) return cli_usage_error("--log '%s': %s", o->log_path, strerror(errno));

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTTOU, SIGTTIN};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, &s.orig_mask);
    sigdelset(&set, SIGTTOU);
    sigdelset(&set, SIGTTIN);
    s.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    /* Orphaned workers come back to us, so they are reaped and counted. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    s.tty_handoff = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();

    int status = s.sfd < 0 ? MG_EXIT_ERROR : spawn(&s);
    if (s.sfd < 0) say("cannot create a signalfd: %s", strerror(errno));
    if (status) goto out;

    if (mg_watch_pid(ctx, s.child) < 0) say("cannot watch pid %d", (int)s.child);
    {
        char extra[4200], q[4096];
        size_t pos = 0;
        q[0] = '\0';
        for (char **a = o->argv; *a && pos < sizeof q - 600; a++) {
            char one[512];
            json_quote(one, sizeof one, *a);
            pos += (size_t)snprintf(q + pos, sizeof q - pos, "%s%s", pos ? "," : "", one);
        }
        snprintf(extra, sizeof extra, "\"pid\":%d,\"command\":[%s],\"dry_run\":%s",
                 (int)s.child, q, o->dry_run ? "true" : "false");
        log_event(&s, "start", extra, NULL, NULL);
    }

    uint64_t next_sample = 0;
    while (!s.child_done) {
        uint64_t now = now_ms();
        if (now >= next_sample && (s.phase < PH_KILLED || o->dry_run))
            next_sample = now_ms() + check(&s);
        escalate(&s);
        if (s.child_done) break;
        /* Once killed, nothing is left to decide: just wait for SIGCHLD. */
        uint64_t wake = s.phase < PH_KILLED || o->dry_run ? next_sample : now_ms() + 1000;
        if (s.phase == PH_REQUESTED || s.phase == PH_TERMINATED)
            wake = wake < s.deadline_ms ? wake : s.deadline_ms;
        if (s.hook && s.hook_deadline_ms < wake) wake = s.hook_deadline_ms;
        if (s.signal_deferred && now_ms() + 10 < wake) wake = now_ms() + 10;
        now = now_ms();
        wait_events(&s, wake > now ? wake - now : 0);
    }
    status = exit_status(&s);
    {
        char extra[200];
        int st = s.child_status;
        snprintf(extra, sizeof extra,
                 "\"pid\":%d,\"code\":%d,\"signal\":%d,\"phase\":\"%s\",\"exit_status\":%d",
                 (int)s.child, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0, phase_name[s.phase], status);
        log_event(&s, "exit", extra, NULL, NULL);
    }
    clean_up_group(&s);
out:
    if (s.tty_handoff) tcsetpgrp(STDIN_FILENO, getpgrp()); /* SIGTTOU still blocked */
    while (s.hook && waitpid(s.hook, NULL, 0) < 0 && errno == EINTR) {}
    if (s.stop_file_made) unlink(s.stop_file);
    if (s.sfd >= 0) close(s.sfd);
    sigprocmask(SIG_SETMASK, &s.orig_mask, NULL);
    runlog_close(s.log);
    return status;
}
