/* SPDX-License-Identifier: MIT */
/*
 * test_win_cli.c: memguard.exe end to end under Windows (or Wine), as a
 * user runs it, each time a real process with its output captured:
 *   - `memguard check`: the seed's block with the machine's RAM, the
 *     commit line and the process tree, an exit status that is the level's;
 *   - `memguard check --json`: valid JSON (cJSON) whose commit figures and
 *     level agree with the text's rules, the tree rooted at memguard itself;
 *   - NVML found the way nvml.dll is on Windows (the library's search, in
 *     this process): a copy of the fake NVML named nvml.dll in the current
 *     folder is never loaded, the same file under
 *     %ProgramFiles%\NVIDIA Corporation\NVSMI is (its fake GPU is listed);
 *     memguard.exe with MEMGUARD_NVML_LIBRARY naming a path loads it;
 *   - `memguard run` runs a command and returns its exit status (the
 *     supervisor itself is test_win_run's);
 *   - `memguard plot` draws a log made of real `check --json` samples into
 *     an SVG whose name is Japanese (the UTF-8 manifest at work), and
 *     `memguard watch --count 2` prints two status lines.
 * Files are made under MG_TMPDIR and removed.
 */
#include "memguard.h"
#include "mg_test.h"
#include "mg_win_test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#ifndef MG_CLI
#error "MG_CLI must name memguard.exe"
#endif

static char out[65536];
static char base[1024];
static wchar_t wbase[1024];

static long cli(const char *args, bool merge)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" %s", MG_CLI, args);
    return mg_run_capture(cmd, merge, out, sizeof out, 60000);
}

static void test_check_text(void)
{
    long rc = cli("check --no-gpu", false);
    CHECK(rc == 0 || rc == 3 || rc == 4);
    CHECK_CONTAINS(out, "System Resource Check");
    CHECK_CONTAINS(out, "RAM: ");
    CHECK_CONTAINS(out, "Commit: ");
    CHECK_CONTAINS(out, "Process tree: pid ");
    CHECK_CONTAINS(out, "GPU: none (disabled)");
    const char *lvl[] = {"Level: safe", "", "", "Level: warn", "Level: critical"};
    if (rc == 0 || rc == 3 || rc == 4) CHECK_CONTAINS(out, lvl[rc]);
    CHECK(strstr(out, "RAM limit: machine (GlobalMemoryStatusEx)") ||
          strstr(out, "RAM limit: commit limit (RAM + page files)"));
}

static cJSON *check_json(const char *extra)
{
    char args[512];
    snprintf(args, sizeof args, "check --json %s", extra);
    long rc = cli(args, false);
    CHECK(rc == 0 || rc == 3 || rc == 4);
    cJSON *j = cJSON_Parse(out);
    if (!j) fprintf(stderr, "  not JSON: %s\n", out);
    CHECK(j != NULL);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : "";
}

static void test_check_json(void)
{
    cJSON *j = check_json("--no-gpu");
    if (!j) return;
    const cJSON *ram = cJSON_GetObjectItemCaseSensitive(j, "ram");
    double used = num(ram, "commit_used_bytes"), limit = num(ram, "commit_limit_bytes");
    CHECK(used > 0 && limit >= used);
    CHECK(num(ram, "mem_total_bytes") > 0);
    const char *src = str(ram, "source");
    CHECK(strcmp(src, "meminfo") == 0 || strcmp(src, "commit") == 0);
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(ram, "limits");
    CHECK_INT(cJSON_GetArraySize(lim), 2);
    /* The level follows the decisive fraction and the seed's thresholds. */
    double f = num(ram, "used_frac");
    const char *want = f >= 0.88 ? "critical" : f >= 0.85 ? "warn" : "safe";
    CHECK_STR(str(j, "level"), want);
    const cJSON *tree = cJSON_GetObjectItemCaseSensitive(j, "process_tree");
    CHECK(num(tree, "nprocs") == 1);
    CHECK(num(tree, "rss_bytes") > 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "psi")));
    CHECK_STR(str(j, "gpu_state"), "disabled");
    cJSON_Delete(j);
}

static bool copy_fake(const wchar_t *dir)
{
    wchar_t src[1024], dst[1200];
    mg_w(MG_FAKE_NVML, src, 1024);
    _snwprintf(dst, 1200, L"%ls\\nvml.dll", dir);
    return CopyFileW(src, dst, FALSE);
}

/* The library's own search, in this process: Wine gives every new process
 * %ProgramFiles% from its registry, so a child would not see ours. */
static const char *gpu_of_default_nvml(char *name, size_t len)
{
    mg_config cfg = {0};
    int err;
    name[0] = '\0';
    mg_ctx *ctx = mg_create(&cfg, &err);
    CHECK(ctx != NULL);
    if (!ctx) return "no context";
    CHECK_STR(mg_ctx_config(ctx)->nvml_library, "nvml.dll");
    mg_snapshot s;
    mg_sample(ctx, &s);
    if (s.gpu_count) snprintf(name, len, "%s", s.gpus[0].name);
    mg_destroy(ctx);
    return s.gpu_state == MG_GPU_OK ? "ok" : s.gpu_state == MG_GPU_NO_LIBRARY ? "no_library"
                                                                               : "other";
}

static void test_nvml_search_order(void)
{
    wchar_t cwd[1200], pf[1200], nv[1300], old[2048];
    _snwprintf(cwd, 1200, L"%ls\\cwd", wbase);
    _snwprintf(pf, 1200, L"%ls\\pf", wbase);
    _snwprintf(nv, 1300, L"%ls\\NVIDIA Corporation", pf);
    CHECK(CreateDirectoryW(cwd, NULL) && CreateDirectoryW(pf, NULL) && CreateDirectoryW(nv, NULL));
    wcscat(nv, L"\\NVSMI");
    CHECK(CreateDirectoryW(nv, NULL));
    CHECK(copy_fake(cwd));
    GetCurrentDirectoryW(2048, old);
    SetCurrentDirectoryW(cwd);
    /* _putenv_s: the C runtime's copy (getenv) and Windows' (children). */
    _putenv_s("MEMGUARD_NVML_LIBRARY", "");
    _putenv_s("FAKE_NVML_GPU0", "Fake Windows GPU;;12884901888;6442450944;0");
    wchar_t saved_pf[1024];
    DWORD had_pf = GetEnvironmentVariableW(L"ProgramFiles", saved_pf, 1024);
    SetEnvironmentVariableW(L"ProgramFiles", pf);
    char name[96];

    /* In the current folder only: never loaded from there. */
    CHECK_STR(gpu_of_default_nvml(name, sizeof name), "no_library");
    /* In NVIDIA Corporation\NVSMI under %ProgramFiles%: loaded. */
    CHECK(copy_fake(nv));
    CHECK_STR(gpu_of_default_nvml(name, sizeof name), "ok");
    CHECK_STR(name, "Fake Windows GPU");
    SetEnvironmentVariableW(L"ProgramFiles", had_pf ? saved_pf : NULL);
    SetCurrentDirectoryW(old);

    /* memguard.exe with MEMGUARD_NVML_LIBRARY naming a path loads it. */
    _putenv_s("MEMGUARD_NVML_LIBRARY", MG_FAKE_NVML);
    cJSON *j = check_json("");
    if (j) {
        CHECK_STR(str(j, "gpu_state"), "ok");
        const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "gpus"), 0);
        CHECK_STR(str(g, "name"), "Fake Windows GPU");
        CHECK(num(g, "used_frac") > 0.49 && num(g, "used_frac") < 0.51);
    }
    cJSON_Delete(j);
    _putenv_s("MEMGUARD_NVML_LIBRARY", "");
    _putenv_s("FAKE_NVML_GPU0", "");

    wchar_t f[1400];
    _snwprintf(f, 1400, L"%ls\\nvml.dll", nv);
    DeleteFileW(f);
    RemoveDirectoryW(nv);
    nv[wcslen(nv) - 6] = 0;
    RemoveDirectoryW(nv);
    RemoveDirectoryW(pf);
    _snwprintf(f, 1400, L"%ls\\nvml.dll", cwd);
    DeleteFileW(f);
    RemoveDirectoryW(cwd);
}

static void test_run_passes_exit_status(void)
{
    CHECK_INT(cli("run --no-gpu -- cmd /c exit 0", true), 0);
    CHECK_INT(cli("run --no-gpu -- cmd /c exit 3", true), 3);
}

static void test_plot_japanese_name(void)
{
    /* A log of three real samples, as memguard run writes it. */
    char log[1200];
    snprintf(log, sizeof log, "%s/run.jsonl", base);
    FILE *f = fopen(log, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"event\":\"start\",\"t_ms\":0,\"pid\":42,\"command\":[\"train.exe\"],"
               "\"dry_run\":false,\"hard_ram_frac\":0.97,\"hard_gpu_frac\":0.98}\n");
    for (int i = 0; i < 3; i++) {
        cli("check --json --no-gpu", false);
        out[strcspn(out, "\r\n")] = '\0';
        fprintf(f, "{\"event\":\"sample\",\"t_ms\":%d,\"sample\":%s}\n", 500 * (i + 1), out);
    }
    fprintf(f, "{\"event\":\"exit\",\"t_ms\":2000,\"pid\":42,\"code\":0,\"signal\":0,"
               "\"phase\":\"running\",\"exit_status\":0}\n");
    fclose(f);
    /* 学習.svg */
    char args[2600];
    snprintf(args, sizeof args, "plot -o \"%s/\xe5\xad\xa6\xe7\xbf\x92.svg\" \"%s\"", base, log);
    CHECK_INT(cli(args, true), 0);
    CHECK_CONTAINS(out, "(3 samples");
    wchar_t svg[1200];
    _snwprintf(svg, 1200, L"%ls\\\x5b66\x7fd2.svg", wbase);
    HANDLE h = CreateFileW(svg, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    if (h != INVALID_HANDLE_VALUE) {
        char head[256] = "";
        DWORD n = 0;
        ReadFile(h, head, sizeof head - 1, &n, NULL);
        head[n] = '\0';
        CHECK(strstr(head, "<svg") != NULL);
        CloseHandle(h);
        DeleteFileW(svg);
    }
    /* The log itself as the output is refused. */
    snprintf(args, sizeof args, "plot -o \"%s\" \"%s\"", log, log);
    CHECK_INT(cli(args, true), 2);
    CHECK_CONTAINS(out, "that is the log itself");
    wchar_t wlog[1200];
    DeleteFileW(mg_w(log, wlog, 1200));
}

static void test_watch_two_lines(void)
{
    CHECK_INT(cli("watch --no-gpu --count 2 --interval 100", false), 0);
    int lines = 0;
    for (const char *p = out; (p = strstr(p, "  RAM ")); p++) lines++;
    CHECK_INT(lines, 2);
    CHECK_CONTAINS(out, "GPU none");
}

int main(void)
{
    snprintf(base, sizeof base, "%s/win_cli_%lu", MG_TMPDIR, (unsigned long)GetCurrentProcessId());
    mg_w(base, wbase, 1024);
    for (wchar_t *p = wbase; *p; p++)
        if (*p == L'/') *p = L'\\';
    if (!CreateDirectoryW(wbase, NULL)) return 1;
    MG_RUN(test_check_text);
    MG_RUN(test_check_json);
    MG_RUN(test_nvml_search_order);
    MG_RUN(test_run_passes_exit_status);
    MG_RUN(test_plot_japanese_name);
    MG_RUN(test_watch_two_lines);
    RemoveDirectoryW(wbase);
    return mg_test_exit();
}
