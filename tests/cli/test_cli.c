/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c: the memguard command as a user runs it: a real process with
 * real arguments and environment, its exit status, stdout and stderr. The
 * sources are /proc and cgroup trees this test writes under MG_TMPDIR and
 * the fake NVML library, so every number it asserts is one it wrote. The
 * --json output is parsed with cJSON, a real JSON parser.
 */
#include "mg_proc.h"

#include <cjson/cJSON.h>
#include <dirent.h>
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

#define GIB (1024.0 * 1024.0 * 1024.0)


/* ---- fixture helpers ------------------------------------------------------ */

static char proc_root[512], cg_root[512];
static char env_proc[600], env_cg[600], env_nvml[600];

/* A /proc with one process (pid 4242, rss_pages pages) whose memory cgroup
 * (v2) is /job with the given limit (0 = "max") and usage. */
static void make_fixture(const char *name, uint64_t total_kb, uint64_t avail_kb,
                         uint64_t rss_pages, uint64_t cg_limit, uint64_t cg_usage)
{
    snprintf(proc_root, sizeof proc_root, "%s/cli-%s/proc", MG_TMPDIR, name);
    snprintf(cg_root, sizeof cg_root, "%s/cli-%s/cgroup", MG_TMPDIR, name);
    char p[1024];
    snprintf(p, sizeof p, "%s/4242/task/4242", proc_root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/pressure", proc_root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/job", cg_root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/meminfo", proc_root);
    write_file(p, "MemTotal:       %llu kB\nMemFree:        %llu kB\nMemAvailable:   %llu kB\n"
                  "Buffers:             0 kB\nCached:              0 kB\n"
                  "SwapTotal:       1048576 kB\nSwapFree:         524288 kB\n",
               (unsigned long long)total_kb, (unsigned long long)avail_kb,
               (unsigned long long)avail_kb);
    snprintf(p, sizeof p, "%s/pressure/memory", proc_root);
    write_file(p, "some avg10=1.50 avg60=0.00 avg300=0.00 total=10\n"
                  "full avg10=0.25 avg60=0.00 avg300=0.00 total=5\n");
    snprintf(p, sizeof p, "%s/self", proc_root);
    unlink(p);
    if (symlink("4242", p) != 0) MG_FAIL_("symlink %s: %s", p, strerror(errno));
    snprintf(p, sizeof p, "%s/4242/statm", proc_root);
    write_file(p, "1000 %llu 10 1 0 100 0\n", (unsigned long long)rss_pages);
    snprintf(p, sizeof p, "%s/4242/stat", proc_root);
    write_file(p, "4242 (trainer) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 %llu\n",
               (unsigned long long)rss_pages);
    snprintf(p, sizeof p, "%s/4242/task/4242/children", proc_root);
    write_file(p, "%s", "");
    snprintf(p, sizeof p, "%s/4242/cgroup", proc_root);
    write_file(p, "0::/job\n");
    snprintf(p, sizeof p, "%s/cgroup.controllers", cg_root);
    write_file(p, "cpu memory pids\n");
    snprintf(p, sizeof p, "%s/job/memory.max", cg_root);
    if (cg_limit) write_file(p, "%llu\n", (unsigned long long)cg_limit);
    else write_file(p, "max\n");
    snprintf(p, sizeof p, "%s/job/memory.current", cg_root);
    write_file(p, "%llu\n", (unsigned long long)cg_usage);
    snprintf(p, sizeof p, "%s/job/memory.stat", cg_root);
    write_file(p, "anon %llu\nfile 0\ninactive_file 0\n", (unsigned long long)cg_usage);
    snprintf(env_proc, sizeof env_proc, "MEMGUARD_PROC_ROOT=%s", proc_root);
    snprintf(env_cg, sizeof env_cg, "MEMGUARD_CGROUP_ROOT=%s", cg_root);
    snprintf(env_nvml, sizeof env_nvml, "MEMGUARD_NVML_LIBRARY=%s", MG_FAKE_NVML);
}

static cJSON *parse_out(void)
{
    cJSON *j = cJSON_Parse(R.out);
    if (!j) MG_FAIL_("stdout is not JSON:\n%s\nstderr:\n%s", R.out, R.err);
    return j;
}

static double num(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    if (!cur || !cJSON_IsNumber(cur)) {
        MG_FAIL_("JSON %s is not a number", path);
        return -1;
    }
    return cur->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_help_and_version(void)
{
    CHECK_INT(RUN(NULL, "--help"), 0);
    CHECK_CONTAINS(R.out, "Usage: memguard");
    CHECK_INT(RUN(NULL, "check", "--help"), 0);
    CHECK_CONTAINS(R.out, "--warn-gpu");
    CHECK_INT(RUN(NULL, "--version"), 0);
    CHECK_CONTAINS(R.out, "memguard 0.");
}

/* Every bad input: exit 2, one line naming the input and what is allowed,
 * then the hint. */
static void test_bad_input_table(void)
{
    static const struct {
        const char *args[4];
        const char *needle;
    } rows[] = {
        {{"check", "--warn-gpu", "1.5"}, "--warn-gpu '1.5': expected a fraction in (0, 1]"},
        {{"check", "--warn-gpu", "abc"}, "--warn-gpu 'abc': expected a fraction"},
        {{"check", "--stop-ram", "0"}, "--stop-ram '0': expected a fraction"},
        {{"check", "--warn-ram", "-5%"}, "--warn-ram '-5%'"},
        {{"check", "--warn-gpu", "95%"}, "--warn-gpu 0.95 is above --stop-gpu 0.92"},
        {{"check", "--stop-ram", "0.80"}, "--warn-ram 0.85 is above --stop-ram 0.8"},
        {{"check", "--ram-budget", "12Q"}, "--ram-budget '12Q': expected a size"},
        {{"check", "--ram-budget", "0"}, "--ram-budget '0'"},
        {{"check", "--ram-budget", "99999999999T"}, "--ram-budget '99999999999T'"},
        {{"check", "--min-free-ram", ""}, "--min-free-ram ''"},
        {{"check", "--lang", "fr"}, "--lang 'fr': expected 'en' or 'ja'"},
        {{"check", "--pid", "x1"}, "--pid 'x1': expected a process id"},
        {{"check", "--frobnicate"}, "unknown option '--frobnicate'"},
        {{"check", "--warn-gpu"}, "option '--warn-gpu' needs a value"},
        {{"check", "extra"}, "unexpected argument 'extra'"},
        {{"watch", "--interval", "5"}, "--interval '5': expected milliseconds"},
        {{"watch", "--count", "0"}, "--count '0': expected samples"},
        {{"watch", "--count", "+3"}, "--count '+3'"},
        {{"watch", "--interval", " 50"}, "--interval ' 50'"},
        {{"check", "--pid", "0x10"}, "--pid '0x10'"},
        {{"check", "--pid", "-0"}, "--pid '-0'"},
        {{"check", "--pid", "4194303"}, "--pid 4194303: no such process"},
        {{"launch"}, "unknown command 'launch'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *args[5] = {0};
        for (int k = 0; k < 4 && rows[i].args[k]; k++) args[k] = rows[i].args[k];
        run_cli(NULL, args, 10000);
        if (R.status != 2) MG_FAIL_("row %zu (%s %s): exit %d, want 2", i, args[0],
                                    args[1] ? args[1] : "", R.status);
        CHECK_CONTAINS(R.err, rows[i].needle);
        CHECK_CONTAINS(R.err, "(try 'memguard --help')");
        CHECK_INT(mg_count_lines(R.err), 1);
        CHECK_STR(R.out, "");
    }
    CHECK_INT(RUN(NULL, NULL), 2);
    CHECK_CONTAINS(R.err, "missing command");
}

static void test_bad_environment(void)
{
    const char *e1[] = {"MEMGUARD_PROC_ROOT=/nonexistent/proc", NULL};
    CHECK_INT(RUN(e1, "check"), 2);
    CHECK_CONTAINS(R.err, "MEMGUARD_PROC_ROOT '/nonexistent/proc': not a readable directory");
    const char *e2[] = {"MEMGUARD_CGROUP_ROOT=/nonexistent/cg", NULL};
    CHECK_INT(RUN(e2, "check"), 2);
    CHECK_CONTAINS(R.err, "MEMGUARD_CGROUP_ROOT '/nonexistent/cg'");
    const char *e3[] = {"MEMGUARD_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1", NULL};
    CHECK_INT(RUN(e3, "check"), 2);
    CHECK_CONTAINS(R.err, "MEMGUARD_NVML_LIBRARY");
    /* A directory that is readable but holds no meminfo. */
    char env[600];
    snprintf(env, sizeof env, "MEMGUARD_PROC_ROOT=%s", MG_TMPDIR);
    const char *e4[] = {env, NULL};
    CHECK_INT(RUN(e4, "check"), 2);
    CHECK_CONTAINS(R.err, "it must hold a meminfo file");
    CHECK_INT(mg_count_lines(R.err), 1); /* the library's own lines held back */

    /* RAM that cannot be judged is never "safe": a budget on a process
     * whose /proc entry holds nothing leaves RAM unknown, and check exits
     * 1 (a source could not be read), not 0. */
    char root[600], pid_dir[700], meminfo[700];
    snprintf(root, sizeof root, "%s/cli-unknown-ram", MG_TMPDIR);
    snprintf(pid_dir, sizeof pid_dir, "%s/4242", root);
    snprintf(meminfo, sizeof meminfo, "%s/meminfo", root);
    mkdirs(pid_dir);
    write_file(meminfo, "MemTotal: 16777216 kB\nMemFree: 8388608 kB\nMemAvailable: 8388608 kB\n");
    char env5[700];
    snprintf(env5, sizeof env5, "MEMGUARD_PROC_ROOT=%s", root);
    const char *e5[] = {env5, NULL};
    CHECK_INT(RUN(e5, "check", "--no-gpu", "--pid", "4242", "--ram-budget", "1G"), 1);
    CHECK_CONTAINS(R.out, "RAM could not be read");
}

/* JSON against a fixture: 16 GiB machine, 4 GiB available, a cgroup with no
 * limit, one fake GPU at 50 %. */
static void test_check_json_fixture(void)
{
    make_fixture("json", 16u << 20, 4u << 20, 25600, 0, 1u << 30);
    const char *env[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_COUNT=1",
                         "FAKE_NVML_GPU0=Fake RTX \"3060\";GPU-aaaa-1111;12884901888;6442450944;0",
                         "CUDA_VISIBLE_DEVICES", NULL};
    int st = RUN(env, "check", "--json");
    cJSON *j = parse_out();
    if (!j) return;
    /* RAM: 12 of 16 GiB used = 75 %: safe on RAM; GPU 50 %: safe. */
    CHECK_INT(st, 0);
    CHECK_STR(str(j, "level"), "safe");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
    CHECK_NEAR(num(j, "ram.total_bytes"), 16.0 * GIB, 0.5);
    CHECK_NEAR(num(j, "ram.available_bytes"), 4.0 * GIB, 0.5);
    CHECK_NEAR(num(j, "ram.used_frac"), 0.75, 1e-6);
    CHECK_STR(str(cJSON_GetObjectItem(j, "ram"), "source"), "meminfo");
    CHECK_NEAR(num(j, "swap.total_bytes"), 1.0 * GIB, 0.5);
    CHECK_NEAR(num(j, "swap.free_bytes"), 0.5 * GIB, 0.5);
    CHECK_NEAR(num(j, "cgroup.version"), 2, 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "cgroup"), "limit_bytes")));
    CHECK_NEAR(num(j, "process_tree.pid"), 4242, 0);
    CHECK_NEAR(num(j, "process_tree.nprocs"), 1, 0);
    CHECK_NEAR(num(j, "process_tree.rss_bytes"), 25600.0 * (double)sysconf(_SC_PAGESIZE), 0.5);
    /* No budget: PSS is never read; the RSS sum is the figure. */
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "process_tree"), "pss_bytes")));
    CHECK_NEAR(num(j, "process_tree.used_bytes"), 25600.0 * (double)sysconf(_SC_PAGESIZE), 0.5);
    CHECK(num(j, "sample_us") >= 0);
    CHECK_NEAR(num(j, "psi.some_avg10"), 1.5, 1e-9);
    CHECK_NEAR(num(j, "psi.full_avg10"), 0.25, 1e-9);
    CHECK_STR(str(j, "gpu_state"), "ok");
    const cJSON *gpus = cJSON_GetObjectItem(j, "gpus");
    CHECK_INT(cJSON_GetArraySize(gpus), 1);
    const cJSON *g = cJSON_GetArrayItem(gpus, 0);
    CHECK_STR(str(g, "name"), "Fake RTX \"3060\"");
    CHECK_STR(str(g, "uuid"), "GPU-aaaa-1111");
    CHECK_NEAR(num(g, "total_bytes"), 12884901888.0, 0.5);
    CHECK_NEAR(num(g, "free_bytes"), 6442450944.0, 0.5);
    CHECK_NEAR(num(g, "used_frac"), 0.5, 1e-9);
    CHECK_NEAR(num(j, "thresholds.warn_gpu_frac"), 0.90, 1e-12);
    CHECK_NEAR(num(j, "thresholds.stop_gpu_frac"), 0.92, 1e-12);
    CHECK_NEAR(num(j, "thresholds.warn_ram_frac"), 0.85, 1e-12);
    CHECK_NEAR(num(j, "thresholds.stop_ram_frac"), 0.88, 1e-12);
    cJSON_Delete(j);
}

/* The level and exit status at each boundary, through the GPU and RAM. */
static void test_check_levels(void)
{
    static const struct {
        uint64_t avail_kb;   /* of 16 GiB */
        uint64_t gpu_free;   /* of 10 GiB */
        int status;
        const char *level, *resource;
    } rows[] = {
        {8u << 20, 5ull << 30, 0, "safe", NULL},
        {8u << 20, 1ull << 30, 3, "warn", "gpu"},           /* GPU 90.0 % */
        {8u << 20, 800ull << 20, 4, "critical", "gpu"},     /* GPU 92.2 % */
        {(16u << 20) * 14 / 100, 5ull << 30, 3, "warn", "ram"},    /* RAM 86 % */
        {(16u << 20) * 11 / 100, 5ull << 30, 4, "critical", "ram"}, /* RAM 89 % */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        make_fixture("levels", 16u << 20, rows[i].avail_kb, 100, 0, 1u << 20);
        char gpu[128];
        snprintf(gpu, sizeof gpu, "FAKE_NVML_GPU0=Fake;GPU-bbbb;%llu;%llu;0",
                 10ull << 30, (unsigned long long)rows[i].gpu_free);
        const char *env[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_COUNT=1", gpu,
                             "CUDA_VISIBLE_DEVICES", "LANG=C", "LC_ALL", "LC_MESSAGES", NULL};
        int st = RUN(env, "check", "--json");
        if (st != rows[i].status) MG_FAIL_("row %zu: exit %d, want %d", i, st, rows[i].status);
        cJSON *j = parse_out();
        if (!j) continue;
        CHECK_STR(str(j, "level"), rows[i].level);
        const cJSON *reason = cJSON_GetObjectItem(j, "reason");
        if (rows[i].resource) CHECK_STR(str(reason, "resource"), rows[i].resource);
        cJSON_Delete(j);
        /* The text report says the same, with the seed's warning line. */
        st = RUN(env, "check");
        CHECK_INT(st, rows[i].status);
        CHECK_CONTAINS(R.out, "System Resource Check");
        char want[64];
        snprintf(want, sizeof want, "Level: %s", rows[i].level);
        CHECK_CONTAINS(R.out, want);
        if (rows[i].resource)
            CHECK_CONTAINS(R.out, strcmp(rows[i].resource, "gpu") == 0 ? "GPU usage high"
                                                                       : "RAM usage high");
    }
}

/* A cgroup limit below the machine decides, and the report names it. */
static void test_cgroup_limit_and_budget(void)
{
    make_fixture("cg", 16u << 20, 12u << 20, 100, 2ull << 30, (2ull << 30) * 9 / 10);
    const char *env[] = {env_proc, env_cg, "LANG=C", "LC_ALL", NULL};
    int st = RUN(env, "check", "--json", "--no-gpu");
    cJSON *j = parse_out();
    if (j) {
        CHECK_INT(st, 4); /* 90 % of the 2 GiB limit */
        CHECK_STR(str(cJSON_GetObjectItem(j, "ram"), "source"), "cgroup");
        CHECK_NEAR(num(j, "ram.total_bytes"), 2.0 * GIB, 0.5);
        CHECK_NEAR(num(j, "cgroup.limit_bytes"), 2.0 * GIB, 0.5);
        CHECK_STR(str(j, "gpu_state"), "disabled");
        cJSON_Delete(j);
    }
    /* A budget: 1 GiB against a tree of 262144 pages. */
    make_fixture("budget", 16u << 20, 12u << 20, (uint64_t)(0.86 * GIB) / (uint64_t)sysconf(_SC_PAGESIZE), 0, 0);
    const char *env2[] = {env_proc, env_cg, "LANG=C", "LC_ALL", NULL};
    st = RUN(env2, "check", "--json", "--no-gpu", "--ram-budget", "1G");
    j = parse_out();
    if (j) {
        CHECK_INT(st, 3);
        CHECK_STR(str(cJSON_GetObjectItem(j, "ram"), "source"), "budget");
        CHECK_NEAR(num(j, "ram.total_bytes"), GIB, 0.5);
        CHECK_NEAR(num(j, "thresholds.ram_budget_bytes"), GIB, 0.5);
        /* Both limits were weighed: the machine and the budget. */
        const cJSON *lim = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ram"), "limits");
        CHECK_INT(cJSON_GetArraySize(lim), 2);
        CHECK_STR(str(cJSON_GetArrayItem(lim, 0), "source"), "meminfo");
        CHECK_NEAR(num(cJSON_GetArrayItem(lim, 0), "total_bytes"), 16.0 * GIB, 0.5);
        CHECK_STR(str(cJSON_GetArrayItem(lim, 1), "source"), "budget");
        /* 86 % is past the warn line, so PSS was read; this fixture has no
         * smaps files, so the process counts with its RSS. */
        double rss = num(j, "process_tree.rss_bytes");
        CHECK_NEAR(num(j, "process_tree.pss_bytes"), rss, 0.5);
        CHECK_NEAR(num(j, "process_tree.pss_unread"), 1, 0);
        CHECK_NEAR(num(j, "process_tree.used_bytes"), rss, 0.5);
        cJSON_Delete(j);
    }
    /* With its smaps_rollup saying Pss 0.5 GiB, the budget judges that. */
    char p[1024];
    snprintf(p, sizeof p, "%s/4242/smaps_rollup", proc_root);
    write_file(p, "00400000-7ffc1b5fe000 ---p 00000000 00:00 0  [rollup]\n"
                  "Rss:  %llu kB\nPss:  524288 kB\nPss_Anon:  900000 kB\n",
               (unsigned long long)(0.86 * GIB / 1024));
    st = RUN(env2, "check", "--json", "--no-gpu", "--ram-budget", "1G");
    j = parse_out();
    if (j) {
        CHECK_INT(st, 0);
        CHECK_NEAR(num(j, "process_tree.pss_bytes"), 0.5 * GIB, 0.5);
        CHECK_NEAR(num(j, "process_tree.pss_unread"), 0, 0);
        CHECK_NEAR(num(j, "process_tree.used_bytes"), 0.5 * GIB, 0.5);
        CHECK_NEAR(num(j, "ram.used_frac"), 0.5, 1e-9);
        cJSON_Delete(j);
    }
    st = RUN(env2, "check", "--no-gpu", "--ram-budget", "1G");
    CHECK_INT(st, 0);
    CHECK_CONTAINS(R.out, "Process tree: pid 4242, 1 process, PSS 0.50GB (RSS sum 0.86GB)\n");
    unlink(p);
}

/* No NVML, an NVML whose init fails, two GPUs of which the second decides,
 * and CUDA_VISIBLE_DEVICES hiding it. */
static void test_gpu_states(void)
{
    make_fixture("gpu", 16u << 20, 12u << 20, 100, 0, 0);
    const char *none[] = {env_proc, env_cg, "MEMGUARD_NVML_LIBRARY=libnvidia-ml-none.so.9", NULL};
    CHECK_INT(RUN(none, "check", "--json"), 0);
    cJSON *j = parse_out();
    if (j) {
        CHECK_STR(str(j, "gpu_state"), "no_library");
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "gpus")), 0);
        cJSON_Delete(j);
    }
    CHECK_INT(RUN(none, "check"), 0);
    CHECK_CONTAINS(R.out, "GPU: none");

    const char *initfail[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_INIT_FAIL=9", NULL};
    CHECK_INT(RUN(initfail, "check", "--json"), 0);
    j = parse_out();
    if (j) { CHECK_STR(str(j, "gpu_state"), "no_driver"); cJSON_Delete(j); }

    const char *two[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_COUNT=2",
                         "FAKE_NVML_GPU0=A;GPU-0000;10737418240;8589934592;0",
                         "FAKE_NVML_GPU1=B;GPU-1111;10737418240;536870912;0",
                         "CUDA_VISIBLE_DEVICES", NULL};
    CHECK_INT(RUN(two, "check", "--json"), 4);  /* GPU1 at 95 % */
    j = parse_out();
    if (j) {
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "gpus")), 2);
        CHECK_NEAR(num(j, "reason.gpu_index"), 1, 0);
        cJSON_Delete(j);
    }
    const char *hidden[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_COUNT=2",
                            "FAKE_NVML_GPU0=A;GPU-0000;10737418240;8589934592;0",
                            "FAKE_NVML_GPU1=B;GPU-1111;10737418240;536870912;0",
                            "CUDA_VISIBLE_DEVICES=0", NULL};
    CHECK_INT(RUN(hidden, "check", "--json"), 0);
    j = parse_out();
    if (j) {
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "gpus")), 1);
        cJSON_Delete(j);
    }
}

static void test_japanese(void)
{
    make_fixture("ja", 16u << 20, 8u << 20, 100, 0, 0);
    const char *env[] = {env_proc, env_cg, env_nvml, "FAKE_NVML_COUNT=1",
                         "FAKE_NVML_GPU0=Fake;GPU-cccc;12884901888;1073741824;0",
                         "CUDA_VISIBLE_DEVICES", "LC_ALL=ja_JP.UTF-8", NULL};
    CHECK_INT(RUN(env, "check"), 3);
    CHECK_CONTAINS(R.out, "GPU使用率が危険");
    CHECK_INT(RUN(env, "check", "--lang", "en"), 3);
    CHECK_CONTAINS(R.out, "GPU usage high");
}

/* On the real machine: the total agrees with /proc/meminfo, or with the
 * cgroup limit when one is set below it. */
static void test_real_machine(void)
{
    const char *env[] = {"MEMGUARD_PROC_ROOT", "MEMGUARD_CGROUP_ROOT", NULL};
    int st = RUN(env, "check", "--json", "--no-gpu");
    CHECK(st == 0 || st == 3 || st == 4);
    cJSON *j = parse_out();
    if (!j) return;
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kb = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    CHECK_NEAR(num(j, "ram.mem_total_bytes"), (double)kb * 1024.0, 0.5);
    const char *src = str(cJSON_GetObjectItem(j, "ram"), "source");
    const cJSON *cg = cJSON_GetObjectItem(j, "cgroup");
    const cJSON *lim = cJSON_GetObjectItem(cg, "limit_bytes");
    if (src && strcmp(src, "cgroup") == 0) {
        CHECK(cJSON_IsNumber(lim));
        CHECK_NEAR(num(j, "ram.total_bytes"), lim->valuedouble, 0.5);
    } else {
        CHECK_STR(src, "meminfo");
        CHECK_NEAR(num(j, "ram.total_bytes"), (double)kb * 1024.0, 0.5);
    }
    cJSON_Delete(j);
}

static bool sent_int;
static void sigint_at_400(double el)
{
    if (el >= 400 && !sent_int) { kill(R.pid, SIGINT); sent_int = true; }
}

static void test_watch(void)
{
    make_fixture("watch", 16u << 20, 8u << 20, 100, 0, 0);
    const char *env[] = {env_proc, env_cg, NULL};
    CHECK_INT(RUN(env, "watch", "--no-gpu", "--interval", "10", "--count", "3"), 0);
    int lines = 0;
    for (const char *p = R.out; *p; p++) lines += *p == '\n';
    CHECK_INT(lines, 3);
    CHECK_CONTAINS(R.out, "RAM  50.0%");
    CHECK_CONTAINS(R.out, "safe");
    CHECK_INT(RUN(env, "watch", "--no-gpu", "--json", "--interval", "10", "--count", "2"), 0);
    char *nl = strchr(R.out, '\n');
    CHECK(nl != NULL);
    if (nl) {
        *nl = '\0';
        cJSON *j = parse_out();
        if (j) { CHECK_STR(str(j, "level"), "safe"); cJSON_Delete(j); }
    }
    /* Ctrl-C ends an endless watch with status 0. */
    run_cli_tick(env, (const char *const[]){"watch", "--no-gpu", NULL}, 10000, sigint_at_400);
    CHECK_INT(R.status, 0);
    CHECK_CONTAINS(R.out, "RAM");
}

/* ---- every flag, every kind of bad value ---------------------------------------- */

/* The names in a folder, sorted and joined, to compare before and after. */
static void listing(const char *dir, char *out, size_t len)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s/", names[i]->d_name);
        free(names[i]);
    }
    if (n >= 0) free(names);
}

typedef struct flag_case {
    const char *cmd;          /* check, watch, run */
    const char *flag;
    const char *bad[12];      /* NULL-terminated */
} flag_case;

#define FRAC_BAD {"", "x", "0", "1.5", "-0.5", "nan", "inf", "1e999", " 0.5", "0x1p-1", "50%%", NULL}
#define SIZE_BAD {"", "x", "0", "-1", "nan", "99999999999T", "1.5.5G", " 8G", "8Q", "+8G", NULL}
#define DUR_BAD {"", "x", "-1", "0x10", " 5", "1e3", "8d", "nan", "inf", "-0", "9999999999", NULL}
#define MS_BAD {"", "0", "3600001", "-5", "abc", " 5", "+5", "0x10", "1e3", "99999999999", NULL}

static const flag_case flag_cases[] = {
    {"check", "--warn-gpu", FRAC_BAD}, {"check", "--stop-gpu", FRAC_BAD},
    {"check", "--warn-ram", FRAC_BAD}, {"check", "--stop-ram", FRAC_BAD},
    {"check", "--min-free-ram", SIZE_BAD}, {"check", "--min-free-gpu", SIZE_BAD},
    {"check", "--ram-budget", SIZE_BAD},
    {"check", "--pid", {"", "0", "-1", "x", "99999999999", " 5", "+5", "0x10", "4194303", NULL}},
    {"check", "--lang", {"", "fr", "english", "e", NULL}},
    {"watch", "--interval", {"", "9", "3600001", "-5", "x", " 50", "+50", "1e3", NULL}},
    {"watch", "--count", {"", "0", "-1", "x", " 3", "+3", "99999999999", NULL}},
    {"run", "--grace", DUR_BAD}, {"run", "--kill-after", DUR_BAD},
    {"run", "--hook-timeout", DUR_BAD}, {"run", "--warn-every", DUR_BAD},
    {"run", "--signal", {"", "KILL", "STOP", "CHLD", "0", "65", "x", " 10", "+10", "32", NULL}},
    {"run", "--hard-ram", FRAC_BAD}, {"run", "--hard-gpu", FRAC_BAD},
    {"run", "--on-warn", {"", "relative.sh", "/nonexistent/hook", "/etc/passwd", "/tmp", NULL}},
    {"run", "--log", {"", "/nonexistent/dir/log", "/proc/version", "/dev/null", "/tmp",
                      "link.log", NULL}},
    {"run", "--report-interval", MS_BAD}, {"run", "--min-interval", MS_BAD},
    {"run", "--max-interval", MS_BAD},
    {"run", "--ram-fill-rate", SIZE_BAD}, {"run", "--swap-fill-rate", SIZE_BAD},
    {"run", "--gpu-fill-rate", SIZE_BAD},
    {"run", "--stop-file", {"", "dir/", NULL}},
    {"run", "--plot", {"", "-", "dir/", "/nonexistent/dir/p.svg", "/tmp", "/dev/null", "link.log",
                       NULL}},
};

/* Runs `memguard CMD FLAG VALUE [...]` in an empty folder and checks: exit 2,
 * exactly one line on stderr naming the flag, nothing on stdout, and
 * nothing created or changed in the folder (memguard run's private folders
 * would land there too: TMPDIR points at it). */
static void one_bad(const char *dir, const char *const *args, const char *flag)
{
    char before[4096], after[4096], tmpenv[600];
    snprintf(tmpenv, sizeof tmpenv, "TMPDIR=%s", dir);
    const char *env[] = {tmpenv, "XDG_RUNTIME_DIR", NULL};
    listing(dir, before, sizeof before);
    int st = run_cli(env, args, 10000);
    listing(dir, after, sizeof after);
    char shown[600] = "";
    for (const char *const *a = args; *a; a++)
        snprintf(shown + strlen(shown), sizeof shown - strlen(shown), "'%s' ", *a);
    if (st != 2) MG_FAIL_("%s: exit %d, want 2; stderr: %s", shown, st, R.err);
    if (mg_count_lines(R.err) != 1) MG_FAIL_("%s: %d lines on stderr:\n%s", shown,
                                             mg_count_lines(R.err), R.err);
    if (!strstr(R.err, flag)) MG_FAIL_("%s: stderr does not name %s: %s", shown, flag, R.err);
    if (R.out[0]) MG_FAIL_("%s: stdout not empty: %s", shown, R.out);
    if (strcmp(before, after) != 0) MG_FAIL_("%s: the folder changed: %s -> %s", shown,
                                             before, after);
}

static void test_every_flag_bad_values(void)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/cli-flags", MG_TMPDIR);
    mkdirs(dir);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || chdir(dir) != 0) {
        MG_FAIL_("cannot enter %s", dir);
        return;
    }
    /* A symlink at the log's name is never followed. */
    unlink("link.log");
    unlink("target.log");
    if (symlink("target.log", "link.log") != 0) MG_FAIL_("symlink: %s", strerror(errno));
    int runs = 0;
    for (size_t i = 0; i < sizeof flag_cases / sizeof flag_cases[0]; i++) {
        const flag_case *fc = &flag_cases[i];
        bool run = strcmp(fc->cmd, "run") == 0;
        for (int k = 0; fc->bad[k]; k++, runs++) {
            const char *a[] = {fc->cmd, fc->flag, fc->bad[k], run ? "--" : NULL, "true", NULL};
            one_bad(dir, a, fc->flag);
        }
        /* Missing value: the flag last. */
        const char *m[] = {fc->cmd, fc->flag, NULL};
        one_bad(dir, m, fc->flag);
        /* Given twice, each value good on its own. */
        const char *good = strstr(fc->flag, "interval") ? "100"
                         : strcmp(fc->flag, "--signal") == 0 ? "USR2"
                         : strcmp(fc->flag, "--lang") == 0 ? "en"
                         : strcmp(fc->flag, "--pid") == 0 ? "1"
                         : strcmp(fc->flag, "--count") == 0 ? "1"
                         : strstr(fc->flag, "-gpu") || strstr(fc->flag, "-ram") ? "0.95" : NULL;
        if (!good) continue;
        const char *d[] = {fc->cmd, fc->flag, good, fc->flag, good, run ? "--" : NULL, "true",
                           NULL};
        one_bad(dir, d, fc->flag);
        runs += 2;
    }
    printf("# %d bad invocations, each one line, exit 2, nothing on disk\n", runs);
    CHECK(access("target.log", F_OK) != 0);
    unlink("link.log");
    if (chdir(cwd) != 0) MG_FAIL_("cannot go back to %s", cwd);
}

int main(void)
{
    MG_RUN(test_help_and_version);
    MG_RUN(test_bad_input_table);
    MG_RUN(test_every_flag_bad_values);
    MG_RUN(test_bad_environment);
    MG_RUN(test_check_json_fixture);
    MG_RUN(test_check_levels);
    MG_RUN(test_cgroup_limit_and_budget);
    MG_RUN(test_gpu_states);
    MG_RUN(test_japanese);
    MG_RUN(test_real_machine);
    MG_RUN(test_watch);
    return mg_test_exit();
}
