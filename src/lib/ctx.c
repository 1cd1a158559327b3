/* SPDX-License-Identifier: MIT */
/*
 * ctx.c: the context: opening and closing the sources, and one sample
 * across all of them. The configuration's defaults and checks are
 * config.c's; the seed's one-call check, mg_check_memory_safety, is
 * safety.c's.
 *
 * Everything the library keeps between calls lives in struct mg_ctx: the
 * resolved configuration with its own copies of the path strings, the Linux
 * probe, the GPU backend state and the trainer's own figures. The decision
 * (policy.c) and the texts (report.c) never see the context.
 *
 * A sample measures its own cost (snapshot sample_us, wall clock: two
 * CLOCK_MONOTONIC reads, tens of ns), keeps the backlog of sampling work
 * that mg_next_poll_ms paces by (sample_backlog_us), and decides the
 * process tree's figure:
 * the cheap RSS sum while it proves a budget safe, the PSS sum from there
 * on (tree_figure below; probe_tree.c says what each counts). Every
 * sample's figures also go into the context's trend rings (trend.c), which
 * give the snapshot its growth rates (mg_fill).
 */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

struct mg_ctx {
    mg_config cfg;                 /* resolved; string fields point below */
    char proc_root[PATH_MAX];
    char cgroup_root[PATH_MAX];
    char nvml_library[PATH_MAX];
    char visible[512];
    mg__log log;
    mg__probe *probe;
    const mg__gpu_backend *gpu;
    void *gpu_state;               /* NULL when the backend is absent */
    mg_gpu_state gpu_open_state;   /* why, when it is */
    bool trainer_known;
    uint64_t trainer_allocated_bytes;
    uint64_t trainer_reserved_bytes;
    uint64_t backlog_us;           /* mg_snapshot.sample_backlog_us */
    uint64_t last_end_us;          /* when the last sample ended, 0 = none */
    /* The last PSS reading of the tree: the base of the estimate between
     * readings (tree_figure). */
    bool pss_base_known;
    uint64_t pss_base_bytes;       /* the PSS sum then */
    uint64_t rss_base_bytes;       /* the RSS sum of the same sample */
    uint64_t pss_read_us;          /* when it was read */
    uint64_t pss_cost_us;          /* what reading it cost */
    mg__trend trend;               /* the recent points of every figure */
};

/* ---- context ------------------------------------------------------------ */

static int copy_str(char *dst, size_t len, const char *src)
{
    return mg__path(dst, len, "%s", src);
}

mg_ctx *mg_create(const mg_config *cfg, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    char msg[256];
    mg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        *err = MG_ENOMEM;
        return NULL;
    }
    mg_config_resolve(cfg, &ctx->cfg);
    ctx->log = (mg__log){ctx->cfg.log_fn, ctx->cfg.log_user, ctx->cfg.log_level};
    int rc = mg_config_check(&ctx->cfg, msg, sizeof msg);
    if (rc < 0) {
        mg__logf(&ctx->log, MG_LOG_ERROR, "invalid configuration: %s", msg);
        goto out;
    }
    if ((rc = copy_str(ctx->proc_root, sizeof ctx->proc_root, ctx->cfg.proc_root)) < 0 ||
        (rc = copy_str(ctx->cgroup_root, sizeof ctx->cgroup_root, ctx->cfg.cgroup_root)) < 0 ||
        (rc = copy_str(ctx->nvml_library, sizeof ctx->nvml_library, ctx->cfg.nvml_library)) < 0) {
        rc = MG_ECONFIG;
        mg__logf(&ctx->log, MG_LOG_ERROR, "a source path is longer than %d bytes", PATH_MAX);
        goto out;
    }
    ctx->cfg.proc_root = ctx->proc_root;
    ctx->cfg.cgroup_root = ctx->cgroup_root;
    ctx->cfg.nvml_library = ctx->nvml_library;
    if (ctx->cfg.visible_devices) {
        if (copy_str(ctx->visible, sizeof ctx->visible, ctx->cfg.visible_devices) < 0) {
            rc = MG_ECONFIG;
            mg__logf(&ctx->log, MG_LOG_ERROR, "CUDA_VISIBLE_DEVICES is longer than %zu bytes",
                     sizeof ctx->visible - 1);
            goto out;
        }
        ctx->cfg.visible_devices = ctx->visible;
    }

    rc = mg__probe_open(&ctx->probe, ctx->proc_root, ctx->cgroup_root, ctx->cfg.pid, &ctx->log);
    if (rc < 0) {
        mg__logf(&ctx->log, MG_LOG_ERROR, "cannot read %s/meminfo: %s", ctx->proc_root,
                 mg_strerror(rc));
        goto out;
    }
    if (ctx->cfg.no_gpu) {
        ctx->gpu_open_state = MG_GPU_DISABLED;
    } else {
        ctx->gpu = &mg__gpu_nvml;
        rc = ctx->gpu->open(&ctx->gpu_state, ctx->nvml_library, ctx->cfg.visible_devices,
                            &ctx->log, &ctx->gpu_open_state);
        if (rc < 0) goto out;
    }
    *err = 0;
    return ctx;
out:
    *err = rc;
    mg_destroy(ctx);
    return NULL;
}

void mg_destroy(mg_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->gpu && ctx->gpu_state) ctx->gpu->close(ctx->gpu_state);
    if (ctx->probe) mg__probe_close(ctx->probe);
    free(ctx);
}

const mg_config *mg_ctx_config(const mg_ctx *ctx)
{
    return &ctx->cfg;
}

/*
 * The tree's judged figure. With a budget, the RSS sum settles the budget
 * only while it proves it safe (mg__budget_proven_safe, under the
 * thresholds it will be judged with). Above that line the figure is PSS:
 * read afresh whenever the estimate below reaches the stop line (so every
 * critical or hard-limit verdict, and the re-read that confirms it, is on a
 * fresh PSS), and otherwise at most every PSS_REFRESH_FACTOR times what the
 * last reading cost. Between readings it is the estimate
 *
 *     min(RSS sum, last PSS + growth of the RSS sum since that reading):
 *
 * a new private page raises both sums alike, a fork raises only the RSS
 * sum (the estimate overshoots, which only brings the next fresh reading
 * forward), and a shrinking RSS sum is not taken as shrinking PSS (a member
 * that exits hands its shared pages to the others). What it misses is a
 * copy-on-write break (a worker writing to pages it shares: PSS grows, RSS
 * does not), which the periodic refresh catches. So a fast fill is
 * followed at the RSS path's cost, microseconds (bench/sample.sh), instead
 * of one page-table walk per sample, which at 3-100 ms (bench/sample.sh)
 * let a 1 GB/s fill run from warn past the hard limit between two samples
 * (test_run, test_budget_warn_request_checkpoint).
 *
 * PSS is not read merely because the tree has several processes: below the
 * line the level is safe whichever figure is read (PSS <= RSS).
 * Without a budget nothing judges the tree, and PSS is never read.
 */
#define PSS_REFRESH_FACTOR 10u

static void read_pss(mg_ctx *ctx, mg_proctree *t)
{
    uint64_t t0 = mg__now_us();
    mg__probe_tree_pss(ctx->probe, t);
    uint64_t t1 = mg__now_us();
    ctx->pss_base_known = t->pss_known;
    ctx->pss_base_bytes = t->pss_bytes;
    ctx->rss_base_bytes = t->rss_bytes;
    ctx->pss_read_us = t1;
    ctx->pss_cost_us = t1 > t0 ? t1 - t0 : 0;
}

static uint64_t pss_estimate(const mg_ctx *ctx, uint64_t rss)
{
    uint64_t grown = rss > ctx->rss_base_bytes ? rss - ctx->rss_base_bytes : 0;
    uint64_t est = ctx->pss_base_bytes + grown;
    return est < rss ? est : rss;
}

static void tree_figure(mg_ctx *ctx, const mg_config *judge, mg_snapshot *out)
{
    mg_proctree *t = &out->tree;
    uint64_t budget = ctx->cfg.ram_budget_bytes;
    t->used_bytes = t->rss_bytes;
    if (!t->known || !budget || mg__budget_proven_safe(judge, t->rss_bytes, budget)) return;
    uint64_t now = mg__now_us();
    bool fresh_due = !ctx->pss_base_known ||
                     now - ctx->pss_read_us >= ctx->pss_cost_us * PSS_REFRESH_FACTOR;
    uint64_t est = ctx->pss_base_known ? pss_estimate(ctx, t->rss_bytes) : t->rss_bytes;
    if (fresh_due || !mg__budget_below_stop(judge, est, budget)) {
        read_pss(ctx, t);
        t->used_bytes = t->pss_known ? t->pss_bytes : t->rss_bytes;
        return;
    }
    t->used_bytes = est;
    t->used_estimated = true;
}

/* The leaky bucket of sampling work (policy.c, at_cost_floor): drained at a
 * tenth of the time since the last sample ended, then this one's cost
 * added. Returns the new backlog. */
static uint64_t account_cost(mg_ctx *ctx, uint64_t t0, uint64_t t1)
{
    uint64_t idle = ctx->last_end_us && t0 > ctx->last_end_us ? t0 - ctx->last_end_us : 0;
    uint64_t drained = idle / MG__SAMPLE_SHARE_DIV;
    ctx->backlog_us = ctx->backlog_us > drained ? ctx->backlog_us - drained : 0;
    ctx->backlog_us += t1 > t0 ? t1 - t0 : 0;
    ctx->last_end_us = t1;
    return ctx->backlog_us;
}

/* One sample, its tree figure decided for thresholds `judge`. */
int mg__sample_for(mg_ctx *ctx, const mg_config *judge, mg_snapshot *out)
{
    if (!ctx || !out) return MG_EINVAL;
    uint64_t t0 = mg__now_us();
    memset(out, 0, sizeof *out);
    out->time_ms = mg__now_ms();
    mg__probe_sample(ctx->probe, out->time_ms, ctx->cfg.skip_sources, out);
    tree_figure(ctx, judge, out);
    mg__ram_combine(out, ctx->cfg.ram_budget_bytes);
    if (ctx->gpu_state) {
        ctx->gpu->query(ctx->gpu_state, out);
    } else {
        out->gpu_state = ctx->gpu_open_state;
        out->gpu_count = 0;
    }
    mg__trend_note(&ctx->trend, out);
    out->trainer_known = ctx->trainer_known;
    out->trainer_allocated_bytes = ctx->trainer_allocated_bytes;
    out->trainer_reserved_bytes = ctx->trainer_reserved_bytes;
    uint64_t t1 = mg__now_us();
    out->sample_us = t1 > t0 ? t1 - t0 : 0;
    out->sample_backlog_us = account_cost(ctx, t0, t1);
    return 0;
}

int mg_sample(mg_ctx *ctx, mg_snapshot *out)
{
    return mg__sample_for(ctx, ctx ? &ctx->cfg : NULL, out);
}

/* Another tree: its PSS base and its budget's growth are not the old
 * one's. */
static void forget_tree(mg_ctx *ctx)
{
    ctx->pss_base_known = false;
    memset(&ctx->trend.ram[MG_RAM_SOURCE_BUDGET], 0, sizeof ctx->trend.ram[0]);
}

int mg_watch_pid(mg_ctx *ctx, int pid)
{
    if (!ctx || pid < 0) return MG_EINVAL;
    int rc = mg__probe_set_pid(ctx->probe, pid);
    if (rc == 0) ctx->cfg.pid = pid;
    forget_tree(ctx);
    return rc;
}

int mg_watch_descendants(mg_ctx *ctx, int pid)
{
    if (!ctx || pid < 0) return MG_EINVAL;
    int rc = mg__probe_set_descendants(ctx->probe, pid);
    if (rc == 0) ctx->cfg.pid = pid;
    forget_tree(ctx);
    return rc;
}

int mg_tree_pids(mg_ctx *ctx, int *pids, size_t cap)
{
    if (!ctx || (!pids && cap)) return MG_EINVAL;
    return mg__probe_tree_pids(ctx->probe, mg__now_ms(), pids, cap);
}

void mg_set_trainer_memory(mg_ctx *ctx, uint64_t allocated_bytes, uint64_t reserved_bytes)
{
    if (!ctx) return;
    ctx->trainer_known = true;
    ctx->trainer_allocated_bytes = allocated_bytes;
    ctx->trainer_reserved_bytes = reserved_bytes;
}

int mg_set_predict_lead_ms(mg_ctx *ctx, uint32_t lead_ms)
{
    if (!ctx || lead_ms == 0) return MG_EINVAL;
    ctx->cfg.predict_lead_ms = lead_ms;
    return 0;
}

uint32_t mg_predict_lead_ms(uint64_t save_ms)
{
    const uint64_t cap = 600000u;
    uint64_t lead = save_ms < cap ? 2u * save_ms + 1000u : cap;
    return (uint32_t)(lead < cap ? lead : cap);
}

size_t mg_config_size(void) { return sizeof(mg_config); }
size_t mg_snapshot_size(void) { return sizeof(mg_snapshot); }
size_t mg_verdict_size(void) { return sizeof(mg_verdict); }
