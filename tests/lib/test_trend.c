/* SPDX-License-Identifier: MIT */
/*
 * test_trend.c: the growth of memory (trend.c, mg_fill) and what the policy
 * does with it (mg_classify's by_trend), on hand-built snapshot sequences:
 * the least-squares rate against the exact slope of a ramp with jitter, the
 * time to full, when a rate is unknown (too few points, too short a span,
 * points too old), the process tree's growth from its RSS sum and a fork
 * not read as growth, time going backwards; then the prediction: a
 * warn that fills within the lead is critical, a safe ramp is not, a slow
 * ramp is not, --no-predict is not, and the texts and JSON that say so.
 * The end-to-end case (a real process ramping under memguard run) is in
 * test_run.c.
 */
#include "internal.h"
#include "mg_test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

/* A machine-RAM-only snapshot at time t with `used` of `total`. */
static mg_snapshot ram_snap(uint64_t t_ms, uint64_t used, uint64_t total)
{
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    s.time_ms = t_ms;
    s.ram.known = true;
    s.ram.source = MG_RAM_SOURCE_MEMINFO;
    s.ram.total_bytes = total;
    s.ram.used_bytes = used;
    s.ram.available_bytes = total > used ? total - used : 0;
    s.ram.used_frac = (double)used / (double)total;
    s.ram.nlimits = 1;
    s.ram.limits[0].source = MG_RAM_SOURCE_MEMINFO;
    s.ram.limits[0].total_bytes = total;
    s.ram.limits[0].used_bytes = used;
    return s;
}

/* A ramp of `rate` bytes/s sampled every `step_ms`, with +-jitter bytes
 * alternating, `n` points from t0; the last snapshot is returned. */
static mg_snapshot ramp(mg__trend *tr, uint64_t t0, unsigned n, unsigned step_ms, double base,
                        double rate, double jitter, uint64_t total)
{
    mg_snapshot s;
    memset(&s, 0, sizeof s);
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = t0 + (uint64_t)i * step_ms;
        double used = base + rate * (double)(i * step_ms) / 1000.0 + ((i & 1) ? jitter : -jitter);
        s = ram_snap(t, (uint64_t)used, total);
        mg__trend_note(tr, &s);
    }
    return s;
}

static void test_rate_of_a_ramp(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    uint64_t total = 16ull << 30;
    double rate = 200.0 * 1024 * 1024; /* 200 MiB/s */
    mg_snapshot s = ramp(&tr, 1000, 8, 20, 4.0 * GIB, rate, 0.0, total);
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s / rate, 1.0, 1e-6);
    double left = (double)(total - s.ram.used_bytes);
    CHECK_NEAR(s.ram.fill.seconds_to_full, left / rate, 1e-3);
    CHECK_INT(s.ram.fill_source, MG_RAM_SOURCE_MEMINFO);

    /* Alternating jitter of 2 MiB: a last-minus-first slope would be off by
     * 4 MiB over 140 ms (~28 MiB/s, 14 %); least squares stays within 5 %. */
    memset(&tr, 0, sizeof tr);
    s = ramp(&tr, 1000, 8, 20, 4.0 * GIB, rate, 2.0 * 1024 * 1024, total);
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s / rate, 1.0, 0.05);
}

static void test_unknown_until_enough(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    uint64_t total = 8ull << 30;
    mg_snapshot s = ramp(&tr, 0, 2, 100, 1.0 * GIB, 1e8, 0, total);
    CHECK(!s.ram.fill.known); /* two points */
    s = ramp(&tr, 200, 1, 100, 1.0 * GIB, 1e8, 0, total);
    CHECK(s.ram.fill.known); /* the third, 200 ms after the first */

    memset(&tr, 0, sizeof tr);
    s = ramp(&tr, 0, 5, 10, 1.0 * GIB, 1e8, 0, total); /* 40 ms span */
    CHECK(!s.ram.fill.known);
    s = ramp(&tr, 50, 1, 10, 1.0 * GIB, 1e8, 0, total); /* 50 ms */
    CHECK(s.ram.fill.known);

    /* A snapshot that never went through trend.c says unknown, and JSON
     * says null, never 0. */
    mg_snapshot raw = ram_snap(0, 1ull << 30, total);
    CHECK(!raw.ram.fill.known);
    char buf[8192];
    CHECK(mg_format_json(NULL, &raw, NULL, buf, sizeof buf) > 0);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ram"), "fill")));
    cJSON_Delete(j);
}

static void test_old_points_drop_out(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    uint64_t total = 8ull << 30;
    /* A steep ramp long ago, then a flat stretch: only the flat one
     * counts once the ramp is older than 5 s. */
    ramp(&tr, 0, 4, 100, 1.0 * GIB, 2e9, 0, total);
    mg_snapshot s = ramp(&tr, 6000, 3, 100, 2.0 * GIB, 0.0, 0, total);
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s, 0.0, 1.0);
    CHECK(isinf(s.ram.fill.seconds_to_full)); /* not filling */
}

static void test_shrinking_and_full(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    uint64_t total = 8ull << 30;
    mg_snapshot s = ramp(&tr, 0, 6, 50, 6.0 * GIB, -1e8, 0, total);
    CHECK(s.ram.fill.known);
    CHECK(s.ram.fill.rate_bytes_per_s < 0);
    CHECK(isinf(s.ram.fill.seconds_to_full));

    memset(&tr, 0, sizeof tr);
    s = ramp(&tr, 0, 3, 50, 8.0 * GIB, 1e8, 0, total); /* past full */
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.seconds_to_full, 0.0, 0.0);
}

/* A budget snapshot: the judged figure `used` (PSS or its estimate) and
 * the RSS sum `rss` of `nprocs` members. */
static mg_snapshot budget_snap(uint64_t t, uint64_t used, uint64_t rss, unsigned nprocs)
{
    uint64_t budget = 1ull << 30;
    mg_snapshot s = ram_snap(t, used, budget);
    s.ram.source = MG_RAM_SOURCE_BUDGET;
    s.ram.limits[0].source = MG_RAM_SOURCE_BUDGET;
    s.tree.known = true;
    s.tree.nprocs = nprocs;
    s.tree.rss_bytes = rss;
    s.tree.used_bytes = used;
    return s;
}

/* The budget's growth is the RSS sum's, read at every sample, whatever the
 * judged figure (the cheap sum, a PSS reading, an estimate between two);
 * a fork is not growth: a new member count starts over. */
static void test_tree_growth_from_rss(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    const uint64_t M = 1ull << 20;
    mg_snapshot s;
    for (unsigned i = 0; i < 4; i++) {
        /* PSS 300 + 10i MiB, RSS sum 700 + 10i: 200 MiB/s either way; the
         * judged figure switching to PSS does not read as a drop */
        s = budget_snap(i * 50u, i < 2 ? (700 + 10 * i) * M : (300 + 10 * i) * M,
                        (700 + 10 * i) * M, 3);
        mg__trend_note(&tr, &s);
    }
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s / (200.0 * (double)M), 1.0, 1e-6);
    /* the time to full is from the judged figure: 1024 - 330 MiB left */
    CHECK_NEAR(s.ram.fill.seconds_to_full, (1024.0 - 330.0) / 200.0, 1e-6);
    /* A worker forks: the RSS sum jumps by the parent's size. */
    s = budget_snap(200, 345 * M, 1100 * M, 4);
    mg__trend_note(&tr, &s);
    CHECK(!s.ram.fill.known);
    s = budget_snap(250, 350 * M, 1110 * M, 4);
    mg__trend_note(&tr, &s);
    s = budget_snap(300, 360 * M, 1120 * M, 4);
    mg__trend_note(&tr, &s);
    CHECK(s.ram.fill.known);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s / (200.0 * (double)M), 1.0, 1e-6);
}

static void test_time_backwards_starts_over(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    uint64_t total = 8ull << 30;
    ramp(&tr, 10000, 4, 50, 1.0 * GIB, 1e9, 0, total);
    mg_snapshot s = ramp(&tr, 0, 2, 50, 1.0 * GIB, 1e9, 0, total);
    CHECK(!s.ram.fill.known);
}

static void test_gpu_and_soonest_limit(void)
{
    mg__trend tr;
    memset(&tr, 0, sizeof tr);
    mg_snapshot s;
    for (unsigned i = 0; i < 4; i++) {
        s = ram_snap(i * 100u, (4ull << 30), 16ull << 30); /* machine flat */
        /* a cgroup limit filling at 100 MiB/s */
        s.ram.nlimits = 2;
        s.ram.limits[1].source = MG_RAM_SOURCE_CGROUP;
        s.ram.limits[1].total_bytes = 2ull << 30;
        s.ram.limits[1].used_bytes = (1ull << 30) + i * (10ull << 20);
        s.gpu_count = 1;
        s.gpus[0].known = true;
        s.gpus[0].total_bytes = 12ull << 30;
        s.gpus[0].free_bytes = (6ull << 30) - i * (100ull << 20); /* 1000 MiB/s */
        mg__trend_note(&tr, &s);
    }
    CHECK(s.ram.fill.known);
    CHECK_INT(s.ram.fill_source, MG_RAM_SOURCE_CGROUP);
    CHECK_NEAR(s.ram.fill.rate_bytes_per_s / (100.0 * 1024 * 1024), 1.0, 1e-6);
    CHECK(s.gpus[0].fill.known);
    CHECK_NEAR(s.gpus[0].fill.rate_bytes_per_s / (1000.0 * 1024 * 1024), 1.0, 1e-6);
    CHECK_NEAR(s.gpus[0].fill.seconds_to_full,
               (double)s.gpus[0].free_bytes / (1000.0 * 1024 * 1024), 1e-6);
}

/* ---- the policy ------------------------------------------------------------ */

static mg_snapshot with_fill(double frac, double rate, double seconds)
{
    uint64_t total = 16ull << 30;
    mg_snapshot s = ram_snap(0, (uint64_t)(frac * (double)total), total);
    s.ram.fill = (mg_fill){true, rate, seconds};
    return s;
}

static void test_prediction(void)
{
    mg_config c = {0}; /* defaults: warn 0.85, stop 0.88, lead 3 s */
    mg_verdict v;
    mg_snapshot s = with_fill(0.86, 2e9, 1.0);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(v.by_trend);
    CHECK_NEAR(v.seconds_to_full, 1.0, 0);
    CHECK_NEAR(v.rate_bytes_per_s, 2e9, 0);
    CHECK_NEAR(v.threshold_frac, 0.85, 0);

    s = with_fill(0.86, 2e9, 3.5); /* beyond the lead */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    CHECK(!v.by_trend);
    c.predict_lead_ms = 4000;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    c.predict_lead_ms = 0;

    s = with_fill(0.60, 8e9, 0.5); /* a burst far below warn: shown only */
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_SAFE);
    s = with_fill(0.86, -1e8, INFINITY);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    s = with_fill(0.86, 2e9, 1.0);
    s.ram.fill.known = false;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    s.ram.fill.known = true;
    c.no_predict = true;
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_WARN);
    c.no_predict = false;

    /* Past stop it is critical by the threshold, not the trend. */
    s = with_fill(0.90, 2e9, 1.0);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK(!v.by_trend);

    /* A GPU at warn filling in 0.2 s. */
    s = with_fill(0.10, 0, INFINITY);
    s.gpu_count = 1;
    s.gpu_state = MG_GPU_OK;
    s.gpus[0] = (mg_gpu){.index = 0, .known = true, .total_bytes = 12ull << 30,
                         .free_bytes = 1ull << 30, .used_frac = 11.0 / 12.0};
    s.gpus[0].fill = (mg_fill){true, 5e9, 0.2};
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    CHECK_INT(v.resource, MG_RES_GPU);
    CHECK(v.by_trend);
}

static void test_texts(void)
{
    mg_config c = {0};
    mg_verdict v;
    mg_snapshot s = with_fill(0.86, 8.0 * GIB, 0.4);
    CHECK_INT(mg_classify(&c, &s, NULL, &v), MG_LEVEL_CRITICAL);
    char buf[16384];
    mg_text_opts en = {MG_LANG_EN, false}, ja = {MG_LANG_JA, false};
    CHECK(mg_format_warning(&v, &en, -1, buf, sizeof buf) > 0);
    CHECK_CONTAINS(buf, "RAM filling fast: 86.0% (13.76GB/16.0GB), full in ~0.4s at 8.0GB/s");
    CHECK(mg_format_warning(&v, &ja, -1, buf, sizeof buf) > 0);
    CHECK_CONTAINS(buf, "RAMが急増中: 86.0%");
    CHECK_CONTAINS(buf, "約0.4sで満杯 (8.0GB/s)");

    s = with_fill(0.30, 210.0 * 1024 * 1024, 12.4);
    CHECK(mg_format_system_check(&s, &en, buf, sizeof buf) > 0);
    CHECK_CONTAINS(buf, "RAM growth: 210MB/s, full in ~12s\n");
    s.ram.fill = (mg_fill){true, -5e6, INFINITY};
    CHECK(mg_format_system_check(&s, &en, buf, sizeof buf) > 0);
    CHECK_CONTAINS(buf, "RAM growth: none\n");

    /* JSON: the verdict's trend and the thresholds' lead. */
    s = with_fill(0.86, 8.0 * GIB, 0.4);
    CHECK(mg_format_json(&c, &s, &v, buf, sizeof buf) > 0);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    cJSON *r = cJSON_GetObjectItem(j, "reason");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "by_trend")));
    CHECK_NEAR(cJSON_GetObjectItem(r, "seconds_to_full")->valuedouble, 0.4, 1e-9);
    CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ram"), "fill"),
                                   "rate_bytes_per_s")->valuedouble / (8.0 * GIB), 1.0, 1e-5);
    CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "thresholds"),
                                   "predict_lead_ms")->valuedouble, 3000, 0);
    cJSON_Delete(j);
    c.no_predict = true;
    CHECK(mg_format_json(&c, &s, NULL, buf, sizeof buf) > 0);
    j = cJSON_Parse(buf);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "thresholds"),
                                           "predict_lead_ms")));
    CHECK_STR(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    cJSON_Delete(j);
}

static void test_lead_from_save(void)
{
    CHECK_INT((int)mg_predict_lead_ms(0), 1000);
    CHECK_INT((int)mg_predict_lead_ms(750), 2500);
    CHECK_INT((int)mg_predict_lead_ms(UINT64_MAX), 600000);
    CHECK_INT(mg_set_predict_lead_ms(NULL, 10), MG_EINVAL);
    mg_config cfg = {.no_gpu = true};
    int err;
    mg_ctx *ctx = mg_create(&cfg, &err);
    CHECK(ctx != NULL);
    if (!ctx) return;
    CHECK_INT((int)mg_ctx_config(ctx)->predict_lead_ms, 3000);
    CHECK_INT(mg_set_predict_lead_ms(ctx, 0), MG_EINVAL);
    CHECK_INT(mg_set_predict_lead_ms(ctx, 2500), 0);
    CHECK_INT((int)mg_ctx_config(ctx)->predict_lead_ms, 2500);
    mg_destroy(ctx);
}

int main(void)
{
    MG_RUN(test_rate_of_a_ramp);
    MG_RUN(test_unknown_until_enough);
    MG_RUN(test_old_points_drop_out);
    MG_RUN(test_shrinking_and_full);
    MG_RUN(test_tree_growth_from_rss);
    MG_RUN(test_time_backwards_starts_over);
    MG_RUN(test_gpu_and_soonest_limit);
    MG_RUN(test_prediction);
    MG_RUN(test_texts);
    MG_RUN(test_lead_from_save);
    return mg_test_exit();
}
