/* SPDX-License-Identifier: MIT */
/*
 * test_report.c: the seed's texts, byte for byte, in English and Japanese,
 * with emoji and with ASCII markers; snprintf-style truncation; language and
 * emoji selection from the environment; and mg_format_json() parsed back
 * with cJSON, every key checked, nulls for what is unknown, and string
 * escaping.
 */
#include "internal.h"
#include "mg_fixture.h"
#include "mg_test.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <locale.h>
#include <unistd.h>

#define RULE "============================================================\n"

static const mg_text_opts EN = {MG_LANG_EN, true};
static const mg_text_opts EN_ASCII = {MG_LANG_EN, false};
static const mg_text_opts JA = {MG_LANG_JA, true};
static const mg_text_opts JA_ASCII = {MG_LANG_JA, false};

/* The seed's warning: a 12 GiB RTX 3060 with 10.94 GiB in use. */
static mg_verdict verdict_gpu(double used_gib, unsigned index)
{
    mg_verdict v;
    memset(&v, 0, sizeof v);
    v.level = MG_LEVEL_WARN;
    v.resource = MG_RES_GPU;
    v.gpu_index = index;
    v.total_bytes = 12 * GIB;
    v.used_bytes = (uint64_t)(used_gib * (double)GIB);
    v.value_frac = (double)v.used_bytes / (double)v.total_bytes;
    v.threshold_frac = 0.90;
    return v;
}

/* ---- warning line ----------------------------------------------------------- */

static void test_warning_seed(void)
{
    char buf[256];
    mg_verdict v = verdict_gpu(10.94, 0);
    const char *want = "[Batch 50] ⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)\n";
    int n = mg_format_warning(&v, &EN, 50, buf, sizeof buf);
    CHECK_STR(buf, want);
    CHECK_INT(n, strlen(want));

    /* The seed's Japanese line, verbatim. */
    const char *want_ja = "[Batch 50] ⚠️ GPU使用率が危険: 91.2% (10.94GB/12.0GB)\n";
    n = mg_format_warning(&v, &JA, 50, buf, sizeof buf);
    CHECK_STR(buf, want_ja);
    CHECK_INT(n, strlen(want_ja));

    mg_format_warning(&v, &EN_ASCII, 50, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 50] [!] GPU usage high: 91.2% (10.94GB/12.0GB)\n");
    mg_format_warning(&v, &JA_ASCII, 50, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 50] [!] GPU使用率が危険: 91.2% (10.94GB/12.0GB)\n");

    /* batch < 0: no prefix (mg_check_memory_safety's form). */
    mg_format_warning(&v, &EN, -1, buf, sizeof buf);
    CHECK_STR(buf, "⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)\n");
    mg_format_warning(&v, &EN, 0, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 0] ⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)\n");

    /* Another device is named by its index. */
    v = verdict_gpu(10.94, 2);
    mg_format_warning(&v, &EN, -1, buf, sizeof buf);
    CHECK_STR(buf, "⚠️ GPU2 usage high: 91.2% (10.94GB/12.0GB)\n");
    mg_format_warning(&v, &JA, -1, buf, sizeof buf);
    CHECK_STR(buf, "⚠️ GPU2使用率が危険: 91.2% (10.94GB/12.0GB)\n");
}

static void test_warning_ram_and_floor(void)
{
    char buf[256];
    mg_verdict v;
    memset(&v, 0, sizeof v);
    v.level = MG_LEVEL_WARN;
    v.resource = MG_RES_RAM;
    v.total_bytes = 32 * GIB;
    v.used_bytes = (uint64_t)(27.3 * (double)GIB);
    v.value_frac = (double)v.used_bytes / (double)v.total_bytes; /* 0.853 */
    v.threshold_frac = 0.85;
    mg_format_warning(&v, &EN, 120, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 120] ⚠️ RAM usage high: 85.3% (27.30GB/32.0GB)\n");
    mg_format_warning(&v, &JA, 120, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 120] ⚠️ RAM使用率が危険: 85.3% (27.30GB/32.0GB)\n");

    /* Floor: 1.5 GiB free of 16, floor 2 GiB (threshold 1 - 2/16). */
    v.level = MG_LEVEL_CRITICAL;
    v.by_floor = true;
    v.floor_bytes = 2 * GIB;
    v.total_bytes = 16 * GIB;
    v.used_bytes = 16 * GIB - 3 * GIB / 2;
    v.value_frac = (double)v.used_bytes / (double)v.total_bytes;
    v.threshold_frac = 1.0 - 2.0 / 16.0;
    mg_format_warning(&v, &EN, -1, buf, sizeof buf);
    CHECK_STR(buf, "⚠️ RAM free below floor: 1.50GB free, floor 2.0GB\n");
    mg_format_warning(&v, &JA_ASCII, -1, buf, sizeof buf);
    CHECK_STR(buf, "[!] RAM空き容量が下限未満: 空き 1.50GB, 下限 2.0GB\n");
    v.resource = MG_RES_GPU;
    v.gpu_index = 1;
    mg_format_warning(&v, &EN_ASCII, 7, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 7] [!] GPU1 free below floor: 1.50GB free, floor 2.0GB\n");
    /* The floor printed is floor_bytes, not decoded from threshold_frac:
     * a threshold left at 0 does not change it. */
    v.floor_bytes = GIB / 2;
    v.threshold_frac = 0.0;
    mg_format_warning(&v, &EN_ASCII, -1, buf, sizeof buf);
    CHECK_STR(buf, "[!] GPU1 free below floor: 1.50GB free, floor 0.5GB\n");
}

static void test_warning_safe_and_errors(void)
{
    char buf[64] = "junk";
    mg_verdict v;
    memset(&v, 0, sizeof v);
    CHECK_INT(mg_format_warning(&v, &EN, 50, buf, sizeof buf), 0);
    CHECK_STR(buf, "");
    CHECK_INT(mg_format_warning(NULL, &EN, 50, buf, sizeof buf), MG_EINVAL);
    v = verdict_gpu(10.94, 0);
    CHECK_INT(mg_format_warning(&v, &EN, 50, NULL, 10), MG_EINVAL);
    /* NULL options: the seed's own (English, emoji). */
    mg_format_warning(&v, NULL, -1, buf, sizeof buf);
    CHECK_STR(buf, "⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)\n");
}

static void test_truncation(void)
{
    mg_verdict v = verdict_gpu(10.94, 0);
    const char *full = "[Batch 50] [!] GPU usage high: 91.2% (10.94GB/12.0GB)\n";
    size_t len = strlen(full);

    /* Sizing call. */
    CHECK_INT(mg_format_warning(&v, &EN_ASCII, 50, NULL, 0), len);

    for (size_t cap = 1; cap <= len + 1; cap++) {
        char buf[128];
        memset(buf, 'X', sizeof buf);
        int n = mg_format_warning(&v, &EN_ASCII, 50, buf, cap);
        CHECK_INT(n, len);
        CHECK(buf[cap - 1] == '\0' || strlen(buf) < cap);
        CHECK_INT(strlen(buf), cap - 1 < len ? cap - 1 : len);
        CHECK(strncmp(buf, full, strlen(buf)) == 0);
        CHECK(buf[cap] == 'X'); /* nothing past buf_len */
    }

    /* Every formatter follows the same rule. */
    char small[10];
    mg_config c = cfg_seed();
    int n = mg_format_banner(&c, &EN, small, sizeof small);
    CHECK(n >= (int)sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK_INT(mg_format_banner(&c, &EN, NULL, 0), n);
    n = mg_format_emergency(&v, &EN, 42, "x.pth", small, sizeof small);
    CHECK(n >= (int)sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    n = mg_format_system_check(&s, &EN, small, sizeof small);
    CHECK(n >= (int)sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
    n = mg_format_json(&c, &s, NULL, small, sizeof small);
    CHECK(n >= (int)sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK_INT(mg_format_json(&c, &s, NULL, NULL, 0), n);
}

/* ---- emergency banner ---------------------------------------------------------- */

static void test_emergency(void)
{
    char buf[1024];
    mg_verdict v = verdict_gpu(11.10, 0);
    v.level = MG_LEVEL_CRITICAL;
    v.value_frac = 0.925;
    v.threshold_frac = 0.92;

    const char *en =
        RULE
        "🚨 Emergency stop\n"
        RULE
        "Reason: ⚠️ GPU usage high: 92.5% (11.10GB/12.0GB)\n"
        "Current epoch: 42\n"
        "✅ Emergency save complete: emergency_epoch42.pth\n"
        "\n"
        "Exiting safely...\n"
        RULE;
    int n = mg_format_emergency(&v, &EN, 42, "emergency_epoch42.pth", buf,
                                sizeof buf);
    CHECK_STR(buf, en);
    CHECK_INT(n, strlen(en));

    /* The seed's Japanese block, verbatim. */
    const char *ja =
        RULE
        "🚨 緊急停止モード\n"
        RULE
        "理由: ⚠️ GPU使用率が危険: 92.5% (11.10GB/12.0GB)\n"
        "現在のエポック: 42\n"
        "✅ 緊急保存完了: emergency_epoch42.pth\n"
        "\n"
        "安全に終了します...\n"
        RULE;
    mg_format_emergency(&v, &JA, 42, "emergency_epoch42.pth", buf, sizeof buf);
    CHECK_STR(buf, ja);

    const char *en_ascii =
        RULE
        "[STOP] Emergency stop\n"
        RULE
        "Reason: [!] GPU usage high: 92.5% (11.10GB/12.0GB)\n"
        "Current epoch: 42\n"
        "Emergency save failed: not saved\n"
        "\n"
        "Exiting WITHOUT a checkpoint\n"
        RULE;
    mg_format_emergency(&v, &EN_ASCII, 42, NULL, buf, sizeof buf);
    CHECK_STR(buf, en_ascii);

    const char *ja_ascii =
        RULE
        "[STOP] 緊急停止モード\n"
        RULE
        "理由: [!] GPU使用率が危険: 92.5% (11.10GB/12.0GB)\n"
        "現在のエポック: 42\n"
        "緊急保存失敗: 保存されていません\n"
        "\n"
        "チェックポイントなしで終了します\n"
        RULE;
    mg_format_emergency(&v, &JA_ASCII, 42, NULL, buf, sizeof buf);
    CHECK_STR(buf, ja_ascii);

    /* A stop without a memory verdict and without an epoch. */
    const char *bare =
        RULE
        "[STOP] Emergency stop\n"
        RULE
        "[OK] Emergency save complete: ckpt.pth\n"
        "\n"
        "Exiting safely...\n"
        RULE;
    mg_format_emergency(NULL, &EN_ASCII, -1, "ckpt.pth", buf, sizeof buf);
    CHECK_STR(buf, bare);

    /* A reason given as text (memguard run's stop file, another rank's),
     * verbatim; an empty one leaves the line out. */
    const char *text =
        RULE
        "[STOP] Emergency stop\n"
        RULE
        "Reason: [rank 1] [!] RAM usage high: 88.5% (1.77GB/2.0GB)\n"
        "Current epoch: 3\n"
        "[OK] Emergency save complete: e.pth\n"
        "\n"
        "Exiting safely...\n"
        RULE;
    n = mg_format_emergency_text("[rank 1] [!] RAM usage high: 88.5% (1.77GB/2.0GB)",
                                     &EN_ASCII, 3, "e.pth", buf, sizeof buf);
    CHECK_STR(buf, text);
    CHECK_INT(n, (int)strlen(text));
    mg_format_emergency_text("", &EN_ASCII, -1, "ckpt.pth", buf, sizeof buf);
    CHECK_STR(buf, bare);
    mg_format_emergency_text(NULL, &EN_ASCII, -1, "ckpt.pth", buf, sizeof buf);
    CHECK_STR(buf, bare);
}

/* ---- monitor banner ------------------------------------------------------------- */

static void test_banner(void)
{
    char buf[2048];
    mg_config c = cfg_seed();

    const char *en =
        RULE
        "🛡️  Automatic memory monitor enabled\n"
        RULE
        "Thresholds:\n"
        "  - GPU usage: warn at 90%, emergency stop at 92%\n"
        "  - RAM usage: warn at 85%, emergency stop at 88%\n"
        "Check frequency:\n"
        "  - Train: every 10 batches\n"
        "  - Eval:  every 15 batches\n"
        "  - At every epoch start\n"
        "On emergency stop:\n"
        "  - Save the current model as emergency_epochN.pth\n"
        "  - Free memory and exit safely\n"
        RULE;
    int n = mg_format_banner(&c, &EN, buf, sizeof buf);
    CHECK_STR(buf, en);
    CHECK_INT(n, strlen(en));

    /* The seed's block verbatim. */
    const char *ja =
        RULE
        "🛡️  自動メモリ監視機能 有効\n"
        RULE
        "監視閾値:\n"
        "  - GPU使用率: 90% で警告, 92% で緊急停止\n"
        "  - RAM使用率: 85% で警告, 88% で緊急停止\n"
        "チェック頻度:\n"
        "  - Train: 10バッチごと\n"
        "  - Eval:  15バッチごと\n"
        "  - エポック開始時: 毎回\n"
        "緊急停止時の動作:\n"
        "  - 現在のモデルを emergency_epochN.pth として保存\n"
        "  - メモリをクリアして安全に終了\n"
        RULE;
    mg_format_banner(&c, &JA, buf, sizeof buf);
    CHECK_STR(buf, ja);

    /* A zero config shows the defaults. */
    mg_config z;
    memset(&z, 0, sizeof z);
    mg_format_banner(&z, &JA, buf, sizeof buf);
    CHECK_STR(buf, ja);
    mg_format_banner(NULL, &EN, buf, sizeof buf);
    CHECK_STR(buf, en);

    /* The seed's batch-8 row, floors and a budget, ASCII. */
    c.warn_gpu_frac = 0.85;
    c.stop_gpu_frac = 0.88;
    c.warn_ram_frac = 0.80;
    c.stop_ram_frac = 0.875;
    c.min_free_ram_bytes = 2 * GIB;
    c.min_free_gpu_bytes = GIB / 2;
    c.ram_budget_bytes = 8 * GIB;
    c.check_train_every = 1;
    c.check_eval_every = 5;
    const char *en2 =
        RULE
        "[memguard] Automatic memory monitor enabled\n"
        RULE
        "Thresholds:\n"
        "  - GPU usage: warn at 85%, emergency stop at 88%\n"
        "  - RAM usage: warn at 80%, emergency stop at 87.5%\n"
        "  - RAM free: emergency stop below 2.0GB\n"
        "  - GPU free: emergency stop below 0.5GB (per device)\n"
        "  - RAM budget: 8.0GB (process tree PSS)\n"
        "Check frequency:\n"
        "  - Train: every 1 batch\n"
        "  - Eval:  every 5 batches\n"
        "  - At every epoch start\n"
        "On emergency stop:\n"
        "  - Save the current model as emergency_epochN.pth\n"
        "  - Free memory and exit safely\n"
        RULE;
    mg_format_banner(&c, &EN_ASCII, buf, sizeof buf);
    CHECK_STR(buf, en2);
    const char *ja2 =
        RULE
        "[memguard] 自動メモリ監視機能 有効\n"
        RULE
        "監視閾値:\n"
        "  - GPU使用率: 85% で警告, 88% で緊急停止\n"
        "  - RAM使用率: 80% で警告, 87.5% で緊急停止\n"
        "  - RAM空き容量: 2.0GB 未満で緊急停止\n"
        "  - GPU空き容量: 0.5GB 未満で緊急停止 (デバイスごと)\n"
        "  - RAM予算: 8.0GB (プロセスツリーのPSS)\n"
        "チェック頻度:\n"
        "  - Train: 1バッチごと\n"
        "  - Eval:  5バッチごと\n"
        "  - エポック開始時: 毎回\n"
        "緊急停止時の動作:\n"
        "  - 現在のモデルを emergency_epochN.pth として保存\n"
        "  - メモリをクリアして安全に終了\n"
        RULE;
    mg_format_banner(&c, &JA_ASCII, buf, sizeof buf);
    CHECK_STR(buf, ja2);
}

/* ---- system check block ------------------------------------------------------------ */

/* Where the machine's RAM is read, as the block names it. */
#ifdef _WIN32
#define MACHINE_SOURCE "GlobalMemoryStatusEx"
#else
#define MACHINE_SOURCE "/proc/meminfo"
#endif

/* The seed's machine: 12.3 of 32 GiB RAM, an RTX 3060 with the trainer's
 * 1.2 GiB allocated / 1.5 GiB reserved. */
static mg_snapshot snap_seed(void)
{
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    s.time_ms = 123456;
    s.ram.known = true;
    s.ram.source = MG_RAM_SOURCE_MEMINFO;
    s.ram.total_bytes = 32 * GIB;
    s.ram.used_bytes = (uint64_t)(12.3 * (double)GIB);
    s.ram.available_bytes = s.ram.total_bytes - s.ram.used_bytes;
    s.ram.used_frac = (double)s.ram.used_bytes / (double)s.ram.total_bytes;
    s.ram.meminfo_known = true;
    s.ram.mem_total_bytes = 32 * GIB;
    s.ram.mem_available_bytes = s.ram.available_bytes;
    s.gpu_state = MG_GPU_OK;
    s.gpu_count = 1;
    snprintf(s.gpus[0].name, sizeof s.gpus[0].name, "NVIDIA GeForce RTX 3060");
    snprintf(s.gpus[0].uuid, sizeof s.gpus[0].uuid,
             "GPU-12345678-1234-1234-1234-123456789abc");
    s.gpus[0].known = true;
    s.gpus[0].total_bytes = 12 * GIB;
    s.gpus[0].free_bytes = 12 * GIB - (uint64_t)(10.94 * (double)GIB);
    s.gpus[0].reserved_bytes = 300 * MIB;
    s.gpus[0].used_frac = (double)(12 * GIB - s.gpus[0].free_bytes)
                          / (double)(12 * GIB);
    s.trainer_known = true;
    s.trainer_allocated_bytes = (uint64_t)(1.2 * (double)GIB);
    s.trainer_reserved_bytes = (uint64_t)(1.5 * (double)GIB) + 1;
    return s;
}

static void test_system_check_seed(void)
{
    char buf[2048];
    mg_snapshot s = snap_seed();
    const char *want =
        RULE
        "System Resource Check\n"
        RULE
        "RAM: 12.3GB / 32.0GB (38%)\n"
        "RAM limit: machine (" MACHINE_SOURCE ")\n"
        "GPU: NVIDIA GeForce RTX 3060\n"
        "GPU Memory: 1.2GB allocated\n"
        "GPU Memory: 1.5GB reserved\n"
        "GPU Total: 12.0GB\n"
        RULE;
    int n = mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_STR(buf, want);
    CHECK_INT(n, strlen(want));
    /* The block is the same in Japanese and without emoji. */
    mg_format_system_check(&s, &JA, buf, sizeof buf);
    CHECK_STR(buf, want);
    mg_format_system_check(&s, &JA_ASCII, buf, sizeof buf);
    CHECK_STR(buf, want);

    /* Without trainer figures: device-wide use. */
    s.trainer_known = false;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_CONTAINS(buf, "GPU: NVIDIA GeForce RTX 3060\n"
                        "GPU Memory: 10.9GB used (91%)\n"
                        "GPU Total: 12.0GB\n");
}

static void test_system_check_full(void)
{
    char buf[4096];
    mg_snapshot s = snap_seed();
    s.trainer_known = false;
    s.ram.source = MG_RAM_SOURCE_CGROUP;
    s.ram.total_bytes = 16 * GIB;
    s.ram.used_bytes = 4 * GIB;
    s.ram.used_frac = 0.25;
    s.swap.known = true;
    s.swap.total_bytes = 8 * GIB;
    s.swap.free_bytes = 6 * GIB;
    s.cgroup.known = true;
    s.cgroup.version = 2;
    snprintf(s.cgroup.path, sizeof s.cgroup.path, "/user.slice/run-1.scope");
    s.cgroup.has_limit = true;
    s.cgroup.limit_bytes = 16 * GIB;
    snprintf(s.cgroup.limit_path, sizeof s.cgroup.limit_path, "/user.slice");
    s.cgroup.usage_known = true;
    s.cgroup.usage_bytes = 5 * GIB;
    s.tree.known = true;
    s.tree.pid = 4242;
    s.tree.nprocs = 3;
    s.tree.rss_bytes = 3 * GIB;
    s.psi.known = true;
    s.psi.some_avg10 = 1.5;
    s.psi.full_avg10 = 0.25;
    s.gpu_count = 2;
    s.gpus[1] = s.gpus[0];
    s.gpus[1].index = 1;
    s.gpus[1].known = false;
    snprintf(s.gpus[1].name, sizeof s.gpus[1].name, "Tesla T4");
    const char *want =
        RULE
        "System Resource Check\n"
        RULE
        "RAM: 4.0GB / 16.0GB (25%)\n"
        "RAM limit: cgroup v2 limit (/user.slice)\n"
        "Swap: 2.0GB / 8.0GB (25%)\n"
        "Container: cgroup v2 /user.slice/run-1.scope, limit 16.0GB "
        "(set by /user.slice), usage 5.0GB\n"
        "Process tree: pid 4242, 3 processes, RSS 3.0GB\n"
        "PSI memory: some 1.50%, full 0.25% (avg10)\n"
        "GPU 0: NVIDIA GeForce RTX 3060\n"
        "GPU Memory: 10.9GB used (91%)\n"
        "GPU Total: 12.0GB\n"
        "GPU 1: Tesla T4\n"
        "GPU Memory: unknown\n"
        RULE;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_STR(buf, want);

    /* Budget source, no limit, no swap, one process. */
    s.ram.source = MG_RAM_SOURCE_BUDGET;
    s.ram.total_bytes = 8 * GIB;
    s.cgroup.has_limit = false;
    s.cgroup.usage_known = false;
    s.swap.total_bytes = 0;
    s.tree.nprocs = 1;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_CONTAINS(buf, "RAM limit: budget 8.0GB, process tree RSS\n");
    CHECK_CONTAINS(buf, "Swap: none\n");
    CHECK_CONTAINS(buf, "Container: cgroup v2 /user.slice/run-1.scope, no limit\n");
    CHECK_CONTAINS(buf, "Process tree: pid 4242, 1 process, RSS 3.0GB\n");

    /* PSS read: it is the figure, named, the RSS sum beside it. */
    s.tree.nprocs = 5;
    s.tree.rss_bytes = 3 * GIB + GIB / 10;
    s.tree.pss_known = true;
    s.tree.pss_bytes = GIB + GIB / 50;
    s.tree.used_bytes = s.tree.pss_bytes;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_CONTAINS(buf, "RAM limit: budget 8.0GB, process tree PSS\n");
    CHECK_CONTAINS(buf, "Process tree: pid 4242, 5 processes, PSS 1.0GB (RSS sum 3.1GB)\n");
    s.tree.pss_bytes = GIB / 2;
    s.tree.pss_unread = 2;
    s.tree.descendants_only = true;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_CONTAINS(buf, "Process tree: below pid 4242, 5 processes, PSS 0.50GB "
                        "(RSS sum 3.1GB; 2 unreadable, counted at RSS)\n");
}

static void test_system_check_no_gpu(void)
{
    char buf[2048];
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    static const struct {
        mg_gpu_state st;
        const char *line;
    } T[] = {
        {MG_GPU_NO_LIBRARY, "GPU: none (NVML not found)\n"},
        {MG_GPU_NO_DRIVER, "GPU: none (no NVIDIA driver)\n"},
        {MG_GPU_NO_DEVICE, "GPU: none (no device)\n"},
        {MG_GPU_DISABLED, "GPU: none (disabled)\n"},
        {MG_GPU_ERROR, "GPU: none (query failed)\n"},
        {MG_GPU_OK, "GPU: none (no visible device)\n"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        s.gpu_state = T[i].st;
        mg_format_system_check(&s, &EN, buf, sizeof buf);
        CHECK_CONTAINS(buf, T[i].line);
    }
    /* RAM unknown, the C trainer's arena on the CPU. */
    s.gpu_state = MG_GPU_NO_LIBRARY;
    s.trainer_known = true;
    s.trainer_allocated_bytes = GIB;
    s.trainer_reserved_bytes = 2 * GIB;
    const char *want =
        RULE
        "System Resource Check\n"
        RULE
        "RAM: unknown (not checked)\n"
        "GPU: none (NVML not found)\n"
        "Trainer memory: 1.0GB allocated / 2.0GB reserved\n"
        RULE;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_STR(buf, want);
    CHECK_INT(mg_format_system_check(NULL, &EN, buf, sizeof buf), MG_EINVAL);
}

/* ---- options from the environment -------------------------------------------------- */

static void env(const char *name, const char *value)
{
    if (value) setenv(name, value, 1);
    else unsetenv(name);
}

static void set_locale_env(const char *all, const char *messages,
                           const char *ctype, const char *lang)
{
    env("LC_ALL", all);
    env("LC_MESSAGES", messages);
    env("LC_CTYPE", ctype);
    env("LANG", lang);
}

static void test_opts_from_env(void)
{
    mg_text_opts t;
    set_locale_env(NULL, NULL, NULL, NULL);
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_EN);
    CHECK(!t.emoji);

    set_locale_env(NULL, NULL, NULL, "ja_JP.UTF-8");
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_JA);
    CHECK(t.emoji);

    set_locale_env(NULL, NULL, NULL, "en_US.utf8");
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_EN);
    CHECK(t.emoji);

    /* LC_ALL wins over everything; an empty one is skipped. */
    set_locale_env("C", "ja_JP.UTF-8", NULL, "ja_JP.UTF-8");
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_EN);
    CHECK(!t.emoji);
    set_locale_env("", "ja_JP.eucJP", NULL, "en_US.UTF-8");
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_JA);
    CHECK(t.emoji); /* the codeset comes from LANG here */
    set_locale_env("", "", "C", "ja_JP.UTF-8");
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_JA);
    CHECK(!t.emoji); /* LC_CTYPE=C: no UTF-8 */
    set_locale_env("ja_JP.eucJP", NULL, NULL, NULL);
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_JA);
    CHECK(!t.emoji);
    set_locale_env("C.UTF-8", NULL, NULL, NULL);
    t = mg_text_opts_from_env(-1);
    CHECK_INT(t.lang, MG_LANG_EN);
    CHECK(t.emoji);

    /* TERM matters only for a terminal. A pipe is not one. */
    set_locale_env(NULL, NULL, NULL, "en_US.UTF-8");
    env("TERM", "linux");
    int p[2];
    if (pipe(p) == 0) {
        CHECK(mg_text_opts_from_env(p[1]).emoji);
        close(p[0]);
        close(p[1]);
    }
    /* A pty master is a terminal on Linux. */
    int pt = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    if (pt >= 0 && isatty(pt)) {
        CHECK(!mg_text_opts_from_env(pt).emoji);
        env("TERM", "dumb");
        CHECK(!mg_text_opts_from_env(pt).emoji);
        env("TERM", "xterm-256color");
        CHECK(mg_text_opts_from_env(pt).emoji);
    } else {
        printf("# no pty: TERM check skipped\n");
    }
    if (pt >= 0) close(pt);

    /* AUTO in the options resolves the language from the environment. */
    set_locale_env(NULL, NULL, NULL, "ja_JP.UTF-8");
    mg_text_opts autoj = {MG_LANG_AUTO, false};
    char buf[256];
    mg_verdict v = verdict_gpu(10.94, 0);
    mg_format_warning(&v, &autoj, -1, buf, sizeof buf);
    CHECK_STR(buf, "[!] GPU使用率が危険: 91.2% (10.94GB/12.0GB)\n");
    set_locale_env(NULL, NULL, NULL, NULL);
    env("TERM", NULL);
}

/* Numbers keep the seed's decimal point under a comma locale. */
static void test_numeric_locale(void)
{
    /* glibc's names, then the C runtime's on Windows. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "German_Germany.1252"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) {
        printf("# no comma-decimal locale installed: locale check skipped\n");
        return;
    }
    CHECK_STR(localeconv()->decimal_point, ","); /* the check below means something */
    char buf[4096];
    mg_verdict v = verdict_gpu(10.94, 0);
    mg_format_warning(&v, &EN, 50, buf, sizeof buf);
    CHECK_STR(buf, "[Batch 50] ⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)\n");
    mg_config c = cfg_seed();
    mg_snapshot s = snap_seed();
    mg_format_json(&c, &s, NULL, buf, sizeof buf);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    cJSON_Delete(j);
    CHECK_CONTAINS(buf, "\"warn_gpu_frac\":0.9,");
    setlocale(LC_NUMERIC, "C");
}

/* ---- JSON ------------------------------------------------------------------------------ */

static cJSON *get(const cJSON *o, const char *key)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) fprintf(stderr, "  missing key \"%s\"\n", key);
    return it;
}

static bool is_num(const cJSON *o, const char *key, double want)
{
    cJSON *it = get(o, key);
    if (!cJSON_IsNumber(it)) return false;
    double got = it->valuedouble;
    double tol = fabs(want) * 1e-5; /* %.6g */
    if (fabs(got - want) > tol) {
        fprintf(stderr, "  %s: %.17g != %.17g\n", key, got, want);
        return false;
    }
    return true;
}

static bool is_null(const cJSON *o, const char *key)
{
    return cJSON_IsNull(get(o, key));
}

static bool is_str(const cJSON *o, const char *key, const char *want)
{
    cJSON *it = get(o, key);
    if (!cJSON_IsString(it)) return false;
    if (strcmp(it->valuestring, want) != 0) {
        fprintf(stderr, "  %s: \"%s\" != \"%s\"\n", key, it->valuestring, want);
        return false;
    }
    return true;
}

static int count_keys(const cJSON *o)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) n++;
    return n;
}

/* Formats, checks the framing (one line, ending in "\n") and parses. */
static cJSON *json_of(const mg_config *c, const mg_snapshot *s,
                      const mg_verdict *v)
{
    static char buf[8192];
    int n = mg_format_json(c, s, v, buf, sizeof buf);
    CHECK(n > 0 && n < (int)sizeof buf);
    CHECK_INT(strlen(buf), n);
    CHECK(n > 0 && buf[n - 1] == '\n');
    CHECK(strchr(buf, '\n') == buf + n - 1);
    cJSON *j = cJSON_Parse(buf);
    if (!j) fprintf(stderr, "  unparsable: %s\n", buf);
    CHECK(j != NULL);
    return j;
}

/* A known container with a limit and its usage. */
static void set_cgroup(mg_snapshot *s, int version, const char *path, const char *limit_path,
                       uint64_t limit, uint64_t usage)
{
    s->cgroup.known = true;
    s->cgroup.version = version;
    snprintf(s->cgroup.path, sizeof s->cgroup.path, "%s", path);
    s->cgroup.has_limit = true;
    s->cgroup.limit_bytes = limit;
    snprintf(s->cgroup.limit_path, sizeof s->cgroup.limit_path, "%s", limit_path);
    s->cgroup.usage_known = true;
    s->cgroup.usage_bytes = usage;
}

/* Windows' figures: the commit limit deciding, its line, and a job
 * object as the container. */
static mg_snapshot snap_windows(void)
{
    mg_snapshot s = snap_seed();
    s.ram.commit_known = true;
    s.ram.commit_used_bytes = 30 * GIB;
    s.ram.commit_limit_bytes = 40 * GIB;
    set_cgroup(&s, 0, "job", "job", 48 * GIB, 3 * GIB);
    s.trainer_known = false;
    s.gpu_count = 0;
    s.gpu_state = MG_GPU_NO_LIBRARY;
    return s;
}

static void test_system_check_commit_job(void)
{
    char buf[2048];
    mg_snapshot s = snap_windows();
    mg__ram_combine(&s, 0);
    CHECK_INT(s.ram.source, MG_RAM_SOURCE_COMMIT); /* 75 % beats the machine's 38 % */
    CHECK_INT(s.ram.nlimits, 2);
    const char *want =
        RULE
        "System Resource Check\n"
        RULE
        "RAM: 30.0GB / 40.0GB (75%)\n"
        "RAM limit: commit limit (RAM + page files)\n"
        "Commit: 30.0GB / 40.0GB (75%)\n"
        "Container: job object, limit 48.0GB, usage 3.0GB\n"
        "GPU: none (NVML not found)\n"
        RULE;
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_STR(buf, want);

    /* A job limit under the machine's RAM that is the fullest decides. */
    s.cgroup.limit_bytes = 4 * GIB;
    mg__ram_combine(&s, 0);
    CHECK_INT(s.ram.source, MG_RAM_SOURCE_CGROUP);
    mg_format_system_check(&s, &EN, buf, sizeof buf);
    CHECK_CONTAINS(buf, "RAM: 3.0GB / 4.0GB (75%)\nRAM limit: job object limit\n");
    CHECK_STR(mg_ram_source_name(MG_RAM_SOURCE_COMMIT), "commit");
}

static void test_json_commit(void)
{
    mg_config c = cfg_seed();
    mg_snapshot s = snap_windows();
    mg__ram_combine(&s, 0);
    mg_verdict v;
    mg_classify(&c, &s, NULL, &v);
    cJSON *j = json_of(&c, &s, &v);
    if (!j) return;
    cJSON *ram = get(j, "ram");
    CHECK(is_str(ram, "source", "commit"));
    CHECK(is_num(ram, "commit_used_bytes", (double)(30 * GIB)));
    CHECK(is_num(ram, "commit_limit_bytes", (double)(40 * GIB)));
    cJSON *lim = get(ram, "limits");
    CHECK_INT(cJSON_GetArraySize(lim), 2);
    CHECK(is_str(cJSON_GetArrayItem(lim, 1), "source", "commit"));
    cJSON *cg = get(j, "cgroup");
    CHECK(is_num(cg, "version", 0));
    CHECK(is_str(cg, "path", "job"));
    CHECK(is_num(cg, "usage_bytes", (double)(3 * GIB)));
    cJSON_Delete(j);
}

static void test_json_full(void)
{
    mg_config c = cfg_seed();
    c.min_free_ram_bytes = 2 * GIB;
    c.ram_budget_bytes = 24 * GIB;
    mg_snapshot s = snap_seed();
    s.swap.known = true;
    s.swap.total_bytes = 8 * GIB;
    s.swap.free_bytes = 7 * GIB;
    set_cgroup(&s, 2, "/a/b", "/a", 30 * GIB, 13 * GIB);
    s.cgroup.inactive_file_bytes = GIB;
    s.tree.known = true;
    s.tree.pid = 77;
    s.tree.nprocs = 4;
    s.tree.rss_bytes = 5 * GIB;
    s.tree.used_bytes = 5 * GIB;
    s.sample_us = 321;
    s.sample_backlog_us = 4321;
    s.psi.known = true;
    s.psi.some_avg10 = 0.5;
    s.psi.full_avg10 = 0.0;
    mg_verdict v;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);

    cJSON *j = json_of(&c, &s, &v);
    if (!j) return;
    CHECK_INT(count_keys(j), 15);
    CHECK(is_num(j, "time_ms", 123456));
    CHECK(is_num(j, "sample_us", 321));
    CHECK(is_num(j, "sample_backlog_us", 4321));
    CHECK(is_str(j, "level", "warn"));
    cJSON *r = get(j, "reason");
    CHECK(cJSON_IsObject(r));
    CHECK_INT(count_keys(r), 12);
    CHECK(cJSON_IsFalse(get(r, "by_trend")));
    CHECK(is_null(r, "rate_bytes_per_s"));
    CHECK(is_null(r, "seconds_to_full"));
    CHECK(is_str(r, "resource", "gpu"));
    CHECK(is_num(r, "gpu_index", 0));
    CHECK(is_num(r, "value_frac", v.value_frac));
    CHECK(is_num(r, "threshold_frac", 0.9));
    CHECK(cJSON_IsFalse(get(r, "by_floor")));
    CHECK(is_null(r, "floor_bytes"));
    CHECK(is_num(r, "used_bytes", (double)v.used_bytes));
    CHECK(is_num(r, "total_bytes", (double)(12 * GIB)));
    CHECK(is_str(r, "text", "GPU usage high: 91.2% (10.94GB/12.0GB)"));
    cJSON *u = get(j, "unknown");
    CHECK(cJSON_IsArray(u) && cJSON_GetArraySize(u) == 0);

    cJSON *ram = get(j, "ram");
    CHECK_INT(count_keys(ram), 11);
    CHECK(is_null(ram, "fill")); /* one sample: no growth measured */
    CHECK(cJSON_IsArray(get(ram, "limits")));
    CHECK_INT(cJSON_GetArraySize(get(ram, "limits")), (int)s.ram.nlimits);
    CHECK(is_num(ram, "total_bytes", (double)(32 * GIB)));
    CHECK(is_num(ram, "available_bytes", (double)s.ram.available_bytes));
    CHECK(is_num(ram, "used_bytes", (double)s.ram.used_bytes));
    CHECK(is_num(ram, "used_frac", s.ram.used_frac));
    CHECK(is_str(ram, "source", "meminfo"));
    CHECK(is_num(ram, "mem_total_bytes", (double)(32 * GIB)));
    CHECK(is_num(ram, "mem_available_bytes", (double)s.ram.available_bytes));
    CHECK(is_null(ram, "commit_used_bytes")); /* Linux has no commit limit */
    CHECK(is_null(ram, "commit_limit_bytes"));

    cJSON *sw = get(j, "swap");
    CHECK_INT(count_keys(sw), 2);
    CHECK(is_num(sw, "total_bytes", (double)(8 * GIB)));
    CHECK(is_num(sw, "free_bytes", (double)(7 * GIB)));

    cJSON *cg = get(j, "cgroup");
    CHECK_INT(count_keys(cg), 6);
    CHECK(is_num(cg, "version", 2));
    CHECK(is_str(cg, "path", "/a/b"));
    CHECK(is_num(cg, "limit_bytes", (double)(30 * GIB)));
    CHECK(is_str(cg, "limit_path", "/a"));
    CHECK(is_num(cg, "usage_bytes", (double)(13 * GIB)));
    CHECK(is_num(cg, "inactive_file_bytes", (double)GIB));

    cJSON *pt = get(j, "process_tree");
    CHECK_INT(count_keys(pt), 8);
    CHECK(is_num(pt, "pid", 77));
    CHECK(cJSON_IsFalse(get(pt, "descendants_only")));
    CHECK(is_num(pt, "nprocs", 4));
    CHECK(is_num(pt, "rss_bytes", (double)(5 * GIB)));
    CHECK(is_null(pt, "pss_bytes"));
    CHECK(is_null(pt, "pss_unread"));
    CHECK(is_num(pt, "used_bytes", (double)(5 * GIB)));
    CHECK(cJSON_IsFalse(get(pt, "used_estimated")));

    /* With PSS read, and a tree of descendants only. */
    s.tree.pss_known = true;
    s.tree.pss_bytes = GIB;
    s.tree.pss_unread = 1;
    s.tree.used_bytes = GIB;
    s.tree.descendants_only = true;
    cJSON *j2 = json_of(&c, &s, &v);
    if (j2) {
        cJSON *pt2 = get(j2, "process_tree");
        CHECK_INT(count_keys(pt2), 8);
        CHECK(cJSON_IsTrue(get(pt2, "descendants_only")));
        CHECK(is_num(pt2, "rss_bytes", (double)(5 * GIB)));
        CHECK(is_num(pt2, "pss_bytes", (double)GIB));
        CHECK(is_num(pt2, "pss_unread", 1));
        CHECK(is_num(pt2, "used_bytes", (double)GIB));
        cJSON_Delete(j2);
    }
    /* Between two PSS readings: the estimate, named as such. */
    s.tree.pss_known = false;
    s.tree.used_estimated = true;
    s.tree.used_bytes = 2 * GIB;
    cJSON *j3 = json_of(&c, &s, &v);
    if (j3) {
        cJSON *pt3 = get(j3, "process_tree");
        CHECK(cJSON_IsTrue(get(pt3, "used_estimated")));
        CHECK(is_null(pt3, "pss_bytes"));
        CHECK(is_num(pt3, "used_bytes", (double)(2 * GIB)));
        cJSON_Delete(j3);
    }

    cJSON *psi = get(j, "psi");
    CHECK_INT(count_keys(psi), 2);
    CHECK(is_num(psi, "some_avg10", 0.5));
    CHECK(is_num(psi, "full_avg10", 0.0));

    CHECK(is_str(j, "gpu_state", "ok"));
    cJSON *gpus = get(j, "gpus");
    CHECK(cJSON_IsArray(gpus) && cJSON_GetArraySize(gpus) == 1);
    cJSON *g = cJSON_GetArrayItem(gpus, 0);
    CHECK_INT(count_keys(g), 8);
    CHECK(is_null(g, "fill"));
    CHECK(is_num(g, "index", 0));
    CHECK(is_str(g, "name", "NVIDIA GeForce RTX 3060"));
    CHECK(is_str(g, "uuid", "GPU-12345678-1234-1234-1234-123456789abc"));
    CHECK(is_num(g, "total_bytes", (double)(12 * GIB)));
    CHECK(is_num(g, "free_bytes", (double)s.gpus[0].free_bytes));
    CHECK(is_num(g, "reserved_bytes", (double)(300 * MIB)));
    CHECK(is_num(g, "used_frac", s.gpus[0].used_frac));

    cJSON *tr = get(j, "trainer");
    CHECK_INT(count_keys(tr), 2);
    CHECK(is_num(tr, "allocated_bytes", (double)s.trainer_allocated_bytes));
    CHECK(is_num(tr, "reserved_bytes", (double)s.trainer_reserved_bytes));

    cJSON *th = get(j, "thresholds");
    CHECK_INT(count_keys(th), 8);
    CHECK(is_num(th, "predict_lead_ms", 3000));
    CHECK(is_num(th, "warn_gpu_frac", 0.90));
    CHECK(is_num(th, "stop_gpu_frac", 0.92));
    CHECK(is_num(th, "warn_ram_frac", 0.85));
    CHECK(is_num(th, "stop_ram_frac", 0.88));
    CHECK(is_num(th, "min_free_ram_bytes", (double)(2 * GIB)));
    CHECK(is_null(th, "min_free_gpu_bytes"));
    CHECK(is_num(th, "ram_budget_bytes", (double)(24 * GIB)));
    cJSON_Delete(j);

    /* Exact bytes survive: they are integers, not %g. */
    char buf[8192];
    mg_format_json(&c, &s, &v, buf, sizeof buf);
    char needle[64];
    snprintf(needle, sizeof needle, "\"free_bytes\":%" PRIu64 ",",
             s.gpus[0].free_bytes);
    CHECK_CONTAINS(buf, needle);
}

static void test_json_unknown(void)
{
    mg_config c = cfg_seed();
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    s.time_ms = 5;
    s.gpu_state = MG_GPU_ERROR;
    s.gpu_count = 1;
    snprintf(s.gpus[0].name, sizeof s.gpus[0].name, "X");
    s.gpus[0].index = 3;
    s.gpus[0].known = false;
    s.gpus[0].total_bytes = 99; /* meaningless: must not appear */

    cJSON *j = json_of(&c, &s, NULL); /* NULL verdict: classified inside */
    if (!j) return;
    CHECK_INT(count_keys(j), 15);
    CHECK(is_str(j, "level", "safe"));
    CHECK(is_null(j, "reason"));
    cJSON *u = get(j, "unknown");
    CHECK(cJSON_IsArray(u) && cJSON_GetArraySize(u) == 2);
    CHECK_STR(cJSON_GetArrayItem(u, 0)->valuestring, "ram");
    CHECK_STR(cJSON_GetArrayItem(u, 1)->valuestring, "gpu");
    CHECK(is_null(j, "ram"));
    CHECK(is_null(j, "swap"));
    CHECK(is_null(j, "cgroup"));
    CHECK(is_null(j, "process_tree"));
    CHECK(is_null(j, "psi"));
    CHECK(is_null(j, "trainer"));
    CHECK(is_str(j, "gpu_state", "error"));
    cJSON *g = cJSON_GetArrayItem(get(j, "gpus"), 0);
    CHECK(is_num(g, "index", 3));
    CHECK(is_str(g, "name", "X"));
    CHECK(is_str(g, "uuid", ""));
    CHECK(is_null(g, "total_bytes"));
    CHECK(is_null(g, "free_bytes"));
    CHECK(is_null(g, "reserved_bytes"));
    CHECK(is_null(g, "used_frac"));
    cJSON *th = get(j, "thresholds");
    CHECK(is_null(th, "min_free_ram_bytes"));
    CHECK(is_null(th, "min_free_gpu_bytes"));
    CHECK(is_null(th, "ram_budget_bytes"));
    cJSON_Delete(j);

    /* Known RAM without meminfo figures, a cgroup without limit or usage. */
    s.ram.known = true;
    s.ram.source = MG_RAM_SOURCE_BUDGET;
    s.ram.total_bytes = 8 * GIB;
    s.ram.used_bytes = 7 * GIB;
    s.ram.available_bytes = GIB;
    s.ram.used_frac = NAN; /* no JSON form: null */
    s.cgroup.known = true;
    s.cgroup.version = 1;
    s.gpu_count = 0;
    s.gpu_state = MG_GPU_NO_LIBRARY;
    mg_verdict v;
    memset(&v, 0, sizeof v);
    j = json_of(&c, &s, &v);
    if (!j) return;
    cJSON *ram = get(j, "ram");
    CHECK(is_str(ram, "source", "budget"));
    CHECK(is_null(ram, "used_frac"));
    CHECK(is_null(ram, "mem_total_bytes"));
    CHECK(is_null(ram, "mem_available_bytes"));
    cJSON *cg = get(j, "cgroup");
    CHECK(is_num(cg, "version", 1));
    CHECK(is_str(cg, "path", ""));
    CHECK(is_null(cg, "limit_bytes"));
    CHECK(is_null(cg, "limit_path"));
    CHECK(is_null(cg, "usage_bytes"));
    CHECK(is_null(cg, "inactive_file_bytes"));
    CHECK(is_str(j, "gpu_state", "no_library"));
    CHECK(cJSON_GetArraySize(get(j, "gpus")) == 0);
    CHECK(cJSON_GetArraySize(get(j, "unknown")) == 0);
    cJSON_Delete(j);
}

static void test_json_reason_ram_floor(void)
{
    mg_config c = cfg_seed();
    c.min_free_ram_bytes = 2 * GIB;
    c.warn_ram_frac = 0.93; /* 90.6 % used: the floor alone decides */
    c.stop_ram_frac = 0.95;
    mg_snapshot s = snap_seed();
    s.ram.total_bytes = 16 * GIB;
    s.ram.used_bytes = 16 * GIB - 3 * GIB / 2;
    s.ram.available_bytes = 3 * GIB / 2;
    s.ram.used_frac = (double)s.ram.used_bytes / (double)(16 * GIB);
    s.ram.source = MG_RAM_SOURCE_CGROUP;
    mg_verdict v;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 2 * GIB);
    cJSON *j = json_of(&c, &s, &v);
    if (!j) return;
    CHECK(is_str(j, "level", "critical"));
    cJSON *r = get(j, "reason");
    CHECK(is_str(r, "resource", "ram"));
    CHECK(is_null(r, "gpu_index"));
    CHECK(cJSON_IsTrue(get(r, "by_floor")));
    CHECK(is_num(r, "floor_bytes", (double)(2 * GIB)));
    CHECK(is_num(r, "threshold_frac", 0.875));
    CHECK(is_str(r, "text", "RAM free below floor: 1.50GB free, floor 2.0GB"));
    CHECK(is_str(get(j, "ram"), "source", "cgroup"));
    cJSON_Delete(j);
}

static void test_json_escaping(void)
{
    mg_config c = cfg_seed();
    mg_snapshot s = snap_seed();
    /* Quotes, backslash, control characters, UTF-8, and a stray byte. */
    snprintf(s.gpus[0].name, sizeof s.gpus[0].name,
             "Quote\"Back\\slash\ttab\nnl\x01 \x7f 日本語 \xff end");
    /* A field filled to the last byte, without terminator. */
    memset(s.gpus[0].uuid, 'u', sizeof s.gpus[0].uuid);
    s.cgroup.known = true;
    s.cgroup.version = 2;
    snprintf(s.cgroup.path, sizeof s.cgroup.path, "/with \"quote\"");
    s.cgroup.has_limit = true;
    s.cgroup.limit_bytes = GIB;
    snprintf(s.cgroup.limit_path, sizeof s.cgroup.limit_path, "C:\\odd");

    char buf[8192];
    int n = mg_format_json(&c, &s, NULL, buf, sizeof buf);
    CHECK(n > 0 && n < (int)sizeof buf);
    CHECK_CONTAINS(buf, "\"name\":\"Quote\\\"Back\\\\slash\\u0009tab\\u000anl"
                        "\\u0001 \\u007f 日本語 \\ufffd end\"");
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    if (!j) return;
    cJSON *g = cJSON_GetArrayItem(get(j, "gpus"), 0);
    CHECK(is_str(g, "name",
                 "Quote\"Back\\slash\ttab\nnl\x01 \x7f 日本語 \xEF\xBF\xBD end"));
    char uuid[97];
    memset(uuid, 'u', 96);
    uuid[96] = '\0';
    CHECK(is_str(g, "uuid", uuid));
    cJSON *cg = get(j, "cgroup");
    CHECK(is_str(cg, "path", "/with \"quote\""));
    CHECK(is_str(cg, "limit_path", "C:\\odd"));
    cJSON_Delete(j);

    /* Invalid UTF-8 of every kind becomes U+FFFD; valid 4-byte passes. */
    snprintf(s.gpus[0].name, sizeof s.gpus[0].name,
             "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe3\x81|\xf0\x9f\x9a\xa8");
    mg_format_json(&c, &s, NULL, buf, sizeof buf);
    j = cJSON_Parse(buf);
    CHECK(j != NULL);
    if (!j) return;
    g = cJSON_GetArrayItem(get(j, "gpus"), 0);
    CHECK(is_str(g, "name",
                 "\xEF\xBF\xBD\xEF\xBF\xBD|"
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|"
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|"
                 "\xEF\xBF\xBD\xEF\xBF\xBD|"
                 "\xf0\x9f\x9a\xa8"));
    cJSON_Delete(j);
}

/* mg_json_quote: always one valid JSON string, whatever the bytes, and
 * still closed when cut. */
static void test_json_quote(void)
{
    static const struct { const char *in, *out; } cases[] = {
        {"plain", "\"plain\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"tab\tnl\n", "\"tab\\u0009nl\\u000a\""},
        {"bad\xff\xfe", "\"bad\\ufffd\\ufffd\""},
        {"\xc3\xa9t\xc3", "\"\xc3\xa9t\\ufffd\""},  /* é, then a cut sequence */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a surrogate */
        {"", "\"\""},
    };
    char buf[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(mg_json_quote(cases[i].in, buf, sizeof buf), 0);
        CHECK_STR(buf, cases[i].out);
        cJSON *j = cJSON_Parse(buf);
        CHECK(j && cJSON_IsString(j));
        cJSON_Delete(j);
    }
    /* Too long: cut at a character, closed, MG_ENOBUFS. */
    char small[10];
    CHECK_INT(mg_json_quote("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", small, sizeof small),
              MG_ENOBUFS);
    CHECK_STR(small, "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
    cJSON *j = cJSON_Parse(small);
    CHECK(j != NULL);
    cJSON_Delete(j);
    CHECK_INT(mg_json_quote("x", small, 2), MG_EINVAL);
    CHECK_INT(mg_json_quote(NULL, small, sizeof small), MG_EINVAL);
}

int main(void)
{
    MG_RUN(test_warning_seed);
    MG_RUN(test_warning_ram_and_floor);
    MG_RUN(test_warning_safe_and_errors);
    MG_RUN(test_truncation);
    MG_RUN(test_emergency);
    MG_RUN(test_banner);
    MG_RUN(test_system_check_seed);
    MG_RUN(test_system_check_full);
    MG_RUN(test_system_check_no_gpu);
    MG_RUN(test_opts_from_env);
    MG_RUN(test_numeric_locale);
    MG_RUN(test_system_check_commit_job);
    MG_RUN(test_json_commit);
    MG_RUN(test_json_full);
    MG_RUN(test_json_unknown);
    MG_RUN(test_json_reason_ram_floor);
    MG_RUN(test_json_escaping);
    MG_RUN(test_json_quote);
    return mg_test_exit();
}
