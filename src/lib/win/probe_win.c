/* SPDX-License-Identifier: MIT */
/*
 * probe_win.c: the Windows probe behind mg__probe_* (internal.h). Per
 * sample it reads:
 *   - physical RAM (GlobalMemoryStatusEx: ullTotalPhys, ullAvailPhys, the
 *     "Available" of Task Manager) as the machine's figures;
 *   - the commit charge and commit limit (GetPerformanceInfo: CommitTotal,
 *     CommitLimit), Windows' real out-of-memory line: allocations fail when
 *     the charge reaches the limit, however much RAM is free;
 *   - the memory limit of the job object the process runs in, if any
 *     (QueryInformationJobObject on the caller's job), as the container
 *     limit: mg_cgroup with version 0 and path "job". A job counts
 *     committed bytes, so its usage is the sum of its processes' commit
 *     (PagefileUsage; Microsoft documents PrivateUsage as the same figure,
 *     and Wine gets PrivateUsage wrong, research/windows.md);
 *   - the process tree from one system snapshot (CreateToolhelp32Snapshot)
 *     walked down from the root, a child counted only when it started no
 *     earlier than its parent (Windows reuses process IDs, and a parent ID
 *     outlives its process), and each member's working set (RSS).
 * Windows has no PSS and no PSI: both read as unknown, and so does swap
 * (the page files' own use is not in these calls). proc_root and
 * cgroup_root are Linux's and are ignored. It keeps no global state.
 */
#include "win/win.h"

#include <psapi.h>
#include <stdlib.h>
#include <string.h>
#include <tlhelp32.h>

/* Upper bound on the processes of one snapshot, so a runaway fork bomb
 * cannot make the probe allocate without limit. */
#define MAX_PROCS (1u << 20)

typedef struct proc_entry {
    DWORD pid, ppid;
} proc_entry;

/* One member of the tree found by the last walk. */
typedef struct member {
    DWORD pid;
    uint64_t created;   /* creation time (FILETIME), 0 = could not be read */
    bool rss_known;
    uint64_t rss_bytes; /* working set */
} member;

struct mg__probe {
    mg__log log;
    int root_pid;
    uint64_t root_created; /* the root's creation time when it was chosen:
                            * another process with its ID is not it */
    bool descendants_only;
    bool root_gone;
    proc_entry *procs;     /* the last snapshot, grown on need */
    size_t nprocs, procs_cap;
    member *members;       /* the last walk: members[0] is the root */
    size_t nmembers, members_cap;
};

/* ---- one process --------------------------------------------------------- */

static uint64_t ft64(FILETIME f)
{
    return (uint64_t)f.dwHighDateTime << 32 | f.dwLowDateTime;
}

/* Creation time and working set of pid; false when it cannot be opened
 * (gone, or another user's process) or has exited. */
static bool read_process(DWORD pid, uint64_t *created, uint64_t *rss, uint64_t *commit)
{
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    if (!h) return false;
    FILETIME c, e, k, u;
    DWORD code = 0;
    bool ok = GetExitCodeProcess(h, &code) && code == STILL_ACTIVE &&
              GetProcessTimes(h, &c, &e, &k, &u);
    if (ok && created) *created = ft64(c);
    if (ok && (rss || commit)) {
        PROCESS_MEMORY_COUNTERS pmc;
        ok = GetProcessMemoryInfo(h, &pmc, sizeof pmc);
        if (ok && rss) *rss = pmc.WorkingSetSize;
        if (ok && commit) *commit = pmc.PagefileUsage;
    }
    CloseHandle(h);
    return ok;
}

/* ---- the system snapshot and the walk ------------------------------------- */

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p) return false;
    *arr = p;
    *cap = n;
    return true;
}

/* Every process's ID and parent ID, into p->procs. */
static int take_snapshot(mg__probe *p)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return mg__win_error(GetLastError());
    PROCESSENTRY32W pe;
    pe.dwSize = sizeof pe;
    p->nprocs = 0;
    int rc = 0;
    for (BOOL more = Process32FirstW(snap, &pe); more; more = Process32NextW(snap, &pe)) {
        if (p->nprocs >= MAX_PROCS ||
            !grow((void **)&p->procs, &p->procs_cap, p->nprocs + 1, sizeof *p->procs)) {
            rc = MG_ENOMEM;
            break;
        }
        p->procs[p->nprocs++] = (proc_entry){pe.th32ProcessID, pe.th32ParentProcessID};
    }
    CloseHandle(snap);
    return rc;
}

static bool in_snapshot(const mg__probe *p, DWORD pid)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid == pid) return true;
    return false;
}

static bool add_member(mg__probe *p, DWORD pid, uint64_t created, bool rss_known, uint64_t rss)
{
    if (!grow((void **)&p->members, &p->members_cap, p->nmembers + 1, sizeof *p->members))
        return false;
    p->members[p->nmembers++] = (member){pid, created, rss_known, rss};
    return true;
}

/* The tree below members[k]: its children in the snapshot, each started
 * no earlier than its parent (else the parent ID is a reused one). A child
 * that cannot be opened is another user's or already gone: left out. */
static int add_children(mg__probe *p, size_t k)
{
    DWORD parent = p->members[k].pid;
    uint64_t parent_created = p->members[k].created;
    for (size_t i = 0; i < p->nprocs; i++) {
        const proc_entry *e = &p->procs[i];
        if (e->ppid != parent || e->pid == parent || e->pid == 0) continue;
        uint64_t created = 0, rss = 0;
        if (!read_process(e->pid, &created, &rss, NULL)) continue;
        if (parent_created && created < parent_created) continue;
        if (!add_member(p, e->pid, created, true, rss)) return MG_ENOMEM;
    }
    return 0;
}

/* A fresh snapshot and walk from the root. MG_ESRCH when the root is gone
 * (or its ID now belongs to a younger process), MG_ENOMEM. */
static int walk(mg__probe *p)
{
    p->nmembers = 0;
    if (p->root_gone) return MG_ESRCH;
    int rc = take_snapshot(p);
    if (rc < 0) return rc;
    uint64_t created = 0, rss = 0;
    if (!in_snapshot(p, (DWORD)p->root_pid) ||
        !read_process((DWORD)p->root_pid, &created, &rss, NULL) ||
        (p->root_created && created != p->root_created)) {
        mg__logf(&p->log, MG_LOG_WARN, "process %d is gone", p->root_pid);
        p->root_gone = true;
        return MG_ESRCH;
    }
    if (!add_member(p, (DWORD)p->root_pid, created, true, rss)) return MG_ENOMEM;
    /* Breadth first: members grows behind k, parents before children. */
    for (size_t k = 0; k < p->nmembers; k++)
        if ((rc = add_children(p, k)) < 0) return rc;
    return 0;
}

/* ---- the sources ------------------------------------------------------------ */

static void sample_ram(mg__probe *p, mg_snapshot *snap)
{
    mg_ram *r = &snap->ram;
    MEMORYSTATUSEX ms;
    ms.dwLength = sizeof ms;
    r->meminfo_known = GlobalMemoryStatusEx(&ms) && ms.ullTotalPhys > 0;
    if (r->meminfo_known) {
        r->mem_total_bytes = ms.ullTotalPhys;
        r->mem_available_bytes = ms.ullAvailPhys;
    } else {
        mg__logf(&p->log, MG_LOG_ERROR, "GlobalMemoryStatusEx failed (error %lu)",
                 (unsigned long)GetLastError());
    }
    PERFORMANCE_INFORMATION pi;
    r->commit_known = GetPerformanceInfo(&pi, sizeof pi) && pi.CommitLimit > 0;
    if (r->commit_known) {
        r->commit_used_bytes = (uint64_t)pi.CommitTotal * pi.PageSize;
        r->commit_limit_bytes = (uint64_t)pi.CommitLimit * pi.PageSize;
    }
}

/* The commit of every process of the caller's job (up to 1024 of them: a
 * larger job's usage reads as unknown). */
static bool job_usage(uint64_t *out)
{
    struct {
        JOBOBJECT_BASIC_PROCESS_ID_LIST h;
        ULONG_PTR more[1023];
    } list;
    if (!QueryInformationJobObject(NULL, JobObjectBasicProcessIdList, &list, sizeof list, NULL))
        return false;
    uint64_t sum = 0;
    for (DWORD i = 0; i < list.h.NumberOfProcessIdsInList; i++) {
        uint64_t commit = 0;
        if (read_process((DWORD)list.h.ProcessIdList[i], NULL, NULL, &commit)) sum += commit;
    }
    *out = sum;
    return true;
}

static void sample_job(mg_snapshot *snap)
{
    mg_cgroup *cg = &snap->cgroup;
    BOOL in_job = FALSE;
    if (!IsProcessInJob(GetCurrentProcess(), NULL, &in_job) || !in_job) return;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    if (!QueryInformationJobObject(NULL, JobObjectExtendedLimitInformation, &li, sizeof li, NULL))
        return;
    cg->known = true;
    cg->version = 0;
    strcpy(cg->path, "job");
    DWORD flags = li.BasicLimitInformation.LimitFlags;
    if (flags & JOB_OBJECT_LIMIT_JOB_MEMORY) {
        cg->has_limit = true;
        cg->limit_bytes = li.JobMemoryLimit;
        cg->usage_known = job_usage(&cg->usage_bytes);
    } else if (flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY) {
        /* A limit on each process: this one's commit against it. */
        cg->has_limit = true;
        cg->limit_bytes = li.ProcessMemoryLimit;
        cg->usage_known = read_process(GetCurrentProcessId(), NULL, NULL, &cg->usage_bytes);
    }
    if (cg->has_limit) strcpy(cg->limit_path, "job");
}

static void sample_tree(mg__probe *p, mg_snapshot *snap)
{
    mg_proctree *t = &snap->tree;
    memset(t, 0, sizeof *t);
    t->pid = p->root_pid;
    t->descendants_only = p->descendants_only;
    if (walk(p) < 0) return;
    size_t first = p->descendants_only ? 1 : 0;
    uint64_t sum = 0;
    for (size_t i = first; i < p->nmembers; i++)
        if (p->members[i].rss_known) sum += p->members[i].rss_bytes;
    t->known = true;
    t->nprocs = (unsigned)(p->nmembers - first);
    t->rss_bytes = sum;
    t->used_bytes = sum;
}

/* ---- mg__probe_* ------------------------------------------------------------- */

int mg__probe_open(mg__probe **out, const char *proc_root, const char *cgroup_root, int pid,
                   const mg__log *log)
{
    (void)proc_root;
    (void)cgroup_root;
    if (!out || pid < 0) return MG_EINVAL;
    *out = NULL;
    mg__probe *p = calloc(1, sizeof *p);
    if (!p) return MG_ENOMEM;
    if (log) p->log = *log;
    MEMORYSTATUSEX ms;
    ms.dwLength = sizeof ms;
    if (!GlobalMemoryStatusEx(&ms)) {
        mg__logf(&p->log, MG_LOG_ERROR, "GlobalMemoryStatusEx failed (error %lu)",
                 (unsigned long)GetLastError());
        free(p);
        return MG_EIO;
    }
    p->root_pid = pid ? pid : (int)GetCurrentProcessId();
    uint64_t created = 0;
    if (read_process((DWORD)p->root_pid, &created, NULL, NULL))
        p->root_created = created;
    else
        mg__logf(&p->log, MG_LOG_WARN, "no process %d", p->root_pid);
    *out = p;
    return 0;
}

static int set_root(mg__probe *p, int pid, bool descendants_only)
{
    if (!p || pid < 0) return MG_EINVAL;
    int root = pid ? pid : (int)GetCurrentProcessId();
    uint64_t created = 0;
    if (!read_process((DWORD)root, &created, NULL, NULL)) return MG_ESRCH;
    p->root_pid = root;
    p->root_created = created;
    p->descendants_only = descendants_only;
    p->root_gone = false;
    p->nmembers = 0;
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

int mg__probe_tree_pids(mg__probe *p, uint64_t now_ms, int *pids, size_t cap)
{
    (void)now_ms;
    if (!p || (!pids && cap)) return MG_EINVAL;
    int rc = walk(p);
    if (rc < 0) return rc;
    size_t first = p->descendants_only ? 1 : 0;
    size_t n = p->nmembers - first;
    for (size_t i = 0; i < n && i < cap; i++) pids[i] = (int)p->members[first + i].pid;
    return n > INT_MAX ? INT_MAX : (int)n;
}

void mg__probe_sample(mg__probe *p, uint64_t now_ms, unsigned skip, mg_snapshot *snap)
{
    (void)now_ms;
    if (!p || !snap) return;
    sample_ram(p, snap);
    if (!(skip & MG_SKIP_CGROUP)) sample_job(snap);
    if (!(skip & MG_SKIP_TREE)) sample_tree(p, snap);
}

/* Windows has no proportional share of shared pages: PSS stays unknown and
 * the tree is judged on its working sets (an upper bound, as RSS is). */
void mg__probe_tree_pss(mg__probe *p, mg_proctree *t)
{
    (void)p;
    if (t) t->pss_known = false;
}

void mg__probe_close(mg__probe *p)
{
    if (!p) return;
    free(p->procs);
    free(p->members);
    free(p);
}
