/* SPDX-License-Identifier: MIT */
/*
 * policy.c: the pure decisions. mg_classify() turns one snapshot into a level
 * (safe / warn / critical) and says which resource decided it;
 * mg_next_poll_ms() says how soon the next sample is due. Both only read
 * their arguments (mg_classify also updates the caller's hysteresis state):
 * no I/O, no clock, no allocation, no global state, so they are tested with
 * tables and can run in a signal-free hot loop.
 *
 * They do not sample, print or act. A zero threshold in cfg is read as its
 * default (the same rule as mg_config_resolve), so a caller that forgot to
 * resolve gets the seed's numbers instead of "everything is critical".
 */
#include "internal.h"

#include <math.h>
#include <string.h>

const char *mg_level_name(mg_level level)
{
    switch (level) {
    case MG_LEVEL_SAFE: return "safe";
    case MG_LEVEL_WARN: return "warn";
    case MG_LEVEL_CRITICAL: return "critical";
    case MG_LEVEL_ERROR: break;
    }
    return "unknown";
}

const char *mg_ram_source_name(mg_ram_source source)
{
    switch (source) {
    case MG_RAM_SOURCE_MEMINFO: return "meminfo";
    case MG_RAM_SOURCE_CGROUP: return "cgroup";
    case MG_RAM_SOURCE_BUDGET: return "budget";
    case MG_RAM_SOURCE_COMMIT: return "commit";
    }
    return "unknown";
}

/* One resource's judgement, and how far past its threshold it is (used only
 * to pick the worst of several resources at the same level). */
typedef struct judged {
    mg_level level;
    mg_resource resource;
    unsigned gpu_index;
    double value_frac;
    double threshold_frac;
    bool by_floor;
    uint64_t floor_bytes; /* when by_floor */
    uint64_t used_bytes;
    uint64_t total_bytes;
    double severity;
    bool by_trend;
    double rate_bytes_per_s;  /* when by_trend */
    double seconds_to_full;   /* when by_trend */
} judged;

/*
 * Judges one resource. `free_bytes` is what the floor is compared with.
 * `sticky` is true when the previous call ended at warn or worse: the warn
 * threshold is then lowered by `hyst` so a value hovering at the threshold
 * does not flap. Critical never gets hysteresis: it must act on the first
 * sample that crosses it.
 */
static judged judge(mg_resource res, unsigned gpu_index, double frac,
                    uint64_t used, uint64_t total, uint64_t free_bytes,
                    double warn, double stop, uint64_t floor_bytes,
                    bool sticky, double hyst)
{
    judged j = {MG_LEVEL_SAFE, res, gpu_index, frac, 0.0, false, 0,
                used, total, 0.0, false, 0.0, 0.0};
    if (frac >= stop) {
        /* Reported by fraction even when the floor is crossed too: that is
         * the seed's message and the number people compare with. */
        j.level = MG_LEVEL_CRITICAL;
        j.threshold_frac = stop;
        j.severity = frac / stop;
    } else if (floor_bytes > 0 && free_bytes < floor_bytes) {
        j.level = MG_LEVEL_CRITICAL;
        j.by_floor = true;
        /* The floor travels in bytes (what the reports print, exactly),
         * and also as the used fraction it corresponds to, so "value_frac
         * reached threshold_frac" holds for floor verdicts too and JSON
         * consumers comparing fractions need no special case. It is
         * negative when the floor exceeds the total (always critical). */
        j.floor_bytes = floor_bytes;
        j.threshold_frac = total ? 1.0 - (double)floor_bytes / (double)total
                                 : 0.0;
        j.severity = free_bytes ? (double)floor_bytes / (double)free_bytes
                                : HUGE_VAL;
    } else if (frac >= warn || (sticky && frac >= warn - hyst)) {
        j.level = MG_LEVEL_WARN;
        j.threshold_frac = warn;
        j.severity = frac / warn;
    }
    return j;
}

/*
 * A warn becomes critical when the resource's measured growth would fill it
 * within the lead (mg_config.predict_lead_ms): the checkpoint then starts
 * at warn instead of at stop, and a fast ramp does not race the save. Only
 * a warn: below it a fast growth is a burst far from any limit as often as
 * not (the header says which), and critical already acts.
 */
static void predict(judged *j, const mg_fill *f, const mg_config *cfg)
{
    if (j->level != MG_LEVEL_WARN || cfg->no_predict || !f->known) return;
    if (!(f->rate_bytes_per_s > 0.0)) return;
    if (!(f->seconds_to_full * 1000.0 < (double)cfg->predict_lead_ms)) return;
    j->level = MG_LEVEL_CRITICAL;
    j->by_trend = true;
    j->rate_bytes_per_s = f->rate_bytes_per_s;
    j->seconds_to_full = f->seconds_to_full;
}

/* Critical beats warn beats safe; at the same level, the resource furthest
 * past its own threshold. Ties keep the earlier one (RAM, then GPU 0, 1...). */
static bool worse(const judged *a, const judged *b)
{
    if (a->level != b->level) return a->level > b->level;
    return a->severity > b->severity;
}

mg_level mg_classify(const mg_config *cfg, const mg_snapshot *snap,
                     mg_policy_state *st, mg_verdict *v)
{
    if (!cfg || !snap) {
        /* Nothing could be judged: an error, never "safe". */
        if (v) {
            memset(v, 0, sizeof *v);
            v->unknown = MG_UNKNOWN_RAM | MG_UNKNOWN_GPU;
        }
        return MG_LEVEL_ERROR;
    }
    mg_config c;
    mg__config_numbers(cfg, &c); /* zero fields read as their defaults */
    cfg = &c;

    unsigned unknown = 0;
    judged best = {MG_LEVEL_SAFE, MG_RES_NONE, 0, 0.0, 0.0, false, 0, 0, 0,
                   0.0, false, 0.0, 0.0};

    if (!snap) {
        /* Nothing could be judged: say so rather than claim safety. */
        unknown = MG_UNKNOWN_RAM | MG_UNKNOWN_GPU;
    } else {
        double hyst = cfg->hysteresis_frac;
        bool sticky = st && st->last >= MG_LEVEL_WARN && hyst > 0.0;

        /* A NaN fraction compares false against every threshold and would
         * read as safe, so a non-finite one counts as unknown instead. */
        if (snap->ram.known && isfinite(snap->ram.used_frac)) {
            judged j = judge(MG_RES_RAM, 0, snap->ram.used_frac,
                             snap->ram.used_bytes, snap->ram.total_bytes,
                             snap->ram.available_bytes,
                             cfg->warn_ram_frac,
                             cfg->stop_ram_frac,
                             cfg->min_free_ram_bytes, sticky, hyst);
            predict(&j, &snap->ram.fill, cfg);
            if (worse(&j, &best)) best = j;
        } else {
            unknown |= MG_UNKNOWN_RAM;
        }

        unsigned n = snap->gpu_count < MG_MAX_GPUS ? snap->gpu_count
                                                   : MG_MAX_GPUS;
        for (unsigned i = 0; i < n; i++) {
            const mg_gpu *g = &snap->gpus[i];
            if (!g->known || !isfinite(g->used_frac)) {
                unknown |= MG_UNKNOWN_GPU;
                continue;
            }
            uint64_t used = g->total_bytes > g->free_bytes
                                ? g->total_bytes - g->free_bytes : 0;
            judged j = judge(MG_RES_GPU, g->index, g->used_frac, used,
                             g->total_bytes, g->free_bytes,
                             cfg->warn_gpu_frac,
                             cfg->stop_gpu_frac,
                             cfg->min_free_gpu_bytes, sticky, hyst);
            predict(&j, &g->fill, cfg);
            if (worse(&j, &best)) best = j;
        }
        /* A failed query leaves no device to flag, yet the GPUs were not
         * judged: that must not pass for "no GPU, all safe". */
        if (snap->gpu_state == MG_GPU_ERROR) unknown |= MG_UNKNOWN_GPU;
    }

    if (st) st->last = best.level;
    if (v) {
        mg_verdict out = {0};
        out.level = best.level;
        out.unknown = unknown;
        if (best.level != MG_LEVEL_SAFE) {
            out.resource = best.resource;
            out.gpu_index = best.gpu_index;
            out.value_frac = best.value_frac;
            out.threshold_frac = best.threshold_frac;
            out.by_floor = best.by_floor;
            out.floor_bytes = best.floor_bytes;
            out.used_bytes = best.used_bytes;
            out.total_bytes = best.total_bytes;
            out.by_trend = best.by_trend;
            out.rate_bytes_per_s = best.rate_bytes_per_s;
            out.seconds_to_full = best.seconds_to_full;
        }
        *v = out;
    }
    return best.level;
}

/* Whether `used` of `budget` is below the fraction `line` and clear of the
 * floor. The fraction is computed as ram.c computes it, so a value below the
 * line here is below it there, and so is any figure <= used. */
static bool budget_below(const mg_config *c, uint64_t used, uint64_t budget, double line)
{
    double frac = (double)used / (double)budget;
    if (!(frac < line)) return false;
    uint64_t free_bytes = budget > used ? budget - used : 0;
    return c->min_free_ram_bytes == 0 || free_bytes >= c->min_free_ram_bytes;
}

bool mg__budget_proven_safe(const mg_config *cfg, uint64_t used_upper, uint64_t budget)
{
    mg_config c;
    mg__config_numbers(cfg, &c);
    if (budget == 0) return true; /* no budget, nothing to judge */
    /* judge() warns at warn_ram_frac, or warn_ram_frac - hysteresis_frac
     * once warned; stop_ram_frac >= warn_ram_frac (mg_config_check). */
    double line = c.warn_ram_frac - (c.hysteresis_frac > 0.0 ? c.hysteresis_frac : 0.0);
    return budget_below(&c, used_upper, budget, line);
}

bool mg__budget_below_stop(const mg_config *cfg, uint64_t used, uint64_t budget)
{
    mg_config c;
    mg__config_numbers(cfg, &c);
    return budget == 0 || budget_below(&c, used, budget, c.stop_ram_frac);
}

/* Seconds-to-milliseconds for `bytes` at `rate` bytes per second. */
static double fill_ms(double bytes, double rate)
{
    return bytes > 0.0 ? bytes * 1000.0 / rate : 0.0;
}

/* Bytes left before a resource reaches its stop threshold or its floor,
 * whichever comes first: both trigger critical. */
static double headroom(double stop, uint64_t used, uint64_t total,
                       uint64_t free_bytes, uint64_t floor_bytes)
{
    double h = stop * (double)total - (double)used;
    if (floor_bytes > 0) {
        double hf = (double)free_bytes - (double)floor_bytes;
        if (hf < h) h = hf;
    }
    return h > 0.0 ? h : 0.0;
}

/*
 * The cost of sampling, a leaky bucket: the backlog of sampling work drains
 * at a tenth of the wall time (MG__SAMPLE_SHARE_DIV) and may hold a burst
 * of MG__SAMPLE_BURST_US. The next sample, assumed to cost what the last
 * did, is due no sooner than the backlog leaves room for it. Over any
 * stretch of time sampling then takes at most 100 ms plus a tenth of it:
 * while a tree crosses its thresholds samples follow the headroom's pace,
 * and a reading that stays costly settles at 10x its cost. The RSS path
 * (microseconds) never fills the bucket; a PSS read walks page tables
 * (milliseconds per GiB resident in every member, bench/sample.sh) and can.
 * The floor wins over max_interval_ms: sampling faster than that would
 * spend the core the trainer needs, and such a sample is stale by its own
 * length anyway.
 */
static uint32_t at_cost_floor(uint32_t ms, uint64_t sample_us, uint64_t backlog_us)
{
    /* Over an hour of backlog is garbage, not a measurement. */
    if (sample_us > UINT32_MAX || backlog_us > UINT32_MAX) return UINT32_MAX;
    uint64_t need = backlog_us + sample_us;
    if (need <= MG__SAMPLE_BURST_US) return ms;
    uint64_t floor_ms = ((need - MG__SAMPLE_BURST_US) * MG__SAMPLE_SHARE_DIV + 999u) / 1000u;
    return ms < floor_ms ? (uint32_t)floor_ms : ms;
}

/*
 * earlyoom's adaptive sleep (main.c sleep_time_ms): the time the fastest
 * plausible allocator needs to eat the headroom. 6000 MiB/s is what earlyoom
 * measured for RAM ("stress -m 4 --vm-bytes 4G"), 800 MiB/s for swap (a
 * membomb on zram); swap must fill too before RAM runs out, so its time adds
 * to RAM's. GPUs take 10 GiB/s: one cudaMalloc grabs gigabytes at once. The
 * resource closest to its threshold in time decides.
 */
uint32_t mg_next_poll_ms(const mg_config *cfg, const mg_snapshot *snap)
{
    mg_config c;
    mg__config_numbers(cfg, &c);
    cfg = &c;
    uint32_t lo = cfg->min_interval_ms, hi = cfg->max_interval_ms;
    if (lo > hi) lo = hi; /* a bad config still gets a usable answer */
    if (!snap) return hi;

    double best = HUGE_VAL;
    /* Every RAM limit counts: a budget far from full in fraction can still
     * be the one with the fewest bytes left (300 MB of budget vs 20 GB of
     * machine). */
    const unsigned cap = (unsigned)(sizeof snap->ram.limits / sizeof snap->ram.limits[0]);
    unsigned nl = snap->ram.nlimits < cap ? snap->ram.nlimits : cap;
    for (unsigned i = 0; snap->ram.known && i < nl; i++) {
        const struct mg_ram_limit *l = &snap->ram.limits[i];
        uint64_t avail = l->total_bytes > l->used_bytes ? l->total_bytes - l->used_bytes : 0;
        double h = headroom(cfg->stop_ram_frac,
                            l->used_bytes, l->total_bytes, avail, cfg->min_free_ram_bytes);
        double ms = fill_ms(h, (double)cfg->ram_fill_rate_bytes_per_s);
        /* Swap must fill too before the machine runs out; a cgroup or a
         * budget gets no such reprieve from it. */
        if (l->source == MG_RAM_SOURCE_MEMINFO && snap->swap.known)
            ms += fill_ms((double)snap->swap.free_bytes,
                          (double)cfg->swap_fill_rate_bytes_per_s);
        if (ms < best) best = ms;
    }
    unsigned n = snap->gpu_count < MG_MAX_GPUS ? snap->gpu_count : MG_MAX_GPUS;
    for (unsigned i = 0; i < n; i++) {
        const mg_gpu *g = &snap->gpus[i];
        if (!g->known) continue;
        uint64_t used = g->total_bytes > g->free_bytes
                            ? g->total_bytes - g->free_bytes : 0;
        double h = headroom(cfg->stop_gpu_frac,
                            used, g->total_bytes, g->free_bytes,
                            cfg->min_free_gpu_bytes);
        double ms = fill_ms(h, (double)cfg->gpu_fill_rate_bytes_per_s);
        if (ms < best) best = ms;
    }

    /* Compare in double before converting: the unclamped value can be far
     * beyond uint32_t (an idle 1 TiB machine). NaN cannot occur (finite
     * operands, rates > 0) but would fall to `hi` as well. */
    uint32_t ms;
    if (!(best < (double)hi)) ms = hi;
    else if (best <= (double)lo) ms = lo;
    else ms = (uint32_t)best;
    return at_cost_floor(ms, snap->sample_us, snap->sample_backlog_us);
}
