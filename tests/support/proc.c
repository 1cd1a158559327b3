/* SPDX-License-Identifier: MIT */
/*
 * proc.c: mg_proc_run, mg_proc_spawn, mg_mono_ms and mg_proc_state (see
 * proc.h). POSIX only; it uses
 * nothing of the code under test.
 */
#define _GNU_SOURCE /* wait4 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double mg_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char mg_proc_state(pid_t pid)
{
    char path[64], line[1024], state = 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (fgets(line, sizeof line, f)) {
        char *rp = strrchr(line, ')'); /* the name may hold spaces and ')' */
        if (rp && rp[1] == ' ') state = rp[2];
    }
    fclose(f);
    return state;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the child --------------------------------------------------------- */

static void apply_env(const char *const *env)
{
    for (const char *const *e = env; e && *e; e++) {
        char kv[8192];
        snprintf(kv, sizeof kv, "%s", *e);
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        } else {
            unsetenv(kv);
        }
    }
}

/* After fork: the group, the pipes, the folder, the environment, the
 * limit, then exec. Never returns. */
static void child(const mg_proc_opts *o, const int po[2], const int pe[2])
{
    if (o->new_pgrp) setpgid(0, 0);
    if (o->discard_output) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
    }
    if (o->out) dup2(po[1], 1);
    if (o->err) dup2(pe[1], 2);
    else if (o->out && o->merge_err) dup2(po[1], 2);
    int fds[4] = {po[0], po[1], pe[0], pe[1]};
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (o->cwd && chdir(o->cwd) != 0) _exit(126);
    apply_env(o->env_base);
    apply_env(o->env);
    if (o->as_limit) {
        struct rlimit rl = {(rlim_t)o->as_limit, (rlim_t)o->as_limit};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(126);
    }
    if (o->search_path) execvp(o->argv[0], (char *const *)o->argv);
    else execv(o->argv[0], (char *const *)o->argv);
    fprintf(stderr, "%s: %s\n", o->argv[0], strerror(errno));
    _exit(127);
}

/* ---- the parent -------------------------------------------------------- */

/* Reads what the pipe holds: the first cap - 1 bytes into buf (kept
 * NUL-terminated), the rest read and dropped. fd < 0: nothing to do. */
static void drain(int fd, char *buf, size_t cap, size_t *used)
{
    if (fd < 0) return;
    char junk[4096];
    for (;;) {
        ssize_t n;
        if (*used + 1 < cap) n = read(fd, buf + *used, cap - 1 - *used);
        else n = read(fd, junk, sizeof junk);
        if (n <= 0) break;
        if (*used + 1 < cap) *used += (size_t)n;
    }
    if (cap) buf[*used] = '\0';
}

typedef struct run {
    const mg_proc_opts *o;
    mg_proc_res *r;
    int fo, fe;      /* our ends of the pipes, or -1 */
    int wstatus;
    struct rusage ru;
} run;

static void drain_both(run *x)
{
    drain(x->fo, x->o->out, x->o->out_cap, &x->r->nout);
    drain(x->fe, x->o->err, x->o->err_cap, &x->r->nerr);
}

static void signal_it(const run *x, int sig)
{
    if (x->o->new_pgrp) kill(-x->r->pid, sig);
    kill(x->r->pid, sig);
}

/* 1 once the child is reaped (x->wstatus), 0 while it runs. */
static int reaped(run *x)
{
    pid_t w = wait4(x->r->pid, &x->wstatus, WNOHANG, &x->ru);
    if (w == x->r->pid) return 1;
    if (w < 0 && errno != EINTR) { /* not ours to wait for any more */
        x->r->errnum = errno;
        x->wstatus = -1;
        return 1;
    }
    return 0;
}

/* The timeout: SIGTERM and the grace (draining), then SIGKILL and the wait. */
static void stop_it(run *x)
{
    x->r->timed_out = 1;
    if (x->o->term_grace_ms > 0) {
        signal_it(x, SIGTERM);
        double end = mg_mono_ms() + x->o->term_grace_ms;
        while (mg_mono_ms() < end) {
            drain_both(x);
            if (reaped(x)) return;
            sleep_ms(x->o->poll_ms > 0 ? x->o->poll_ms : 5);
        }
    }
    signal_it(x, SIGKILL);
    while (wait4(x->r->pid, &x->wstatus, 0, &x->ru) < 0 && errno == EINTR) {}
}

static void wait_for_it(run *x, double t0)
{
    const mg_proc_opts *o = x->o;
    for (;;) {
        drain_both(x);
        if (o->sample) o->sample(x->r->pid);
        if (reaped(x)) return;
        double el = mg_mono_ms() - t0;
        if (o->tick) o->tick(el);
        if (el >= o->timeout_ms) {
            stop_it(x);
            return;
        }
        sleep_ms(o->poll_ms > 0 ? o->poll_ms : 5);
    }
}

/* Both ends -1 when the stream is not captured. */
static int open_pipe(int p[2], int wanted)
{
    p[0] = p[1] = -1;
    return wanted ? pipe(p) : 0;
}

int mg_proc_run(const mg_proc_opts *o, mg_proc_res *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    if (o->out && o->out_cap) o->out[0] = '\0';
    if (o->err && o->err_cap) o->err[0] = '\0';
    int po[2], pe[2];
    if (open_pipe(po, o->out != NULL) || open_pipe(pe, o->err != NULL)) {
        r->errnum = errno;
        if (po[0] >= 0) {
            close(po[0]);
            close(po[1]);
        }
        return -1;
    }
    double t0 = mg_mono_ms();
    pid_t pid = fork();
    if (pid == 0) child(o, po, pe);
    r->errnum = pid < 0 ? errno : 0;
    if (po[1] >= 0) close(po[1]);
    if (pe[1] >= 0) close(pe[1]);
    run x = {.o = o, .r = r, .fo = po[0], .fe = pe[0]};
    if (pid > 0) {
        if (o->new_pgrp) setpgid(pid, pid); /* both sides: no race with kill(-pid) */
        r->pid = pid;
        if (o->pid_at) *o->pid_at = pid;
        if (x.fo >= 0) fcntl(x.fo, F_SETFL, O_NONBLOCK);
        if (x.fe >= 0) fcntl(x.fe, F_SETFL, O_NONBLOCK);
        wait_for_it(&x, t0);
        if (o->new_pgrp) kill(-pid, SIGKILL); /* anything it left in its group */
        r->wall_ms = mg_mono_ms() - t0;
        drain_both(&x);
        r->maxrss_kb = x.ru.ru_maxrss;
        if (x.wstatus != -1)
            r->status = WIFEXITED(x.wstatus) ? WEXITSTATUS(x.wstatus) : 128 + WTERMSIG(x.wstatus);
    }
    if (x.fo >= 0) close(x.fo);
    if (x.fe >= 0) close(x.fe);
    return r->status;
}

pid_t mg_proc_spawn(const mg_proc_opts *o)
{
    mg_proc_opts bg = *o;
    bg.out = bg.err = NULL;
    bg.merge_err = 0;
    const int none[2] = {-1, -1};
    pid_t pid = fork();
    if (pid == 0) child(&bg, none, none);
    if (pid > 0 && bg.new_pgrp) setpgid(pid, pid);
    return pid;
}
