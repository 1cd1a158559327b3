/* SPDX-License-Identifier: MIT */
/*
 * probe_tree.c: the memory of a process and all its descendants (or of its
 * descendants only, for a supervisor that watches what it started). Members
 * are found through /proc/PID/task/TID/children (or a scan of /proc where
 * that file is missing), rediscovered once a second and sooner when
 * /proc/loadavg's last PID says something forked; each member's statm is
 * kept open (up to MAX_KEPT) and re-read with pread.
 *
 * Two figures. The RSS sum, read at every sample, costs microseconds but
 * counts a page shared by N members N times: forked workers share their
 * parent's pages copy-on-write, so a parent and 4 workers read 5x what they
 * use. It is an upper bound (PSS <= RSS for every process). The PSS sum,
 * read only when the context asks (mg__probe_tree_pss: ctx.c asks when a
 * budget is set and the RSS sum does not already prove it safe), counts a
 * page shared by N processes 1/N in each, so the tree's pages once: it
 * walks each member's page tables in the kernel, 3-5 ms per GiB resident
 * in each member here (bench/sample.sh, a tree sharing 1 GiB, medians of 4
 * runs on a shared machine: 3.1-9.2 ms for 1 process, 21-37 ms for 5,
 * 70-100 ms for 17, against 9-210 us on the RSS path; probes.md 3.2
 * measured 17 ms per GiB on another machine).
 *
 * It does not decide when PSS is worth its cost (ctx.c and policy.c do),
 * does not keep smaps files open (see member_pss), and reads no other
 * per-process file.
 */
#include "probe.h"

#include <dirent.h>
#include <sys/stat.h>

void mg__probe_tree_clear(mg__probe *p)
{
    for (size_t i = 0; i < p->nmembers; i++) close_fd(&p->members[i].statm_fd);
    p->nmembers = 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
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
            if (mg__read_file_grow(cpath, &p->buf, &p->buf_len) < 0) continue;
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
    mg__member *m = malloc(n * sizeof *m);
    if (!m) {
        free(pids);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        m[i] = (mg__member){pids[i], -1, false, 0};
        if (i >= MAX_KEPT) continue;
        for (size_t j = 0; j < p->nmembers; j++)
            if (p->members[j].pid == pids[i] && p->members[j].statm_fd >= 0) {
                m[i].statm_fd = p->members[j].statm_fd;
                p->members[j].statm_fd = -1;
                break;
            }
    }
    free(pids);
    mg__probe_tree_clear(p);
    free(p->members);
    p->members = m;
    p->nmembers = n;
}

static void drop_member(mg__probe *p, size_t i)
{
    close_fd(&p->members[i].statm_fd);
    memmove(p->members + i, p->members + i + 1,
            (p->nmembers - i - 1) * sizeof *p->members);
    p->nmembers--;
}

/* RSS of one member from statm field 2 (pages). Returns 0, MG_ESRCH when the
 * member is gone, or another negative code. */
static int member_rss(mg__probe *p, size_t i, uint64_t *rss)
{
    char path[PATH_LEN], buf[256];
    ssize_t n;
    mg__member *m = &p->members[i];
    if (i < MAX_KEPT && m->statm_fd < 0) {
        if (mg__path(path, sizeof path, "%s/%d/statm", p->proc_root, m->pid))
            return MG_ENOBUFS;
        m->statm_fd = open_ro(path);
        if (m->statm_fd < 0) return errno == ENOENT || errno == ESRCH ? MG_ESRCH : MG_EIO;
    }
    if (i < MAX_KEPT) {
        n = mg__pread_single(m->statm_fd, buf, sizeof buf);
    } else {
        if (mg__path(path, sizeof path, "%s/%d/statm", p->proc_root, m->pid))
            return MG_ENOBUFS;
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
    for (size_t i = 0; i < n && i < cap; i++) pids[i] = p->members[first + i].pid;
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
        mg__member *m = &p->members[i];
        int rc = member_rss(p, i, &m->rss_bytes);
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
        /* Under descendants_only the root is read only to see it alive. */
        m->rss_known = rc == 0 && !(i == 0 && p->descendants_only);
        if (m->rss_known) {
            sum = add_sat(sum, m->rss_bytes);
            count++;
        } else if (rc != 0) {
            mg__logf(&p->log, MG_LOG_DEBUG, "statm of %d: %s", m->pid, mg_strerror(rc));
        }
        i++;
    }
    t->known = true;
    t->nprocs = count;
    t->rss_bytes = sum;
}

/* ---- PSS ------------------------------------------------------------------ */

/* Adds the kB of one line to *kb when it is a "Pss:" line ("Pss_Anon:",
 * "SwapPss:" and the rest are other figures). */
static void pss_line(const char *line, uint64_t *kb, bool *found)
{
    if (!starts_with(line, "Pss:")) return;
    const char *q = line + 4;
    uint64_t v;
    if (mg__parse_u64(&q, &v) != 0) return;
    while (*q == ' ' || *q == '\t') q++;
    if (strncmp(q, "kB", 2) != 0) return;
    *kb = add_sat(*kb, v);
    *found = true;
}

/* Sums the "Pss:" lines of an smaps-style file, reading it in pieces
 * through p->buf: smaps_rollup has one such line, smaps one per mapping and
 * can be megabytes long. A line longer than the buffer (a mapping's path)
 * is skipped: it is not a Pss line. Returns 0, MG_ESRCH (the process has
 * no address space any more), MG_EPERM, MG_EIO, or MG_EPARSE when no Pss
 * line was found. */
static int sum_pss_lines(mg__probe *p, int fd, uint64_t *kb)
{
    char *buf = p->buf;
    size_t cap = p->buf_len - 1, have = 0;
    bool skipping = false, found = false;
    *kb = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno == ESRCH) return MG_ESRCH;
            return errno == EACCES || errno == EPERM ? MG_EPERM : MG_EIO;
        }
        if (n == 0) break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            if (!skipping) pss_line(line, kb, &found);
            skipping = false;
            line = nl + 1;
        }
        size_t rest = have - (size_t)(line - buf);
        if (rest == cap) {
            skipping = true;
            rest = 0;
        }
        memmove(buf, line, rest);
        have = rest;
    }
    buf[have] = '\0';
    if (have && !skipping) pss_line(buf, kb, &found);
    return found ? 0 : MG_EPARSE;
}

/*
 * PSS of one process, in bytes: its smaps_rollup (kernel 4.14+), else the
 * sum over its smaps. Each read opens the file anew. A descriptor of these
 * files is bound to the address space the process had at open time, not to
 * the process: after an execve a kept one fails with ESRCH although the
 * process lives on (and one opened while a vfork child shared its parent's
 * memory would go on reading the parent's). Opening costs a path lookup, a
 * few microseconds next to the page walk. Returns 0, MG_ESRCH when the
 * process is gone or has no memory left (a zombie), or another negative
 * code when its PSS cannot be read (permission, a kernel without smaps, a
 * malformed file).
 */
static int member_pss(mg__probe *p, int pid, uint64_t *bytes)
{
    static const char *const names[] = {"smaps_rollup", "smaps"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[PATH_LEN];
        if (mg__path(path, sizeof path, "%s/%d/%s", p->proc_root, pid, names[k]))
            return MG_ENOBUFS;
        int fd = open_ro(path);
        if (fd < 0 && errno == ENOENT) continue;
        if (fd < 0) {
            if (errno == ESRCH) return MG_ESRCH;
            return errno == EACCES || errno == EPERM ? MG_EPERM : MG_EIO;
        }
        uint64_t kb;
        int rc = sum_pss_lines(p, fd, &kb);
        close(fd);
        if (rc == 0) *bytes = kb > UINT64_MAX / 1024u ? UINT64_MAX : kb * 1024u;
        return rc;
    }
    /* Neither file: the process is gone, or this kernel has no smaps. */
    return mg__probe_pid_exists(p, pid) ? MG_ENOENT : MG_ESRCH;
}

void mg__probe_tree_pss(mg__probe *p, mg_proctree *t)
{
    if (!t->known || p->root_gone) return;
    uint64_t sum = 0;
    unsigned unread = 0;
    for (size_t i = 0; i < p->nmembers; i++) {
        const mg__member *m = &p->members[i];
        if (!m->rss_known) continue; /* not in the RSS sum either */
        uint64_t b = 0;
        int rc = member_pss(p, m->pid, &b);
        if (rc == MG_ESRCH) continue; /* gone since its statm was read */
        if (rc < 0) {
            mg__logf(&p->log, MG_LOG_DEBUG, "PSS of %d: %s: counted with its RSS",
                     m->pid, mg_strerror(rc));
            b = m->rss_bytes;
            unread++;
        }
        sum = add_sat(sum, b);
    }
    t->pss_known = true;
    t->pss_bytes = sum;
    t->pss_unread = unread;
}
