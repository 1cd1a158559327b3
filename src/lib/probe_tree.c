/* SPDX-License-Identifier: MIT */
/*
 * probe_tree.c: the RSS of a process and all its descendants. Members are
 * found through /proc/PID/task/TID/children (or a scan of /proc where that
 * file is missing), rediscovered once a second and sooner when
 * /proc/loadavg's last PID says something forked; each member's statm is
 * kept open (up to MAX_KEPT) and re-read with pread. RSS, not PSS
 * (smaps_rollup costs 17 ms per GiB resident, probes.md 3.2).
 */
#include "probe.h"

#include <dirent.h>
#include <sys/stat.h>

void mg__probe_tree_clear(mg__probe *p)
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
            if (mg__probe_read_grow(p, cpath) < 0) continue;
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

bool mg__probe_pid_exists(const mg__probe *p, int pid)
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
    if (!mg__probe_pid_exists(p, p->root_pid)) {
        if (!p->root_gone)
            mg__logf(&p->log, MG_LOG_WARN, "process %d is gone", p->root_pid);
        p->root_gone = true;
        mg__probe_tree_clear(p);
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
    mg__probe_tree_clear(p);
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

static void discover_at(mg__probe *p, uint64_t now_ms, long last_pid)
{
    discover(p);
    p->last_discover_ms = now_ms;
    p->last_pid = last_pid;
}

int mg__probe_tree_pids(mg__probe *p, uint64_t now_ms, int *pids, size_t cap)
{
    if (!p || (!pids && cap)) return MG_EINVAL;
    discover_at(p, now_ms, read_last_pid(p));
    if (p->root_gone) return MG_ESRCH;
    if (p->nmembers == 0) return MG_ENOMEM; /* discover could not allocate */
    size_t first = p->descendants_only ? 1 : 0;
    size_t n = p->nmembers - first;
    for (size_t i = 0; i < n && i < cap; i++) pids[i] = p->pids[first + i];
    return n > INT_MAX ? INT_MAX : (int)n;
}

void mg__probe_tree(mg__probe *p, uint64_t now_ms, mg_snapshot *snap)
{
    mg_proctree *t = &snap->tree;
    memset(t, 0, sizeof *t);
    t->pid = p->root_pid;
    t->descendants_only = p->descendants_only;
    long last_pid = read_last_pid(p);
    bool forked = last_pid != p->last_pid &&
                  now_ms - p->last_discover_ms >= FORK_REDISCOVER_MS;
    if (p->need_discover || forked || now_ms - p->last_discover_ms >= REDISCOVER_MS ||
        now_ms < p->last_discover_ms)
        discover_at(p, now_ms, last_pid);
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
                mg__probe_tree_clear(p);
                return;
            }
            drop_member(p, i);
            continue;
        }
        if (rc == 0 && i == 0 && p->descendants_only) {
            /* the root: alive, not counted */
        } else if (rc == 0) {
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
