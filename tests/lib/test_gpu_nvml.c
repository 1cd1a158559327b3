/* SPDX-License-Identifier: MIT */
/*
 * test_gpu_nvml.c: the NVML backend against the fake libnvidia-ml
 * (fake_nvml.c, path in MG_FAKE_NVML). Each test sets the fake's
 * environment, opens, queries and closes through mg__gpu_nvml, and checks
 * the figures against the numbers it set; the fake's call log proves which
 * path (memory v2 or v1) was taken and that nvmlShutdown was called.
 */
#include "internal.h"
#include "mg_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MG_FAKE_NVML
#error "MG_FAKE_NVML must name the fake NVML library"
#endif
#ifndef MG_TMPDIR
#define MG_TMPDIR "/tmp"
#endif

/* ---- Log capture ------------------------------------------------------ */

static char logbuf[16384];

static void capture(void *user, mg_log_level level, const char *msg)
{
    (void)user;
    size_t len = strlen(logbuf);
    snprintf(logbuf + len, sizeof logbuf - len, "%d %s\n", (int)level, msg);
}

static const mg__log test_log = {capture, NULL, MG_LOG_DEBUG};

/* ---- The fake's environment and call log ------------------------------ */

static char call_log[512];

static void reset_env(void)
{
    static const char *vars[] = {
        "FAKE_NVML_INIT_FAIL", "FAKE_NVML_COUNT", "FAKE_NVML_NO_V2",
        "FAKE_NVML_V2_RC", "FAKE_NVML_FAIL_MEM", "FAKE_NVML_FAIL_MEM_RC",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    for (int i = 0; i < 64; i++) {
        char name[32];
        snprintf(name, sizeof name, "FAKE_NVML_GPU%d", i);
        unsetenv(name);
    }
    if (!call_log[0])
        snprintf(call_log, sizeof call_log, "%s/fake_nvml_calls.%ld.log",
                 MG_TMPDIR, (long)getpid());
    FILE *f = fopen(call_log, "w"); /* truncate */
    if (f) fclose(f);
    setenv("FAKE_NVML_LOG", call_log, 1);
    logbuf[0] = '\0';
}

/* Lines of the call log that start with "<fn> " (and, when dev >= 0, name
 * that device). */
static int calls(const char *fn, int dev)
{
    FILE *f = fopen(call_log, "r");
    if (!f) return -1;
    char line[256], want[160];
    if (dev >= 0)
        snprintf(want, sizeof want, "%s dev=%d ", fn, dev);
    else
        snprintf(want, sizeof want, "%s ", fn);
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, want, strlen(want)) == 0) n++;
    fclose(f);
    return n;
}

static void set_gpu(int i, const char *name, const char *uuid, uint64_t total,
                    uint64_t free_b, uint64_t reserved)
{
    char var[32], val[256];
    snprintf(var, sizeof var, "FAKE_NVML_GPU%d", i);
    snprintf(val, sizeof val, "%s;%s;%" PRIu64 ";%" PRIu64 ";%" PRIu64, name,
             uuid, total, free_b, reserved);
    setenv(var, val, 1);
}

static mg_gpu_state open_fake(void **st, const char *visible)
{
    mg_gpu_state why = MG_GPU_DISABLED;
    *st = (void *)1; /* open must overwrite it */
    int rc = mg__gpu_nvml.open(st, MG_FAKE_NVML, visible, &test_log, &why);
    CHECK_INT(rc, 0);
    return why;
}

static double frac(uint64_t total, uint64_t free_b)
{
    return (double)(total - free_b) / (double)total;
}

#define GIB (1024ull * 1024ull * 1024ull)
#define MIB (1024ull * 1024ull)

/* Two devices with different use; the UUIDs used by the selection tests. */
#define UUID0 "GPU-11111111-2222-3333-4444-555555555555"
#define UUID1 "GPU-11119999-aaaa-bbbb-cccc-dddddddddddd"
#define UUID2 "GPU-77777777-0000-0000-0000-000000000000"

static void set_three(void)
{
    setenv("FAKE_NVML_COUNT", "3", 1);
    set_gpu(0, "Fake A100", UUID0, 80 * GIB, 60 * GIB, 512 * MIB);
    set_gpu(1, "Fake RTX 4090", UUID1, 24 * GIB, 2 * GIB + 123, 300 * MIB);
    set_gpu(2, "Fake T4", UUID2, 16 * GIB, 15 * GIB, 100 * MIB);
}

/* ---- Tests ------------------------------------------------------------ */

static void test_no_library(void)
{
    reset_env();
    void *st = (void *)1;
    mg_gpu_state why = MG_GPU_OK;
    int rc = mg__gpu_nvml.open(&st, MG_TMPDIR "/no-such-libnvidia-ml.so.1",
                               NULL, &test_log, &why);
    CHECK_INT(rc, 0);
    CHECK(st == NULL);
    CHECK_INT(why, MG_GPU_NO_LIBRARY);
    CHECK_CONTAINS(logbuf, "cannot load");
    mg__gpu_nvml.close(NULL); /* no-op */
}

static void test_missing_symbol(void)
{
    /* A real library that is not NVML: the first required symbol is named. */
    reset_env();
    void *st = (void *)1;
    mg_gpu_state why = MG_GPU_OK;
    int rc = mg__gpu_nvml.open(&st, "libm.so.6", NULL, &test_log, &why);
    CHECK_INT(rc, 0);
    CHECK(st == NULL);
    CHECK_INT(why, MG_GPU_NO_LIBRARY);
    if (!strstr(logbuf, "cannot load")) /* libm.so.6 is glibc's name */
        CHECK_CONTAINS(logbuf, "nvmlInit_v2");
}

static void test_init_failure(void)
{
    static const char *codes[] = {"9", "12", "28", "999"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        reset_env();
        setenv("FAKE_NVML_INIT_FAIL", codes[i], 1);
        void *st;
        CHECK_INT(open_fake(&st, NULL), MG_GPU_NO_DRIVER);
        CHECK(st == NULL);
        CHECK_CONTAINS(logbuf, "init failed");
        CHECK_INT(calls("nvmlInit_v2", -1), 1);
        CHECK_INT(calls("nvmlShutdown", -1), 0); /* init did not succeed */
    }
    /* The driver's own text, from nvmlErrorString. */
    CHECK_CONTAINS(logbuf, "Unknown Error (999)");
}

static void test_zero_devices(void)
{
    reset_env();
    setenv("FAKE_NVML_COUNT", "0", 1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_NO_DEVICE);
    CHECK(st == NULL);
    CHECK_INT(calls("nvmlShutdown", -1), 1); /* released at once */
}

static void test_two_devices_v2(void)
{
    reset_env();
    const uint64_t t0 = 80 * GIB, f0 = 60 * GIB + 4096, r0 = 512 * MIB;
    const uint64_t t1 = 24 * GIB, f1 = 3 * GIB + 7, r1 = 300 * MIB;
    setenv("FAKE_NVML_COUNT", "2", 1);
    set_gpu(0, "Fake A100", UUID0, t0, f0, r0);
    set_gpu(1, "Fake RTX 4090", UUID1, t1, f1, r1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0xab, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_OK);
    CHECK_INT(snap.gpu_count, 2);

    CHECK_INT(snap.gpus[0].index, 0);
    CHECK_STR(snap.gpus[0].name, "Fake A100");
    CHECK_STR(snap.gpus[0].uuid, UUID0);
    CHECK(snap.gpus[0].known);
    CHECK_U64(snap.gpus[0].total_bytes, t0);
    CHECK_U64(snap.gpus[0].free_bytes, f0);
    CHECK_U64(snap.gpus[0].reserved_bytes, r0);
    CHECK_NEAR(snap.gpus[0].used_frac, frac(t0, f0), 0.0);

    CHECK_INT(snap.gpus[1].index, 1);
    CHECK_STR(snap.gpus[1].name, "Fake RTX 4090");
    CHECK_STR(snap.gpus[1].uuid, UUID1);
    CHECK(snap.gpus[1].known);
    CHECK_U64(snap.gpus[1].total_bytes, t1);
    CHECK_U64(snap.gpus[1].free_bytes, f1);
    CHECK_U64(snap.gpus[1].reserved_bytes, r1);
    CHECK_NEAR(snap.gpus[1].used_frac, frac(t1, f1), 0.0);

    /* The fake refuses any version word but 0x02000028 with 13, so these
     * successful v2 calls prove the word; and v1 was never needed. */
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo_v2", -1), 2);
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo", -1), 0);
    CHECK_INT(calls("nvmlInit_v2", -1), 1);
    CHECK_INT(calls("nvmlDeviceGetCount_v2", -1), 1);

    /* Figures follow the device between samples. */
    const uint64_t f0b = 10 * GIB;
    set_gpu(0, "Fake A100", UUID0, t0, f0b, r0);
    mg__gpu_nvml.query(st, &snap);
    CHECK_U64(snap.gpus[0].free_bytes, f0b);
    CHECK_NEAR(snap.gpus[0].used_frac, frac(t0, f0b), 0.0);

    CHECK_INT(calls("nvmlShutdown", -1), 0);
    mg__gpu_nvml.close(st);
    CHECK_INT(calls("nvmlShutdown", -1), 1);
}

static void check_v1_fallback(const char *var, const char *value)
{
    reset_env();
    const uint64_t t0 = 40 * GIB, f0 = 39 * GIB, r0 = 700 * MIB;
    const uint64_t t1 = 12 * GIB, f1 = 1 * GIB + 1, r1 = 200 * MIB;
    setenv("FAKE_NVML_COUNT", "2", 1);
    set_gpu(0, "Old 0", UUID0, t0, f0, r0);
    set_gpu(1, "Old 1", UUID1, t1, f1, r1);
    setenv(var, value, 1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    for (int round = 0; round < 3; round++) {
        mg__gpu_nvml.query(st, &snap);
        CHECK_INT(snap.gpu_state, MG_GPU_OK);
        CHECK_INT(snap.gpu_count, 2);
        CHECK(snap.gpus[0].known);
        CHECK_U64(snap.gpus[0].total_bytes, t0);
        CHECK_U64(snap.gpus[0].free_bytes, f0);
        CHECK_U64(snap.gpus[0].reserved_bytes, 0); /* v1 has no reserve */
        CHECK_NEAR(snap.gpus[0].used_frac, frac(t0, f0), 0.0);
        CHECK(snap.gpus[1].known);
        CHECK_U64(snap.gpus[1].total_bytes, t1);
        CHECK_U64(snap.gpus[1].free_bytes, f1);
        CHECK_U64(snap.gpus[1].reserved_bytes, 0);
        CHECK_NEAR(snap.gpus[1].used_frac, frac(t1, f1), 0.0);
    }
    /* v2 tried once per device, then remembered: v1 only afterwards. */
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo_v2", 0), 1);
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo_v2", 1), 1);
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo", 0), 3);
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo", 1), 3);
    mg__gpu_nvml.close(st);
    CHECK_INT(calls("nvmlShutdown", -1), 1);
}

static void test_v1_fallback_no_v2(void)
{
    check_v1_fallback("FAKE_NVML_NO_V2", "1");
}

static void test_v1_fallback_version_mismatch(void)
{
    check_v1_fallback("FAKE_NVML_V2_RC", "25");
}

static void test_v1_fallback_not_supported(void)
{
    check_v1_fallback("FAKE_NVML_V2_RC", "3");
}

static void test_v2_other_error_no_fallback(void)
{
    /* A v2 failure that is not a version/capability gap is an error, not a
     * reason to switch to v1. */
    reset_env();
    setenv("FAKE_NVML_V2_RC", "999", 1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_ERROR);
    CHECK_INT(snap.gpu_count, 1);
    CHECK(!snap.gpus[0].known);
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo", -1), 0);
    CHECK_CONTAINS(logbuf, "memory query failed");
    mg__gpu_nvml.close(st);
}

static void test_lost_device(void)
{
    reset_env();
    set_three();
    setenv("FAKE_NVML_FAIL_MEM", "1", 1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_ERROR);
    CHECK_INT(snap.gpu_count, 3);
    CHECK(!snap.gpus[1].known);
    CHECK_INT(snap.gpus[1].index, 1);
    CHECK_STR(snap.gpus[1].name, "Fake RTX 4090");
    CHECK(snap.gpus[0].known);
    CHECK_U64(snap.gpus[0].total_bytes, 80 * GIB);
    CHECK_U64(snap.gpus[0].free_bytes, 60 * GIB);
    CHECK_U64(snap.gpus[0].reserved_bytes, 512 * MIB);
    CHECK(snap.gpus[2].known);
    CHECK_U64(snap.gpus[2].total_bytes, 16 * GIB);
    CHECK_U64(snap.gpus[2].free_bytes, 15 * GIB);
    CHECK_NEAR(snap.gpus[2].used_frac, frac(16 * GIB, 15 * GIB), 0.0);
    CHECK_CONTAINS(logbuf, "GPU is lost");
    /* A lost GPU is not a version gap: no switch to v1. */
    CHECK_INT(calls("nvmlDeviceGetMemoryInfo", 1), 0);

    /* Logged once, not at every sample; and it recovers. */
    logbuf[0] = '\0';
    mg__gpu_nvml.query(st, &snap);
    CHECK(strstr(logbuf, "lost") == NULL);
    unsetenv("FAKE_NVML_FAIL_MEM");
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_OK);
    CHECK(snap.gpus[1].known);
    CHECK_U64(snap.gpus[1].free_bytes, 2 * GIB + 123);
    mg__gpu_nvml.close(st);
    CHECK_INT(calls("nvmlShutdown", -1), 1);
}

static void test_zero_total(void)
{
    /* Unified-memory iGPUs report total 0: no figures, no division by 0. */
    reset_env();
    setenv("FAKE_NVML_COUNT", "1", 1);
    set_gpu(0, "Fake GB10", UUID0, 0, 0, 0);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_ERROR);
    CHECK(!snap.gpus[0].known);
    CHECK_CONTAINS(logbuf, "total memory is 0");
    mg__gpu_nvml.close(st);
}

/* Opens with `visible`, queries, and checks the NVML indices listed. */
static void check_visible(const char *visible, const unsigned *want,
                          unsigned nwant)
{
    reset_env();
    set_three();
    void *st;
    mg_gpu_state why = open_fake(&st, visible);
    if (nwant == 0) {
        CHECK_INT(why, MG_GPU_NO_DEVICE);
        CHECK(st == NULL);
        CHECK_INT(calls("nvmlShutdown", -1), 1);
        return;
    }
    CHECK_INT(why, MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_OK);
    CHECK_INT(snap.gpu_count, nwant);
    static const uint64_t totals[] = {80 * GIB, 24 * GIB, 16 * GIB};
    static const char *uuids[] = {UUID0, UUID1, UUID2};
    for (unsigned k = 0; k < nwant && k < snap.gpu_count; k++) {
        CHECK_INT(snap.gpus[k].index, want[k]);
        CHECK_STR(snap.gpus[k].uuid, uuids[want[k]]);
        CHECK_U64(snap.gpus[k].total_bytes, totals[want[k]]);
        CHECK(snap.gpus[k].known);
    }
    mg__gpu_nvml.close(st);
}

static void test_visible_all(void)
{
    static const unsigned w[] = {0, 1, 2};
    check_visible(NULL, w, 3);
}

static void test_visible_one(void)
{
    static const unsigned w[] = {1};
    check_visible("1", w, 1);
}

static void test_visible_order(void)
{
    static const unsigned w[] = {1, 0};
    check_visible("1,0", w, 2);
}

static void test_visible_stops_at_invalid(void)
{
    static const unsigned w[] = {0};
    check_visible("0,x,1", w, 1);
    CHECK_CONTAINS(logbuf, "'x'");
    check_visible("0,7,1", w, 1); /* out of range is invalid too */
}

static void test_visible_hidden(void)
{
    check_visible("-1", NULL, 0);
    check_visible("", NULL, 0);
    check_visible("-1,0", NULL, 0); /* nothing after the invalid entry */
}

static void test_visible_duplicates_and_blanks(void)
{
    static const unsigned w[] = {2, 0};
    check_visible(" 2, 0,2 ,0", w, 2);
}

static void test_visible_uuid(void)
{
    static const unsigned w[] = {2, 0};
    check_visible(UUID2 "," UUID0, w, 2);
}

static void test_visible_uuid_prefix(void)
{
    static const unsigned w1[] = {1};
    check_visible("GPU-11119", w1, 1);
    static const unsigned w2[] = {2, 1};
    check_visible("GPU-7,GPU-11119999-AAAA", w2, 2); /* hex in either case */
    /* "GPU-1111" fits devices 0 and 1: ambiguous, so invalid, and the
     * list stops there. */
    static const unsigned w3[] = {2};
    check_visible("2,GPU-1111,0", w3, 1);
    /* A UUID that names no device is invalid too. */
    check_visible("GPU-deadbeef,0", NULL, 0);
}

static void test_visible_mig(void)
{
    static const unsigned w[] = {0, 2};
    check_visible("0,MIG-11111111-2222-3333-4444-555555555555,2", w, 2);
    CHECK_CONTAINS(logbuf, "MIG");
    check_visible("MIG-GPU-11111111-2222-3333-4444-555555555555/1/0", NULL, 0);
    CHECK_CONTAINS(logbuf, "not supported");
}

static void test_visible_max(void)
{
    /* More devices than MG_MAX_GPUS: the first MG_MAX_GPUS are listed. */
    reset_env();
    setenv("FAKE_NVML_COUNT", "20", 1);
    void *st;
    CHECK_INT(open_fake(&st, NULL), MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_count, MG_MAX_GPUS);
    CHECK_INT(snap.gpus[MG_MAX_GPUS - 1].index, MG_MAX_GPUS - 1);
    /* The fake's defaults: 24 GiB, 18907922432 free, 400 MiB reserved. */
    CHECK_U64(snap.gpus[MG_MAX_GPUS - 1].total_bytes, 25769803776ull);
    CHECK_U64(snap.gpus[MG_MAX_GPUS - 1].free_bytes, 18907922432ull);
    CHECK_U64(snap.gpus[MG_MAX_GPUS - 1].reserved_bytes, 419430400ull);
    mg__gpu_nvml.close(st);

    /* A UUID reaches a device beyond the first MG_MAX_GPUS. */
    reset_env();
    setenv("FAKE_NVML_COUNT", "20", 1);
    set_gpu(18, "Far", UUID2, 8 * GIB, 4 * GIB, 0);
    CHECK_INT(open_fake(&st, UUID2), MG_GPU_OK);
    if (!st) return;
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_count, 1);
    CHECK_INT(snap.gpus[0].index, 18);
    CHECK_U64(snap.gpus[0].total_bytes, 8 * GIB);
    CHECK_NEAR(snap.gpus[0].used_frac, 0.5, 0.0);
    mg__gpu_nvml.close(st);
}

static void test_no_log(void)
{
    /* A NULL log is allowed everywhere. */
    reset_env();
    setenv("FAKE_NVML_FAIL_MEM", "0", 1);
    void *st = NULL;
    mg_gpu_state why = MG_GPU_DISABLED;
    CHECK_INT(mg__gpu_nvml.open(&st, MG_FAKE_NVML, "0,MIG-x,zz", NULL, &why),
              0);
    CHECK_INT(why, MG_GPU_OK);
    if (!st) return;
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__gpu_nvml.query(st, &snap);
    CHECK_INT(snap.gpu_state, MG_GPU_ERROR);
    mg__gpu_nvml.close(st);
}

int main(void)
{
    MG_RUN(test_no_library);
    MG_RUN(test_missing_symbol);
    MG_RUN(test_init_failure);
    MG_RUN(test_zero_devices);
    MG_RUN(test_two_devices_v2);
    MG_RUN(test_v1_fallback_no_v2);
    MG_RUN(test_v1_fallback_version_mismatch);
    MG_RUN(test_v1_fallback_not_supported);
    MG_RUN(test_v2_other_error_no_fallback);
    MG_RUN(test_lost_device);
    MG_RUN(test_zero_total);
    MG_RUN(test_visible_all);
    MG_RUN(test_visible_one);
    MG_RUN(test_visible_order);
    MG_RUN(test_visible_stops_at_invalid);
    MG_RUN(test_visible_hidden);
    MG_RUN(test_visible_duplicates_and_blanks);
    MG_RUN(test_visible_uuid);
    MG_RUN(test_visible_uuid_prefix);
    MG_RUN(test_visible_mig);
    MG_RUN(test_visible_max);
    MG_RUN(test_no_log);
    unlink(call_log);
    return mg_test_exit();
}
