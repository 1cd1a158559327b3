/* SPDX-License-Identifier: MIT */
/*
 * probe_linux.c: the Linux probe. It reads /proc/meminfo (RAM and swap), the
 * caller's memory cgroup (v2 or v1: effective limit, usage, inactive file
 * cache), /proc/pressure/memory (PSI) and the RSS (and, on request, the
 * PSS) of a process tree, all under injectable roots so tests can point it at fixture trees. This file
 * opens, samples and closes the sources (probe_meminfo.c, probe_psi.c,
 * probe_cgroup.c, probe_tree.c; their shared state is in probe.h).
 *
 * It keeps descriptors open and re-reads them with pread: 1.3-2.7 us per
 * file against 9-23 us for open+read+close (research/probes.md 3.6), so a
 * whole sample of a trainer and 8 workers costs about 45 us. It does not
 * combine the figures into an effective RAM total (ram.c does), reads PSS
 * only when the context asks (mg__probe_tree_pss: smaps_rollup walks page
 * tables, probe_tree.c), does not poll or arm PSI triggers, and keeps no
 * global state.
 */
#include "probe.h"

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
    int rc = mg__probe_meminfo(p, &snap);
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

    mg__probe_cgroup_open(p);

    p->root_pid = pid ? pid : resolve_self(p);
    p->need_discover = true;
    if (!mg__probe_pid_exists(p, p->root_pid))
        mg__logf(&p->log, MG_LOG_WARN, "no process %d under %s", p->root_pid,
                 p->proc_root);
    *out = p;
    return 0;
}

static int set_root(mg__probe *p, int pid, bool descendants_only)
{
    if (!p || pid < 0) return MG_EINVAL;
    int root = pid ? pid : resolve_self(p);
    if (!mg__probe_pid_exists(p, root)) return MG_ESRCH;
    if (root != p->root_pid) mg__probe_tree_clear(p);
    p->root_pid = root;
    p->descendants_only = descendants_only;
    p->root_gone = false;
    p->need_discover = true;
    return 0;
}

int mg__probe_set_pid(mg__probe *p, int pid)
{
    return set_root(p, pid, false);
}

int mg__probe_set_descendants(mg__probe *p, int pid)
{
    return set_root(p, pid, true);
}

void mg__probe_sample(mg__probe *p, uint64_t now_ms, unsigned skip, mg_snapshot *snap)
{
    if (!p || !snap) return;
    mg__probe_meminfo(p, snap);
    if (!(skip & MG_SKIP_CGROUP)) mg__probe_cgroup(p, snap);
    if (!(skip & MG_SKIP_PSI)) mg__probe_psi(p, snap);
    if (!(skip & MG_SKIP_TREE)) mg__probe_tree(p, now_ms, snap);
}

void mg__probe_close(mg__probe *p)
{
    if (!p) return;
    close_fd(&p->meminfo_fd);
    close_fd(&p->psi_fd);
    close_fd(&p->loadavg_fd);
    mg__probe_cgroup_close(p);
    mg__probe_tree_clear(p);
    free(p->members);
    free(p->buf);
    free(p);
}
