/* SPDX-License-Identifier: MIT */
/*
 * probe.h: the Linux probe's insides, shared by its files (probe_*.c):
 * its state, limits, small parsers and the per-source calls. The probe's
 * interface to the rest of the library is mg__probe_* in internal.h.
 *
 * One file per source: probe_meminfo.c (RAM and swap), probe_psi.c
 * (pressure), probe_cgroup.c (the container's limit and usage),
 * probe_tree.c (the RSS and PSS of a process tree); probe_linux.c opens, samples
 * and closes them together.
 */
#ifndef MG_PROBE_H
#define MG_PROBE_H

#include "internal.h"
#include "posix/posix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_LEN 4096
/* A cgroup path deeper than this is not something a container runtime makes;
 * the walk stops there (the limit of the top levels is then not seen). */
#define MAX_LEVELS 32
/* statm descriptors kept open: 2-3 us per pread against 9-14 us for
 * open+read+close (probes.md 3.6). 64 covers a trainer with dozens of
 * DataLoader workers; further members are opened, read and closed. */
#define MAX_KEPT 64
/* Tree rediscovery. Walking children files costs 22-25 us per member
 * (probes.md 3.3): 2.25 ms for 101 processes, so not on every sample. It
 * runs once a second, and sooner (at most every FORK_REDISCOVER_MS) when
 * the last PID the kernel handed out (5th field of /proc/loadavg, one
 * 2 us pread) has moved: something forked. Without that, DataLoader-style
 * workers forked after a discovery went unseen for up to a second; at
 * 1.5 GB/s that was 700 MB of a 400 MB budget (measured in test_run). */
#define REDISCOVER_MS 1000u
#define FORK_REDISCOVER_MS 20u
/* v1 reports "no limit" as LONG_MAX rounded down to a page:
 * 9223372036854771712 with 4 KiB pages, less with 16/64 KiB pages. */
#define V1_UNLIMITED 0x7FFFFFFFFFFF0000ull
/* Upper bound on the members of one tree, so a runaway fork bomb cannot make
 * the probe allocate without limit. */
#define MAX_MEMBERS (1u << 20)

/* One member of the watched process tree. */
typedef struct mg__member {
    int pid;
    int statm_fd;       /* kept open for the first MAX_KEPT members, else -1 */
    bool rss_known;     /* its statm was read at the last sample */
    uint64_t rss_bytes; /* that reading */
} mg__member;

typedef struct cg_level {
    size_t dir_len;  /* prefix of cg_dir that is this level's directory */
    size_t path_len; /* prefix of cg_path that is its cgroup path */
    int limit_fd;    /* memory.max / memory.limit_in_bytes, -1 if none */
} cg_level;

struct mg__probe {
    mg__log log;
    char proc_root[PATH_LEN];
    char cgroup_root[PATH_LEN];
    long page_size;

    /* meminfo */
    int meminfo_fd;
    bool meminfo_bad;       /* last parse failed (log on change only) */
    bool logged_estimate;

    /* PSI */
    int psi_fd;

    /* cgroup */
    bool cg_found;
    int cg_version;
    char cg_path[PATH_LEN];  /* as /proc/self/cgroup says */
    char cg_dir[PATH_LEN];   /* the leaf's directory under cgroup_root */
    cg_level levels[MAX_LEVELS];
    int nlevels;             /* levels[0] is the leaf, the last the mount */
    int leaf_stat_fd;        /* v1: hierarchical_memory_limit */
    int usage_level;         /* level whose usage/stat fds are open */
    int usage_fd;
    int stat_fd;

    /* process tree */
    int root_pid;
    bool descendants_only;  /* the tree is everything below root_pid: the
                             * root stays members[0] (its statm tells
                             * whether it is alive) but is not counted */
    bool root_gone;
    bool need_discover;
    uint64_t last_discover_ms;
    int loadavg_fd;         /* /proc/loadavg: its last PID tells of forks */
    long last_pid;          /* as read at the last discovery, -1 unknown */
    mg__member *members;     /* members[0] is the root */
    size_t nmembers;
    char *buf;               /* children lists can be long: grown on need */
    size_t buf_len;
};

/* ---- small helpers ------------------------------------------------------- */

static inline void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static inline int open_ro(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

static inline bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Copies at most dst_len - 1 bytes, always NUL-terminates. */
static inline void copy_str(char *dst, size_t dst_len, const char *src, size_t n)
{
    if (n >= dst_len) n = dst_len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Parses a non-negative decimal such as "12.34" without strtod, whose
 * decimal point follows the caller's locale. */
static inline bool parse_decimal(const char **s, double *out)
{
    const char *p = *s;
    if (*p < '0' || *p > '9') return false;
    double v = 0.0;
    while (*p >= '0' && *p <= '9') v = v * 10.0 + (double)(*p++ - '0');
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (*p < '0' || *p > '9') return false;
        while (*p >= '0' && *p <= '9') {
            v += (double)(*p++ - '0') * scale;
            scale /= 10.0;
        }
    }
    *s = p;
    *out = v;
    return true;
}

/* A whole file holding one unsigned number and an optional newline. */
static inline bool parse_single_u64(const char *buf, uint64_t *out)
{
    const char *p = buf;
    if (mg__parse_u64(&p, out) != 0) return false;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    return *p == '\0';
}

/* "key value" line lookup in a memory.stat text; the key must start a line
 * and be followed by a blank so "file" does not match "file_mapped". */
static inline bool stat_lookup(const char *buf, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    const char *p = buf;
    while (*p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
            const char *v = p + klen;
            return mg__parse_u64(&v, out) == 0;
        }
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    return false;
}

static inline bool is_all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static inline bool parse_pid(const char *s, int *out)
{
    uint64_t v;
    const char *p = s;
    if (mg__parse_u64(&p, &v) != 0 || v == 0 || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

/* ---- the sources (each sets its part of the snapshot, known or not) ---------- */

/* RAM and swap from meminfo; 0, or MG_EIO / MG_EPARSE. */
int mg__probe_meminfo(mg__probe *p, mg_snapshot *snap);
void mg__probe_psi(mg__probe *p, mg_snapshot *snap);
/* Finds the caller's memory cgroup and opens its files; close undoes it. */
void mg__probe_cgroup_open(mg__probe *p);
void mg__probe_cgroup(mg__probe *p, mg_snapshot *snap);
void mg__probe_cgroup_close(mg__probe *p);
void mg__probe_tree(mg__probe *p, uint64_t now_ms, mg_snapshot *snap);
void mg__probe_tree_clear(mg__probe *p);
bool mg__probe_pid_exists(const mg__probe *p, int pid);

#endif /* MG_PROBE_H */
