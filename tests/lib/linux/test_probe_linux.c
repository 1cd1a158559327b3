/* SPDX-License-Identifier: MIT */
/*
 * test_probe_linux.c: the Linux probe against fixture trees and the real
 * machine.
 *
 * Fixture tests point proc_root and cgroup_root at tests/fixtures/proc-* and
 * cg-* and check the exact numbers written there (cgroup v1 and v2, limits
 * on the leaf and on a parent, Docker's v1 mount root, hybrid hosts, old and
 * broken meminfo, PSI, process trees with and without children files);
 * the cgroup cases are one table of {proc fixture, cgroup fixture, the
 * mg_cgroup expected}.
 * Real-process tests fork children that touch memory and check that the tree
 * and its RSS grow, and compare meminfo and the cgroup limit against the
 * files. Every child is killed and reaped; alarm() bounds each test.
 */
#include "internal.h"
#include "posix/posix.h"
#include "mg_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FX MG_FIXTURES
#define KB 1024ull

static uint64_t page_size(void)
{
    return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Collects log lines so tests can check what was said. */
typedef struct log_sink {
    int warns;
    int infos;
    char last[512];
} log_sink;

static void sink_fn(void *user, mg_log_level level, const char *msg)
{
    log_sink *s = user;
    if (level == MG_LOG_WARN) s->warns++;
    if (level == MG_LOG_INFO) s->infos++;
    snprintf(s->last, sizeof s->last, "%s", msg);
}

static mg__probe *open_fx(const char *proc, const char *cg, int pid,
                          log_sink *sink)
{
    char pr[1024], cr[1024];
    snprintf(pr, sizeof pr, "%s/%s", FX, proc);
    snprintf(cr, sizeof cr, "%s/%s", FX, cg);
    mg__log log = { sink ? sink_fn : NULL, sink, MG_LOG_DEBUG };
    mg__probe *p = NULL;
    int rc = mg__probe_open(&p, pr, cr, pid, &log);
    CHECK_INT(rc, 0);
    return p;
}

static void sample(mg__probe *p, uint64_t now, mg_snapshot *s)
{
    memset(s, 0xA5, sizeof *s); /* fields left alone stay visibly untouched */
    mg__probe_sample(p, now, 0, s);
}

/* ---- meminfo ------------------------------------------------------------- */

static void test_meminfo_full(void)
{
    mg__probe *p = open_fx("proc-v2", "cg-v2-limit", 0, NULL);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.ram.meminfo_known);
    CHECK_U64(s.ram.mem_total_bytes, 16384000 * KB);
    CHECK_U64(s.ram.mem_available_bytes, 8192000 * KB);
    CHECK(s.swap.known);
    CHECK_U64(s.swap.total_bytes, 2097152 * KB);
    CHECK_U64(s.swap.free_bytes, 1048576 * KB);
    /* ram.c's fields are not ours to touch. */
    CHECK_U64(s.ram.total_bytes, 0xA5A5A5A5A5A5A5A5ull);
    CHECK_U64(s.time_ms, 0xA5A5A5A5A5A5A5A5ull);
    mg__probe_close(p);
}

static void test_meminfo_no_available(void)
{
    log_sink sink = {0};
    mg__probe *p = open_fx("proc-v1", "cg-v1-limited", 0, &sink);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    sample(p, 10, &s);
    CHECK(s.ram.meminfo_known);
    CHECK_U64(s.ram.mem_total_bytes, 8000000 * KB);
    /* MemFree + Buffers + Cached = 1000000 + 200000 + 3000000 kB */
    CHECK_U64(s.ram.mem_available_bytes, 4200000 * KB);
    CHECK(!s.swap.known); /* no Swap* keys in this meminfo */
    CHECK_INT(sink.warns, 0);
    mg__probe_close(p);
}

static void test_meminfo_bad_at_open(void)
{
    const char *roots[] = { FX "/proc-truncated", FX "/proc-garbage" };
    for (int i = 0; i < 2; i++) {
        log_sink sink = {0};
        mg__log log = { sink_fn, &sink, MG_LOG_DEBUG };
        mg__probe *p = (mg__probe *)1;
        CHECK_INT(mg__probe_open(&p, roots[i], FX "/cg-v2-limit", 0, &log),
                  MG_EPARSE);
        CHECK(p == NULL);
        CHECK_INT(sink.warns, 1);
    }
    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, FX "/no-such-dir", FX "/cg-v2-limit", 0, NULL),
              MG_ENOENT);
    CHECK(p == NULL);
}

static void write_file(const char *path, const char *text)
{
    /* In place (O_TRUNC, same inode): a kept descriptor sees the change. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    if (fd < 0) return;
    size_t len = strlen(text);
    CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

/* meminfo going bad after open: unknown, one warning, back when fixed. */
static void test_meminfo_bad_at_runtime(void)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/probe-meminfo-%d", MG_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/meminfo", dir);
    const char *good = "MemTotal: 1000 kB\nMemFree: 10 kB\n"
                       "MemAvailable: 600 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
    write_file(path, good);
    log_sink sink = {0};
    mg__log log = { sink_fn, &sink, MG_LOG_DEBUG };
    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, dir, FX "/no-such-cgroup", 0, &log), 0);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.ram.meminfo_known);
    CHECK_U64(s.ram.mem_available_bytes, 600 * KB);
    CHECK(s.swap.known);
    CHECK_U64(s.swap.total_bytes, 0);
    CHECK(!s.cgroup.known);
    CHECK(!s.psi.known);
    CHECK(!s.tree.known); /* this pid has no directory under dir */
    int w0 = sink.warns;  /* the missing pid was warned about */

    write_file(path, "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAva");
    sample(p, 1, &s);
    CHECK(!s.ram.meminfo_known);
    CHECK_INT(sink.warns, w0 + 1);
    CHECK_CONTAINS(sink.last, "truncated");

    write_file(path, "MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n");
    sample(p, 2, &s);
    CHECK(!s.ram.meminfo_known);
    CHECK_INT(sink.warns, w0 + 1); /* still bad: not repeated each sample */

    write_file(path, "MemTotal: 20000000000000000 kB\nMemAvailable: 1 kB\n");
    sample(p, 3, &s); /* kB -> bytes overflows 64 bits */
    CHECK(!s.ram.meminfo_known);

    write_file(path, "\x7f" "ELF\x01\x02\n garbage \n");
    sample(p, 4, &s);
    CHECK(!s.ram.meminfo_known);
    CHECK(!s.swap.known);

    write_file(path, "MemTotal: 2000 kB\nMemAvailable: 0x10 kB\n");
    sample(p, 5, &s);
    CHECK(!s.ram.meminfo_known);

    write_file(path, "MemTotal: 2000 kB\nMemAvailable: 1500 kB\nSwapTotal: 8 kB\n");
    sample(p, 6, &s);
    CHECK(s.ram.meminfo_known);
    CHECK_U64(s.ram.mem_total_bytes, 2000 * KB);
    CHECK_U64(s.ram.mem_available_bytes, 1500 * KB);
    CHECK(!s.swap.known); /* SwapFree missing */
    mg__probe_close(p);
    unlink(path);
    rmdir(dir);
}

/* ---- cgroup -------------------------------------------------------------- */

/* One pair of fixture roots (/proc, cgroup mount) and the cgroup the probe
 * must read from it. Compared: known and has_limit always; for a known
 * cgroup also version, path and limit_path, the limit when there is one,
 * the usage figures when usage_known. */
typedef struct cg_case {
    const char *what, *proc, *cg;
    mg_cgroup want;
} cg_case;

static const cg_case cg_cases[] = {
    {"v2, a limit on its own cgroup", "proc-v2", "cg-v2-limit",
     {true, 2, "/user.slice/job.scope", true, 4294967296ull, "/user.slice/job.scope", true,
      1073741824ull, 268435456ull}},
    {"v2, memory.max \"max\" all the way up", "proc-v2", "cg-v2-max",
     {true, 2, "/user.slice/job.scope", false, 0, "", true, 734003200ull, 52428800ull}},
    {"v2, the parent's limit (not the own 6 GiB) and the parent's usage", "proc-v2",
     "cg-v2-nested",
     {true, 2, "/user.slice/job.scope", true, 2147483648ull, "/user.slice", true,
      1610612736ull, 314572800ull}},
    {"v1, total_inactive_file, not the level-only inactive_file (11)", "proc-v1",
     "cg-v1-limited",
     {true, 1, "/process_api/abc", true, 2147483648ull, "/process_api/abc", true,
      1000000000ull, 100000000ull}},
    {"v1, 9223372036854771712 is no limit", "proc-v1", "cg-v1-unlimited",
     {true, 1, "/process_api/abc", false, 0, "", true, 2490000000ull, 1530000000ull}},
    /* hierarchical_memory_limit below every visible limit file: an
     * ancestor the walk cannot see; attributed to the topmost visible level
     * (whose total_inactive_file is 1; the levels below say 2 and 4) */
    {"v1, a limit above the visible levels", "proc-v1", "cg-v1-hier",
     {true, 1, "/process_api/abc", true, 3221225472ull, "/", true, 9000000000ull, 1}},
    {"v1 in a docker container", "proc-v1docker", "cg-v1docker",
     {true, 1, "/docker/abc123", true, 4294967296ull, "/docker/abc123", true, 1500000000ull,
      500000000ull}},
    {"hybrid: unified/ has only hugetlb, so v1", "proc-v1", "cg-hybrid",
     {true, 1, "/process_api/abc", true, 1073741824ull, "/process_api", true, 900000000ull,
      50000000ull}},
    {"no memory cgroup in the mount", "proc-v1", "cg-missing", {.known = false}},
    {"no cgroup mount at all", "proc-v1", "no-such-cgroup-root", {.known = false}},
    {"a /proc without self/cgroup", "proc-tree", "cg-v2-limit", {.known = false}},
};

static void check_cgroup(const mg_cgroup *got, const mg_cgroup *want)
{
    CHECK_INT(got->known, want->known);
    CHECK_INT(got->has_limit, want->has_limit);
    if (!want->known) return;
    CHECK_INT(got->version, want->version);
    CHECK_STR(got->path, want->path);
    CHECK_STR(got->limit_path, want->limit_path);
    if (want->has_limit) CHECK_U64(got->limit_bytes, want->limit_bytes);
    CHECK_INT(got->usage_known, want->usage_known);
    if (!want->usage_known) return;
    CHECK_U64(got->usage_bytes, want->usage_bytes);
    CHECK_U64(got->inactive_file_bytes, want->inactive_file_bytes);
}

/* Every case of the table; a cgroup that cannot be read leaves meminfo
 * alone. */
static void test_cgroup_fixtures(void)
{
    for (size_t i = 0; i < sizeof cg_cases / sizeof cg_cases[0]; i++) {
        const cg_case *c = &cg_cases[i];
        int before = mg_test_failed_checks;
        mg__probe *p = open_fx(c->proc, c->cg, 0, NULL);
        if (!p) continue;
        mg_snapshot s;
        sample(p, 0, &s);
        check_cgroup(&s.cgroup, &c->want);
        CHECK(s.ram.meminfo_known);
        mg__probe_close(p);
        if (mg_test_failed_checks != before)
            fprintf(stderr, "  in case %zu: %s (%s, %s)\n", i, c->what, c->proc, c->cg);
    }
}

/* A limit changed at run time shows at the next sample. */
static void test_cgroup_limit_changes(void)
{
    char base[512], cmd_dir[600], path[700];
    snprintf(base, sizeof base, "%s/probe-cg-%d", MG_TMPDIR, (int)getpid());
    mkdir(base, 0755);
    snprintf(path, sizeof path, "%s/cgroup.controllers", base);
    write_file(path, "memory\n");
    snprintf(cmd_dir, sizeof cmd_dir, "%s/user.slice", base);
    mkdir(cmd_dir, 0755);
    snprintf(path, sizeof path, "%s/memory.max", cmd_dir);
    write_file(path, "max\n");
    snprintf(path, sizeof path, "%s/memory.current", cmd_dir);
    write_file(path, "777\n");
    snprintf(cmd_dir, sizeof cmd_dir, "%s/user.slice/job.scope", base);
    mkdir(cmd_dir, 0755);
    snprintf(path, sizeof path, "%s/memory.current", cmd_dir);
    write_file(path, "555\n");
    snprintf(path, sizeof path, "%s/memory.max", cmd_dir);
    write_file(path, "max\n");

    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, FX "/proc-v2", base, 0, NULL), 0);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.cgroup.known);
    CHECK(!s.cgroup.has_limit);
    CHECK_U64(s.cgroup.usage_bytes, 555);
    write_file(path, "1000000\n");
    sample(p, 1, &s);
    CHECK(s.cgroup.has_limit);
    CHECK_U64(s.cgroup.limit_bytes, 1000000);
    CHECK_STR(s.cgroup.limit_path, "/user.slice/job.scope");
    snprintf(path, sizeof path, "%s/user.slice/memory.max", base);
    write_file(path, "500000\n");
    sample(p, 2, &s);
    CHECK_U64(s.cgroup.limit_bytes, 500000);
    CHECK_STR(s.cgroup.limit_path, "/user.slice");
    CHECK_U64(s.cgroup.usage_bytes, 777);
    mg__probe_close(p);

    const char *files[] = { "user.slice/job.scope/memory.current",
                            "user.slice/job.scope/memory.max",
                            "user.slice/memory.current", "user.slice/memory.max",
                            "cgroup.controllers", "user.slice/job.scope",
                            "user.slice", "" };
    for (int i = 0; i < 8; i++) {
        snprintf(path, sizeof path, "%s/%s", base, files[i]);
        if (unlink(path) != 0) rmdir(path);
    }
}

/* The docker fixture's other sources, beside its cgroup (in the table). */
static void test_v1docker_other_sources(void)
{
    mg__probe *p = open_fx("proc-v1docker", "cg-v1docker", 0, NULL);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    /* the same meminfo has zero swap: a real reading */
    CHECK(s.swap.known);
    CHECK_U64(s.swap.total_bytes, 0);
    CHECK_U64(s.ram.mem_total_bytes, 32768000 * KB);
    CHECK(!s.psi.known); /* "avg10=abc" */
    CHECK_INT(s.tree.pid, 1);
    mg__probe_close(p);
}

/* ---- PSI ------------------------------------------------------------------ */

static void test_psi(void)
{
    mg__probe *p = open_fx("proc-v2", "cg-v2-limit", 0, NULL);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.psi.known);
    CHECK_NEAR(s.psi.some_avg10, 1.50, 1e-9);
    CHECK_NEAR(s.psi.full_avg10, 0.25, 1e-9);
    mg__probe_close(p);

    p = open_fx("proc-v1", "cg-v1-limited", 0, NULL); /* no pressure/ */
    if (!p) return;
    sample(p, 0, &s);
    CHECK(!s.psi.known);
    mg__probe_close(p);
}

/* ---- process tree: fixtures ---------------------------------------------- */

static void check_tree_fixture(const char *proc)
{
    uint64_t ps = page_size();
    mg__probe *p = open_fx(proc, "no-such-cgroup-root", 0, NULL);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    /* 100 (self) -> 101, 102; 103 forked by thread 105; 101 -> 104 */
    CHECK(s.tree.known);
    CHECK_INT(s.tree.pid, 100);
    CHECK_INT(s.tree.nprocs, 5);
    CHECK_U64(s.tree.rss_bytes, (1000 + 2000 + 3000 + 400 + 50) * ps);

    CHECK_INT(mg__probe_set_pid(p, 101), 0);
    sample(p, 1, &s);
    CHECK_INT(s.tree.pid, 101);
    CHECK_INT(s.tree.nprocs, 2);
    CHECK_U64(s.tree.rss_bytes, (2000 + 50) * ps);

    CHECK_INT(mg__probe_set_pid(p, 1), 0);
    sample(p, 2, &s);
    CHECK_INT(s.tree.nprocs, 7);
    CHECK_U64(s.tree.rss_bytes,
              (100 + 1000 + 2000 + 3000 + 400 + 50 + 99999) * ps);

    CHECK_INT(mg__probe_set_pid(p, 999), MG_ESRCH);
    sample(p, 3, &s); /* still rooted at 1 */
    CHECK_INT(s.tree.pid, 1);
    CHECK_INT(s.tree.nprocs, 7);

    CHECK_INT(mg__probe_set_pid(p, 0), 0); /* back to self */
    sample(p, 4, &s);
    CHECK_INT(s.tree.pid, 100);
    CHECK_INT(s.tree.nprocs, 5);
    mg__probe_close(p);

    p = open_fx(proc, "no-such-cgroup-root", 102, NULL);
    if (!p) return;
    sample(p, 0, &s);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.nprocs, 1);
    CHECK_U64(s.tree.rss_bytes, 3000 * ps);
    mg__probe_close(p);

    p = open_fx(proc, "no-such-cgroup-root", 4242, NULL); /* no such pid */
    if (!p) return;
    sample(p, 0, &s);
    CHECK(!s.tree.known);
    CHECK_INT(s.tree.pid, 4242);
    mg__probe_close(p);
}

static void test_tree_children_files(void) { check_tree_fixture("proc-tree"); }
static void test_tree_stat_scan(void) { check_tree_fixture("proc-treescan"); }

/* Descendants only: the root is not counted, its liveness still decides. */
static void check_descendants_fixture(const char *proc)
{
    uint64_t ps = page_size();
    mg__probe *p = open_fx(proc, "no-such-cgroup-root", 0, NULL);
    if (!p) return;
    mg_snapshot s;
    CHECK_INT(mg__probe_set_descendants(p, 100), 0);
    sample(p, 0, &s);
    CHECK(s.tree.known);
    CHECK(s.tree.descendants_only);
    CHECK_INT(s.tree.pid, 100);
    CHECK_INT(s.tree.nprocs, 4);
    CHECK_U64(s.tree.rss_bytes, (2000 + 3000 + 400 + 50) * ps);
    int pids[8] = {0};
    CHECK_INT(mg__probe_tree_pids(p, 1, pids, 8), 4);
    /* Each child once, in directory order; a grandchild after its parent. */
    int at[5] = {-1, -1, -1, -1, -1};
    for (int i = 0; i < 4; i++)
        if (pids[i] >= 101 && pids[i] <= 104) at[pids[i] - 100] = i;
    for (int k = 1; k <= 4; k++) CHECK(at[k] >= 0);
    CHECK(at[4] > at[1]);
    CHECK_INT(mg__probe_tree_pids(p, 2, pids, 2), 4); /* more than cap */
    CHECK_INT(mg__probe_tree_pids(p, 3, NULL, 0), 4);
    CHECK_INT(mg__probe_tree_pids(p, 3, NULL, 1), MG_EINVAL);

    /* A leaf: a known, empty tree. */
    CHECK_INT(mg__probe_set_descendants(p, 102), 0);
    sample(p, 10, &s);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.nprocs, 0);
    CHECK_U64(s.tree.rss_bytes, 0);
    CHECK_INT(mg__probe_tree_pids(p, 11, pids, 8), 0);

    /* Back to a whole tree: root first. */
    CHECK_INT(mg__probe_set_pid(p, 101), 0);
    sample(p, 20, &s);
    CHECK(!s.tree.descendants_only);
    CHECK_INT(s.tree.nprocs, 2);
    CHECK_INT(mg__probe_tree_pids(p, 21, pids, 8), 2);
    CHECK_INT(pids[0], 101);
    CHECK_INT(pids[1], 104);
    CHECK_INT(mg__probe_set_descendants(p, 4242), MG_ESRCH);
    mg__probe_close(p);
}

static void test_tree_descendants(void)
{
    check_descendants_fixture("proc-tree");
    check_descendants_fixture("proc-treescan");
}

/* PSS from the fixture's smaps files: 100 has smaps_rollup (Pss 1000 kB),
 * 101 only smaps (an old kernel: 300 + 200 kB, behind a mapping line
 * longer than the read buffer), 102 a rollup without a Pss line and 104 no
 * smaps at all (both counted with their RSS), 103 Pss 100 kB; 1 has 80 kB,
 * 200 90000 kB. Pss_Anon, Pss_Dirty and SwapPss lines must not count. */
static void test_tree_pss_fixture(void)
{
    uint64_t ps = page_size();
    log_sink sink = {0};
    mg__probe *p = open_fx("proc-tree", "no-such-cgroup-root", 0, &sink);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.tree.known);
    CHECK(!s.tree.pss_known); /* the probe alone never reads PSS */
    mg__probe_tree_pss(p, &s.tree);
    CHECK(s.tree.pss_known);
    CHECK_U64(s.tree.pss_bytes, (1000 + 500 + 100) * KB + (3000 + 50) * ps);
    CHECK_INT(s.tree.pss_unread, 2);
    CHECK_U64(s.tree.rss_bytes, (1000 + 2000 + 3000 + 400 + 50) * ps);
    CHECK_CONTAINS(sink.last, "counted with its RSS");

    CHECK_INT(mg__probe_set_descendants(p, 1), 0);
    sample(p, 10, &s);
    mg__probe_tree_pss(p, &s.tree);
    CHECK_INT(s.tree.nprocs, 6);
    CHECK_U64(s.tree.pss_bytes, (1000 + 500 + 100 + 90000) * KB + (3000 + 50) * ps);
    CHECK_INT(mg__probe_set_pid(p, 1), 0);
    sample(p, 20, &s);
    mg__probe_tree_pss(p, &s.tree);
    CHECK_U64(s.tree.pss_bytes, (80 + 1000 + 500 + 100 + 90000) * KB + (3000 + 50) * ps);

    /* An unknown tree stays unknown. */
    mg__probe_close(p);
    p = open_fx("proc-tree", "no-such-cgroup-root", 4242, NULL);
    if (!p) return;
    sample(p, 0, &s);
    mg__probe_tree_pss(p, &s.tree);
    CHECK(!s.tree.known);
    CHECK(!s.tree.pss_known);
    mg__probe_close(p);
}

/* The context reads PSS only where the RSS sum does not prove the budget
 * safe, and mg_check_memory_safety draws that line at its own threshold.
 * Fixture: machine 50 % used; tree of 100: RSS 6450 pages, PSS 1600 kB +
 * 3050 pages. */
static void test_ctx_pss_gate(void)
{
    uint64_t ps = page_size();
    uint64_t rss = 6450 * ps, pss = 1600 * KB + 3050 * ps;
    mg_config c = {.no_gpu = true, .proc_root = FX "/proc-tree",
                   .cgroup_root = FX "/no-such-cgroup-root"};
    c.ram_budget_bytes = rss * 100 / 66; /* RSS 66 %: below warn 85 - 2 */
    int err = 0;
    mg_ctx *ctx = mg_create(&c, &err);
    CHECK_INT(err, 0);
    if (!ctx) return;
    mg_snapshot s;
    CHECK_INT(mg_sample(ctx, &s), 0);
    CHECK(s.tree.known);
    CHECK(!s.tree.pss_known);
    CHECK_U64(s.tree.used_bytes, rss);
    CHECK_INT(s.ram.source, MG_RAM_SOURCE_BUDGET);
    CHECK_U64(s.ram.used_bytes, rss);
    CHECK(s.sample_us < 1000000);

    /* At 60 % the RSS sum (66 %) proves nothing: PSS (35 %) is judged, and
     * the machine's 50 % decides: safe. */
    bool safe = false;
    char w[256];
    CHECK_INT(mg_check_memory_safety(ctx, 0.9, 0.60, &safe, w, sizeof w), 0);
    CHECK(safe);
    CHECK_INT(mg_check_memory_safety(ctx, 0.9, 0.45, &safe, w, sizeof w), 0);
    CHECK(!safe); /* the machine's 50 % */
    mg_destroy(ctx);

    c.ram_budget_bytes = rss * 100 / 84; /* RSS 84 %: at the warn line */
    ctx = mg_create(&c, &err);
    if (!ctx) return;
    CHECK_INT(mg_sample(ctx, &s), 0);
    CHECK(s.tree.pss_known);
    CHECK_U64(s.tree.pss_bytes, pss);
    CHECK_U64(s.tree.used_bytes, pss);
    CHECK_INT(s.tree.pss_unread, 2);
    mg_verdict v;
    CHECK_INT(mg_classify(mg_ctx_config(ctx), &s, NULL, &v), MG_LEVEL_SAFE);
    mg_destroy(ctx);

    /* A floor wider than the RSS headroom also needs PSS. */
    c.ram_budget_bytes = rss * 2;
    c.min_free_ram_bytes = rss + 1;
    ctx = mg_create(&c, &err);
    if (!ctx) return;
    CHECK_INT(mg_sample(ctx, &s), 0);
    CHECK(s.tree.pss_known);
    mg_destroy(ctx);
}

/* The public calls through a context on a MEMGUARD_PROC_ROOT fixture. */
static void test_ctx_tree_pids(void)
{
    mg_config c = {.no_gpu = true, .proc_root = FX "/proc-tree",
                   .cgroup_root = FX "/no-such-cgroup-root"};
    int err = 0;
    mg_ctx *ctx = mg_create(&c, &err);
    CHECK_INT(err, 0);
    if (!ctx) return;
    int pids[8] = {0};
    CHECK_INT(mg_tree_pids(ctx, pids, 8), 5); /* pid 0: fixture's self, 100 */
    CHECK_INT(pids[0], 100);
    CHECK_INT(mg_watch_descendants(ctx, 1), 0);
    CHECK_INT(mg_tree_pids(ctx, pids, 8), 6);
    CHECK_INT(pids[0], 100);
    CHECK_INT(pids[1], 200);
    mg_snapshot s;
    CHECK_INT(mg_sample(ctx, &s), 0);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.nprocs, 6);
    CHECK_U64(s.tree.rss_bytes, (1000 + 2000 + 3000 + 400 + 50 + 99999) * page_size());
    CHECK_INT(mg_watch_descendants(ctx, 4242), MG_ESRCH);
    CHECK_INT(mg_watch_descendants(ctx, -1), MG_EINVAL);
    CHECK_INT(mg_watch_descendants(NULL, 1), MG_EINVAL);
    CHECK_INT(mg_tree_pids(NULL, pids, 8), MG_EINVAL);
    CHECK_INT(mg_tree_pids(ctx, NULL, 8), MG_EINVAL);
    mg_destroy(ctx);
}

/* Rediscovery happens on the first sample and then once 1000 ms passed. */
static void test_tree_rediscovery_period(void)
{
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/probe-tree-%d", MG_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/meminfo", dir);
    write_file(path, "MemTotal: 1000 kB\nMemAvailable: 600 kB\n");
    const char *mk[] = { "%s/7", "%s/7/task", "%s/7/task/7", "%s/8",
                         "%s/8/task", "%s/8/task/8" };
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, mk[i], dir);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof path, "%s/7/statm", dir);
    write_file(path, "30 10 1 1 0 5 0\n");
    snprintf(path, sizeof path, "%s/7/task/7/children", dir);
    write_file(path, "");
    snprintf(path, sizeof path, "%s/8/statm", dir);
    write_file(path, "30 20 1 1 0 5 0\n");
    snprintf(path, sizeof path, "%s/8/task/8/children", dir);
    write_file(path, "");

    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, dir, FX "/no-such", 7, NULL), 0);
    if (!p) return;
    mg_snapshot s;
    uint64_t ps = page_size();
    sample(p, 5000, &s);
    CHECK_INT(s.tree.nprocs, 1);
    CHECK_U64(s.tree.rss_bytes, 10 * ps);
    snprintf(path, sizeof path, "%s/7/task/7/children", dir);
    write_file(path, "8 ");
    snprintf(path, sizeof path, "%s/7/statm", dir);
    write_file(path, "30 11 1 1 0 5 0\n");
    sample(p, 5999, &s); /* RSS re-read, the tree not rediscovered yet */
    CHECK_INT(s.tree.nprocs, 1);
    CHECK_U64(s.tree.rss_bytes, 11 * ps);
    sample(p, 6000, &s);
    CHECK_INT(s.tree.nprocs, 2);
    CHECK_U64(s.tree.rss_bytes, 31 * ps);
    mg__probe_close(p);

    const char *rm[] = { "%s/7/task/7/children", "%s/8/task/8/children",
                         "%s/7/statm", "%s/8/statm", "%s/7/task/7",
                         "%s/8/task/8", "%s/7/task", "%s/8/task", "%s/7",
                         "%s/8", "%s/meminfo", "%s" };
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof path, rm[i], dir);
        if (unlink(path) != 0) rmdir(path);
    }
}

/* ---- process tree: real processes ---------------------------------------- */

/* Forks n children that each touch `touch` bytes, report ready on a pipe and
 * wait for EOF on another. Returns the number started. */
static int spawn(pid_t *kids, int n, size_t touch, int *go_wr)
{
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0) return 0;
    int started = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) break;
        if (pid == 0) {
            alarm(60); /* alarms are not inherited across fork */
            close(ready[0]);
            close(go[1]);
            if (touch) {
                char *m = mmap(NULL, touch, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED) _exit(1);
                memset(m, 1 + i, touch);
            }
            char c = 'r';
            if (write(ready[1], &c, 1) != 1) _exit(1);
            while (read(go[0], &c, 1) > 0) {}
            _exit(0);
        }
        kids[started++] = pid;
    }
    close(ready[1]);
    close(go[0]);
    for (int i = 0; i < started; i++) {
        char c;
        if (read(ready[0], &c, 1) != 1) break;
    }
    close(ready[0]);
    *go_wr = go[1];
    return started;
}

static void reap(pid_t *kids, int n, int go_wr)
{
    if (go_wr >= 0) close(go_wr);
    for (int i = 0; i < n; i++) {
        if (kids[i] <= 0) continue;
        kill(kids[i], SIGKILL);
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {}
        kids[i] = 0;
    }
}

static void test_real_tree_rss(void)
{
    alarm(60);
    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, "/proc", "/sys/fs/cgroup", 0, NULL), 0);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.pid, (int)getpid());
    uint64_t before = s.tree.rss_bytes;
    unsigned nbefore = s.tree.nprocs;

    pid_t kids[3] = {0};
    int go = -1;
    int n = spawn(kids, 3, 30u << 20, &go);
    CHECK_INT(n, 3);
    /* The forks moved /proc/loadavg's last PID: rediscovered well before
     * the one-second timer. */
    CHECK(nbefore >= 1);
    sample(p, 100, &s);
    CHECK(s.tree.known);
    CHECK(s.tree.nprocs >= 4);
    CHECK(s.tree.rss_bytes >= before + (90u << 20));

    /* A member that exits is dropped at the next sample (ESRCH on its kept
     * statm descriptor), before any rediscovery. */
    unsigned nnow = s.tree.nprocs;
    kill(kids[0], SIGKILL);
    waitpid(kids[0], NULL, 0);
    kids[0] = 0;
    sample(p, 1200, &s);
    CHECK_INT(s.tree.nprocs, nnow - 1);

    /* Watching a child: gone once it exits. */
    CHECK_INT(mg__probe_set_pid(p, kids[1]), 0);
    sample(p, 1300, &s);
    CHECK(s.tree.known);
    CHECK_INT(s.tree.pid, kids[1]);
    CHECK_INT(s.tree.nprocs, 1);
    CHECK(s.tree.rss_bytes >= (30u << 20));
    kill(kids[1], SIGKILL);
    waitpid(kids[1], NULL, 0);
    int gone = kids[1];
    kids[1] = 0;
    sample(p, 1400, &s);
    CHECK(!s.tree.known);
    CHECK_INT(mg__probe_set_pid(p, gone), MG_ESRCH);
    reap(kids, 3, go);
    mg__probe_close(p);
    alarm(0);
}

/* More members than kept descriptors: the rest are opened each sample. */
static void test_real_tree_many(void)
{
    alarm(60);
    enum { N = 70 };
    pid_t kids[N] = {0};
    int go = -1;
    int n = spawn(kids, N, 0, &go);
    CHECK_INT(n, N);
    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, "/proc", "/sys/fs/cgroup", 0, NULL), 0);
    if (p) {
        mg_snapshot s;
        sample(p, 0, &s);
        CHECK(s.tree.known);
        CHECK(s.tree.nprocs >= (unsigned)n + 1);
        unsigned first = s.tree.nprocs;
        /* kill the last-forked one (likely beyond the 64 kept) and the first */
        kill(kids[N - 1], SIGKILL);
        waitpid(kids[N - 1], NULL, 0);
        kids[N - 1] = 0;
        kill(kids[0], SIGKILL);
        waitpid(kids[0], NULL, 0);
        kids[0] = 0;
        sample(p, 10, &s);
        CHECK_INT(s.tree.nprocs, first - 2);
        sample(p, 2000, &s);
        CHECK_INT(s.tree.nprocs, first - 2);
        mg__probe_close(p);
    }
    reap(kids, N, go);
    alarm(0);
}

/* ---- the real machine ---------------------------------------------------- */

static uint64_t file_u64(const char *path, bool *ok)
{
    char buf[128];
    uint64_t v = 0;
    *ok = mg__read_file(path, buf, sizeof buf) > 0;
    const char *q = buf;
    if (*ok && mg__parse_u64(&q, &v) != 0) *ok = false;
    return v;
}

static void test_real_machine(void)
{
    mg__probe *p = NULL;
    CHECK_INT(mg__probe_open(&p, "/proc", "/sys/fs/cgroup", 0, NULL), 0);
    if (!p) return;
    mg_snapshot s;
    sample(p, 0, &s);

    char buf[8192];
    CHECK(mg__read_file("/proc/meminfo", buf, sizeof buf) > 0);
    const char *q = strstr(buf, "MemTotal:");
    uint64_t kb = 0;
    CHECK(q != NULL);
    if (q) {
        q += 9;
        CHECK_INT(mg__parse_u64(&q, &kb), 0);
    }
    CHECK(s.ram.meminfo_known);
    CHECK_U64(s.ram.mem_total_bytes, kb * 1024u);
    CHECK(s.ram.mem_available_bytes <= s.ram.mem_total_bytes);
    CHECK(s.swap.known);
    CHECK(s.tree.known);
    CHECK(s.tree.nprocs >= 1);
    CHECK(s.tree.rss_bytes > 0);

    if (s.cgroup.known) {
        CHECK(s.cgroup.version == 1 || s.cgroup.version == 2);
        CHECK(s.cgroup.usage_known);
        printf("# cgroup v%d %s limit %s%s\n", s.cgroup.version,
               s.cgroup.path, s.cgroup.has_limit ? "at " : "none",
               s.cgroup.has_limit ? s.cgroup.limit_path : "");
    }
    if (s.cgroup.known && s.cgroup.has_limit) {
        /* The limit file: at the path itself, or at the mount directory
         * when the mount root is the container's cgroup (Docker v1). */
        const char *name = s.cgroup.version == 2 ? "memory.max"
                                                 : "memory.limit_in_bytes";
        const char *bases[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified",
                                "/sys/fs/cgroup/memory" };
        bool found = false;
        for (int i = 0; i < 3 && !found; i++) {
            char path[1024];
            bool ok;
            snprintf(path, sizeof path, "%s%s/%s", bases[i],
                     s.cgroup.limit_path, name);
            uint64_t v = file_u64(path, &ok);
            if (!ok) {
                snprintf(path, sizeof path, "%s/%s", bases[i], name);
                v = file_u64(path, &ok);
            }
            if (ok && v == s.cgroup.limit_bytes) found = true;
        }
        if (s.cgroup.version == 1 && !found) {
            /* v1 may take it from the leaf's hierarchical_memory_limit */
            char path[1024], st[16384];
            const char *leaf[] = { s.cgroup.path, "" };
            for (int i = 0; i < 2 && !found; i++) {
                snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.stat",
                         leaf[i]);
                if (mg__read_file(path, st, sizeof st) <= 0) continue;
                const char *h = strstr(st, "hierarchical_memory_limit ");
                uint64_t v;
                if (h) {
                    h += strlen("hierarchical_memory_limit ");
                    if (mg__parse_u64(&h, &v) == 0 && v == s.cgroup.limit_bytes)
                        found = true;
                }
            }
        }
        CHECK(found);
    }
    printf("# real: MemTotal %" PRIu64 " kB, tree %u procs %" PRIu64
           " bytes, psi %s\n", kb, s.tree.nprocs, s.tree.rss_bytes,
           s.psi.known ? "known" : "unknown");
    mg__probe_close(p);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int fds_at_start;

/* Every probe above was closed: no descriptor may be left behind. */
static void test_no_fd_leak(void)
{
    CHECK_INT(count_fds(), fds_at_start);
}

int main(void)
{
    alarm(300);
    fds_at_start = count_fds();
    MG_RUN(test_meminfo_full);
    MG_RUN(test_meminfo_no_available);
    MG_RUN(test_meminfo_bad_at_open);
    MG_RUN(test_meminfo_bad_at_runtime);
    MG_RUN(test_cgroup_fixtures);
    MG_RUN(test_cgroup_limit_changes);
    MG_RUN(test_v1docker_other_sources);
    MG_RUN(test_psi);
    MG_RUN(test_tree_children_files);
    MG_RUN(test_tree_stat_scan);
    MG_RUN(test_tree_descendants);
    MG_RUN(test_ctx_tree_pids);
    MG_RUN(test_tree_pss_fixture);
    MG_RUN(test_ctx_pss_gate);
    MG_RUN(test_tree_rediscovery_period);
    MG_RUN(test_real_tree_rss);
    MG_RUN(test_real_tree_many);
    MG_RUN(test_real_machine);
    MG_RUN(test_no_fd_leak);
    return mg_test_exit();
}
