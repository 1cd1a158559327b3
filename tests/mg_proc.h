/* SPDX-License-Identifier: MIT */
/*
 * mg_proc.h: running the memguard command as a real process in tests: its
 * argv and environment, its exit status, stdout and stderr, a SIGINT in
 * the middle, and a hard timeout so a hung run fails instead of stalling
 * the suite. Also the small file helpers the process tests share.
 */
#ifndef MG_PROC_H
#define MG_PROC_H

#include "mg_files.h"
#include "mg_test.h"

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

static inline double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads what the pipe holds into buf (NUL-terminated); once buf is full the
 * rest is read and dropped, so a chatty child never blocks on a full pipe
 * until the timeout. */
static inline void read_into(int fd, char *buf, size_t len, size_t *used)
{
    ssize_t n;
    for (;;) {
        if (*used + 1 < len) {
            n = read(fd, buf + *used, len - 1 - *used);
            if (n <= 0) break;
            *used += (size_t)n;
        } else {
            char drop[4096];
            if (read(fd, drop, sizeof drop) <= 0) break;
        }
    }
    buf[*used] = '\0';
}

/* Optional hook called every 5 ms while the process runs, with the ms
 * elapsed; it may signal R.pid. */
typedef void (*run_tick_fn)(double elapsed_ms);

/* Runs MG_CLI with args (NULL-terminated) and "K=V" environment overrides
 * (a bare "K" unsets K). Kills it after timeout_ms. */
static inline int run_cli_tick(const char *const *env, const char *const *args, int timeout_ms,
                        run_tick_fn tick)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe)) return -1;
    double t0 = mono_ms();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(pe[0]); close(po[1]); close(pe[1]);
        for (const char *const *e = env; e && *e; e++) {
            char kv[1024];
            snprintf(kv, sizeof kv, "%s", *e);
            char *eq = strchr(kv, '=');
            if (eq) { *eq = '\0'; setenv(kv, eq + 1, 1); } else unsetenv(kv);
        }
        const char *argv[64] = {MG_CLI};
        int i = 1;
        for (const char *const *a = args; *a && i < 63; a++) argv[i++] = *a;
        argv[i] = NULL;
        execv(MG_CLI, (char *const *)argv);
        _exit(127);
    }
    R.pid = pid;
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    size_t no = 0, ne = 0;
    R.out[0] = R.err[0] = '\0';
    int status = 0;
    for (;;) {
        read_into(po[0], R.out, sizeof R.out, &no);
        read_into(pe[0], R.err, sizeof R.err, &ne);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        double el = mono_ms() - t0;
        if (tick) tick(el);
        if (el >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            MG_FAIL_("memguard timed out after %d ms; stderr:\n%s", timeout_ms, R.err);
            break;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    R.wall_ms = mono_ms() - t0;
    read_into(po[0], R.out, sizeof R.out, &no);
    read_into(pe[0], R.err, sizeof R.err, &ne);
    close(po[0]);
    close(pe[0]);
    R.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
