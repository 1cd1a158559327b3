/* SPDX-License-Identifier: MIT */
/*
 * probe_linux.c: the Linux probe. It reads /proc/meminfo (RAM and swap), the
 * caller's memory cgroup (v2 or v1: effective limit, usage, inactive file
 * cache), /proc/pressure/memory (PSI) and the RSS of a process tree, all
 * under injectable roots so tests can point it at fixture trees.
 *
 * It keeps descriptors open and re-reads them with pread: 1.3-2.7 us per
 * file against 9-23 us for open+read+close (research/probes.md 3.6), so a
 * whole sample of a trainer and 8 workers costs about 45 us. It does not
 * combine the figures into an effective RAM total (ram.c does), does not read
 * PSS (smaps_rollup costs 17 ms per GiB resident, probes.md 3.2), does not
 * poll or arm PSI triggers, and keeps no global state.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    bool root_gone;
    bool need_discover;
    uint64_t last_discover_ms;
    int loadavg_fd;         /* /proc/loadavg: its last PID tells of forks */
    long last_pid;          /* as read at the last discovery, -1 unknown */
    int *pids;
    int *fds;                /* statm fd per member, -1 when not kept */
    size_t nmembers;
    char *buf;               /* children lists can be long: grown on need */
    size_t buf_len;
};

/* ---- small helpers ------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int open_ro(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Copies at most dst_len - 1 bytes, always NUL-terminates. */
static void copy_str(char *dst, size_t dst_len, const char *src, size_t n)
{
    if (n >= dst_len) n = dst_len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Parses a non-negative decimal such as "12.34" without strtod, whose
 * decimal point follows the caller's locale. */
static bool parse_decimal(const char **s, double *out)
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
static bool parse_single_u64(const char *buf, uint64_t *out)
{
    const char *p = buf;
    if (mg__parse_u64(&p, out) != 0) return false;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    return *p == '\0';
}

/* "key value" line lookup in a memory.stat text; the key must start a line
 * and be followed by a blank so "file" does not match "file_mapped". */
static bool stat_lookup(const char *buf, const char *key, uint64_t *out)
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

static bool is_all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static bool parse_pid(const char *s, int *out)
{
    uint64_t v;
    const char *p = s;
    if (mg__parse_u64(&p, &v) != 0 || v == 0 || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

/* ---- meminfo ------------------------------------------------------------- */

enum { MI_TOTAL, MI_FREE, MI_AVAIL, MI_BUFFERS, MI_CACHED, MI_SWAPTOTAL,
       MI_SWAPFREE, MI_COUNT };

#define MI_KEY(k) {k, sizeof k - 1}
static const struct { const char *key; size_t len; } mi_keys[MI_COUNT] = {
    MI_KEY("MemTotal"), MI_KEY("MemFree"), MI_KEY("MemAvailable"), MI_KEY("Buffers"),
    MI_KEY("Cached"), MI_KEY("SwapTotal"), MI_KEY("SwapFree")
};
#undef MI_KEY

/* Parses the keys we use from buf (n bytes, NUL-terminated). Every line of
 * a real meminfo ends with '\n', so a last line without one is a truncated
 * read and is not trusted. A wanted key whose value is not "<digits> kB"
 * makes the whole file garbage: a number read out of a corrupt file would
 * look like a real reading. The scan stops once every key is found (line
 * 16 of ~55: the kernel lists them first), which made the parse a third
 * of its cost. Returns NULL on success or the reason it failed; have[]
 * says which keys were found. */
static const char *parse_meminfo(const char *buf, size_t n, uint64_t val[MI_COUNT],
                                 bool have[MI_COUNT])
{
    for (int i = 0; i < MI_COUNT; i++) have[i] = false;
    const bool truncated = n == 0 || buf[n - 1] != '\n';
    const char *p = buf, *end = buf + n;
    while (end > buf && end[-1] != '\n') end--; /* drop a cut last line */
    int found = 0;
    while (p < end && found < MI_COUNT) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)); /* end ends a line */
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (colon) {
            size_t klen = (size_t)(colon - p);
            /* ~16 lines, 7 keys: compare the length and first byte before
             * the bytes. */
            for (int i = 0; i < MI_COUNT; i++) {
                if (mi_keys[i].len != klen || p[0] != mi_keys[i].key[0] ||
                    memcmp(p, mi_keys[i].key, klen))
                    continue;
                const char *v = colon + 1;
                uint64_t kb;
                if (mg__parse_u64(&v, &kb) != 0) return "a value is not a number";
                while (*v == ' ') v++;
                if (strncmp(v, "kB", 2) != 0 || (v[2] != '\n'))
                    return "a value has no kB unit";
                if (kb > UINT64_MAX / 1024u) return "a value overflows";
                if (have[i]) return "a key appears twice";
                val[i] = kb * 1024u;
                have[i] = true;
                found++;
                break;
            }
        }
        p = nl + 1;
    }
    if (!have[MI_TOTAL]) return truncated ? "truncated before MemTotal"
                                          : "no MemTotal";
    if (!have[MI_AVAIL] &&
        !(have[MI_FREE] && have[MI_BUFFERS] && have[MI_CACHED]))
        return truncated ? "truncated before MemAvailable"
                         : "neither MemAvailable nor MemFree+Buffers+Cached";
    return NULL;
}

/* Reads meminfo into snap. Returns 0, or MG_EIO / MG_EPARSE. */
static int sample_meminfo(mg__probe *p, mg_snapshot *snap)
{
    /* 1503 bytes here (probes.md 3.1); 8 KiB leaves room for big NUMA
     * machines' extra keys. */
    char buf[8192];
    uint64_t val[MI_COUNT] = {0};
    bool have[MI_COUNT];
    const char *why = NULL;

    snap->ram.meminfo_known = false;
    snap->swap.known = false;
    ssize_t n = mg__pread_single(p->meminfo_fd, buf, sizeof buf);
    if (n < 0) {
        why = n == MG_ENOSPC ? "larger than 8 KiB" : "read failed";
    } else {
        why = parse_meminfo(buf, (size_t)n, val, have);
    }
    if (why) {
        if (!p->meminfo_bad)
            mg__logf(&p->log, MG_LOG_WARN, "%s/meminfo unusable: %s",
                     p->proc_root, why);
        p->meminfo_bad = true;
        if (n >= 0 && have[MI_SWAPTOTAL] && have[MI_SWAPFREE]) {
            snap->swap.known = true;
            snap->swap.total_bytes = val[MI_SWAPTOTAL];
            snap->swap.free_bytes = val[MI_SWAPFREE];
        }
        return n < 0 ? MG_EIO : MG_EPARSE;
    }
    if (p->meminfo_bad)
        mg__logf(&p->log, MG_LOG_INFO, "%s/meminfo readable again",
                 p->proc_root);
    p->meminfo_bad = false;

    uint64_t avail = val[MI_AVAIL];
    if (!have[MI_AVAIL]) {
        /* Kernels before 3.14 have no MemAvailable (probes.md 3.1). */
        uint64_t est = val[MI_FREE];
        est = est + val[MI_BUFFERS] < est ? UINT64_MAX : est + val[MI_BUFFERS];
        est = est + val[MI_CACHED] < est ? UINT64_MAX : est + val[MI_CACHED];
        avail = est > val[MI_TOTAL] ? val[MI_TOTAL] : est;
        if (!p->logged_estimate)
            mg__logf(&p->log, MG_LOG_INFO,
                     "no MemAvailable (kernel < 3.14): estimating it as "
                     "MemFree + Buffers + Cached");
        p->logged_estimate = true;
    }
    snap->ram.meminfo_known = true;
    snap->ram.mem_total_bytes = val[MI_TOTAL];
    snap->ram.mem_available_bytes = avail;
    if (have[MI_SWAPTOTAL] && have[MI_SWAPFREE]) {
        snap->swap.known = true;
        snap->swap.total_bytes = val[MI_SWAPTOTAL];
        snap->swap.free_bytes = val[MI_SWAPFREE];
    }
    return 0;
}

/* ---- PSI ----------------------------------------------------------------- */

static bool psi_avg10(const char *buf, const char *kind, double *out)
{
    const char *p = buf;
    size_t klen = strlen(kind);
    while (*p) {
        if (strncmp(p, kind, klen) == 0 && starts_with(p + klen, " avg10=")) {
            const char *v = p + klen + 7;
            return parse_decimal(&v, out) && (*v == ' ' || *v == '\n' ||
                                              *v == '\0');
        }
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    return false;
}

static void sample_psi(mg__probe *p, mg_snapshot *snap)
{
    char buf[1024];
    snap->psi.known = false;
    if (p->psi_fd < 0) return;
    double some, full;
    if (mg__pread_single(p->psi_fd, buf, sizeof buf) < 0) return;
    if (!psi_avg10(buf, "some", &some) || !psi_avg10(buf, "full", &full))
        return;
    snap->psi.known = true;
    snap->psi.some_avg10 = some;
    snap->psi.full_avg10 = full;
}

/* Reads a file into p->buf, growing it: a children list of 1000 pids is
 * about 6000 bytes (probes.md 3.3). */
static ssize_t read_grow(mg__probe *p, const char *path)
{
    for (;;) {
        ssize_t n = mg__read_file(path, p->buf, p->buf_len);
        if (n != MG_ENOSPC || p->buf_len >= (16u << 20)) return n;
        char *nb = realloc(p->buf, p->buf_len * 2);
        if (!nb) return MG_ENOMEM;
        p->buf = nb;
        p->buf_len *= 2;
    }
}

/* ---- cgroup: discovery --------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

static bool has_token(const char *list, const char *tok, char sep)
{
    size_t tlen = strlen(tok);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, sep);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == tlen && memcmp(p, tok, tlen) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* Whitespace-separated tokens of one line, in place. */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ') p++;
        if (!*p) break;
        f[n++] = p;
        while (*p && *p != ' ') p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

/* From mountinfo ("id parent maj:min ROOT MOUNTPOINT opts [optional...] -
 * FSTYPE SOURCE SUPEROPTS"), the ROOT of the cgroup2 mount and of the v1
 * mount with the memory controller. A root stays "/" when not found. */
static void read_mount_roots(mg__probe *p, char *root_v2, char *root_v1,
                             size_t len)
{
    char path[PATH_LEN];
    bool got_v2 = false, got_v1 = false;
    /* A busy host's mountinfo can run to hundreds of KiB: read_grow. */
    if (mg__path(path, sizeof path, "%s/self/mountinfo", p->proc_root) != 0 ||
        read_grow(p, path) < 0) {
        mg__logf(&p->log, MG_LOG_DEBUG, "no %s: cgroup mount roots taken as /",
                 path);
        return;
    }
    char *buf = p->buf;
    char *save = buf;
    while (save && *save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            save = nl + 1;
        } else {
            save = NULL;
        }
        char *f[64];
        int n = split_fields(line, f, 64);
        int dash = -1;
        for (int i = 6; i < n; i++)
            if (strcmp(f[i], "-") == 0) { dash = i; break; }
        if (dash < 0 || dash + 1 >= n) continue;
        const char *fstype = f[dash + 1];
        const char *superopts = dash + 3 < n ? f[dash + 3] : "";
        if (!got_v2 && strcmp(fstype, "cgroup2") == 0) {
            unescape_octal(f[3]);
            copy_str(root_v2, len, f[3], strlen(f[3]));
            got_v2 = true;
        } else if (!got_v1 && strcmp(fstype, "cgroup") == 0 &&
                   has_token(superopts, "memory", ',')) {
            unescape_octal(f[3]);
            copy_str(root_v1, len, f[3], strlen(f[3]));
            got_v1 = true;
        }
    }
}

/* The controllers file of a v2 hierarchy lists "memory" when the memory
 * controller is enabled there. */
static bool v2_has_memory(const char *dir)
{
    char path[PATH_LEN], buf[1024];
    if (mg__path(path, sizeof path, "%s/cgroup.controllers", dir) != 0)
        return false;
    ssize_t n = mg__read_file(path, buf, sizeof buf);
    if (n < 0) return false;
    for (char *q = buf; *q; q++)
        if (*q == '\n' || *q == '\t') *q = ' ';
    return has_token(buf, "memory", ' ');
}

/* Builds cg_dir and the levels from the mount directory, the mount's ROOT and
 * the cgroup path. Returns false when the path cannot be mapped. */
static bool map_cgroup(mg__probe *p, const char *mount_dir, const char *root,
                       const char *cgpath)
{
    size_t rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
    while (rlen > 0 && root[rlen - 1] == '/') rlen--;
    size_t strip = 0;
    if (rlen > 0 && strncmp(cgpath, root, rlen) == 0 &&
        (cgpath[rlen] == '/' || cgpath[rlen] == '\0'))
        strip = rlen;
    else if (rlen > 0)
        mg__logf(&p->log, MG_LOG_DEBUG,
                 "cgroup %s is outside its mount root %s: taken as relative",
                 cgpath, root);
    const char *rel = cgpath + strip;
    size_t rel_len = strlen(rel);
    while (rel_len > 0 && rel[rel_len - 1] == '/') rel_len--;
    /* A path with ".." would walk out of the cgroup tree. */
    for (size_t i = 0; i + 2 <= rel_len; i++)
        if (rel[i] == '.' && rel[i + 1] == '.' &&
            (i == 0 || rel[i - 1] == '/') &&
            (i + 2 == rel_len || rel[i + 2] == '/'))
            return false;
    copy_str(p->cg_path, sizeof p->cg_path, cgpath, strlen(cgpath));
    size_t mlen = strlen(mount_dir);
    if (mlen + rel_len + 1 > sizeof p->cg_dir) return false;
    memcpy(p->cg_dir, mount_dir, mlen);
    memcpy(p->cg_dir + mlen, rel, rel_len);
    p->cg_dir[mlen + rel_len] = '\0';

    /* Levels: the leaf, each parent, up to the mount directory itself.
     * Ancestors above a cgroup namespace root are not visible (3.4). */
    p->nlevels = 0;
    size_t cut = rel_len;
    for (;;) {
        if (p->nlevels == MAX_LEVELS) {
            mg__logf(&p->log, MG_LOG_WARN,
                     "cgroup %s deeper than %d levels: upper limits not seen",
                     cgpath, MAX_LEVELS);
            break;
        }
        cg_level *l = &p->levels[p->nlevels++];
        l->dir_len = mlen + cut;
        l->path_len = strip + cut;
        l->limit_fd = -1;
        if (cut == 0) break;
        while (cut > 0 && rel[cut - 1] != '/') cut--;
        if (cut > 0) cut--; /* drop the slash */
    }
    return true;
}

static void level_dir(const mg__probe *p, int i, char *out, size_t len)
{
    copy_str(out, len, p->cg_dir, p->levels[i].dir_len);
}

static void level_path(const mg__probe *p, int i, char *out, size_t len)
{
    if (p->levels[i].path_len == 0)
        copy_str(out, len, "/", 1);
    else
        copy_str(out, len, p->cg_path, p->levels[i].path_len);
}

static int open_level_file(const mg__probe *p, int i, const char *name)
{
    char dir[PATH_LEN], path[PATH_LEN];
    level_dir(p, i, dir, sizeof dir);
    if (mg__path(path, sizeof path, "%s/%s", dir, name) != 0) return -1;
    return open_ro(path);
}

static const char *usage_name(int version)
{
    return version == 2 ? "memory.current" : "memory.usage_in_bytes";
}

/* Points usage_fd and stat_fd at level i. */
static bool open_usage(mg__probe *p, int i)
{
    close_fd(&p->usage_fd);
    close_fd(&p->stat_fd);
    p->usage_level = -1; /* retried at the next sample if this fails */
    p->usage_fd = open_level_file(p, i, usage_name(p->cg_version));
    if (p->usage_fd < 0) return false;
    p->stat_fd = open_level_file(p, i, "memory.stat");
    p->usage_level = i;
    return true;
}

static void close_cgroup(mg__probe *p)
{
    for (int i = 0; i < p->nlevels; i++) close_fd(&p->levels[i].limit_fd);
    p->nlevels = 0;
    close_fd(&p->leaf_stat_fd);
    close_fd(&p->usage_fd);
    close_fd(&p->stat_fd);
    p->cg_found = false;
}

/* Maps one hierarchy and opens its files; false (everything closed) when
 * the cgroup's usage file is missing there. */
static bool try_cgroup(mg__probe *p, int version, const char *mount_dir,
                       const char *root, const char *cgpath)
{
    p->cg_version = version;
    if (!map_cgroup(p, mount_dir, root, cgpath)) return false;
    const char *limit_name =
        version == 2 ? "memory.max" : "memory.limit_in_bytes";
    for (int i = 0; i < p->nlevels; i++)
        p->levels[i].limit_fd = open_level_file(p, i, limit_name);
    if (version == 1) p->leaf_stat_fd = open_level_file(p, 0, "memory.stat");
    if (!open_usage(p, 0)) {
        mg__logf(&p->log, MG_LOG_INFO, "cgroup v%d %s has no %s", version,
                 p->cg_dir, usage_name(version));
        close_cgroup(p);
        return false;
    }
    p->cg_found = true;
    mg__logf(&p->log, MG_LOG_DEBUG, "memory cgroup v%d %s at %s", version,
             p->cg_path, p->cg_dir);
    return true;
}

/* Finds the memory cgroup of the calling process and opens its files. */
static void open_cgroup(mg__probe *p)
{
    char path[PATH_LEN], buf[8192];
    char root_v2[PATH_LEN] = "/", root_v1[PATH_LEN] = "/";
    char path_v2[PATH_LEN] = "", path_v1[PATH_LEN] = "";
    bool have_v2 = false, have_v1 = false;

    if (mg__path(path, sizeof path, "%s/self/cgroup", p->proc_root) != 0 ||
        mg__read_file(path, buf, sizeof buf) < 0) {
        mg__logf(&p->log, MG_LOG_INFO, "no %s: cgroup unknown", path);
        return;
    }
    /* "ID:controllers:path"; v2 is "0::/path". The path may hold ':'. */
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 && c2[1] == '/') {
            *c1 = '\0';
            *c2 = '\0';
            if (strcmp(line, "0") == 0 && c1[1] == '\0') {
                copy_str(path_v2, sizeof path_v2, c2 + 1, strlen(c2 + 1));
                have_v2 = true;
            } else if (has_token(c1 + 1, "memory", ',')) {
                copy_str(path_v1, sizeof path_v1, c2 + 1, strlen(c2 + 1));
                have_v1 = true;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    read_mount_roots(p, root_v2, root_v1, sizeof root_v2);

    /* v2 at the root itself (pure v2), or at unified/ (hybrid: there it has
     * usually no memory controller, as on this sandbox, probes.md 3.4). */
    if (have_v2) {
        char dir[PATH_LEN];
        const char *cands[2] = { "", "/unified" };
        for (int c = 0; c < 2; c++) {
            if (mg__path(dir, sizeof dir, "%s%s", p->cgroup_root, cands[c]) ||
                !v2_has_memory(dir))
                continue;
            if (try_cgroup(p, 2, dir, root_v2, path_v2)) return;
        }
        mg__logf(&p->log, MG_LOG_DEBUG,
                 "no usable cgroup v2 memory controller under %s",
                 p->cgroup_root);
    }
    if (have_v1) {
        char dir[PATH_LEN];
        if (mg__path(dir, sizeof dir, "%s/memory", p->cgroup_root) == 0 &&
            try_cgroup(p, 1, dir, root_v1, path_v1))
            return;
    }
    mg__logf(&p->log, MG_LOG_INFO, "no usable memory cgroup under %s",
             p->cgroup_root);
}

/* ---- cgroup: sampling ---------------------------------------------------- */

/* One limit file: true with *limit set when it holds a limit. */
static bool read_limit(const mg__probe *p, int fd, uint64_t *limit)
{
    char buf[64];
    if (fd < 0 || mg__pread_single(fd, buf, sizeof buf) < 0) return false;
    if (p->cg_version == 2 && strcmp(buf, "max\n") == 0) return false;
    if (!parse_single_u64(buf, limit)) return false;
    return !(p->cg_version == 1 && *limit >= V1_UNLIMITED);
}

static void sample_cgroup(mg__probe *p, mg_snapshot *snap)
{
    mg_cgroup *cg = &snap->cgroup;
    char buf[16384];
    memset(cg, 0, sizeof *cg);
    if (!p->cg_found) return;

    /* Limits are re-read each sample (a runtime can change them; 1.3-2 us
     * per kept fd): the smallest on the walk up decides. */
    bool has_limit = false;
    uint64_t limit = 0;
    int at = 0;
    for (int i = 0; i < p->nlevels; i++) {
        uint64_t v;
        if (read_limit(p, p->levels[i].limit_fd, &v) && (!has_limit || v < limit)) {
            has_limit = true;
            limit = v;
            at = i;
        }
    }
    /* v1: hierarchical_memory_limit is the minimum over every ancestor,
     * including those above the mount root that the walk cannot see; a
     * limit set there is attributed to the topmost visible level. */
    if (p->cg_version == 1 && p->leaf_stat_fd >= 0 &&
        mg__pread_single(p->leaf_stat_fd, buf, sizeof buf) >= 0) {
        uint64_t h;
        if (stat_lookup(buf, "hierarchical_memory_limit", &h) &&
            h < V1_UNLIMITED && (!has_limit || h < limit)) {
            has_limit = true;
            limit = h;
            at = p->nlevels - 1;
        }
    }
    /* Usage is that of the cgroup holding the limit: its own usage is what
     * the kernel compares against it. */
    if (at != p->usage_level && !open_usage(p, at)) {
        mg__logf(&p->log, MG_LOG_WARN, "cgroup level %d has no %s", at,
                 usage_name(p->cg_version));
        return;
    }

    cg->known = true;
    cg->version = p->cg_version;
    copy_str(cg->path, sizeof cg->path, p->cg_path, strlen(p->cg_path));
    cg->has_limit = has_limit;
    cg->limit_bytes = has_limit ? limit : 0;
    if (has_limit) level_path(p, at, cg->limit_path, sizeof cg->limit_path);

    uint64_t v;
    if (p->usage_fd >= 0 && mg__pread_single(p->usage_fd, buf, sizeof buf) >= 0 &&
        parse_single_u64(buf, &v)) {
        cg->usage_known = true;
        cg->usage_bytes = v;
    }
    if (p->stat_fd >= 0 && mg__pread_single(p->stat_fd, buf, sizeof buf) >= 0 &&
        stat_lookup(buf, p->cg_version == 2 ? "inactive_file"
                                            : "total_inactive_file", &v))
        cg->inactive_file_bytes = v;
}

/* ---- process tree -------------------------------------------------------- */

static void clear_members(mg__probe *p)
{
    for (size_t i = 0; i < p->nmembers; i++) close_fd(&p->fds[i]);
    p->nmembers = 0;
}

static bool has_member(const int *pids, size_t n, int pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid) return true;
    return false;
}

static bool grow(int **pids, int **fds, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    if (need > MAX_MEMBERS) return false;
    size_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need) ncap *= 2;
    int *np = realloc(*pids, ncap * sizeof *np);
    if (!np) return false;
    *pids = np;
    if (fds) {
        int *nf = realloc(*fds, ncap * sizeof *nf);
        if (!nf) return false;
        *fds = nf;
    }
    *cap = ncap;
    return true;
}

/* Appends the pids of a blank-separated list not yet in the tree. */
static bool add_pid_list(const char *s, int **pids, size_t *n, size_t *cap)
{
    const char *q = s;
    for (;;) {
        while (*q == ' ' || *q == '\n') q++;
        if (!*q) return true;
        uint64_t v;
        if (mg__parse_u64(&q, &v) != 0 || v == 0 || v > INT_MAX) return true;
        if (has_member(*pids, *n, (int)v)) continue;
        if (!grow(pids, NULL, cap, *n + 1)) return false;
        (*pids)[(*n)++] = (int)v;
    }
}

/* Walk down from the root through every thread's children file (a child
 * forked by a non-main thread is listed only under that thread). Returns
 * false when the kernel has no children files (CONFIG_PROC_CHILDREN). */
static bool discover_children(mg__probe *p, int **pids, size_t *n, size_t *cap)
{
    bool any_file = false;
    for (size_t i = 0; i < *n; i++) {
        char path[PATH_LEN];
        if (mg__path(path, sizeof path, "%s/%d/task", p->proc_root, (*pids)[i]))
            continue;
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!d) {
            if (dfd >= 0) close(dfd);
            if (i == 0) return false;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!is_all_digits(e->d_name)) continue;
            char cpath[PATH_LEN];
            if (mg__path(cpath, sizeof cpath, "%s/%s/children", path,
                         e->d_name) != 0)
                continue;
            if (read_grow(p, cpath) < 0) continue;
            any_file = true;
            if (!add_pid_list(p->buf, pids, n, cap)) break;
        }
        closedir(d);
        if (i == 0 && !any_file) return false;
    }
    return true;
}

/* Fallback: read every <proc>/PID/stat, take the ppid (field 4, after the
 * LAST ')' since comm may hold ") ") and collect the subtree. 12-20 us per
 * pid on the machine: 16-26 ms for 1000 pids (probes.md 3.3). */
static void discover_scan(mg__probe *p, int **pids, size_t *n, size_t *cap)
{
    int *all = NULL, *par = NULL;
    size_t nall = 0, acap = 0;
    int dfd = open(p->proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        char path[PATH_LEN], buf[1024];
        if (!is_all_digits(e->d_name) || !parse_pid(e->d_name, &pid)) continue;
        if (mg__path(path, sizeof path, "%s/%d/stat", p->proc_root, pid) ||
            mg__read_file(path, buf, sizeof buf) < 0)
            continue;
        const char *rp = strrchr(buf, ')');
        if (!rp || rp[1] != ' ' || !rp[2] || rp[3] != ' ') continue;
        const char *q = rp + 4;
        uint64_t ppid;
        if (mg__parse_u64(&q, &ppid) != 0 || ppid > INT_MAX) continue;
        if (!grow(&all, &par, &acap, nall + 1)) break;
        all[nall] = pid;
        par[nall] = (int)ppid;
        nall++;
    }
    closedir(d);
    for (size_t i = 0; i < *n; i++)
        for (size_t j = 0; j < nall; j++)
            if (par[j] == (*pids)[i] && !has_member(*pids, *n, all[j])) {
                if (!grow(pids, NULL, cap, *n + 1)) goto out;
                (*pids)[(*n)++] = all[j];
            }
out:
    free(all);
    free(par);
}

static bool pid_exists(const mg__probe *p, int pid)
{
    char path[PATH_LEN];
    struct stat st;
    return mg__path(path, sizeof path, "%s/%d", p->proc_root, pid) == 0 &&
           stat(path, &st) == 0;
}

static void discover(mg__probe *p)
{
    int *pids = NULL;
    size_t n = 0, cap = 0;
    p->need_discover = false;
    if (!pid_exists(p, p->root_pid)) {
        if (!p->root_gone)
            mg__logf(&p->log, MG_LOG_WARN, "process %d is gone", p->root_pid);
        p->root_gone = true;
        clear_members(p);
        return;
    }
    p->root_gone = false;
    if (!grow(&pids, NULL, &cap, 1)) return;
    pids[n++] = p->root_pid;
    if (!discover_children(p, &pids, &n, &cap)) discover_scan(p, &pids, &n, &cap);

    /* Keep the statm fds of members still there; the first MAX_KEPT get one. */
    int *fds = malloc(n * sizeof *fds);
    if (!fds) {
        free(pids);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fds[i] = -1;
        if (i >= MAX_KEPT) continue;
        for (size_t j = 0; j < p->nmembers; j++)
            if (p->pids[j] == pids[i] && p->fds[j] >= 0) {
                fds[i] = p->fds[j];
                p->fds[j] = -1;
                break;
            }
    }
    clear_members(p);
    free(p->pids);
    free(p->fds);
    p->pids = pids;
    p->fds = fds;
    p->nmembers = n;
}

static void drop_member(mg__probe *p, size_t i)
{
    close_fd(&p->fds[i]);
    memmove(p->pids + i, p->pids + i + 1, (p->nmembers - i - 1) * sizeof *p->pids);
    memmove(p->fds + i, p->fds + i + 1, (p->nmembers - i - 1) * sizeof *p->fds);
    p->nmembers--;
}

/* RSS of one member from statm field 2 (pages). Returns 0, MG_ESRCH when the
 * member is gone, or another negative code. */
static int member_rss(mg__probe *p, size_t i, uint64_t *rss)
{
    char path[PATH_LEN], buf[256];
    ssize_t n;
    if (i < MAX_KEPT && p->fds[i] < 0) {
        if (mg__path(path, sizeof path, "%s/%d/statm", p->proc_root, p->pids[i]))
            return MG_ENOSPC;
        p->fds[i] = open_ro(path);
        if (p->fds[i] < 0) return errno == ENOENT || errno == ESRCH ? MG_ESRCH : MG_EIO;
    }
    if (i < MAX_KEPT) {
        n = mg__pread_single(p->fds[i], buf, sizeof buf);
    } else {
        if (mg__path(path, sizeof path, "%s/%d/statm", p->proc_root, p->pids[i]))
            return MG_ENOSPC;
        n = mg__read_file(path, buf, sizeof buf);
    }
    if (n == MG_ENOENT) return MG_ESRCH;
    if (n < 0) return (int)n;
    const char *q = buf;
    uint64_t size, pages;
    if (mg__parse_u64(&q, &size) != 0 || mg__parse_u64(&q, &pages) != 0)
        return MG_EPARSE;
    uint64_t ps = (uint64_t)p->page_size;
    *rss = pages > UINT64_MAX / ps ? UINT64_MAX : pages * ps;
    return 0;
}

/* The last PID allocated in our PID namespace, or -1 when /proc/loadavg
 * cannot be read (a fixture root): then only the timer rediscovers. */
static long read_last_pid(mg__probe *p)
{
    char buf[256];
    if (p->loadavg_fd < 0 || mg__pread_single(p->loadavg_fd, buf, sizeof buf) < 0) return -1;
    const char *sp = strrchr(buf, ' ');
    if (!sp) return -1;
    char *end;
    long v = strtol(sp + 1, &end, 10);
    return end == sp + 1 ? -1 : v;
}

static void sample_tree(mg__probe *p, uint64_t now_ms, mg_snapshot *snap)
{
    mg_proctree *t = &snap->tree;
    memset(t, 0, sizeof *t);
    t->pid = p->root_pid;
    long last_pid = read_last_pid(p);
    bool forked = last_pid != p->last_pid &&
                  now_ms - p->last_discover_ms >= FORK_REDISCOVER_MS;
    if (p->need_discover || forked || now_ms - p->last_discover_ms >= REDISCOVER_MS ||
        now_ms < p->last_discover_ms) {
        discover(p);
        p->last_discover_ms = now_ms;
        p->last_pid = last_pid;
    }
    if (p->root_gone || p->nmembers == 0) return;

    uint64_t sum = 0;
    unsigned count = 0;
    for (size_t i = 0; i < p->nmembers;) {
        uint64_t rss = 0;
        int rc = member_rss(p, i, &rss);
        if (rc == MG_ESRCH) {
            if (i == 0) {
                mg__logf(&p->log, MG_LOG_WARN, "process %d is gone", p->root_pid);
                p->root_gone = true;
                clear_members(p);
                return;
            }
            drop_member(p, i);
            continue;
        }
        if (rc == 0) {
            sum = sum + rss < sum ? UINT64_MAX : sum + rss;
            count++;
        } else {
            mg__logf(&p->log, MG_LOG_DEBUG, "statm of %d: %s", p->pids[i],
                     mg_strerror(rc));
        }
        i++;
    }
    t->known = true;
    t->nprocs = count;
    t->rss_bytes = sum;
}

/* pid 0 = the calling process as proc_root sees it: readlink of self, else
 * self/stat's first field, else getpid() (a fixture proc root may have no
 * self at all). */
static int resolve_self(const mg__probe *p)
{
    char path[PATH_LEN], buf[512];
    int pid;
    if (mg__path(path, sizeof path, "%s/self", p->proc_root) == 0) {
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = '\0';
            const char *slash = strrchr(buf, '/');
            if (parse_pid(slash ? slash + 1 : buf, &pid)) return pid;
        }
    }
    if (mg__path(path, sizeof path, "%s/self/stat", p->proc_root) == 0 &&
        mg__read_file(path, buf, sizeof buf) > 0 && parse_pid(buf, &pid))
        return pid;
    return (int)getpid();
}

/* ---- public (internal) API ----------------------------------------------- */

int mg__probe_open(mg__probe **out, const char *proc_root,
                   const char *cgroup_root, int pid, const mg__log *log)
{
    if (!out || !proc_root || !cgroup_root || pid < 0) return MG_EINVAL;
    *out = NULL;
    mg__probe *p = calloc(1, sizeof *p);
    if (!p) return MG_ENOMEM;
    if (log) p->log = *log;
    p->meminfo_fd = p->psi_fd = p->leaf_stat_fd = p->loadavg_fd = -1;
    p->last_pid = -1;
    p->usage_fd = p->stat_fd = -1;
    p->page_size = sysconf(_SC_PAGESIZE);
    if (p->page_size <= 0) p->page_size = 4096;
    p->buf_len = 16384;
    p->buf = malloc(p->buf_len);
    if (!p->buf) {
        free(p);
        return MG_ENOMEM;
    }
    if (mg__path(p->proc_root, sizeof p->proc_root, "%s", proc_root) != 0 ||
        mg__path(p->cgroup_root, sizeof p->cgroup_root, "%s", cgroup_root) != 0) {
        mg__probe_close(p);
        return MG_EINVAL;
    }

    char path[PATH_LEN];
    mg__path(path, sizeof path, "%s/meminfo", p->proc_root);
    p->meminfo_fd = open_ro(path);
    if (p->meminfo_fd < 0) {
        int e = errno;
        mg__logf(&p->log, MG_LOG_ERROR, "cannot open %s: %s", path,
                 e == ENOENT || e == ENOTDIR ? "not found" : "error");
        mg__probe_close(p);
        return e == ENOENT || e == ENOTDIR ? MG_ENOENT : MG_EIO;
    }
    mg_snapshot snap;
    int rc = sample_meminfo(p, &snap);
    if (rc != 0) {
        mg__probe_close(p);
        return rc;
    }

    if (mg__path(path, sizeof path, "%s/pressure/memory", p->proc_root) == 0)
        p->psi_fd = open_ro(path);
    if (p->psi_fd < 0)
        mg__logf(&p->log, MG_LOG_DEBUG, "no %s: PSI unknown", path);

    if (mg__path(path, sizeof path, "%s/loadavg", p->proc_root) == 0)
        p->loadavg_fd = open_ro(path);

    open_cgroup(p);

    p->root_pid = pid ? pid : resolve_self(p);
    p->need_discover = true;
    if (!pid_exists(p, p->root_pid))
        mg__logf(&p->log, MG_LOG_WARN, "no process %d under %s", p->root_pid,
                 p->proc_root);
    *out = p;
    return 0;
}

int mg__probe_set_pid(mg__probe *p, int pid)
{
    if (!p || pid < 0) return MG_EINVAL;
    int root = pid ? pid : resolve_self(p);
    if (!pid_exists(p, root)) return MG_ESRCH;
    if (root != p->root_pid) clear_members(p);
    p->root_pid = root;
    p->root_gone = false;
    p->need_discover = true;
    return 0;
}

void mg__probe_sample(mg__probe *p, uint64_t now_ms, unsigned skip, mg_snapshot *snap)
{
    if (!p || !snap) return;
    sample_meminfo(p, snap);
    if (!(skip & MG_SKIP_CGROUP)) sample_cgroup(p, snap);
    if (!(skip & MG_SKIP_PSI)) sample_psi(p, snap);
    if (!(skip & MG_SKIP_TREE)) sample_tree(p, now_ms, snap);
}

void mg__probe_close(mg__probe *p)
{
    if (!p) return;
    close_fd(&p->meminfo_fd);
    close_fd(&p->psi_fd);
    close_fd(&p->loadavg_fd);
    close_cgroup(p);
    clear_members(p);
    free(p->pids);
    free(p->fds);
    free(p->buf);
    free(p);
}
