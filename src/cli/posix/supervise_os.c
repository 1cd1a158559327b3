/* SPDX-License-Identifier: MIT */
/*
 * posix/supervise_os.c: the Linux half of `memguard run`'s supervisor
 * (supervise.h): start the command in its own process group, take every
 * signal to memguard synchronously, reap, send the checkpoint signal to the
 * processes that catch it, SIGTERM and SIGKILL. What to do when is
 * supervise.c's; this file only carries it out.
 *
 * Signals to memguard itself are handled synchronously: every catchable one
 * is blocked and read from a signalfd in the poll loop (SIGPIPE is ignored:
 * `memguard run ... | head` must not kill the supervisor), so no stray
 * signal can kill it and leave the trainer unguarded, and no work ever
 * happens in a handler (the hang Lightning #21406 reports comes from saving
 * inside one). SIGUSR1 to memguard is a manual request; SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT are forwarded to the command's group; the others that
 * do not end the job are logged and ignored. The command gets the
 * checkpoint signal as its parent-death signal, so even a SIGKILLed
 * memguard leaves a trainer that saves and stops.
 *
 * Who gets signalled: the whole process group with kill(-pgid) while the
 * leader is our unreaped child (its PID, the group's ID, cannot be reused
 * then), and every descendant of memguard through a pidfd (members.c), so
 * processes that left the group with setsid() are reached and a reused PID
 * never is. The checkpoint signal goes only to processes that catch it
 * (SigCgt) at that moment and have no descendant it would kill (a
 * launcher such as mpirun catches it to forward it to ranks that may not
 * have their handler yet), and again to any that becomes so while the
 * request is pending. memguard is a child subreaper: orphans come back
 * to it, are counted, reaped, and stopped with the rest.
 */
#define _GNU_SOURCE /* pipe2, signalfd: this file is Linux-only */
#include "../supervise.h"
#include "members.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

struct sup_os {
    int sfd;                    /* signalfd of the blocked signals */
    sigset_t orig_mask;         /* restored in the children */
    struct sigaction orig_pipe; /* SIGPIPE as memguard found it */
    bool signals_taken;
    bool tty_handoff;           /* the child owns the terminal */
    pid_t hook;                 /* running --on-warn hook, 0 if none */
    struct sent { int pid; unsigned long long start; } *sent;
    size_t nsent;               /* processes the request's signal reached */
    member *mem;                /* MEMBERS_MAX, scratch for members_list */
};

const char *sos_signal_name(const sup *s, char *buf, size_t len)
{
    return signal_name(s->o->signo, buf, len);
}

bool sos_can_terminate(void) { return true; }

const char *sos_kill_name(void) { return "SIGKILL"; }

/* ---- signals to the child --------------------------------------------------- */

static void signal_group(sup *s, int sig)
{
    char name[32];
    if (s->child_done) return; /* the group's ID may be reused now */
    if (kill(-s->child, sig) != 0 && errno != ESRCH)
        sup_say("cannot send %s to process group %d: %s", signal_name(sig, name, sizeof name),
                s->child, strerror(errno));
}

static bool was_sent(const sup_os *os, const member *m)
{
    for (size_t i = 0; i < os->nsent; i++)
        if (os->sent[i].pid == m->pid && os->sent[i].start == m->start) return true;
    return false;
}

/* Sends sig to the members of the tree; with `catchers` only to those that
 * handle it and have not had it yet. Returns how many got it. */
static size_t signal_members(sup *s, int sig, bool catchers)
{
    sup_os *os = s->os;
    size_t n = members_list(s->ctx, catchers ? sig : 0, (int)os->hook, os->mem, MEMBERS_MAX);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        const member *m = &os->mem[i];
        if (catchers && (!m->catches || was_sent(os, m))) continue;
        if (member_signal(m, sig) != 0) continue;
        got++;
        if (catchers && os->nsent < MEMBERS_MAX)
            os->sent[os->nsent++] = (struct sent){m->pid, m->start};
    }
    members_release(os->mem, n);
    return got;
}

/* Ends the job: the group while its leader lives, and every member. */
static void signal_all(sup *s, int sig)
{
    signal_group(s, sig);
    signal_members(s, sig, false);
}

void sos_terminate(sup *s) { signal_all(s, SIGTERM); }

void sos_kill(sup *s) { signal_all(s, SIGKILL); }

size_t sos_members_alive(sup *s)
{
    size_t n = members_list(s->ctx, 0, (int)s->os->hook, s->os->mem, MEMBERS_MAX);
    members_release(s->os->mem, n);
    return n;
}

size_t sos_request_signal(sup *s, bool late)
{
    sup_os *os = s->os;
    size_t before = os->nsent;
    size_t got = signal_members(s, s->o->signo, true);
    char name[32];
    for (size_t i = before; late && i < os->nsent; i++) {
        char extra[96];
        snprintf(extra, sizeof extra, "\"pid\":%d,\"signal\":%d", os->sent[i].pid, s->o->signo);
        sup_log(s, "signal", extra, NULL, NULL);
        sup_say("pid %d now handles %s: sent it", os->sent[i].pid,
                signal_name(s->o->signo, name, sizeof name));
    }
    return got;
}

void sos_request_withdrawn(sup *s) { s->os->nsent = 0; }

/* ---- the hook ----------------------------------------------------------------- */

/* In a child of memguard before exec: the signal state memguard found. */
static void restore_signals(const sup_os *os)
{
    sigaction(SIGPIPE, &os->orig_pipe, NULL);
    sigprocmask(SIG_SETMASK, &os->orig_mask, NULL);
}

void sos_run_hook(sup *s, mg_level level)
{
    pid_t pid = fork();
    if (pid < 0) {
        sup_say("cannot start --on-warn hook: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        char pidbuf[32];
        snprintf(pidbuf, sizeof pidbuf, "%d", s->child);
        setenv("MEMGUARD_LEVEL", mg_level_name(level), 1);
        setenv("MEMGUARD_REASON", s->reason, 1);
        setenv("MEMGUARD_PID", pidbuf, 1);
        restore_signals(s->os);
        execl(s->o->on_warn, s->o->on_warn, (char *)NULL);
        _exit(127);
    }
    s->os->hook = pid;
    s->hook_running = true;
    s->hook_deadline_ms = run_os_now_us() / 1000u + s->o->hook_timeout_ms;
}

void sos_kill_hook(sup *s)
{
    kill(s->os->hook, SIGKILL); /* our unreaped child: its PID is still ours */
}

/* ---- reaping and signals ------------------------------------------------------- */

static void reap(sup *s)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == s->child) {
            s->child_done = true;
            s->end.signalled = WIFSIGNALED(st);
            s->end.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            s->end.sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
            s->end.sig_ours = s->end.signalled && (s->end.sig == s->o->signo ||
                                                   s->end.sig == SIGTERM ||
                                                   s->end.sig == SIGKILL);
        } else if (pid == s->os->hook) {
            s->os->hook = 0;
            s->hook_running = false;
        }
    }
}

/* SIGUSR1 to memguard: a manual "checkpoint and stop". */
static void manual_request(const struct signalfd_siginfo *si, sos_ask *ask)
{
    char how[64];
    snprintf(how, sizeof how, "SIGUSR1 from pid %u", si->ssi_pid);
    if (ask->kind != ASK_NONE) {
        sup_say("%s: a request is already under way", how);
        return;
    }
    ask->kind = ASK_REQUEST;
    ask->at_us = run_os_now_us();
    snprintf(ask->how, sizeof ask->how, "%s", how);
    snprintf(ask->text, sizeof ask->text,
             "checkpoint requested with SIGUSR1 to memguard by pid %u", si->ssi_pid);
}

static void handle_signal(sup *s, const struct signalfd_siginfo *si, sos_ask *ask)
{
    int sig = (int)si->ssi_signo;
    char name[32], extra[96];
    signal_name(sig, name, sizeof name);
    switch (sig) {
    case SIGCHLD: reap(s); return;
    case SIGUSR1: manual_request(si, ask); return;
    case SIGINT: case SIGTERM: case SIGHUP: case SIGQUIT:
        if (s->child_done) return;
        /* What the user sent memguard goes to the whole job. */
        snprintf(extra, sizeof extra, "\"signal\":%d,\"from_pid\":%u", sig, si->ssi_pid);
        sup_log(s, "forward", extra, NULL, NULL);
        signal_group(s, sig);
        return;
    /* Job control and terminal noise: nothing to say. */
    case SIGCONT: case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGWINCH: case SIGURG:
        return;
    default:
        snprintf(extra, sizeof extra, "\"signal\":%d,\"from_pid\":%u", sig, si->ssi_pid);
        sup_log(s, "ignored_signal", extra, NULL, NULL);
        sup_say("ignoring %s from pid %u (memguard keeps guarding pid %d)", name, si->ssi_pid,
                s->child);
    }
}

void sos_wait(sup *s, uint64_t timeout_ms, sos_ask *ask)
{
    struct pollfd p = {s->os->sfd, POLLIN, 0};
    int t = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    if (poll(&p, 1, t) <= 0) return;
    struct signalfd_siginfo si;
    while (read(s->os->sfd, &si, sizeof si) == (ssize_t)sizeof si) handle_signal(s, &si, ask);
}

/* ---- start-up ------------------------------------------------------------------ */

static int spawn(sup *s)
{
    sup_os *os = s->os;
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) != 0) {
        sup_say("cannot create a pipe: %s", strerror(errno));
        return MG_EXIT_ERROR;
    }
    char sigbuf[16], pidbuf[32];
    snprintf(sigbuf, sizeof sigbuf, "%d", s->o->signo);
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    setenv(MG_ENV_STOP_FILE, s->files.stop, 1);
    setenv(MG_ENV_ACK_FILE, s->files.ack, 1);
    setenv(MG_ENV_CONTINUE_FILE, s->files.cont, 1);
    setenv(MG_ENV_STOP_SIGNAL, sigbuf, 1);
    setenv(MG_ENV_SUPERVISOR_PID, pidbuf, 1);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        sup_say("cannot fork: %s", strerror(errno));
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
        if (os->tty_handoff) tcsetpgrp(STDIN_FILENO, getpid());
        /* Undo memguard's own protection: the job is what the kernel
         * should pick when all else fails, not memguard. */
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t w = write(fd, "0", 1);
            (void)w;
            close(fd);
        }
        restore_signals(os);
        execvp(s->o->argv[0], s->o->argv);
        int e = errno;
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(ep[1]);
    setpgid(pid, pid); /* both sides, so no signal can race the child's own call */
    s->child = (int)pid;
    int e = 0;
    ssize_t n;
    do n = read(ep[0], &e, sizeof e); while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        int st;
        waitpid(pid, &st, 0);
        sup_say("cannot run '%s': %s", s->o->argv[0], strerror(e));
        return e == ENOENT ? 127 : 126;
    }
    return 0;
}

/* Every catchable signal goes to the signalfd, SIGPIPE is ignored. */
static int take_signals(sup_os *os)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGKILL);
    sigdelset(&set, SIGSTOP);
    sigdelset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, &os->orig_mask);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &os->orig_pipe);
    os->signals_taken = true;
    os->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (os->sfd >= 0) return 0;
    sup_say("cannot create a signalfd: %s", strerror(errno));
    return MG_EXIT_ERROR;
}

int sos_start(sup *s)
{
    sup_os *os = s->os = calloc(1, sizeof *os);
    if (os) {
        os->sfd = -1;
        os->sent = calloc(MEMBERS_MAX, sizeof *os->sent);
        os->mem = calloc(MEMBERS_MAX, sizeof *os->mem);
    }
    if (!os || !os->sent || !os->mem) {
        sup_say("out of memory");
        return MG_EXIT_ERROR;
    }
    /* Orphaned workers come back to us, so they are reaped, counted and
     * stopped with the rest. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    os->tty_handoff = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    int status;
    if ((status = take_signals(os)) || (status = spawn(s))) return status;
    /* memguard's descendants, not just the command's: a process that left
     * the command's tree through setsid() and a dead parent comes back to
     * us, and still counts. */
    if (mg_watch_descendants(s->ctx, (int)getpid()) < 0) sup_say("cannot watch the process tree");
    return 0;
}

void sos_finish(sup *s)
{
    sup_os *os = s->os;
    if (!os) return;
    if (os->tty_handoff) tcsetpgrp(STDIN_FILENO, getpgrp()); /* SIGTTOU still blocked */
    while (os->hook && waitpid(os->hook, NULL, 0) < 0 && errno == EINTR) {}
    if (os->sfd >= 0) close(os->sfd);
    if (os->signals_taken) sigprocmask(SIG_SETMASK, &os->orig_mask, NULL);
    free(os->sent);
    free(os->mem);
    free(os);
    s->os = NULL;
}
