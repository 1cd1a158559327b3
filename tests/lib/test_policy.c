/* SPDX-License-Identifier: MIT */
/*
 * test_policy.c: mg_classify() and mg_next_poll_ms() on hand-built
 * snapshots: every level boundary for RAM and GPU, floors, hysteresis,
 * unknown sources, several GPUs, the earlyoom poll formula with its
 * clamping and its floor at 10x a sample's cost, and the line below which
 * the RSS sum proves a budget safe (mg__budget_proven_safe). No I/O: the configs are filled field by field, so these tests
 * do not depend on mg_config_resolve().
 */
#include "internal.h"
#include "mg_fixture.h"
#include "mg_test.h"

static void set_ram(mg_snapshot *s, double frac, uint64_t total)
{
    s->ram.known = true;
    s->ram.source = MG_RAM_SOURCE_MEMINFO;
    s->ram.total_bytes = total;
    s->ram.used_bytes = (uint64_t)(frac * (double)total);
    s->ram.available_bytes = total - s->ram.used_bytes;
    s->ram.used_frac = frac;
    s->ram.nlimits = 1;
    s->ram.limits[0].source = MG_RAM_SOURCE_MEMINFO;
    s->ram.limits[0].total_bytes = total;
    s->ram.limits[0].used_bytes = s->ram.used_bytes;
}

static void add_gpu(mg_snapshot *s, double frac, uint64_t total)
{
    mg_gpu *g = &s->gpus[s->gpu_count];
    g->index = s->gpu_count++;
    snprintf(g->name, sizeof g->name, "GPU %u", g->index);
    g->known = true;
    g->total_bytes = total;
    g->free_bytes = total - (uint64_t)(frac * (double)total);
    g->used_frac = frac;
    s->gpu_state = MG_GPU_OK;
}

/* RAM only (no GPU). */
static mg_snapshot snap_ram(double frac)
{
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    set_ram(&s, frac, 32 * GIB);
    s.gpu_state = MG_GPU_NO_DEVICE;
    return s;
}

/* One 12 GiB GPU, RAM comfortably safe. */
static mg_snapshot snap_gpu(double frac)
{
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    set_ram(&s, 0.30, 32 * GIB);
    add_gpu(&s, frac, 12 * GIB);
    return s;
}

static void test_level_names(void)
{
    CHECK_STR(mg_level_name(MG_LEVEL_SAFE), "safe");
    CHECK_STR(mg_level_name(MG_LEVEL_WARN), "warn");
    CHECK_STR(mg_level_name(MG_LEVEL_CRITICAL), "critical");
    CHECK_STR(mg_level_name((mg_level)9), "unknown");
    CHECK_STR(mg_ram_source_name(MG_RAM_SOURCE_MEMINFO), "meminfo");
    CHECK_STR(mg_ram_source_name(MG_RAM_SOURCE_CGROUP), "cgroup");
    CHECK_STR(mg_ram_source_name(MG_RAM_SOURCE_BUDGET), "budget");
}

static const struct {
    double frac;
    mg_level level;
    double threshold;
} RAM_TABLE[] = {
    {0.00, MG_LEVEL_SAFE, 0.0},     {0.50, MG_LEVEL_SAFE, 0.0},
    {0.8499, MG_LEVEL_SAFE, 0.0},   {0.85, MG_LEVEL_WARN, 0.85},
    {0.8501, MG_LEVEL_WARN, 0.85},  {0.8799, MG_LEVEL_WARN, 0.85},
    {0.88, MG_LEVEL_CRITICAL, 0.88}, {0.8801, MG_LEVEL_CRITICAL, 0.88},
    {1.00, MG_LEVEL_CRITICAL, 0.88}, {1.25, MG_LEVEL_CRITICAL, 0.88},
};

static void test_ram_boundaries(void)
{
    mg_config c = cfg_seed();
    for (size_t i = 0; i < sizeof RAM_TABLE / sizeof RAM_TABLE[0]; i++) {
        mg_snapshot s = snap_ram(RAM_TABLE[i].frac);
        mg_verdict v;
        mg_level l = mg_classify(&c, &s, NULL, &v);
        if (l != RAM_TABLE[i].level)
            fprintf(stderr, "  RAM frac %.4f\n", RAM_TABLE[i].frac);
        CHECK_INT(l, RAM_TABLE[i].level);
        CHECK_INT(v.level, l);
        CHECK_INT(v.unknown, 0);
        if (l == MG_LEVEL_SAFE) {
            CHECK_INT(v.resource, MG_RES_NONE);
            CHECK_NEAR(v.value_frac, 0.0, 0.0);
        } else {
            CHECK_INT(v.resource, MG_RES_RAM);
            CHECK_NEAR(v.value_frac, RAM_TABLE[i].frac, 0.0);
            CHECK_NEAR(v.threshold_frac, RAM_TABLE[i].threshold, 0.0);
            CHECK(!v.by_floor);
            CHECK_U64(v.floor_bytes, 0);
            CHECK_U64(v.total_bytes, 32 * GIB);
            CHECK_U64(v.used_bytes, s.ram.used_bytes);
        }
    }
}

static const struct {
    double frac;
    mg_level level;
} GPU_TABLE[] = {
    {0.10, MG_LEVEL_SAFE},     {0.8999, MG_LEVEL_SAFE},
    {0.90, MG_LEVEL_WARN},     {0.9001, MG_LEVEL_WARN},
    {0.9199, MG_LEVEL_WARN},   {0.92, MG_LEVEL_CRITICAL},
    {0.9201, MG_LEVEL_CRITICAL}, {1.00, MG_LEVEL_CRITICAL},
};

static void test_gpu_boundaries(void)
{
    mg_config c = cfg_seed();
    for (size_t i = 0; i < sizeof GPU_TABLE / sizeof GPU_TABLE[0]; i++) {
        mg_snapshot s = snap_gpu(GPU_TABLE[i].frac);
        mg_verdict v;
        mg_level l = mg_classify(&c, &s, NULL, &v);
        if (l != GPU_TABLE[i].level)
            fprintf(stderr, "  GPU frac %.4f\n", GPU_TABLE[i].frac);
        CHECK_INT(l, GPU_TABLE[i].level);
        if (l != MG_LEVEL_SAFE) {
            CHECK_INT(v.resource, MG_RES_GPU);
            CHECK_INT(v.gpu_index, 0);
            CHECK_NEAR(v.value_frac, GPU_TABLE[i].frac, 0.0);
            CHECK_NEAR(v.threshold_frac, l == MG_LEVEL_WARN ? 0.90 : 0.92, 0.0);
            CHECK(!v.by_floor);
            CHECK_U64(v.floor_bytes, 0);
            CHECK_U64(v.total_bytes, 12 * GIB);
            CHECK_U64(v.used_bytes, 12 * GIB - s.gpus[0].free_bytes);
        }
    }
}

/* Custom thresholds (the seed's batch-8 row: GPU 85/88, RAM 80/84). */
static void test_custom_thresholds(void)
{
    mg_config c = cfg_seed();
    c.warn_gpu_frac = 0.85;
    c.stop_gpu_frac = 0.88;
    c.warn_ram_frac = 0.80;
    c.stop_ram_frac = 0.84;
    mg_snapshot s = snap_gpu(0.86);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_WARN);
    s = snap_gpu(0.88);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_CRITICAL);
    s = snap_ram(0.81);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_WARN);
    s = snap_ram(0.84);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_CRITICAL);
}

/* A cfg left at zero reads as the seed's defaults, not as "0 % = stop". */
static void test_zero_cfg_is_defaults(void)
{
    mg_config c;
    memset(&c, 0, sizeof c);
    mg_snapshot s = snap_gpu(0.5);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_SAFE);
    s = snap_gpu(0.91);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_WARN);
    s = snap_ram(0.88);
    CHECK_INT(mg_classify(&c, &s, NULL, NULL), MG_LEVEL_CRITICAL);
}

/* Nothing to judge is an error, never "safe". */
static void test_null_is_an_error(void)
{
    mg_config c;
    memset(&c, 0, sizeof c);
    mg_snapshot s = snap_ram(0.5);
    mg_verdict v;
    memset(&v, 0xff, sizeof v);
    CHECK_INT(mg_classify(NULL, &s, NULL, &v), MG_LEVEL_ERROR);
    CHECK_INT(MG_LEVEL_ERROR, MG_EINVAL);
    CHECK(mg_classify(NULL, &s, NULL, &v) < 0);
    CHECK_INT((int)v.unknown, MG_UNKNOWN_RAM | MG_UNKNOWN_GPU);
    CHECK_INT(mg_classify(&c, NULL, NULL, &v), MG_LEVEL_ERROR);
    CHECK_INT(mg_classify(&c, NULL, NULL, NULL), MG_LEVEL_ERROR);
    CHECK_STR(mg_level_name(MG_LEVEL_ERROR), "unknown");
}

static void test_ram_floor(void)
{
    mg_config c = cfg_seed();
    c.min_free_ram_bytes = 2 * GIB;
    mg_verdict v;

    /* 50 % of 3 GiB used leaves 1.5 GiB free: below a 2 GiB floor. */
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    set_ram(&s, 0.5, 3 * GIB);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_RAM);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 2 * GIB);
    CHECK_U64(v.used_bytes, 3 * GIB / 2);
    CHECK_U64(v.total_bytes, 3 * GIB);
    /* The floor also as a used fraction: 1 - 2/3, consistent with the
     * bytes. */
    CHECK_NEAR(v.threshold_frac, 1.0 / 3.0, 1e-12);
    CHECK_NEAR((1.0 - v.threshold_frac) * 3.0, 2.0, 1e-9);

    /* Exactly at the floor is not below it. */
    s.ram.available_bytes = 2 * GIB;
    s.ram.used_bytes = 1 * GIB;
    s.ram.used_frac = 1.0 / 3.0;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    s.ram.available_bytes = 2 * GIB - 1;
    s.ram.used_bytes = 1 * GIB + 1;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 2 * GIB);

    /* The stricter of fraction and floor: far above the floor, the fraction
     * still stops it, and is what the verdict reports. */
    s = snap_ram(0.89); /* 32 GiB: 3.5 GiB free > 2 GiB */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(!v.by_floor);
    CHECK_U64(v.floor_bytes, 0);
    CHECK_NEAR(v.threshold_frac, 0.88, 0.0);
    s = snap_ram(0.86);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_U64(v.floor_bytes, 0);
    /* Both crossed: the fraction is reported. */
    c.min_free_ram_bytes = 8 * GIB;
    s = snap_ram(0.90);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(!v.by_floor);
    CHECK_U64(v.floor_bytes, 0);
    /* Floor alone, at a fraction that is only a warning. */
    s = snap_ram(0.86); /* 4.48 GiB free < 8 GiB */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 8 * GIB);
    CHECK_NEAR(v.threshold_frac, 0.75, 1e-12);
    /* No floor: 0 means none even with nothing free. */
    c.min_free_ram_bytes = 0;
    s = snap_ram(0.5);
    s.ram.available_bytes = 0;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
}

static void test_gpu_floor(void)
{
    mg_config c = cfg_seed();
    c.min_free_gpu_bytes = 2 * GIB;
    mg_verdict v;
    mg_snapshot s = snap_gpu(0.85); /* 1.8 GiB free of 12 */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 2 * GIB);
    CHECK_NEAR((1.0 - v.threshold_frac) * (double)v.total_bytes,
               (double)(2 * GIB), 1.0);
    s = snap_gpu(0.80); /* 2.4 GiB free */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    s.gpus[0].free_bytes = 2 * GIB;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    s.gpus[0].free_bytes = 2 * GIB - 1;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_U64(v.floor_bytes, 2 * GIB);
    /* A floor larger than the device: always critical, its fraction
     * negative, the bytes exact. */
    c.min_free_gpu_bytes = 16 * GIB;
    s = snap_gpu(0.10);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 16 * GIB);
    CHECK_NEAR(v.threshold_frac, 1.0 - 16.0 / 12.0, 1e-12);
    /* The floor is per device: the second GPU's lack of room decides. */
    c.min_free_gpu_bytes = 1 * GIB;
    memset(&s, 0, sizeof s);
    set_ram(&s, 0.3, 32 * GIB);
    add_gpu(&s, 0.5, 24 * GIB);
    add_gpu(&s, 0.5, 1 * GIB); /* 0.5 GiB free */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.gpu_index, 1);
    CHECK(v.by_floor);
    CHECK_U64(v.floor_bytes, 1 * GIB);
    CHECK_U64(v.total_bytes, 1 * GIB);
}

static void test_hysteresis(void)
{
    mg_config c = cfg_seed(); /* hysteresis 0.02 */
    mg_policy_state st = {MG_LEVEL_SAFE};
    mg_verdict v;

    mg_snapshot s = snap_gpu(0.90);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_WARN);
    CHECK_INT(st.last, MG_LEVEL_WARN);
    s = snap_gpu(0.885); /* >= 0.90 - 0.02: still warn */
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_WARN);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK_NEAR(v.threshold_frac, 0.90, 0.0);
    CHECK_NEAR(v.value_frac, 0.885, 0.0);
    s = snap_gpu(0.879); /* below 0.88: clears */
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_SAFE);
    CHECK_INT(st.last, MG_LEVEL_SAFE);
    s = snap_gpu(0.885); /* coming up from safe: no hysteresis */
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_SAFE);

    /* Stateless calls never apply it. */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);

    /* After a critical, a drop just below warn stays warn. */
    s = snap_gpu(0.95);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_CRITICAL);
    s = snap_gpu(0.89);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_WARN);
    /* Critical acts at once, without hysteresis, even from safe. */
    st.last = MG_LEVEL_SAFE;
    s = snap_gpu(0.92);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_CRITICAL);

    /* RAM too: 0.85 warn, 0.835 stays, 0.829 clears. */
    st.last = MG_LEVEL_SAFE;
    s = snap_ram(0.85);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_WARN);
    s = snap_ram(0.835);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_WARN);
    CHECK_INT(v.resource, MG_RES_RAM);
    s = snap_ram(0.829);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_SAFE);

    /* Negative hysteresis: none. */
    c.hysteresis_frac = -1.0;
    st.last = MG_LEVEL_WARN;
    s = snap_gpu(0.899);
    CHECK_INT(mg_classify(&c, &s, &st, &v), MG_LEVEL_SAFE);
}

static void test_unknown_never_silently_safe(void)
{
    mg_config c = cfg_seed();
    mg_verdict v;
    mg_snapshot s;

    /* Nothing known at all. */
    memset(&s, 0, sizeof s);
    s.gpu_state = MG_GPU_NO_LIBRARY;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    CHECK(v.unknown & MG_UNKNOWN_RAM);
    CHECK(!(v.unknown & MG_UNKNOWN_GPU)); /* no GPU is not an unknown GPU */

    /* RAM unknown, GPU warning: the level comes from the GPU, flag stays. */
    s = snap_gpu(0.91);
    s.ram.known = false;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK_INT(v.unknown, MG_UNKNOWN_RAM);

    /* A known flag with a NaN fraction is unknown, not safe. */
    s = snap_ram(0.5);
    s.ram.used_frac = NAN;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    CHECK(v.unknown & MG_UNKNOWN_RAM);

    /* A listed GPU without figures. */
    s = snap_gpu(0.5);
    s.gpus[0].known = false;
    s.gpus[0].used_frac = 0.99; /* meaningless: must be ignored */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    CHECK_INT(v.unknown, MG_UNKNOWN_GPU);

    /* A failed GPU query with no device listed. */
    s = snap_ram(0.2);
    s.gpu_state = MG_GPU_ERROR;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    CHECK_INT(v.unknown, MG_UNKNOWN_GPU);

    /* No snapshot: everything unknown, and an error rather than a level. */
    CHECK_INT(mg_classify(&c, NULL, NULL, &v), MG_LEVEL_ERROR);
    CHECK_INT(v.unknown, MG_UNKNOWN_RAM | MG_UNKNOWN_GPU);
}

static void test_worst_resource_decides(void)
{
    mg_config c = cfg_seed();
    mg_verdict v;
    mg_snapshot s;

    /* Second GPU critical, first only warning. */
    memset(&s, 0, sizeof s);
    set_ram(&s, 0.3, 32 * GIB);
    add_gpu(&s, 0.91, 12 * GIB);
    add_gpu(&s, 0.93, 24 * GIB);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK_INT(v.gpu_index, 1);
    CHECK_U64(v.total_bytes, 24 * GIB);
    CHECK_NEAR(v.value_frac, 0.93, 0.0);

    /* Both warning: the one further past its threshold. */
    s.gpus[0].used_frac = 0.915;
    s.gpus[1].used_frac = 0.905;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_INT(v.gpu_index, 0);
    s.gpus[0].used_frac = 0.905;
    s.gpus[1].used_frac = 0.915;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_INT(v.gpu_index, 1);

    /* The NVML index is reported, not the slot (CUDA_VISIBLE_DEVICES=3). */
    s.gpus[1].index = 3;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_INT(v.gpu_index, 3);

    /* RAM against GPU, relative to their own thresholds: RAM 0.87/0.85 =
     * 1.0235 beats GPU 0.915/0.90 = 1.0167. */
    set_ram(&s, 0.87, 32 * GIB);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK_INT(v.resource, MG_RES_RAM);
    /* RAM critical beats any GPU warning. */
    set_ram(&s, 0.88, 32 * GIB);
    s.gpus[1].used_frac = 0.9199;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_RAM);
    /* A critical GPU beats a warning RAM. */
    set_ram(&s, 0.87, 32 * GIB);
    s.gpus[0].used_frac = 0.92;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK_INT(v.gpu_index, 0);
}

/* The expected poll in ms, from the formula written out once more. */
static double poll_expect(double headroom, double rate)
{
    return headroom * 1000.0 / rate;
}

static void test_next_poll(void)
{
    mg_config c = cfg_seed();
    mg_snapshot s;

    /* Nothing known: the longest interval. */
    memset(&s, 0, sizeof s);
    CHECK_INT(mg_next_poll_ms(&c, &s), 1000);
    CHECK_INT(mg_next_poll_ms(&c, NULL), 1000);

    /* Lots of headroom: clamped to max. 0.38 * 32 GiB / 6000 MiB/s = 2.07 s */
    s = snap_ram(0.50);
    CHECK_INT(mg_next_poll_ms(&c, &s), 1000);

    /* In range: 0.02 * 32 GiB = 655.36 MiB at 6000 MiB/s = 109.2 ms. */
    s = snap_ram(0.86);
    double h = 0.88 * (double)(32 * GIB) - (double)s.ram.used_bytes;
    double want = poll_expect(h, 6000.0 * MIB);
    CHECK(want > 100 && want < 1000);
    CHECK_NEAR(mg_next_poll_ms(&c, &s), want, 1.0);

    /* Swap adds its own fill time: + 100 MiB / 800 MiB/s = 125 ms. */
    s.swap.known = true;
    s.swap.total_bytes = 1 * GIB;
    s.swap.free_bytes = 100 * MIB;
    CHECK_NEAR(mg_next_poll_ms(&c, &s), want + 125.0, 1.0);
    s.swap.known = false;

    /* Past the stop threshold: headroom 0, clamped to min. */
    s = snap_ram(0.95);
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);
    s = snap_ram(0.8799);
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);

    /* GPU: 12 GiB at 0.80, headroom 0.12 * 12 GiB = 1.44 GiB; at 10 GiB/s
     * that is 144 ms, less than RAM's (clamped) 1000, so the GPU decides. */
    s = snap_gpu(0.80);
    double gh = 0.92 * (double)(12 * GIB)
                - (double)(12 * GIB - s.gpus[0].free_bytes);
    CHECK_NEAR(mg_next_poll_ms(&c, &s), poll_expect(gh, (double)(10 * GIB)),
               1.0);
    /* A slower assumed GPU fill pushes it to the max. */
    c.gpu_fill_rate_bytes_per_s = 1 * GIB;
    CHECK_INT(mg_next_poll_ms(&c, &s), 1000);
    c.gpu_fill_rate_bytes_per_s = 10ull * GIB;

    /* The minimum over devices; an unknown device is skipped. */
    add_gpu(&s, 0.91, 12 * GIB); /* 0.01 * 12 GiB: 12 ms -> 100 */
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);
    s.gpus[1].known = false;
    CHECK_NEAR(mg_next_poll_ms(&c, &s), poll_expect(gh, (double)(10 * GIB)),
               1.0);

    /* A floor closer than the threshold shortens the headroom. */
    c.min_free_gpu_bytes = 6 * GIB / 5; /* free 2.4 GiB: 1.2 GiB headroom */
    s.gpu_count = 1;
    CHECK_NEAR(mg_next_poll_ms(&c, &s),
               poll_expect((double)(s.gpus[0].free_bytes - 6 * GIB / 5),
                           (double)(10 * GIB)), 1.0);
    c.min_free_gpu_bytes = 0;

    /* A budget with fewer bytes left than the machine decides, though the
     * machine is fuller in fraction: 300 MiB at 10 % has 0.78 * 300 MiB =
     * 234 MiB left, 39 ms at 6000 MiB/s; the machine at 50 % of 32 GiB has
     * seconds. */
    s = snap_ram(0.50);
    s.ram.nlimits = 2;
    s.ram.limits[1].source = MG_RAM_SOURCE_BUDGET;
    s.ram.limits[1].total_bytes = 300 * MIB;
    s.ram.limits[1].used_bytes = 30 * MIB;
    c.min_interval_ms = 10;
    CHECK_NEAR(mg_next_poll_ms(&c, &s), poll_expect(0.88 * 300.0 * MIB - 30.0 * MIB, 6000.0 * MIB),
               1.0);
    /* Swap does not stretch a budget's time. */
    s.swap.known = true;
    s.swap.free_bytes = 8 * GIB;
    CHECK_NEAR(mg_next_poll_ms(&c, &s), poll_expect(0.88 * 300.0 * MIB - 30.0 * MIB, 6000.0 * MIB),
               1.0);

    /* Custom clamp bounds. */
    c.min_interval_ms = 250;
    c.max_interval_ms = 500;
    s = snap_ram(0.95);
    CHECK_INT(mg_next_poll_ms(&c, &s), 250);
    s = snap_ram(0.10);
    CHECK_INT(mg_next_poll_ms(&c, &s), 500);

    /* Zero fields read as defaults (10..1000, 6000 MiB/s). */
    mg_config z;
    memset(&z, 0, sizeof z);
    s = snap_ram(0.86);
    CHECK_NEAR(mg_next_poll_ms(&z, &s), want, 1.0);
}

/* Below the line mg__budget_proven_safe draws, a budget figure is judged
 * safe even with hysteresis pending; at it (and above) it is not: the line
 * is exactly where the RSS upper bound stops settling anything. */
static void check_budget_line(const mg_config *c, uint64_t budget)
{
    int changes = 0;
    bool was_safe = true;
    for (uint64_t used = 0; used <= budget + budget / 8; used += budget / 4096 + 1) {
        mg_snapshot s;
        memset(&s, 0, sizeof s);
        s.ram.known = true;
        s.ram.source = MG_RAM_SOURCE_BUDGET;
        s.ram.total_bytes = budget;
        s.ram.used_bytes = used;
        s.ram.available_bytes = used < budget ? budget - used : 0;
        s.ram.used_frac = (double)used / (double)budget; /* as ram.c does */
        mg_policy_state st = {MG_LEVEL_WARN}; /* hysteresis pending */
        mg_level level = mg_classify(c, &s, &st, NULL);
        bool proven = mg__budget_proven_safe(c, used, budget);
        if (proven && level != MG_LEVEL_SAFE)
            MG_FAIL_("used %llu of %llu proven safe, judged %s", (unsigned long long)used,
                     (unsigned long long)budget, mg_level_name(level));
        if (!proven && level == MG_LEVEL_SAFE)
            MG_FAIL_("used %llu of %llu not proven safe, judged safe", (unsigned long long)used,
                     (unsigned long long)budget);
        if (proven != was_safe) changes++;
        was_safe = proven;
    }
    CHECK_INT(changes, 1); /* one line, crossed once */
}

static void test_budget_proven_safe(void)
{
    mg_config c = cfg_seed();
    check_budget_line(&c, 4 * GIB);
    check_budget_line(&c, 300 * MIB + 7);
    c.hysteresis_frac = -1; /* none: the line is warn itself */
    check_budget_line(&c, 4 * GIB);
    c.hysteresis_frac = 0.02;
    c.min_free_ram_bytes = GIB; /* the floor comes first: 3 GiB of 4 */
    check_budget_line(&c, 4 * GIB);
    CHECK(mg__budget_proven_safe(&c, 3 * GIB - 1, 4 * GIB));
    CHECK(!mg__budget_proven_safe(&c, 3 * GIB + 1, 4 * GIB));
    c.min_free_ram_bytes = 8 * GIB; /* larger than the budget: never */
    CHECK(!mg__budget_proven_safe(&c, 0, 4 * GIB));
    c.min_free_ram_bytes = 0;
    c.warn_ram_frac = 0.01; /* warn - hysteresis <= 0: never */
    c.stop_ram_frac = 0.5;
    CHECK(!mg__budget_proven_safe(&c, 0, 4 * GIB));
    CHECK(mg__budget_proven_safe(&c, 5, 0)); /* no budget: nothing to judge */
    mg_config z;
    memset(&z, 0, sizeof z); /* defaults: 0.85 - 0.02 */
    CHECK(mg__budget_proven_safe(&z, 829, 1000));
    CHECK(!mg__budget_proven_safe(&z, 830, 1000));
}

/* The cost floor: a leaky bucket of sampling work that drains at a tenth of
 * the wall time and holds a burst of 100 ms. */
static void test_next_poll_cost_floor(void)
{
    mg_config c = cfg_seed(); /* 100..1000 ms */
    mg_snapshot s = snap_ram(0.95); /* past stop: the minimum */
    s.sample_us = s.sample_backlog_us = 45;   /* an RSS sample: no effect */
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);
    s.sample_us = s.sample_backlog_us = 20000; /* a first 20 ms PSS read: */
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);   /* the burst covers it */
    s.sample_backlog_us = 80000;               /* 80 + 20 ms: still room */
    CHECK_INT(mg_next_poll_ms(&c, &s), 100);
    s.sample_backlog_us = 100000;              /* full: 10x the cost */
    CHECK_INT(mg_next_poll_ms(&c, &s), 200);
    s.sample_backlog_us = 100001;              /* rounded up */
    CHECK_INT(mg_next_poll_ms(&c, &s), 201);
    s.sample_us = 300000;                      /* beyond max_interval_ms */
    s.sample_backlog_us = 300000;
    CHECK_INT(mg_next_poll_ms(&c, &s), 5000);
    s = snap_ram(0.50);                        /* headroom says max already */
    s.sample_us = 50000;
    s.sample_backlog_us = 100000;
    CHECK_INT(mg_next_poll_ms(&c, &s), 1000);
    s.sample_us = UINT64_MAX;                  /* garbage cannot wrap to 0 */
    CHECK(mg_next_poll_ms(&c, &s) >= 1000);
    s.sample_us = 0;
    s.sample_backlog_us = UINT64_MAX;
    CHECK(mg_next_poll_ms(&c, &s) >= 1000);

    /* The steady state: cost C every T with the bucket full holds only
     * when T = 10 C (the backlog drains T / 10 and gains C per sample). */
    s = snap_ram(0.95);
    s.sample_us = 7000;
    s.sample_backlog_us = 100000;
    c.min_interval_ms = 1;
    CHECK_INT(mg_next_poll_ms(&c, &s), 70);
}

int main(void)
{
    MG_RUN(test_level_names);
    MG_RUN(test_ram_boundaries);
    MG_RUN(test_gpu_boundaries);
    MG_RUN(test_custom_thresholds);
    MG_RUN(test_zero_cfg_is_defaults);
    MG_RUN(test_null_is_an_error);
    MG_RUN(test_ram_floor);
    MG_RUN(test_gpu_floor);
    MG_RUN(test_hysteresis);
    MG_RUN(test_unknown_never_silently_safe);
    MG_RUN(test_worst_resource_decides);
    MG_RUN(test_next_poll);
    MG_RUN(test_next_poll_cost_floor);
    MG_RUN(test_budget_proven_safe);
    return mg_test_exit();
}
