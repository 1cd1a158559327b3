/* SPDX-License-Identifier: MIT */
/*
 * mg_proc.h: running the memguard command as a real process in tests: its
 * argv and environment, its exit status, stdout and stderr, a SIGINT in
 * the middle, and a hard timeout so a hung run fails instead of stalling
 * the suite (the runner is support/proc.h's, which always drains both
 * pipes). Also the small file helpers the process tests share.
 */
#ifndef MG_PROC_H
#define MG_PROC_H

#include "mg_files.h"
#include "mg_test.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct run_result {
    int status;       /* exit status, or 128 + signal */
    double wall_ms;   /* from start to exit */
    pid_t pid;
    char out[65536];
    char err[16384];
} run_result;

static run_result R;

/* Optional hook called every 5 ms while the process runs, with the ms
 * elapsed; it may signal R.pid. */
typedef void (*run_tick_fn)(double elapsed_ms);

/* Runs MG_CLI with args (NULL-terminated) and "K=V" environment overrides
 * (a bare "K" unsets K), through support/proc.h. Kills it after
 * timeout_ms (a failed check). */
static inline int run_cli_tick(const char *const *env, const char *const *args, int timeout_ms,
                               run_tick_fn tick)
{
    const char *argv[64] = {MG_CLI};
    int i = 1;
    for (const char *const *a = args; *a && i < 63; a++) argv[i++] = *a;
    argv[i] = NULL;
    mg_proc_opts o = {.argv = argv, .env = env, .timeout_ms = timeout_ms, .tick = tick,
                      .out = R.out, .out_cap = sizeof R.out, .err = R.err,
                      .err_cap = sizeof R.err, .pid_at = &R.pid};
    mg_proc_res r;
    mg_proc_run(&o, &r);
    if (r.status == -1) MG_FAIL_("memguard could not be run: %s", strerror(r.errnum));
    if (r.timed_out) MG_FAIL_("memguard timed out after %d ms; stderr:\n%s", timeout_ms, R.err);
    R.wall_ms = r.wall_ms;
    R.status = r.status;
    return R.status;
}

static inline int run_cli(const char *const *env, const char *const *args, int timeout_ms)
{
    return run_cli_tick(env, args, timeout_ms, NULL);
}

#define RUN(envv, ...) run_cli(envv, (const char *const[]){__VA_ARGS__, NULL}, 20000)

/* The number of lines in s (newlines, plus a last line without one). */
static inline int mg_count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++) n += *p == '\n';
    return n + (*s && s[strlen(s) - 1] != '\n');
}

static inline void write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    if (!f) { MG_FAIL_("cannot write %s: %s", path, strerror(errno)); return; }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}


#endif /* MG_PROC_H */
