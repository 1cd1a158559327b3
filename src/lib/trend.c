/* SPDX-License-Identifier: MIT */
/*
 * trend.c: how fast memory fills. Each sample's figures (every RAM limit:
 * machine, cgroup, budget; every GPU) go into a short ring per figure, and
 * the least-squares slope over its recent points gives the growth rate and
 * the time until that limit is full (mg_fill in memguard.h says when it is
 * known). mg_sample calls it with the context's rings; policy.c acts on
 * the result (mg_classify, by_trend), report.c and report_json.c show it.
 *
 * It does not sample, judge or print, and reads no clock: time is the
 * snapshot's own, so tests feed it made-up snapshots. A least-squares
 * slope rather than last-minus-first, because one point read in the middle
 * of a page-cache drop must not decide the rate; a short window (8 points,
 * 5 s), because what matters is the ramp now, not the epoch's average.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/*
 * The budget's figure is PSS, read only now and then (ctx.c: a reading
 * costs milliseconds per GiB, and between readings the figure is an
 * estimate). Its growth is measured on the RSS sum instead, read at every
 * sample: a new private page raises both alike. A fork raises only the
 * RSS sum, by the parent's whole size, so a change in the number of
 * members starts the series over (its `kind` is that number) instead of
 * reading as a burst of growth. What this misses, a copy-on-write break,
 * grows PSS and not RSS; the periodic PSS refresh catches the level.
 */
#define MIN_POINTS 3u
#define MIN_SPAN_MS 50u

static void series_add(mg__series *s, int kind, uint64_t t_ms, uint64_t used)
{
    if (s->n && (kind != s->kind || t_ms < s->t_ms[(s->head + MG__TREND_POINTS - 1) %
                                                   MG__TREND_POINTS]))
        s->n = 0; /* another kind of figure, or time went back: start over */
    s->kind = kind;
    s->t_ms[s->head] = t_ms;
    s->used[s->head] = used;
    s->head = (s->head + 1) % MG__TREND_POINTS;
    if (s->n < MG__TREND_POINTS) s->n++;
}

/* The slope in bytes per second over the points no older than
 * MG__TREND_MAX_AGE_MS before the newest; false when too few or too close
 * together. Times and sizes are taken relative to the newest point, so the
 * doubles stay small and exact enough. */
static bool series_rate(const mg__series *s, double *rate)
{
    if (s->n < MIN_POINTS) return false;
    unsigned last = (s->head + MG__TREND_POINTS - 1) % MG__TREND_POINTS;
    uint64_t t_end = s->t_ms[last];
    double st = 0, su = 0, stt = 0, stu = 0, k = 0;
    uint64_t t_first = t_end;
    for (unsigned i = 0; i < s->n; i++) {
        unsigned slot = (last + MG__TREND_POINTS - i) % MG__TREND_POINTS;
        if (t_end - s->t_ms[slot] > MG__TREND_MAX_AGE_MS) break;
        t_first = s->t_ms[slot];
        double t = -(double)(t_end - s->t_ms[slot]) / 1000.0;
        double u = (double)s->used[slot] - (double)s->used[last];
        st += t;
        su += u;
        stt += t * t;
        stu += t * u;
        k += 1;
    }
    if (k < MIN_POINTS || t_end - t_first < MIN_SPAN_MS) return false;
    double den = k * stt - st * st;
    if (!(den > 0.0)) return false;
    *rate = (k * stu - st * su) / den;
    return isfinite(*rate);
}

static mg_fill fill_of(const mg__series *s, uint64_t used, uint64_t total)
{
    mg_fill f = {false, 0.0, INFINITY};
    if (!series_rate(s, &f.rate_bytes_per_s)) return f;
    f.known = true;
    if (used >= total) f.seconds_to_full = 0.0;
    else if (f.rate_bytes_per_s > 0.0)
        f.seconds_to_full = (double)(total - used) / f.rate_bytes_per_s;
    return f;
}

/* True when a fills sooner than b; a known fill beats an unknown one. */
static bool sooner(const mg_fill *a, const mg_fill *b)
{
    if (!b->known) return a->known;
    return a->known && a->seconds_to_full < b->seconds_to_full;
}

static void note_ram(mg__trend *tr, mg_snapshot *snap)
{
    mg_ram *r = &snap->ram;
    r->fill = (mg_fill){false, 0.0, INFINITY};
    r->fill_source = r->source;
    if (!r->known) return;
    const unsigned cap = (unsigned)(sizeof r->limits / sizeof r->limits[0]);
    unsigned nl = r->nlimits < cap ? r->nlimits : cap;
    for (unsigned i = 0; i < nl; i++) {
        const struct mg_ram_limit *l = &r->limits[i];
        if ((unsigned)l->source >= MG__RAM_SOURCES) continue;
        mg__series *s = &tr->ram[l->source];
        if (l->source != MG_RAM_SOURCE_BUDGET)
            series_add(s, 0, snap->time_ms, l->used_bytes);
        else if (snap->tree.known)
            series_add(s, (int)snap->tree.nprocs, snap->time_ms, snap->tree.rss_bytes);
        mg_fill f = fill_of(s, l->used_bytes, l->total_bytes);
        if (sooner(&f, &r->fill)) {
            r->fill = f;
            r->fill_source = l->source;
        }
    }
}

void mg__trend_note(mg__trend *tr, mg_snapshot *snap)
{
    note_ram(tr, snap);
    unsigned n = snap->gpu_count < MG_MAX_GPUS ? snap->gpu_count : MG_MAX_GPUS;
    for (unsigned i = 0; i < n; i++) {
        mg_gpu *g = &snap->gpus[i];
        g->fill = (mg_fill){false, 0.0, INFINITY};
        if (!g->known) continue;
        uint64_t used = g->total_bytes > g->free_bytes ? g->total_bytes - g->free_bytes : 0;
        series_add(&tr->gpu[i], 0, snap->time_ms, used);
        g->fill = fill_of(&tr->gpu[i], used, g->total_bytes);
    }
}
