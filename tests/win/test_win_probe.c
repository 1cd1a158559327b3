/* SPDX-License-Identifier: MIT */
/*
 * test_win_probe.c: the Windows probe (src/lib/win/probe_win.c) against
 * the system and against real processes:
 *   - RAM and commit are read, consistent, in bytes (and under Wine equal
 *     to the host's /proc/meminfo MemTotal, an independent source), both
 *     weighed as limits, and in the JSON;
 *   - the process tree of real children: this test starts a copy of itself
 *     that touches 64 MiB and starts a grandchild touching 32 MiB; the tree
 *     counts exactly those three processes (the PIDs CreateProcess gave),
 *     their working sets include the touched memory, watching descendants
 *     leaves the root out, a killed member leaves the tree, and a gone root
 *     is MG_ESRCH / an unknown tree;
 *   - the job object: a copy of itself started inside a job sees
 *     cgroup.known with version 0 and path "job", and a limit exactly when
 *     the job reports one (Wine accepts limits and reads them back as none;
 *     real Windows enforces them: not verified here).
 * Children exit when their stdin closes and are killed at the end of a
 * failed check: nothing is left running.
 */
#include "memguard.h"
#include "mg_test.h"
#include "mg_win_test.h"

#include <psapi.h>
#include <stdlib.h>

#define MIB (1ull << 20)

static char self[MAX_PATH * 4];

/* ---- the helper modes ---------------------------------------------------------- */

static void touch(size_t mib)
{
    volatile char *p = VirtualAlloc(NULL, mib * MIB, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    for (size_t i = 0; p && i < mib * MIB; i += 4096) p[i] = 1;
}

static void wait_stdin_closed(void)
{
    char b[64];
    DWORD n;
    while (ReadFile(GetStdHandle(STD_INPUT_HANDLE), b, sizeof b, &n, NULL) && n > 0) {
    }
}

/* hold MIB [CHILD_MIB]: touches MIB, optionally starts a grandchild that
 * touches CHILD_MIB (printing "pid N"), prints "ready", waits for the end
 * of stdin, then ends the grandchild the same way. */
static int hold(int argc, char **argv)
{
    touch((size_t)atoi(argv[2]));
    mg_child g;
    bool have = false;
    if (argc > 3) {
        char cmd[sizeof self + 64];
        snprintf(cmd, sizeof cmd, "\"%s\" hold %s", self, argv[3]);
        have = mg_child_start(&g, cmd, true);
        char line[64];
        if (!have || !mg_child_line(&g, line, sizeof line, 20000)) return 3;
        printf("pid %lu\n", (unsigned long)g.pi.dwProcessId);
    }
    printf("ready\n");
    fflush(stdout);
    wait_stdin_closed();
    if (have) mg_child_finish(&g, 10000);
    return 0;
}

/* jobsample: one sample's job object figures on stdout. */
static int jobsample(void)
{
    mg_config cfg = {0};
    cfg.no_gpu = true;
    int err;
    mg_ctx *ctx = mg_create(&cfg, &err);
    if (!ctx) return 3;
    mg_snapshot s;
    mg_sample(ctx, &s);
    printf("known=%d version=%d path=%s has_limit=%d limit=%llu\n", s.cgroup.known,
           s.cgroup.version, s.cgroup.path, s.cgroup.has_limit,
           (unsigned long long)s.cgroup.limit_bytes);
    mg_destroy(ctx);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------- */

static mg_ctx *open_ctx(void)
{
    mg_config cfg = {0};
    cfg.no_gpu = true;
    int err = 0;
    mg_ctx *ctx = mg_create(&cfg, &err);
    CHECK_INT(err, 0);
    return ctx;
}

/* MemTotal of the host when this runs under Wine (drive Z: is /), else 0. */
static unsigned long long host_memtotal(void)
{
    FILE *f = fopen("Z:\\proc\\meminfo", "r");
    if (!f) return 0;
    unsigned long long kb = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static void test_ram_and_commit(void)
{
    mg_ctx *ctx = open_ctx();
    if (!ctx) return;
    mg_snapshot s;
    CHECK_INT(mg_sample(ctx, &s), 0);
    CHECK(s.ram.known);
    CHECK(s.ram.meminfo_known);
    CHECK(s.ram.mem_total_bytes > 256 * MIB);
    CHECK(s.ram.mem_available_bytes <= s.ram.mem_total_bytes);
    CHECK(s.ram.commit_known);
    CHECK(s.ram.commit_used_bytes > 0);
    CHECK(s.ram.commit_used_bytes <= s.ram.commit_limit_bytes);
    /* Windows' own figures, read here on their own. */
    MEMORYSTATUSEX ms = {.dwLength = sizeof ms};
    CHECK(GlobalMemoryStatusEx(&ms));
    CHECK_U64(s.ram.mem_total_bytes, ms.ullTotalPhys);
    PERFORMANCE_INFORMATION pi;
    CHECK(GetPerformanceInfo(&pi, sizeof pi));
    CHECK_U64(s.ram.commit_limit_bytes, (uint64_t)pi.CommitLimit * pi.PageSize);
    unsigned long long host = host_memtotal();
    if (host) CHECK_NEAR((double)s.ram.mem_total_bytes, (double)host, (double)host * 0.01);
    else printf("# not under Wine: no host MemTotal to compare with\n");
    /* Both limits weighed; the fuller one decides. */
    CHECK_INT(s.ram.nlimits, 2);
    CHECK_INT(s.ram.limits[0].source, MG_RAM_SOURCE_MEMINFO);
    CHECK_INT(s.ram.limits[1].source, MG_RAM_SOURCE_COMMIT);
    double fm = (double)s.ram.limits[0].used_bytes / (double)s.ram.limits[0].total_bytes;
    double fc = (double)s.ram.limits[1].used_bytes / (double)s.ram.limits[1].total_bytes;
    CHECK_INT(s.ram.source, fc > fm ? MG_RAM_SOURCE_COMMIT : MG_RAM_SOURCE_MEMINFO);
    CHECK(!s.psi.known);
    CHECK(!s.swap.known);
    char json[16384];
    CHECK(mg_format_json(mg_ctx_config(ctx), &s, NULL, json, sizeof json) > 0);
    char want[96];
    snprintf(want, sizeof want, "\"commit_limit_bytes\":%llu",
             (unsigned long long)s.ram.commit_limit_bytes);
    CHECK_CONTAINS(json, want);
    mg_destroy(ctx);
}

static bool has_pid(const int *pids, int n, DWORD pid)
{
    for (int i = 0; i < n; i++)
        if ((DWORD)pids[i] == pid) return true;
    return false;
}

static void test_tree_of_children(void)
{
    mg_ctx *ctx = open_ctx();
    if (!ctx) return;
    mg_snapshot before;
    mg_sample(ctx, &before);
    CHECK(before.tree.known);
    CHECK_INT(before.tree.nprocs, 1);
    CHECK_INT(before.tree.pid, (int)GetCurrentProcessId());

    mg_child c;
    char cmd[sizeof self + 64], line[64];
    snprintf(cmd, sizeof cmd, "\"%s\" hold 64 32", self);
    if (!mg_child_start(&c, cmd, false)) {
        CHECK(!"child started");
        mg_destroy(ctx);
        return;
    }
    unsigned long gpid = 0;
    CHECK(mg_child_line(&c, line, sizeof line, 30000) && sscanf(line, "pid %lu", &gpid) == 1);
    CHECK(mg_child_line(&c, line, sizeof line, 30000) && strcmp(line, "ready") == 0);

    int pids[16];
    int n = mg_tree_pids(ctx, pids, 16);
    CHECK_INT(n, 3);
    CHECK_INT(pids[0], (int)GetCurrentProcessId());
    CHECK(has_pid(pids, n, c.pi.dwProcessId));
    CHECK(has_pid(pids, n, (DWORD)gpid));
    mg_snapshot s;
    mg_sample(ctx, &s);
    CHECK_INT(s.tree.nprocs, 3);
    CHECK(s.tree.rss_bytes >= before.tree.rss_bytes + 90 * MIB); /* 96 MiB touched */
    CHECK_U64(s.tree.used_bytes, s.tree.rss_bytes);
    CHECK(!s.tree.pss_known);

    /* Descendants only: the two children. */
    CHECK_INT(mg_watch_descendants(ctx, 0), 0);
    mg_sample(ctx, &s);
    CHECK(s.tree.descendants_only);
    CHECK_INT(s.tree.nprocs, 2);
    CHECK_INT(mg_tree_pids(ctx, pids, 16), 2);
    CHECK(!has_pid(pids, 2, GetCurrentProcessId()));

    /* A killed grandchild leaves the tree. */
    HANDLE g = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, (DWORD)gpid);
    CHECK(g != NULL);
    if (g) {
        TerminateProcess(g, 9);
        WaitForSingleObject(g, 10000);
        CloseHandle(g);
    }
    mg_sample(ctx, &s);
    CHECK_INT(s.tree.nprocs, 1);

    /* Rooted at the child, which then exits: an unknown tree, MG_ESRCH. */
    CHECK_INT(mg_watch_pid(ctx, (int)c.pi.dwProcessId), 0);
    mg_sample(ctx, &s);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.nprocs, 1);
    CHECK_INT(mg_child_finish(&c, 20000), 0);
    mg_sample(ctx, &s);
    CHECK(!s.tree.known);
    CHECK_INT(mg_tree_pids(ctx, pids, 16), MG_ESRCH);
    CHECK_INT(mg_watch_pid(ctx, (int)c.pi.dwProcessId), MG_ESRCH);
    mg_destroy(ctx);
}

static void test_job_object(void)
{
    HANDLE job = CreateJobObjectW(NULL, NULL);
    CHECK(job != NULL);
    if (!job) return;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    memset(&li, 0, sizeof li);
    li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_JOB_MEMORY |
                                          JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    li.JobMemoryLimit = 3ull << 30;
    SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION back;
    memset(&back, 0, sizeof back);
    QueryInformationJobObject(job, JobObjectExtendedLimitInformation, &back, sizeof back, NULL);
    bool limited = back.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_JOB_MEMORY;

    /* Started suspended, put in the job, then run. */
    STARTUPINFOW si = {.cb = sizeof si};
    PROCESS_INFORMATION pi;
    wchar_t wcmd[MAX_PATH * 2];
    char cmd[sizeof self + 32];
    snprintf(cmd, sizeof cmd, "\"%s\" jobsample", self);
    mg_w(cmd, wcmd, MAX_PATH * 2);
    HANDLE r, w;
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    CHECK(CreatePipe(&r, &w, &sa, 0));
    SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdOutput = w;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    BOOL ok = CreateProcessW(NULL, wcmd, NULL, NULL, TRUE, CREATE_SUSPENDED, NULL, NULL, &si, &pi);
    CloseHandle(w);
    CHECK(ok);
    if (ok) {
        CHECK(AssignProcessToJobObject(job, pi.hProcess));
        ResumeThread(pi.hThread);
        CHECK_INT(WaitForSingleObject(pi.hProcess, 30000), WAIT_OBJECT_0);
        char out[512] = "";
        DWORD n = 0;
        ReadFile(r, out, sizeof out - 1, &n, NULL);
        out[n] = '\0';
        char want[200];
        if (limited)
            snprintf(want, sizeof want, "known=1 version=0 path=job has_limit=1 limit=%llu",
                     (unsigned long long)back.JobMemoryLimit);
        else
            snprintf(want, sizeof want, "known=1 version=0 path=job has_limit=0 limit=0");
        CHECK_CONTAINS(out, want);
        if (!limited) printf("# the job limit reads back as none (Wine): limit not checked\n");
        CloseHandle(pi.hProcess);
        CloseHandle(pi.hThread);
    }
    CloseHandle(r);
    CloseHandle(job);
}

int main(int argc, char **argv)
{
    wchar_t w[MAX_PATH * 2];
    GetModuleFileNameW(NULL, w, MAX_PATH * 2);
    WideCharToMultiByte(CP_UTF8, 0, w, -1, self, sizeof self, NULL, NULL);
    if (argc >= 3 && strcmp(argv[1], "hold") == 0) return hold(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "jobsample") == 0) return jobsample();
    MG_RUN(test_ram_and_commit);
    MG_RUN(test_tree_of_children);
    MG_RUN(test_job_object);
    return mg_test_exit();
}
