/* SPDX-License-Identifier: MIT */
/*
 * supervise.c: the heart of `memguard run`: start the command in its own
 * process group, watch memory at the library's adaptive interval, and when
 * it turns critical ask the command to checkpoint and stop, then escalate:
 * SIGTERM after --grace, SIGKILL after --kill-after, SIGKILL at once past a
 * hard limit. It reaps, forwards SIGINT / SIGTERM / SIGHUP / SIGQUIT, and
 * returns the exit status: 75 whenever the trainer acknowledged a good
 * save, whatever a launcher made of its status.
 *
 * The request is the stop file (stopfile.c) plus the checkpoint signal,
 * sent only to processes of the tree that catch it (SigCgt) at that moment,
 * and again to any that installs a handler while the request is pending: a
 * signal with its default action would kill torchrun's agent, an mp.spawn
 * parent, a bash wrapper, a spawned DataLoader worker still starting, or a
 * trainer that has not created its guard yet. Those read the stop file.
 *
 * Signals to memguard itself are handled synchronously: every catchable one
 * is blocked and read from a signalfd in the poll loop (SIGPIPE is ignored:
 * `memguard run ... | head` must not kill the supervisor), so no stray
 * signal can kill it and leave the trainer unguarded, and no work ever
 * happens in a handler (the hang Lightning #21406 reports comes from saving
 * inside one). SIGUSR1 to memguard is a manual request; the others that do
 * not end the job are logged and ignored. The command gets the checkpoint
 * signal as its parent-death signal, so even a SIGKILLed memguard leaves a
 * trainer that saves and stops. The escalation is a one-way state machine,
 * RUNNING -> REQUESTED -> TERMINATED -> KILLED, so SIGTERM is sent once and
 * never looped on (earlyoom #354 / #373).
 *
 * Who gets signalled: the whole process group with kill(-pgid) while the
 * leader is our unreaped child (its PID, the group's ID, cannot be reused
 * then), and every descendant of memguard through a pidfd (members.c), so
 * processes that left the group with setsid() are reached and a reused PID
 * never is. memguard is a child subreaper: orphans come back to it, are
 * counted, reaped, and stopped with the rest.
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
    stop_paths files;           /* the stop file and the acknowledgement */
    uint64_t next_recheck_ms;   /* a pending request looks for new catchers */
    uint64_t budget_kill_ms;    /* the budget's hard limit kills from then on */
    struct sent { int pid; unsigned long long start; } *sent;
    size_t nsent;               /* processes the request's signal reached */
    member *mem;                /* MEMBERS_MAX, scratch for members_list */
    struct sigaction orig_pipe; /* SIGPIPE as memguard found it */
    char reason[256];           /* of the last non-safe verdict */
} sup;

/* How often a pending request looks for processes that installed a
 * handler for the checkpoint signal since it was sent. */
#define RECHECK_MS 50u

/* The budget's hard limit kills no sooner than this after the request,
 * which goes out first even when the first confirmed reading is already
 * past it: a fast fill can cross from the stop line past the hard one
 * between the two reads that confirm it (each a page-table walk, 10-40 ms
 * on a loaded machine: test_run, test_workers_are_counted), and a kill
 * before any request loses the run. The machine's, the cgroup's and the
 * GPUs' hard limits still kill at once. */
#define BUDGET_HARD_AFTER_MS 2000u

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

static void signal_group(sup *s, int sig)
{
    char name[32];
    if (s->child_done) return; /* the group's ID may be reused now */
    if (kill(-s->child, sig) != 0 && errno != ESRCH)
        say("cannot send %s to process group %d: %s", signal_name(sig, name, sizeof name),
            (int)s->child, strerror(errno));
}

static bool was_sent(const sup *s, const member *m)
{
    for (size_t i = 0; i < s->nsent; i++)
        if (s->sent[i].pid == m->pid && s->sent[i].start == m->start) return true;
    return false;
}

/* Sends sig to the members of the tree; with `catchers` only to those that
 * handle it and have not had it yet. Returns how many got it. */
static size_t signal_members(sup *s, int sig, bool catchers)
{
    size_t n = members_list(s->ctx, catchers ? sig : 0, (int)s->hook, s->mem, MEMBERS_MAX);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        const member *m = &s->mem[i];
        if (catchers && (!m->catches || was_sent(s, m))) continue;
        if (member_signal(m, sig) != 0) continue;
        got++;
        if (catchers && s->nsent < MEMBERS_MAX)
            s->sent[s->nsent++] = (struct sent){m->pid, m->start};
    }
    members_release(s->mem, n);
    return got;
}

/* Ends the job: the group while its leader lives, and every member. */
static void signal_all(sup *s, int sig)
{
    signal_group(s, sig);
    signal_members(s, sig, false);
}

/* The number of live members of the tree, the hook left out. */
static size_t members_alive(sup *s)
{
    size_t n = members_list(s->ctx, 0, (int)s->hook, s->mem, MEMBERS_MAX);
    members_release(s->mem, n);
    return n;
}

/* ---- acting on levels ---------------------------------------------------------- */

/* Which hard limit a reading is past. The budget's is the caller's own
 * line, not the machine's: memory past it does not freeze anything, so it
 * waits for the request to have had a chance (BUDGET_HARD_AFTER_MS). */
enum hard { HARD_NONE, HARD_BUDGET, HARD_NOW };

static enum hard past_hard_limit(const sup *s, const mg_snapshot *snap, char *why, size_t len)
{
    if (snap->ram.known && snap->ram.used_frac >= s->o->hard_ram_frac) {
        snprintf(why, len, "RAM %.1f%% >= hard limit %.1f%%", 100.0 * snap->ram.used_frac,
                 100.0 * s->o->hard_ram_frac);
        return snap->ram.source == MG_RAM_SOURCE_BUDGET ? HARD_BUDGET : HARD_NOW;
    }
    for (unsigned i = 0; i < snap->gpu_count; i++) {
        const mg_gpu *g = &snap->gpus[i];
        if (g->known && g->used_frac >= s->o->hard_gpu_frac) {
            snprintf(why, len, "GPU %u %.1f%% >= hard limit %.1f%%", g->index,
                     100.0 * g->used_frac, 100.0 * s->o->hard_gpu_frac);
            return HARD_NOW;
        }
    }
    return HARD_NONE;
}

static void kill_now(sup *s, const char *why, uint64_t detect_us, const mg_snapshot *snap,
                     const mg_verdict *v)
{
    if (!s->o->dry_run) signal_all(s, SIGKILL);
    double latency = (double)(now_us() - detect_us) / 1000.0;
    char extra[512], q[300];
    mg_json_quote(why, q, sizeof q);
    snprintf(extra, sizeof extra, "\"why\":%s,\"hard\":true,\"dry_run\":%s,\"latency_ms\":%.3f",
             q, s->o->dry_run ? "true" : "false", latency);
    log_event(s, "kill", extra, snap, v);
    say("%s%s: killing pid %d and its whole tree now (SIGKILL)",
        s->o->dry_run ? "dry run: " : "", why, (int)s->child);
    s->phase = PH_KILLED;
}

/* Sends the request's signal to the catchers that have not had it yet,
 * logging each late one. Returns how many got it. */
static size_t send_request_signal(sup *s, bool late)
{
    size_t before = s->nsent;
    size_t got = signal_members(s, s->o->signo, true);
    char name[32];
    for (size_t i = before; late && i < s->nsent; i++) {
        char extra[96];
        snprintf(extra, sizeof extra, "\"pid\":%d,\"signal\":%d", s->sent[i].pid, s->o->signo);
        log_event(s, "signal", extra, NULL, NULL);
        say("pid %d now handles %s: sent it", s->sent[i].pid,
            signal_name(s->o->signo, name, sizeof name));
    }
    s->next_recheck_ms = now_ms() + RECHECK_MS;
    return got;
}

/* The request: the stop file for every process of the tree, the signal for
 * those that catch it. */
static void request_stop(sup *s, uint64_t detect_us, const mg_snapshot *snap, const mg_verdict *v)
{
    size_t got = 0;
    if (!s->o->dry_run) {
        int rc = stop_file_write(&s->files, s->reason);
        if (rc < 0)
            say("cannot write the stop file %s: %s (the signal still goes out)",
                s->files.stop, strerror(-rc));
        got = send_request_signal(s, false);
    }
    double latency = (double)(now_us() - detect_us) / 1000.0;
    char extra[PATH_MAX + 1024], q[300], f[PATH_MAX + 8], name[32];
    mg_json_quote(s->reason, q, sizeof q);
    mg_json_quote(s->files.stop, f, sizeof f);
    signal_name(s->o->signo, name, sizeof name);
    snprintf(extra, sizeof extra,
             "\"reason\":%s,\"signal\":%d,\"signal_name\":\"%s\",\"signalled\":%zu,"
             "\"stop_file\":%s,\"dry_run\":%s,\"latency_ms\":%.3f,\"grace_ms\":%" PRIu64,
             q, s->o->signo, name, got, f, s->o->dry_run ? "true" : "false", latency,
             s->o->grace_ms);
    log_event(s, "request", extra, snap, v);
    say("%scritical: %s; asking pid %d to checkpoint and stop (stop file %s; %s to %zu "
        "process%s that handle%s it), grace %.0f s",
        s->o->dry_run ? "dry run: " : "", s->reason, (int)s->child, s->files.stop, name, got,
        got == 1 ? "" : "es", got == 1 ? "s" : "", (double)s->o->grace_ms / 1000.0);
    s->phase = PH_REQUESTED;
    s->deadline_ms = now_ms() + s->o->grace_ms;
    s->budget_kill_ms = now_ms() + BUDGET_HARD_AFTER_MS;
}

/* In a child of memguard before exec: the signal state memguard found. */
static void restore_signals(const sup *s)
{
    sigaction(SIGPIPE, &s->orig_pipe, NULL);
    sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
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
        restore_signals(s);
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
    mg_json_quote(s->reason, q, sizeof q);
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
    if ((s->o->log_path || s->o->log_fd >= 0) && now >= s->next_report_ms) {
        log_event(s, "sample", NULL, &snap, &v);
        s->next_report_ms = now + s->o->report_interval_ms;
    }
    char why[160];
    bool act = s->phase == PH_RUNNING ||
               (s->phase < PH_KILLED && past_hard_limit(s, &snap, why, sizeof why));
    if (level == MG_LEVEL_CRITICAL && act) {
        /* Nothing is done on one reading: a re-read must agree (a
         * page-cache burst can come and go between two reads; the tree's
         * figure is then a fresh PSS, see mg_proctree). */
        mg_sample(s->ctx, &snap);
        level = mg_classify(s->cfg, &snap, &s->st, &v);
        if (level == MG_LEVEL_CRITICAL) {
            reason_text(&v, s->reason, sizeof s->reason);
            enum hard h = past_hard_limit(s, &snap, why, sizeof why);
            if (h == HARD_NOW || (h == HARD_BUDGET && s->phase != PH_RUNNING &&
                                  now_ms() >= s->budget_kill_ms))
                kill_now(s, why, detect_us, &snap, &v);
            else if (s->phase == PH_RUNNING)
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
    if (s->phase == PH_REQUESTED && !s->o->dry_run && now >= s->next_recheck_ms)
        send_request_signal(s, true);
    if (s->phase == PH_REQUESTED && now >= s->deadline_ms) {
        say("%spid %d still running %.0f s after the request: sending SIGTERM",
            s->o->dry_run ? "dry run: " : "", (int)s->child, (double)s->o->grace_ms / 1000.0);
        if (!s->o->dry_run) signal_all(s, SIGTERM);
        log_event(s, "term", s->o->dry_run ? "\"dry_run\":true" : "\"dry_run\":false", NULL,
                  NULL);
        s->phase = PH_TERMINATED;
        s->deadline_ms = now + s->o->kill_after_ms;
    } else if (s->phase == PH_TERMINATED && now >= s->deadline_ms) {
        say("%spid %d still running %.0f s after SIGTERM: sending SIGKILL",
            s->o->dry_run ? "dry run: " : "", (int)s->child,
            (double)s->o->kill_after_ms / 1000.0);
        if (!s->o->dry_run) signal_all(s, SIGKILL);
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

/* SIGUSR1 to memguard: a manual "checkpoint and stop". */
static void manual_request(sup *s, const struct signalfd_siginfo *si)
{
    if (s->phase != PH_RUNNING || s->child_done) {
        say("SIGUSR1 from pid %u: a request is already under way", si->ssi_pid);
        return;
    }
    snprintf(s->reason, sizeof s->reason, "checkpoint requested with SIGUSR1 to memguard by pid %u",
             si->ssi_pid);
    request_stop(s, now_us(), NULL, NULL);
}

static void handle_signal(sup *s, const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    char name[32], extra[96];
    signal_name(sig, name, sizeof name);
    switch (sig) {
    case SIGCHLD: reap(s); return;
    case SIGUSR1: manual_request(s, si); return;
    case SIGINT: case SIGTERM: case SIGHUP: case SIGQUIT:
        if (s->child_done) return;
        /* What the user sent memguard goes to the whole job. */
        snprintf(extra, sizeof extra, "\"signal\":%d,\"from_pid\":%u", sig, si->ssi_pid);
        log_event(s, "forward", extra, NULL, NULL);
        signal_group(s, sig);
        return;
    /* Job control and terminal noise: nothing to say. */
    case SIGCONT: case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGWINCH: case SIGURG:
        return;
    default:
        snprintf(extra, sizeof extra, "\"signal\":%d,\"from_pid\":%u", sig, si->ssi_pid);
        log_event(s, "ignored_signal", extra, NULL, NULL);
        say("ignoring %s from pid %u (memguard keeps guarding pid %d)", name, si->ssi_pid,
            (int)s->child);
    }
}

static void handle_signals(sup *s)
{
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si) handle_signal(s, &si);
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
    setenv(MG_ENV_STOP_FILE, s->files.stop, 1);
    setenv(MG_ENV_ACK_FILE, s->files.ack, 1);
    setenv(MG_ENV_STOP_SIGNAL, sigbuf, 1);
    setenv(MG_ENV_SUPERVISOR_PID, pidbuf, 1);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        say("cannot fork: %s", strerror(errno));
        return MG_EXIT_ERROR;
    }
    if (pid == 0) {
        setpgid(0, 0);
        /* If memguard dies (even SIGKILLed), the command gets the
         * checkpoint signal: it saves and stops instead of running on
         * unguarded. Checked after setting: memguard may be gone already. */
        prctl(PR_SET_PDEATHSIG, s->o->signo);
        if (getppid() != parent) _exit(MG_EXIT_ERROR);
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
        restore_signals(s);
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

/* The status from the acknowledgement, when the trainer wrote one: a good
 * save, whatever a launcher (torchrun, mp.spawn) returned. 0 if none. */
static int acknowledged(sup *s)
{
    char ckpt[PATH_MAX], extra[PATH_MAX + 64], q[PATH_MAX + 8];
    if (!stop_ack_read(&s->files, ckpt, sizeof ckpt)) return 0;
    mg_json_quote(ckpt, q, sizeof q);
    snprintf(extra, sizeof extra, "\"checkpoint\":%s", q);
    log_event(s, "ack", extra, NULL, NULL);
    say("pid %d saved %s and stopped (exit %d)", (int)s->child, ckpt, MG_EXIT_MEMSTOP);
    return MG_EXIT_MEMSTOP;
}

static int exit_status(sup *s)
{
    int acked = acknowledged(s);
    if (acked) return acked;
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

/* Waits until no member is left or the deadline passes, reaping. */
static bool wait_members_gone(sup *s, uint64_t deadline)
{
    while (members_alive(s) > 0) {
        if (now_ms() >= deadline) return false;
        wait_events(s, 50);
        if (s->phase == PH_REQUESTED && !s->o->dry_run && now_ms() >= s->next_recheck_ms)
            send_request_signal(s, true);
    }
    return true;
}

/* After the command exits: processes of its tree still alive (workers it
 * left behind, ranks, processes that left its group) get the rest of
 * --grace when a request is pending (ranks may still be saving), then
 * SIGTERM, then SIGKILL after --kill-after. */
static void clean_up_tree(sup *s)
{
    if (members_alive(s) == 0) return;
    if (s->phase == PH_REQUESTED && now_ms() < s->deadline_ms) {
        say("pid %d exited during the request; its other processes get the rest of the "
            "grace time to save", (int)s->child);
        if (wait_members_gone(s, s->deadline_ms)) return;
    }
    say("processes of pid %d's tree outlived it: sending SIGTERM", (int)s->child);
    log_event(s, "cleanup", "\"signal\":15", NULL, NULL);
    signal_members(s, SIGTERM, false);
    if (wait_members_gone(s, now_ms() + s->o->kill_after_ms)) return;
    say("processes of pid %d's tree still alive: sending SIGKILL", (int)s->child);
    log_event(s, "cleanup", "\"signal\":9", NULL, NULL);
    signal_members(s, SIGKILL, false);
    wait_members_gone(s, now_ms() + 2000);
}

/* Every catchable signal goes to the signalfd, SIGPIPE is ignored. */
static int take_signals(sup *s)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGKILL);
    sigdelset(&set, SIGSTOP);
    sigdelset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, &s->orig_mask);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &s->orig_pipe);
    s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sfd >= 0) return 0;
    say("cannot create a signalfd: %s", strerror(errno));
    return MG_EXIT_ERROR;
}

static void log_start(sup *s)
{
    char extra[4200], q[4096];
    size_t pos = 0;
    q[0] = '\0';
    for (char **a = s->o->argv; *a && pos < sizeof q - 600; a++) {
        char one[512];
        mg_json_quote(*a, one, sizeof one);
        pos += (size_t)snprintf(q + pos, sizeof q - pos, "%s%s", pos ? "," : "", one);
    }
    snprintf(extra, sizeof extra,
             "\"pid\":%d,\"command\":[%s],\"dry_run\":%s,\"hard_ram_frac\":%.6g,"
             "\"hard_gpu_frac\":%.6g",
             (int)s->child, q, s->o->dry_run ? "true" : "false", s->o->hard_ram_frac,
             s->o->hard_gpu_frac);
    log_event(s, "start", extra, NULL, NULL);
}

static void watch(sup *s)
{
    uint64_t next_sample = 0;
    while (!s->child_done) {
        uint64_t now = now_ms();
        if (now >= next_sample && (s->phase < PH_KILLED || s->o->dry_run))
            next_sample = now_ms() + check(s);
        escalate(s);
        if (s->child_done) break;
        /* Once killed, nothing is left to decide: just wait for SIGCHLD. */
        uint64_t wake = s->phase < PH_KILLED || s->o->dry_run ? next_sample : now_ms() + 1000;
        if (s->phase == PH_REQUESTED || s->phase == PH_TERMINATED)
            wake = wake < s->deadline_ms ? wake : s->deadline_ms;
        if (s->phase == PH_REQUESTED && s->next_recheck_ms < wake) wake = s->next_recheck_ms;
        if (s->hook && s->hook_deadline_ms < wake) wake = s->hook_deadline_ms;
        now = now_ms();
        wait_events(s, wake > now ? wake - now : 0);
    }
}

static void log_exit(sup *s, int status)
{
    char extra[200];
    int st = s->child_status;
    snprintf(extra, sizeof extra,
             "\"pid\":%d,\"code\":%d,\"signal\":%d,\"phase\":\"%s\",\"exit_status\":%d",
             (int)s->child, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
             WIFSIGNALED(st) ? WTERMSIG(st) : 0, phase_name[s->phase], status);
    log_event(s, "exit", extra, NULL, NULL);
}

int supervise(const run_opts *o, mg_ctx *ctx)
{
    sup s = {0};
    s.o = o;
    s.ctx = ctx;
    s.cfg = mg_ctx_config(ctx);
    s.t0_ms = now_ms();
    s.sfd = -1;
    int status = stop_paths_init(&s.files, o->stop_file);
    if (status) return status;
    s.log = o->log_fd >= 0 ? runlog_open_fd(fcntl(o->log_fd, F_DUPFD_CLOEXEC, 0))
                           : runlog_open(o->log_path);
    if (!s.log && o->log_fd >= 0) {
        say("out of memory");
        stop_paths_cleanup(&s.files);
        return MG_EXIT_ERROR;
    }
    if (!s.log) {
        int e = errno;
        stop_paths_cleanup(&s.files);
        return cli_usage_error("--log '%s': %s", o->log_path,
                               e == EINVAL ? "not a writable regular file"
                               : e == ELOOP ? "a symbolic link (not followed)" : strerror(e));
    }
    s.sent = calloc(MEMBERS_MAX, sizeof *s.sent);
    s.mem = calloc(MEMBERS_MAX, sizeof *s.mem);
    if (!s.sent || !s.mem) {
        say("out of memory");
        status = MG_EXIT_ERROR;
        goto out;
    }
    /* Orphaned workers come back to us, so they are reaped, counted and
     * stopped with the rest. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    s.tty_handoff = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    if ((status = take_signals(&s)) || (status = spawn(&s))) goto out;

    /* memguard's descendants, not just the command's: a process that left
     * the command's tree through setsid() and a dead parent comes back to
     * us, and still counts. */
    if (mg_watch_descendants(ctx, (int)getpid()) < 0) say("cannot watch the process tree");
    log_start(&s);
    watch(&s);
    clean_up_tree(&s);
    status = exit_status(&s);
    log_exit(&s, status);
out:
    if (s.tty_handoff) tcsetpgrp(STDIN_FILENO, getpgrp()); /* SIGTTOU still blocked */
    while (s.hook && waitpid(s.hook, NULL, 0) < 0 && errno == EINTR) {}
    stop_paths_cleanup(&s.files);
    if (s.sfd >= 0) close(s.sfd);
    sigprocmask(SIG_SETMASK, &s.orig_mask, NULL);
    runlog_close(s.log);
    free(s.sent);
    free(s.mem);
    return status;
}
