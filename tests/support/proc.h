/* SPDX-License-Identifier: MIT */
/*
 * proc.h: the one way tests run another program as a real process, and the
 * one monotonic clock they time things with.
 *
 * mg_proc_run forks and execs argv, with environment overrides, an optional
 * working folder, process group and RLIMIT_AS, and waits for it with a hard
 * timeout, so a hung program fails its test instead of stalling the suite.
 * While it runs, both output pipes are drained every poll: what does not
 * fit the caller's buffer is read and dropped, so a chatty child never
 * blocks on a full pipe. Optional hooks run every poll: `sample` (e.g. to
 * read /proc/<pid>/status while the child is alive) and `tick` (e.g. to
 * signal it at a given moment). On timeout the child (its group, with
 * new_pgrp) gets SIGTERM and term_grace_ms to go, or SIGKILL at once; with
 * new_pgrp the group is SIGKILLed after the child exits too, so nothing it
 * started outlives the check.
 *
 * mg_proc_spawn starts a program the same way and leaves it running.
 *
 * Not here: assertions (the wrappers in mg_proc.h, mg_unet_run.h and the
 * tests report a timeout with their own message: a support file has no
 * test state), interpreting the output, processes that leave the group
 * (test_launchers kills those as their subreaper).
 */
#ifndef MG_SUPPORT_PROC_H
#define MG_SUPPORT_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Milliseconds of CLOCK_MONOTONIC (an arbitrary origin: for differences). */
double mg_mono_ms(void);

/* The state letter of /proc/<pid>/stat ('R', 'S', 'Z', ...), or 0 when
 * there is no such process (Linux). */
char mg_proc_state(pid_t pid);

typedef struct mg_proc_opts {
    const char *const *argv;      /* NULL-terminated; argv[0] is the program's path */
    int search_path;              /* look argv[0] up in PATH (execvp) */
    /* "K=V" sets K, a bare "K" unsets it; env_base first, then env. */
    const char *const *env_base;
    const char *const *env;
    const char *cwd;              /* NULL: ours; 126 when it cannot be entered */
    int new_pgrp;                 /* its own process group (see above) */
    uint64_t as_limit;            /* RLIMIT_AS in bytes; 0: none */
    int timeout_ms;
    int term_grace_ms;            /* on timeout: SIGTERM, this long, then SIGKILL; 0: SIGKILL */
    int poll_ms;                  /* 0: 5 ms */
    char *out;                    /* stdout's first out_cap - 1 bytes, NUL-terminated; */
    size_t out_cap;               /*   NULL: stdout stays ours */
    char *err;                    /* same for stderr; NULL: stderr stays ours, */
    size_t err_cap;               /*   unless merge_err */
    int merge_err;                /* stderr into out too, as one stream */
    int discard_output;           /* stdout and stderr to /dev/null (out, err unused) */
    pid_t *pid_at;                /* gets the child's pid as soon as it exists */
    void (*sample)(pid_t pid);    /* every poll, before the child is reaped */
    void (*tick)(double elapsed_ms); /* every poll while it runs */
} mg_proc_opts;

typedef struct mg_proc_res {
    int status;      /* exit status, or 128 + signal; -1: it could not be run */
    int errnum;      /* why not (pipe, fork, wait4) */
    int timed_out;
    pid_t pid;
    double wall_ms;  /* from the fork to the reaping */
    long maxrss_kb;  /* wait4's ru_maxrss */
    size_t nout, nerr; /* bytes kept in out and err */
} mg_proc_res;

/* Runs o->argv to its end (or the timeout) and fills *r; returns r->status.
 * An exec that fails exits 127 after one line on the child's stderr. */
int mg_proc_run(const mg_proc_opts *o, mg_proc_res *r);

/* Starts o->argv in the background, set up as mg_proc_run does, and
 * returns its pid (-1 when fork fails). Its output is not captured (there
 * would be nobody to drain it): use discard_output or leave it ours. The
 * caller kills and reaps it; timeout, hooks and buffers are unused. */
pid_t mg_proc_spawn(const mg_proc_opts *o);

#endif /* MG_SUPPORT_PROC_H */
