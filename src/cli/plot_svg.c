/* SPDX-License-Identifier: MIT */
/*
 * plot_svg.c: draws a run read by plot_log.c as one SVG document, in the
 * manner of a Grafana dashboard: a header (the command, how it ended, the
 * peaks), then one panel per resource against time in seconds: RAM used as
 * a share of every limit weighed (machine, cgroup, --ram-budget), the
 * process tree's memory in bytes, and each GPU's used share; the warn, stop
 * and hard-limit thresholds as dashed lines; each event (warn, request,
 * acknowledgement, SIGTERM, SIGKILL, exit, ...) as a vertical line with a
 * numbered badge, and a table of the events with their reasons below.
 *
 * The document is self-contained: no scripts, fonts, styles or images from
 * elsewhere. Each panel carries its plot area and scales as data-*
 * attributes, and each series, threshold and event its key, so a program
 * can map every drawn point back to the number in the log (the tests do).
 * A series with more points than two per pixel column is reduced to each
 * column's lowest and highest point, so peaks survive and a week-long log
 * stays a small file. It reads nothing and writes no file.
 */
#include "plot.h"
#include "memguard.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the text buffer ----------------------------------------------------------- */

void plot_buf_printf(plot_buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->n <= (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

void plot_buf_put(plot_buf *b, const char *s, size_t n)
{
    if (b->failed || n == 0) return;
    if (b->cap - b->n <= n) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->n <= n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void plot_buf_xml(plot_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': plot_buf_printf(b, "&amp;"); break;
        case '<': plot_buf_printf(b, "&lt;"); break;
        case '>': plot_buf_printf(b, "&gt;"); break;
        case '"': plot_buf_printf(b, "&quot;"); break;
        case '\'': plot_buf_printf(b, "&apos;"); break;
        default: plot_buf_printf(b, "%c", *s);
        }
    }
}

/* ---- layout and theme ------------------------------------------------------------- */

#define W 1040.0
#define ML 78.0   /* left margin: the value labels */
#define MR 120.0 /* right margin: the threshold labels */
#define PW (W - ML - MR)
#define TABLE_ROWS 12
#define FONT "DejaVu Sans, Verdana, Arial, sans-serif"

#define C_BG "#111217"
#define C_PANEL "#181b1f"
#define C_BORDER "#2c3235"
#define C_GRID "#2c3235"
#define C_AXIS "#9fa7b3"
#define C_TEXT "#ccccdc"
#define C_TITLE "#e4e6ea"
#define C_WARN "#fade2a"
#define C_STOP "#ff9830"
#define C_HARD "#f2495c"

static const char *const palette[] = {"#5794f2", "#73bf69", "#b877d9", "#8ab8ff",
                                      "#96d98d", "#ca95e5", "#4dd0e1", "#c4cad3"};

static const char *series_color(size_t i) { return palette[i % (sizeof palette / sizeof *palette)]; }

static const char *event_color(const char *kind)
{
    static const struct { const char *kind, *color; } map[] = {
        {"warn", C_WARN}, {"request", C_STOP}, {"signal", "#ffb357"}, {"ack", "#73bf69"},
        {"term", C_HARD}, {"kill", C_HARD}, {"cleanup", "#ff7383"}, {"forward", "#8ab8ff"},
        {"restart", "#b48ead"}, {"continue", "#5fb3b3"}, {"exit", "#e4e6ea"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(kind, map[i].kind) == 0) return map[i].color;
    return C_AXIS;
}

/* Width of s in px at font size `size`, estimated (wide for CJK). */
static double text_w(const char *s, double size)
{
    double w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) == 0x80) continue;
        w += *p >= 0xE3 ? 1.0 : *p >= 'A' && *p <= 'Z' ? 0.68 : 0.58;
    }
    return w * size;
}

/* s cut on a character boundary to fit max_w px, with an ellipsis. */
static void fit_text(char *dst, size_t len, const char *s, double size, double max_w)
{
    snprintf(dst, len, "%s", s);
    if (text_w(dst, size) <= max_w) return;
    size_t n = strlen(dst);
    while (n > 0) {
        do n--; while (n > 0 && ((unsigned char)dst[n] & 0xC0) == 0x80);
        dst[n] = '\0';
        if (text_w(dst, size) + 0.6 * size <= max_w || n == 0) break;
    }
    if (n + 4 <= len) memcpy(dst + n, "\xE2\x80\xA6", 4);
}

static void text(plot_buf *b, double x, double y, double size, const char *color,
                 const char *anchor, const char *bold, const char *s)
{
    plot_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\" fill=\"%s\"", x, y, size,
                    color);
    if (anchor) plot_buf_printf(b, " text-anchor=\"%s\"", anchor);
    if (bold) plot_buf_printf(b, " font-weight=\"bold\"");
    plot_buf_printf(b, ">");
    plot_buf_xml(b, s);
    plot_buf_printf(b, "</text>\n");
}

/* ---- numbers as text ---------------------------------------------------------------- */

static void fmt_bytes(char *buf, size_t len, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    size_t u = 0;
    while (fabs(v) >= 1024 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, v >= 100 || v == floor(v) ? "%.0f %s" : "%.1f %s", v, units[u]);
}

static void fmt_pct(char *buf, size_t len, double frac)
{
    double p = round(frac * 1000) / 10;
    snprintf(buf, len, p == floor(p) ? "%.0f%%" : "%.1f%%", p);
}

static void fmt_secs(char *buf, size_t len, double t, double step)
{
    snprintf(buf, len, step >= 1 ? "%.0f" : step >= 0.1 ? "%.1f" : "%.2f", t);
}

/* 1, 2 or 5 times a power of ten, near range / target. */
static double nice_step(double range, int target)
{
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* ---- panels --------------------------------------------------------------------------- */

typedef enum { AX_FRAC, AX_BYTES } axis_kind;

typedef struct panel {
    const char *id;
    double x, y, w, h;   /* the plot area, px */
    double t0, t1, v0, v1;
    axis_kind kind;
} panel;

static double px(const panel *p, double t) { return p->x + (t - p->t0) / (p->t1 - p->t0) * p->w; }
static double py(const panel *p, double v) { return p->y + p->h - (v - p->v0) / (p->v1 - p->v0) * p->h; }

static void value_label(const panel *p, double v, char *buf, size_t len)
{
    if (p->kind == AX_FRAC) fmt_pct(buf, len, v);
    else fmt_bytes(buf, len, v);
}

/* Grid, value labels and time labels of a panel; opens its group. */
static void panel_open(plot_buf *b, const panel *p, double unit)
{
    plot_buf_printf(b, "<g class=\"panel\" id=\"%s\" data-x=\"%.2f\" data-y=\"%.2f\" "
                       "data-w=\"%.2f\" data-h=\"%.2f\" data-t0=\"%.9g\" data-t1=\"%.9g\" "
                       "data-v0=\"%.9g\" data-v1=\"%.9g\">\n",
                    p->id, p->x, p->y, p->w, p->h, p->t0, p->t1, p->v0, p->v1);
    plot_buf_printf(b, "<clipPath id=\"clip-%s\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                       "height=\"%.2f\"/></clipPath>\n",
                    p->id, p->x, p->y - 1, p->w + 1, p->h + 2);
    double vstep = nice_step((p->v1 - p->v0) / unit, 5) * unit;
    char lab[32];
    for (double v = p->v0; v <= p->v1 + vstep * 1e-6; v += vstep) {
        double y = py(p, v);
        plot_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                           "stroke-width=\"1\"/>\n", p->x, y, p->x + p->w, y, C_GRID);
        value_label(p, v, lab, sizeof lab);
        text(b, p->x - 8, y + 4, 11, C_AXIS, "end", NULL, lab);
    }
    double tstep = nice_step(p->t1 - p->t0, 10);
    for (double t = p->t0; t <= p->t1 + tstep * 1e-6; t += tstep) {
        double x = px(p, t);
        plot_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                           "stroke-width=\"1\" stroke-opacity=\"0.6\"/>\n",
                        x, p->y, x, p->y + p->h, C_GRID);
        fmt_secs(lab, sizeof lab, t, tstep);
        text(b, x, p->y + p->h + 15, 11, C_AXIS, "middle", NULL, lab);
    }
    text(b, p->x - 18, p->y + p->h + 15, 11, C_AXIS, "end", NULL, "time (s)");
}

/* A point of s as drawn; a NAN y is a break in the line. */
typedef struct xy {
    double x, y;
} xy;

/* Reduces s to at most two points per pixel column (each column's lowest
 * and highest, in time order) and maps them to px. Returns the count, or
 * 0 when memory ran out. */
static size_t project(const panel *p, const plot_series *s, xy **out)
{
    *out = malloc((s->n + 1) * sizeof **out);
    if (!*out) return 0;
    size_t k = 0;
    bool reduce = s->n > (size_t)(2 * p->w);
    for (size_t i = 0; i < s->n;) {
        double col = floor(px(p, s->pt[i].t));
        size_t j = i, lo = SIZE_MAX, hi = SIZE_MAX;
        bool gap = false;
        while (j < s->n && (j == i || (reduce && floor(px(p, s->pt[j].t)) == col))) {
            double v = s->pt[j].v;
            if (isnan(v)) gap = true;
            else {
                if (lo == SIZE_MAX || v < s->pt[lo].v) lo = j;
                if (hi == SIZE_MAX || v > s->pt[hi].v) hi = j;
            }
            j++;
        }
        if (lo == SIZE_MAX) {
            if (gap) (*out)[k++] = (xy){px(p, s->pt[i].t), NAN};
        } else {
            size_t a = lo < hi ? lo : hi, c = lo < hi ? hi : lo;
            (*out)[k++] = (xy){px(p, s->pt[a].t), py(p, s->pt[a].v)};
            if (c != a) (*out)[k++] = (xy){px(p, s->pt[c].t), py(p, s->pt[c].v)};
        }
        i = j;
    }
    return k;
}

/* One series: a polyline per unbroken stretch (a dot for a lone point),
 * optionally with a faint area below it. */
static void draw_series(plot_buf *b, const panel *p, const plot_series *s, const char *color,
                        double width, bool area, bool dots)
{
    xy *q;
    size_t n = project(p, s, &q);
    if (s->n && !n) {
        b->failed = true;
        return;
    }
    plot_buf_printf(b, "<g class=\"series\" data-key=\"%s\" clip-path=\"url(#clip-%s)\">\n<title>",
                    s->key, p->id);
    plot_buf_xml(b, s->name);
    plot_buf_printf(b, "</title>\n");
    double base = py(p, p->v0);
    for (size_t i = 0; i < n;) {
        if (isnan(q[i].y)) { i++; continue; }
        size_t j = i;
        while (j < n && !isnan(q[j].y)) j++;
        if (dots || j - i == 1) {
            for (size_t k = i; k < j; k++)
                plot_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\" fill=\"%s\"/>\n",
                                q[k].x, q[k].y, dots ? 2.5 : width + 1, color);
        } else {
            if (area) {
                plot_buf_printf(b, "<polygon class=\"area\" fill=\"%s\" fill-opacity=\"0.12\" "
                                   "points=\"%.2f,%.2f", color, q[i].x, base);
                for (size_t k = i; k < j; k++) plot_buf_printf(b, " %.2f,%.2f", q[k].x, q[k].y);
                plot_buf_printf(b, " %.2f,%.2f\"/>\n", q[j - 1].x, base);
            }
            plot_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                               "stroke-linejoin=\"round\" points=\"", color, width);
            for (size_t k = i; k < j; k++)
                plot_buf_printf(b, "%s%.2f,%.2f", k > i ? " " : "", q[k].x, q[k].y);
            plot_buf_printf(b, "\"/>\n");
        }
        i = j;
    }
    plot_buf_printf(b, "</g>\n");
    free(q);
}

/* The threshold lines of a panel (warn, stop, hard limit, budget): dashed
 * across the plot, each labelled in the right margin, the labels pushed
 * apart when lines are close. */
typedef struct mark {
    const char *kind, *color;
    double v;
    char label[48];
} mark;

typedef struct marks {
    mark m[4];
    int n;
} marks;

static void mark_add(marks *ms, const panel *p, const char *kind, double v, const char *color,
                     const char *name, const char *value)
{
    if (isnan(v) || v < p->v0 || v > p->v1 || ms->n == 4) return;
    mark *m = &ms->m[ms->n++];
    m->kind = kind;
    m->color = color;
    m->v = v;
    snprintf(m->label, sizeof m->label, "%s %s", name, value);
}

static void draw_marks(plot_buf *b, const panel *p, const marks *ms)
{
    double ly[4];
    for (int i = 0; i < ms->n; i++) ly[i] = py(p, ms->m[i].v) + 4;
    /* Highest value first is lowest y first: push each label below the
     * one above it when they would touch. */
    int order[4] = {0, 1, 2, 3};
    for (int i = 1; i < ms->n; i++)
        for (int j = i; j > 0 && ly[order[j]] < ly[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 1; i < ms->n; i++)
        if (ly[order[i]] < ly[order[i - 1]] + 12) ly[order[i]] = ly[order[i - 1]] + 12;
    for (int i = 0; i < ms->n; i++) {
        const mark *m = &ms->m[i];
        double y = py(p, m->v);
        plot_buf_printf(b, "<g class=\"threshold\" data-kind=\"%s\" data-v=\"%.9g\">"
                           "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                           "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                        m->kind, m->v, p->x, y, p->x + p->w, y, m->color);
        text(b, p->x + p->w + 12, ly[i], 11, m->color, NULL, "bold", m->label);
        plot_buf_printf(b, "</g>\n");
    }
}

/* ---- legend ----------------------------------------------------------------------------- */

typedef struct legend {
    double x, y;         /* where the next item goes */
    double x0, right;
} legend;

static void legend_item(plot_buf *b, legend *l, const char *color, const char *label)
{
    double w = 22 + text_w(label, 12) + 16;
    if (l->x + w > l->right && l->x > l->x0) {
        l->x = l->x0;
        l->y += 18;
    }
    plot_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"3\"/>\n", l->x, l->y - 4, l->x + 16, l->y - 4, color);
    text(b, l->x + 22, l->y, 12, C_TEXT, NULL, NULL, label);
    l->x += w;
}

/* ---- peaks -------------------------------------------------------------------------------- */

/* The highest value of s and when; NAN when it has none. */
static double peak(const plot_series *s, double *when)
{
    double best = NAN;
    for (size_t i = 0; i < s->n; i++)
        if (!isnan(s->pt[i].v) && (isnan(best) || s->pt[i].v > best)) {
            best = s->pt[i].v;
            *when = s->pt[i].t;
        }
    return best;
}

/* "--ram-budget 235 MiB", or "cgroup 2 GiB to 4 GiB" when the limit changed. */
static void limit_label(char *buf, size_t len, const plot_series *s)
{
    char lo[32], hi[32];
    if (isnan(s->total_lo)) {
        snprintf(buf, len, "%s", s->name);
        return;
    }
    fmt_bytes(lo, sizeof lo, s->total_lo);
    fmt_bytes(hi, sizeof hi, s->total_hi);
    if (strcmp(lo, hi) == 0) snprintf(buf, len, "%s %s", s->name, lo);
    else snprintf(buf, len, "%s %s to %s", s->name, lo, hi);
}

/* ---- the panels --------------------------------------------------------------------------- */

/* Top of a fraction axis: 100 %, or past the highest value (rounded up to
 * a tenth) when one went over. */
static double frac_top(const plot_series *s, size_t n)
{
    double top = 1.0, when;
    for (size_t i = 0; i < n; i++) {
        double pk = peak(&s[i], &when);
        if (!isnan(pk) && pk > top) top = ceil(pk * 10.5) / 10;
    }
    return top;
}

/* A panel's title at y, and its legend starting below it. */
static void panel_head(plot_buf *b, double y, const char *title, legend *l)
{
    text(b, ML - 60, y + 22, 14, C_TITLE, NULL, "bold", title);
    l->x0 = l->x = ML - 60;
    l->right = W - 24;
    l->y = y + 44;
}

/* The panel's box, drawn behind what follows it in the document. */
static void panel_box(plot_buf *b, double y, double h)
{
    plot_buf_printf(b, "<rect x=\"8\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" rx=\"4\" "
                       "fill=\"%s\" stroke=\"%s\"/>\n", y, W - 16, h, C_PANEL, C_BORDER);
}

/* Draws the event lines of a panel; badges in the first panel only. */
static void panel_events(plot_buf *b, const panel *p, const plot_run *r, const int *number,
                         bool badges);

static void thresholds_frac(plot_buf *b, const panel *p, double warn, double stop, double hard)
{
    marks ms = {.n = 0};
    char v[3][16];
    fmt_pct(v[0], sizeof v[0], hard);
    fmt_pct(v[1], sizeof v[1], stop);
    fmt_pct(v[2], sizeof v[2], warn);
    mark_add(&ms, p, "hard", hard, C_HARD, "kill", v[0]);
    mark_add(&ms, p, "stop", stop, C_STOP, "stop", v[1]);
    mark_add(&ms, p, "warn", warn, C_WARN, "warn", v[2]);
    draw_marks(b, p, &ms);
}

static double draw_ram(plot_buf *b, const plot_run *r, double y, double t1, const int *number)
{
    legend l;
    double top = y;
    plot_buf_printf(b, "<g id=\"ram-panel\">\n");
    panel_head(b, y, "RAM used, as a share of each limit weighed", &l);
    for (size_t i = 0; i < r->nram; i++) {
        char lab[256], pk[16];
        double when = 0, v = peak(&r->ram[i], &when);
        limit_label(lab, sizeof lab, &r->ram[i]);
        if (!isnan(v)) {
            fmt_pct(pk, sizeof pk, v);
            size_t n = strlen(lab);
            snprintf(lab + n, sizeof lab - n, " (peak %s)", pk);
        }
        legend_item(b, &l, series_color(i), lab);
    }
    if (!r->nram) legend_item(b, &l, C_AXIS, "no RAM readings in the log");
    panel p = {"ram", ML, l.y + 14, PW, 220, 0, t1, 0, frac_top(r->ram, r->nram), AX_FRAC};
    panel_open(b, &p, 1.0);
    for (size_t i = 0; i < r->nram; i++) draw_series(b, &p, &r->ram[i], series_color(i), 2, true, false);
    thresholds_frac(b, &p, r->warn_ram, r->stop_ram, r->hard_ram);
    panel_events(b, &p, r, number, true);
    plot_buf_printf(b, "</g>\n</g>\n");
    return p.y + p.h + 30 - top;
}

static double tree_top(const plot_run *r)
{
    double top = 0, when;
    const plot_series *s[] = {&r->tree_used, &r->tree_rss, &r->tree_pss};
    for (size_t i = 0; i < 3; i++) {
        double v = peak(s[i], &when);
        if (!isnan(v) && v > top) top = v;
    }
    if (!isnan(r->budget) && r->budget > top) top = r->budget;
    if (top <= 0) return 1024.0 * 1024 * 1024;
    double unit = 1;
    while (top / unit >= 1024) unit *= 1024;
    double step = nice_step(top * 1.08 / unit, 5);
    return ceil(top * 1.08 / unit / step) * step * unit;
}

static double draw_tree(plot_buf *b, const plot_run *r, double y, double t1, const int *number)
{
    legend l;
    char lab[96], v[32];
    double when = 0, pk = peak(&r->tree_used, &when);
    plot_buf_printf(b, "<g id=\"tree-panel\">\n");
    panel_head(b, y, "Process tree memory (the command and every descendant)", &l);
    if (!isnan(pk)) {
        fmt_bytes(v, sizeof v, pk);
        snprintf(lab, sizeof lab, "judged: PSS, or the estimate between readings (peak %s)", v);
    } else {
        snprintf(lab, sizeof lab, "judged: no readings in the log");
    }
    legend_item(b, &l, palette[0], lab);
    legend_item(b, &l, palette[7], "RSS sum (a shared page counted in every process)");
    if (r->tree_pss.n) legend_item(b, &l, palette[2], "PSS read");
    if (!isnan(r->budget)) {
        fmt_bytes(v, sizeof v, r->budget);
        snprintf(lab, sizeof lab, "--ram-budget %s", v);
        legend_item(b, &l, C_HARD, lab);
    }
    double top = tree_top(r), unit = 1;
    while (top / unit >= 1024) unit *= 1024;
    panel p = {"tree", ML, l.y + 14, PW, 170, 0, t1, 0, top, AX_BYTES};
    panel_open(b, &p, unit);
    draw_series(b, &p, &r->tree_rss, palette[7], 1.2, false, false);
    draw_series(b, &p, &r->tree_used, palette[0], 2, true, false);
    draw_series(b, &p, &r->tree_pss, palette[2], 0, false, true);
    if (!isnan(r->budget)) {
        marks ms = {.n = 0};
        char sz[3][32];
        fmt_bytes(sz[0], sizeof sz[0], r->budget);
        fmt_bytes(sz[1], sizeof sz[1], r->budget * r->stop_ram);
        fmt_bytes(sz[2], sizeof sz[2], r->budget * r->warn_ram);
        mark_add(&ms, &p, "budget", r->budget, C_HARD, "budget", sz[0]);
        mark_add(&ms, &p, "stop", r->budget * r->stop_ram, C_STOP, "stop", sz[1]);
        mark_add(&ms, &p, "warn", r->budget * r->warn_ram, C_WARN, "warn", sz[2]);
        draw_marks(b, &p, &ms);
    }
    panel_events(b, &p, r, number, false);
    plot_buf_printf(b, "</g>\n</g>\n");
    return p.y + p.h + 30 - y;
}

static const char *gpu_state_words(const char *st)
{
    static const struct { const char *state, *words; } map[] = {
        {"disabled", "disabled (--no-gpu)"}, {"no_library", "NVML not found"},
        {"no_driver", "no NVIDIA driver"}, {"no_device", "no NVIDIA device"},
        {"error", "NVML error"}, {"ok", "none visible (CUDA_VISIBLE_DEVICES)"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(st, map[i].state) == 0) return map[i].words;
    return "not in the log";
}

static double draw_gpu(plot_buf *b, const plot_run *r, double y, double t1, const int *number)
{
    legend l;
    char lab[200];
    plot_buf_printf(b, "<g id=\"gpu-panel\">\n");
    if (!r->ngpu) {
        snprintf(lab, sizeof lab, "GPU: none (%s)", gpu_state_words(r->gpu_state));
        text(b, ML - 60, y + 22, 14, C_TITLE, NULL, "bold", lab);
        plot_buf_printf(b, "</g>\n");
        return 36;
    }
    panel_head(b, y, "GPU memory used, as a share of each device", &l);
    for (size_t i = 0; i < r->ngpu; i++) {
        char size[32], pk[16];
        double when = 0, v = peak(&r->gpu[i], &when);
        fmt_bytes(size, sizeof size, r->gpu[i].total_hi);
        fmt_pct(pk, sizeof pk, v);
        snprintf(lab, sizeof lab, "%s %s (peak %s)", r->gpu[i].name,
                 isnan(r->gpu[i].total_hi) ? "" : size, isnan(v) ? "none" : pk);
        legend_item(b, &l, series_color(i), lab);
    }
    panel p = {"gpu", ML, l.y + 14, PW, 170, 0, t1, 0, frac_top(r->gpu, r->ngpu), AX_FRAC};
    panel_open(b, &p, 1.0);
    for (size_t i = 0; i < r->ngpu; i++) draw_series(b, &p, &r->gpu[i], series_color(i), 2, true, false);
    thresholds_frac(b, &p, r->warn_gpu, r->stop_gpu, r->hard_gpu);
    panel_events(b, &p, r, number, false);
    plot_buf_printf(b, "</g>\n</g>\n");
    return p.y + p.h + 30 - y;
}

/* ---- events --------------------------------------------------------------------------------- */

/* Picks the events of the table (at most TABLE_ROWS): every one but
 * repeated warnings first, then those, in time order. number[i] is the
 * badge of event i (1-based), 0 for one left out. Returns how many. */
static int pick_events(const plot_run *r, int *number)
{
    int rows = 0;
    bool seen_warn = false;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < r->nev && rows < TABLE_ROWS; i++) {
            bool repeat = strcmp(r->ev[i].kind, "warn") == 0 && seen_warn;
            if (strcmp(r->ev[i].kind, "warn") == 0) seen_warn = true;
            if (number[i] || (pass == 0) == repeat) continue;
            number[i] = -1;
            rows++;
        }
    int k = 0;
    for (size_t i = 0; i < r->nev; i++)
        if (number[i]) number[i] = ++k;
    return rows;
}

static void badge(plot_buf *b, double x, double y, const char *color, int n)
{
    char num[12];
    snprintf(num, sizeof num, "%d", n);
    plot_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"8.5\" fill=\"%s\" stroke=\"%s\" "
                       "stroke-width=\"1.5\"/>\n", x, y, color, C_BG);
    text(b, x, y + 3.8, 10.5, C_BG, "middle", "bold", num);
}

static void panel_events(plot_buf *b, const panel *p, const plot_run *r, const int *number,
                         bool badges)
{
    double last_x = -1e9;
    int level = 0;
    for (size_t i = 0; i < r->nev; i++) {
        const plot_event *e = &r->ev[i];
        double x = px(p, e->t);
        const char *c = event_color(e->kind);
        plot_buf_printf(b, "<g class=\"event\" data-kind=\"%s\" data-t=\"%.9g\"%s>"
                           "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                           "stroke-width=\"%s\" stroke-dasharray=\"3 3\" stroke-opacity=\"%s\"/>\n",
                        e->kind, e->t, number[i] ? "" : " data-listed=\"no\"", x, p->y, x,
                        p->y + p->h, c, number[i] ? "1.5" : "1", number[i] ? "0.9" : "0.4");
        if (badges && number[i]) {
            level = x - last_x < 19 ? (level + 1) % 5 : 0;
            badge(b, x, p->y + 11 + 19 * level, c, number[i]);
            last_x = x;
        }
        plot_buf_printf(b, "</g>\n");
    }
}

static double draw_table(plot_buf *b, const plot_run *r, double y, const int *number)
{
    text(b, ML - 60, y + 22, 14, C_TITLE, NULL, "bold", "Events");
    double row = y + 46;
    size_t rows = 0, warns = 0, others = 0;
    for (size_t i = 0; i < r->nev; i++) {
        const plot_event *e = &r->ev[i];
        if (!number[i]) {
            if (strcmp(e->kind, "warn") == 0) warns++;
            else others++;
            continue;
        }
        char t[32], shown[400];
        snprintf(t, sizeof t, "%.2f s", e->t);
        const char *c = event_color(e->kind);
        plot_buf_printf(b, "<g class=\"event-row\" data-kind=\"%s\">\n", e->kind);
        badge(b, ML - 48, row - 4, c, number[i]);
        text(b, ML + 30, row, 12, C_TEXT, "end", NULL, t);
        text(b, ML + 42, row, 12, c, NULL, "bold", e->kind);
        fit_text(shown, sizeof shown, e->text, 12, W - 24 - (ML + 150));
        text(b, ML + 150, row, 12, C_TEXT, NULL, NULL, shown);
        plot_buf_printf(b, "</g>\n");
        row += 21;
        rows++;
    }
    if (!rows) {
        text(b, ML - 60, row, 12, C_AXIS, NULL, NULL,
             "none: no warning, request or stop during the run");
        row += 21;
    }
    size_t more = warns + others + r->ev_dropped;
    if (more) {
        char lab[160];
        snprintf(lab, sizeof lab, "and %zu more in the log (%zu repeated warning%s, %zu other%s)",
                 more, warns, warns == 1 ? "" : "s", others + r->ev_dropped,
                 others + r->ev_dropped == 1 ? "" : "s");
        text(b, ML - 60, row, 12, C_AXIS, NULL, NULL, lab);
        row += 21;
    }
    return row - y;
}

/* ---- the header ------------------------------------------------------------------------------ */

static const char *exit_color(const plot_run *r)
{
    if (!r->exited) return C_AXIS;
    if (r->exit_status == 0) return "#73bf69";
    if (r->exit_status == MG_EXIT_MEMSTOP) return C_STOP;
    return C_HARD;
}

static void header(plot_buf *b, const plot_run *r)
{
    char line[700], shown[700];
    snprintf(line, sizeof line, "memguard run: %s", r->command[0] ? r->command : "(no start line)");
    fit_text(shown, sizeof shown, line, 18, W - 40);
    text(b, 20, 32, 18, C_TITLE, NULL, "bold", shown);

    const char *ending = NULL;
    for (size_t i = 0; i < r->nev; i++)
        if (strcmp(r->ev[i].kind, "exit") == 0) ending = r->ev[i].text;
    snprintf(line, sizeof line, "%s", r->exited && ending ? ending
             : "no exit line: memguard was still running, or was killed");
    plot_buf_printf(b, "<rect x=\"20\" y=\"44\" width=\"10\" height=\"14\" rx=\"2\" fill=\"%s\"/>\n",
                    exit_color(r));
    fit_text(shown, sizeof shown, line, 13, W - 60);
    text(b, 36, 56, 13, exit_color(r), NULL, "bold", shown);

    char dur[32], peak_txt[320] = "", tree_txt[64] = "";
    snprintf(dur, sizeof dur, "%.2f s", r->t_end);
    double best = NAN, when = 0;
    const plot_series *which = NULL;
    for (size_t i = 0; i < r->nram; i++) {
        double w = 0, v = peak(&r->ram[i], &w);
        if (!isnan(v) && (isnan(best) || v > best)) {
            best = v;
            when = w;
            which = &r->ram[i];
        }
    }
    if (which) {
        char pct[16], lim[200];
        fmt_pct(pct, sizeof pct, best);
        limit_label(lim, sizeof lim, which);
        snprintf(peak_txt, sizeof peak_txt, " \xC2\xB7 RAM peak %s of %s at %.2f s", pct, lim, when);
    }
    double tw = 0, tp = peak(&r->tree_used, &tw);
    if (!isnan(tp)) {
        char v[32];
        fmt_bytes(v, sizeof v, tp);
        snprintf(tree_txt, sizeof tree_txt, " \xC2\xB7 tree peak %s", v);
    }
    char gpu_txt[64] = "";
    double gbest = NAN;
    size_t gi = 0;
    for (size_t i = 0; i < r->ngpu; i++) {
        double w = 0, v = peak(&r->gpu[i], &w);
        if (!isnan(v) && (isnan(gbest) || v > gbest)) {
            gbest = v;
            gi = i;
        }
    }
    if (!isnan(gbest)) {
        char pct[16];
        fmt_pct(pct, sizeof pct, gbest);
        snprintf(gpu_txt, sizeof gpu_txt, " \xC2\xB7 GPU peak %s (GPU %s)", pct, r->gpu[gi].key + 4);
    }
    snprintf(line, sizeof line, "%s \xC2\xB7 %zu sample%s%s%s%s%s", dur, r->samples,
             r->samples == 1 ? "" : "s", peak_txt, tree_txt, gpu_txt,
             r->dry_run ? " \xC2\xB7 dry run" : "");
    fit_text(shown, sizeof shown, line, 13, W - 40);
    text(b, 20, 78, 13, C_TEXT, NULL, NULL, shown);
}

/* ---- the document ------------------------------------------------------------------------------ */

void plot_svg(const plot_run *r, plot_buf *out)
{
    int *number = calloc(r->nev + 1, sizeof *number);
    if (!number) {
        out->failed = true;
        return;
    }
    pick_events(r, number);
    double t1 = r->t_end > 0 ? r->t_end : 1.0;

    /* The body first, to know the height; the root element goes before it. */
    plot_buf body = {0};
    double y = 96, h;
    h = draw_ram(&body, r, y, t1, number);
    double ram_y = y, ram_h = h;
    y += h + 12;
    double tree_y = y, tree_h = draw_tree(&body, r, y, t1, number);
    y += tree_h + 12;
    double gpu_y = y, gpu_h = draw_gpu(&body, r, y, t1, number);
    y += gpu_h + 12;
    double table_y = y, table_h = draw_table(&body, r, y, number);
    y += table_h + 8;
    text(&body, W - 20, y + 8, 10, C_AXIS, "end", NULL,
         "memguard plot \xC2\xB7 time in seconds since the command started");
    double height = y + 20;

    plot_buf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                         "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n<title>memguard run: ",
                    W, height, W, height, FONT);
    plot_buf_xml(out, r->command);
    plot_buf_printf(out, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"%s\"/>\n", C_BG);
    header(out, r);
    panel_box(out, ram_y, ram_h);
    panel_box(out, tree_y, tree_h);
    if (r->ngpu) panel_box(out, gpu_y, gpu_h);
    panel_box(out, table_y, table_h);
    if (body.failed) out->failed = true;
    else plot_buf_put(out, body.p, body.n);
    plot_buf_printf(out, "</svg>\n");
    free(body.p);
    free(number);
}
