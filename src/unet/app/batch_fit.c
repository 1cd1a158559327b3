/* SPDX-License-Identifier: MIT */
/*
 * batch_fit.c: a batch size against the RAM limits before the run
 * allocates anything (batch_fit.h). Each call measures RAM now with a
 * short-lived libmemguard context of its own (no GPU), so it needs no
 * guard to exist yet.
 *
 * Not here: the memory plan (model/plan.c) and the monitor (guard.c).
 */
#include "batch_fit.h"

#include "memguard.h"
#include "model.h"

#include <math.h>
#include <stdio.h>

#define MIB (1024.0 * 1024.0)

/* RAM in use now and the limit that applies (machine, cgroup or budget). */
static bool ram_now(uint64_t ram_budget, mg_snapshot *s)
{
    mg_config mc = {0};
    mc.ram_budget_bytes = ram_budget;
    mc.no_gpu = true;
    int e;
    mg_ctx *ctx = mg_create(&mc, &e);
    bool ok = ctx && mg_sample(ctx, s) == 0 && s->ram.known;
    mg_destroy(ctx);
    return ok;
}

/* The fullest any RAM limit would be with `plan` more bytes in use. Every
 * limit must hold the plan (the machine, a cgroup, the budget), not only
 * the one fullest now: before the model exists the machine is often fuller
 * in fraction than a budget that the model alone will overflow. */
static double plan_frac(const mg_snapshot *s, uint64_t plan, const struct mg_ram_limit **which)
{
    double frac = 0;
    for (unsigned l = 0; l < s->ram.nlimits && l < 3; l++) {
        const struct mg_ram_limit *lim = &s->ram.limits[l];
        double f = (double)(lim->used_bytes + plan) / (double)lim->total_bytes;
        if (f >= frac) {
            frac = f;
            if (which) *which = lim;
        }
    }
    return frac;
}

/* The largest batch up to max_b whose plan on top of s stays below the
 * RAM warn threshold, and its figures; 0 when not even batch 1 does. */
typedef struct fit {
    int batch;
    double frac, warn;
    uint64_t plan;
    const struct mg_ram_limit *lim;
} fit;

static fit largest_fit(const run_cfg *c, const unet_backend *be, const guard_opts *go,
                       const mg_snapshot *s, int max_b)
{
    fit best = {0};
    for (int b = 1; b <= max_b; b++) {
        double warn = go->warn_ram > 0 ? go->warn_ram : guard_table_warn_ram(b);
        unet_plan p = unet_plan_for(&c->model, b, c->img_size, c->img_size, be);
        const struct mg_ram_limit *lim = NULL;
        double frac = plan_frac(s, p.total_bytes, &lim);
        if (frac >= warn) break; /* the plan grows with b; the table only gets stricter */
        best = (fit){b, frac, warn, p.total_bytes, lim};
    }
    return best;
}

int batch_fit_largest(const run_cfg *c, const unet_backend *be, const guard_opts *go, int max_b)
{
    mg_snapshot s;
    if (!ram_now(go->ram_budget, &s)) return max_b;
    return largest_fit(c, be, go, &s, max_b).batch;
}

int batch_fit_auto(run_cfg *c, const unet_backend *be, const guard_opts *go, char *err,
                   size_t len)
{
    mg_snapshot s;
    if (!ram_now(go->ram_budget, &s)) {
        snprintf(err, len, "--batch auto: RAM cannot be measured here; give --batch N");
        return -1;
    }
    fit f = largest_fit(c, be, go, &s, 4096);
    int best = f.batch;
    if (best == 0) {
        unet_plan p = unet_plan_for(&c->model, 1, c->img_size, c->img_size, be);
        snprintf(err, len, "--batch auto: even batch 1 needs %.1f MiB, but only %.1f MiB are left "
                 "below the RAM warn threshold (%.1f MiB of %.1f MiB in use, limit: %s)",
                 (double)p.total_bytes / MIB,
                 fmax(0.0, guard_table_warn_ram(1) * (double)s.ram.total_bytes -
                               (double)s.ram.used_bytes) / MIB,
                 (double)s.ram.used_bytes / MIB, (double)s.ram.total_bytes / MIB,
                 mg_ram_source_name(s.ram.source));
        return -1;
    }
    printf("batch auto: %d (RAM in use %.1f MiB of %.1f MiB, limit %s; batch %d plans %.1f MiB, "
           "reaching %.1f%% < warn %.0f%%)\n", best, (double)f.lim->used_bytes / MIB,
           (double)f.lim->total_bytes / MIB, mg_ram_source_name(f.lim->source), best,
           (double)f.plan / MIB, 100.0 * f.frac, 100.0 * f.warn);
    c->batch = best;
    return 0;
}

void batch_fit_note(const run_cfg *c, const unet_backend *be, uint64_t ram_budget,
                    const mg_config *cfg)
{
    mg_snapshot s;
    if (!ram_now(ram_budget, &s)) return;
    unet_plan p = unet_plan_for(&c->model, c->batch, c->img_size, c->img_size, be);
    const struct mg_ram_limit *lim = NULL;
    double frac = plan_frac(&s, p.total_bytes, &lim);
    if (frac < cfg->warn_ram_frac || !lim) return;
    printf("note: batch %d plans %.1f MiB; with %.1f MiB in use that is %.0f%% of %.1f MiB (%s), "
           "at or above the %s threshold (%.0f%%): the monitor will %s. A smaller --batch, or "
           "--batch auto, fits.\n", c->batch, (double)p.total_bytes / MIB,
           (double)lim->used_bytes / MIB, 100.0 * frac, (double)lim->total_bytes / MIB,
           mg_ram_source_name(lim->source), frac >= cfg->stop_ram_frac ? "stop" : "warn",
           100.0 * (frac >= cfg->stop_ram_frac ? cfg->stop_ram_frac : cfg->warn_ram_frac),
           frac >= cfg->stop_ram_frac ? "stop the run and save it" : "warn");
}

int batch_fit_check_plan(const run_cfg *c, const unet_backend *be, int batch, int n,
                         uint64_t ram_budget, char *err, size_t len)
{
    unet_plan p = unet_plan_for(&c->model, batch, c->img_size, c->img_size, be);
    uint64_t data = unet_data_bytes(n, c->img_size, c->model.in_ch);
    uint64_t need = (uint64_t)p.total_bytes + data;
    mg_snapshot s;
    if (!ram_now(ram_budget, &s)) return 0;
    for (unsigned l = 0; l < s.ram.nlimits && l < 3; l++) {
        const struct mg_ram_limit *lim = &s.ram.limits[l];
        if (lim->source == MG_RAM_SOURCE_BUDGET || need <= lim->total_bytes) continue;
        snprintf(err, len, "--batch %d at --img-size %d plans %.1f MiB for the model and %.1f "
                 "MiB for %d samples: more than all %.1f MiB of RAM (%s); choose a smaller "
                 "--batch, --img-size%s", batch, c->img_size, (double)p.total_bytes / MIB,
                 (double)data / MIB, n, (double)lim->total_bytes / MIB,
                 mg_ram_source_name(lim->source), c->synthetic ? " or --synthetic" : " or --data");
        return MG_ERANGE;
    }
    return 0;
}
