/* SPDX-License-Identifier: MIT */
/*
 * mg_unet_run.h: running unet-train (or python) as a real process in the
 * unet tests: its own process group, a working folder, a deadline after
 * which the group is SIGKILLed (and it is killed after the child exits in
 * any case, so nothing outlives a check), stdout and stderr drained so the
 * child never blocks on a full pipe, wait4's peak RSS, an optional hook
 * called every 5 ms that may signal the child (support/proc.h runs it),
 * and optional extra environment. Also the file helpers these tests
 * share: rm -rf, mkdir -p, whole-file read and write, and a listing of a
 * folder tree (names, types, sizes, content hashes) to prove that a
 * refused command created or changed nothing.
 */
#ifndef MG_UNET_RUN_H
#define MG_UNET_RUN_H

#include "mg_files.h"
#include "mg_test.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct proc {
    int status;        /* exit status, 128 + signal, or -1 (could not start) */
    double wall_ms;
    long maxrss_kb;    /* wait4's ru_maxrss of the child */
    pid_t pid;         /* while it runs: for the tick hook */
    char out[65536];
    char err[16384];
} proc;

static proc P;
/* Optional: the working folder of the next children (NULL: ours), and a
 * hook called every 5 ms with the milliseconds since the start. */
static const char *P_cwd;
static void (*P_tick)(double elapsed_ms);
/* Optional: more "K=V" (a bare "K" unsets K) for the next children. */
static const char *const *P_env_more;

/* The environment of every child these tests start. */
static const char *const P_env[] = {"OMP_NUM_THREADS=2", "LC_ALL=C",
                                    "TORCH_FORCE_WEIGHTS_ONLY_LOAD", NULL};

/* Runs argv[0] with argv (NULL-terminated) in its own process group,
 * through support/proc.h; kills the group after timeout_ms (a failed
 * check) and after the child exits. */
static inline int run_argv(const char *const *argv, int timeout_ms)
{
    mg_proc_opts o = {.argv = argv, .env_base = P_env, .env = P_env_more, .cwd = P_cwd,
                      .new_pgrp = 1,
                      .timeout_ms = timeout_ms, .tick = P_tick, .out = P.out,
                      .out_cap = sizeof P.out, .err = P.err, .err_cap = sizeof P.err,
                      .pid_at = &P.pid};
    mg_proc_res r;
    P.status = mg_proc_run(&o, &r);
    if (r.status == -1) MG_FAIL_("%s could not be run: %s", argv[0], strerror(r.errnum));
    if (r.timed_out) MG_FAIL_("%s timed out after %d ms; stderr:\n%s", argv[0], timeout_ms, P.err);
    P.wall_ms = r.wall_ms;
    P.maxrss_kb = r.maxrss_kb;
    return P.status;
}

/* build/unet-train, next to MG_CLI. */
static inline const char *unet_train_path(void)
{
    static char path[1024];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", MG_CLI);
        char *slash = strrchr(path, '/');
        size_t at = slash ? (size_t)(slash + 1 - path) : 0;
        snprintf(path + at, sizeof path - at, "unet-train");
    }
    return path;
}

static inline int run_ut_v(const char *const *args, int timeout_ms)
{
    const char *argv[64] = {unet_train_path()};
    int i = 1;
    for (const char *const *a = args; *a && i < 63; a++) argv[i++] = *a;
    argv[i] = NULL;
    return run_argv(argv, timeout_ms);
}
#define UT(timeout_ms, ...) run_ut_v((const char *const[]){__VA_ARGS__, NULL}, timeout_ms)

/* ---- files ------------------------------------------------------------------------ */



static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = '\0';
    if (len) *len = n;
    return b;
}

static inline bool spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static inline bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static inline int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline uint64_t fnv1a_file(const char *path, size_t *size)
{
    size_t sz = 0;
    char *b = slurp(path, &sz);
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; b && k < sz; k++) h = (h ^ (uint8_t)b[k]) * 1099511628211ull;
    free(b);
    *size = sz;
    return h;
}

/* One "path type size hash" line per entry under dir (recursively, links
 * not followed, FIFOs not opened), sorted: equal listings mean nothing was
 * created, removed or changed. `rel` is the prefix printed ("" at the top). */
static inline void tree_list_at(const char *dir, const char *rel, char *out, size_t len, size_t *used)
{
    char *names[512];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && n < 512 && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        char p[4400], r[4400];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= sizeof p ||
            (size_t)snprintf(r, sizeof r, "%s%s", rel, names[i]) >= sizeof r - 1) {
            free(names[i]);
            continue;
        }
        struct stat sb;
        size_t sz = 0;
        uint64_t h = 0;
        char type = '?';
        if (lstat(p, &sb) == 0) {
            type = S_ISDIR(sb.st_mode) ? 'd' : S_ISLNK(sb.st_mode) ? 'l' : S_ISFIFO(sb.st_mode) ? 'p'
                   : S_ISREG(sb.st_mode) ? 'f' : 'o';
            if (type == 'f') h = fnv1a_file(p, &sz);
        }
        int w = snprintf(out + *used, len - *used, "%s %c %zu %016llx\n", r, type, sz,
                         (unsigned long long)h);
        if (w > 0 && (size_t)w < len - *used) *used += (size_t)w;
        if (type == 'd') {
            strncat(r, "/", sizeof r - strlen(r) - 1);
            tree_list_at(p, r, out, len, used);
        }
        free(names[i]);
    }
}

static inline void tree_list(const char *dir, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    tree_list_at(dir, "", out, len, &used);
}

/* The number of lines of s (a last line without a newline counts). */
static inline int count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++) n += *p == '\n';
    return n + (*s && s[strlen(s) - 1] != '\n');
}

#endif /* MG_UNET_RUN_H */
