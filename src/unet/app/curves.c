/* SPDX-License-Identifier: MIT */
/*
 * curves.c: see curves.h. Reads metrics.csv's rows back (so a resumed run
 * draws every epoch, not only its own), and draws them as one
 * self-contained SVG document (no scripts, fonts, styles or images from
 * elsewhere), in the manner of memguard plot: each panel carries its plot
 * area and scales as data-* attributes (data-x, data-y, data-w, data-h;
 * data-t0, data-t1 the epochs at its left and right edge; data-v0, data-v1
 * the values at its bottom and top), and each series its key (the
 * metrics.csv column), so a program can map every drawn point back to the
 * number in the file (the tests do). A value that is not a number (the
 * validation columns of a run without a validation set) is not drawn; a
 * series with no number at all is left out and the panel says so. The
 * batch changes of --on-memory shrink (OUT/shrinks.csv, when there is
 * one) are dashed lines where they happened, labelled "batch 8 -> 6".
 *
 * Not here: deciding when to draw (train.c calls this after every epoch
 * and at an emergency stop) and writing metrics.csv.
 */
#include "curves.h"

#include "errf.h"
#include "fileio.h"
#include "memguard.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics.csv's rows ---------------------------------------------------------- */

enum { K_TRAIN_LOSS, K_VAL_LOSS, K_VAL_DICE, K_VAL_IOU, K_N };
/* The columns drawn, by their index in metrics.csv's header. */
static const int COLUMN[K_N] = {1, 4, 5, 6};
static const char *const KEY[K_N] = {"train_loss", "val_loss", "val_dice", "val_iou"};
static const char *const LABEL[K_N] = {"train loss", "val loss", "val Dice", "val IoU"};
static const char *const COLOUR[K_N] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"};

typedef struct rows {
    int n, cap;
    int *epoch;
    double (*v)[K_N];
} rows;

/* One row's epoch and drawn columns; false for a line that is no row. */
static bool parse_row(char *line, int *epoch, double v[K_N])
{
    double col[9];
    int nc = 0;
    for (char *s = line, *end; nc < 9; s = end + 1) {
        col[nc++] = strtod(s, &end);
        if (end == s || (*end != ',' && *end != '\n' && *end != '\0')) return false;
        if (*end != ',') break;
    }
    if (nc < 7 || !(col[0] >= 1) || col[0] != floor(col[0])) return false;
    *epoch = (int)col[0];
    for (int k = 0; k < K_N; k++) v[k] = col[COLUMN[k]];
    return true;
}

static int read_rows(const char *path, rows *r, char *err, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        int e;
        double v[K_N];
        if (!parse_row(line, &e, v)) continue; /* the header */
        if (r->n == r->cap) {
            int cap = r->cap ? 2 * r->cap : 64;
            int *ep = realloc(r->epoch, (size_t)cap * sizeof *ep);
            if (ep) r->epoch = ep;
            double(*nv)[K_N] = ep ? realloc(r->v, (size_t)cap * sizeof *nv) : NULL;
            if (!nv) {
                snprintf(err, len, "%s: out of memory", path);
                rc = -1;
                break;
            }
            r->v = nv;
            r->cap = cap;
        }
        r->epoch[r->n] = e;
        memcpy(r->v[r->n++], v, sizeof v);
    }
    fclose(f);
    return rc;
}

/* ---- OUT/shrinks.csv's rows (--on-memory shrink) ------------------------------------ */

#define SHRINKS_MAX 64

typedef struct shrink_mark {
    int epoch, from, to;
    double at; /* the epoch's fraction done: sample / samples */
} shrink_mark;

/* "epoch,sample,samples,from_batch,to_batch,..." as a mark; false for the
 * header or a line that is no row. */
static bool parse_shrink(const char *line, shrink_mark *m)
{
    long v[5];
    const char *s = line;
    for (int k = 0; k < 5; k++) {
        char *end;
        v[k] = strtol(s, &end, 10);
        if (end == s || *end != ',') return false;
        s = end + 1;
    }
    if (v[0] < 1 || v[1] < 0 || v[2] < 1 || v[1] > v[2] || v[3] < 1 || v[4] < 1) return false;
    *m = (shrink_mark){(int)v[0], (int)v[3], (int)v[4], (double)v[1] / (double)v[2]};
    return true;
}

/* Up to SHRINKS_MAX marks of OUT/shrinks.csv up to epoch `upto`; none
 * when there is no such file (a run that never shrank). */
static int read_shrinks(const char *out, int upto, shrink_mark *m)
{
    char path[1200], line[4096], err[8];
    snprintf(path, sizeof path, "%s/shrinks.csv", out);
    FILE *f = unet_fopen_regular(path, NULL, err, sizeof err); /* a FIFO does not hang */
    int n = 0, r;
    while (f && n < SHRINKS_MAX && (r = unet_read_line(f, line, sizeof line)) != 0)
        n += r == 1 && parse_shrink(line, &m[n]) && m[n].epoch <= upto;
    if (f) fclose(f);
    return n;
}

/* ---- the text -------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool failed;
} buf;

static void put(buf *b, const char *fmt, ...) UNET_PRINTF(2, 3);
static void put(buf *b, const char *fmt, ...)
{
    for (int tries = 0; !b->failed && tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) break;
        if (b->p && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 16384;
        while (cap - b->n <= (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) break;
        b->p = p;
        b->cap = cap;
    }
    b->failed = true;
}

/* ---- the drawing ----------------------------------------------------------------- */

#define SVG_W 760
#define SVG_H 640

typedef struct panel {
    const char *id, *title, *ylabel;
    double x, y, w, h, t0, t1, v0, v1;
    int first, nkeys; /* the keys drawn: first .. first + nkeys - 1 */
} panel;

static double px(const panel *p, double t) { return p->x + (t - p->t0) / (p->t1 - p->t0) * p->w; }
static double py(const panel *p, double v) { return p->y + p->h - (v - p->v0) / (p->v1 - p->v0) * p->h; }

/* A round step giving about `want` ticks over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Whether key k has at least one number. */
static bool has_values(const rows *r, int k)
{
    for (int i = 0; i < r->n; i++)
        if (isfinite(r->v[i][k])) return true;
    return false;
}

static void frame(buf *b, const panel *p)
{
    put(b, "<g class=\"panel\" id=\"%s\" data-x=\"%.2f\" data-y=\"%.2f\" data-w=\"%.2f\" "
           "data-h=\"%.2f\" data-t0=\"%.9g\" data-t1=\"%.9g\" data-v0=\"%.9g\" "
           "data-v1=\"%.9g\">\n", p->id, p->x, p->y, p->w, p->h, p->t0, p->t1, p->v0, p->v1);
    put(b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", p->x,
        p->y - 10, p->title);
    put(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" "
           "stroke=\"#888888\"/>\n", p->x, p->y, p->w, p->h);
}

static void axes(buf *b, const panel *p)
{
    double tx = nice_step(p->t1 - p->t0, 10);
    if (tx < 1) tx = 1;
    for (double t = ceil(p->t0); t <= p->t1 + 1e-9; t += tx)
        put(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e4e4e4\"/>"
               "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
            px(p, t), p->y, px(p, t), p->y + p->h, px(p, t), p->y + p->h + 14, t);
    double ty = nice_step(p->v1 - p->v0, 5);
    for (double v = p->v0; v <= p->v1 + 1e-9 * ty; v += ty)
        put(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e4e4e4\"/>"
               "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
            p->x, py(p, v), p->x + p->w, py(p, v), p->x - 6, py(p, v) + 4, v);
    put(b, "<text class=\"axis-label\" x=\"%.2f\" y=\"%.2f\" font-size=\"12\" "
           "text-anchor=\"middle\">epoch</text>\n", p->x + p->w / 2, p->y + p->h + 32);
    put(b, "<text class=\"axis-label\" x=\"%.2f\" y=\"%.2f\" font-size=\"12\" "
           "text-anchor=\"middle\" transform=\"rotate(-90 %.2f %.2f)\">%s</text>\n", p->x - 44,
        p->y + p->h / 2, p->x - 44, p->y + p->h / 2, p->ylabel);
}

/* One series: a polyline through its numbers and a dot on each (a lone
 * point still shows). */
static void series(buf *b, const panel *p, const rows *r, int k)
{
    put(b, "<g class=\"series\" data-key=\"%s\" stroke=\"%s\" fill=\"%s\">\n<polyline "
           "fill=\"none\" stroke-width=\"2\" points=\"", KEY[k], COLOUR[k], COLOUR[k]);
    for (int i = 0; i < r->n; i++)
        if (isfinite(r->v[i][k]))
            put(b, "%s%.2f,%.2f", i ? " " : "", px(p, r->epoch[i]), py(p, r->v[i][k]));
    put(b, "\"/>\n");
    for (int i = 0; i < r->n; i++)
        if (isfinite(r->v[i][k]))
            put(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"/>", px(p, r->epoch[i]),
                py(p, r->v[i][k]));
    put(b, "\n</g>\n");
}

/* The legend right of the panel: the drawn series, and a line saying the
 * validation series are absent when they are. */
static void legend(buf *b, const panel *p, const rows *r)
{
    double x = p->x + p->w + 16, y = p->y + 14;
    put(b, "<g class=\"legend\">\n");
    for (int k = p->first; k < p->first + p->nkeys; k++) {
        if (!has_values(r, k)) continue;
        put(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
               "stroke-width=\"3\"/><text x=\"%.2f\" y=\"%.2f\" font-size=\"12\">%s</text>\n",
            x, y - 4, x + 22, y - 4, COLOUR[k], x + 28, y, LABEL[k]);
        y += 18;
    }
    if (!has_values(r, K_VAL_LOSS))
        put(b, "<text class=\"no-val\" x=\"%.2f\" y=\"%.2f\" font-size=\"12\" fill=\"#666666\">"
               "no validation set:</text><text x=\"%.2f\" y=\"%.2f\" font-size=\"12\" "
               "fill=\"#666666\">val series absent</text>\n", x, y, x, y + 15);
    put(b, "</g>\n");
}

static void stop_line(buf *b, const panel *p, int stop_epoch)
{
    if (stop_epoch <= 0) return;
    double x = px(p, stop_epoch);
    put(b, "<g class=\"event\" data-kind=\"emergency-stop\" data-epoch=\"%d\">"
           "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#d62728\" "
           "stroke-width=\"2\" stroke-dasharray=\"6 3\"/><text x=\"%.2f\" y=\"%.2f\" "
           "font-size=\"11\" fill=\"#d62728\" text-anchor=\"end\">emergency stop, epoch %d "
           "(emergency_epoch%d.pth)</text></g>\n", stop_epoch, x, p->y, x, p->y + p->h, x - 4,
        p->y + 14, stop_epoch, stop_epoch);
}

/* A shrink during epoch E at its fraction f: at x = E - 1 + f, where the
 * epoch's training ran (its row's point is drawn at x = E, its end). */
static void shrink_line(buf *b, const panel *p, const shrink_mark *m)
{
    double x = px(p, m->epoch - 1 + m->at);
    put(b, "<g class=\"event\" data-kind=\"shrink\" data-epoch=\"%d\" data-at=\"%.6g\" "
           "data-from=\"%d\" data-to=\"%d\"><line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
           "y2=\"%.2f\" stroke=\"#17becf\" stroke-width=\"2\" stroke-dasharray=\"3 3\"/>"
           "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" fill=\"#0f8a96\">batch %d -&gt; %d"
           "</text></g>\n", m->epoch, m->at, m->from, m->to, x, p->y, x, p->y + p->h, x + 3,
        p->y + p->h - 6, m->from, m->to);
}

static void draw_panel(buf *b, const panel *p, const rows *r, int stop_epoch,
                       const shrink_mark *m, int nm)
{
    frame(b, p);
    axes(b, p);
    for (int k = p->first; k < p->first + p->nkeys; k++)
        if (has_values(r, k)) series(b, p, r, k);
    for (int i = 0; i < nm; i++) shrink_line(b, p, &m[i]);
    stop_line(b, p, stop_epoch);
    legend(b, p, r);
    put(b, "</g>\n");
}

/* The largest loss drawn, for the loss panel's top. */
static double max_loss(const rows *r)
{
    double m = 0;
    for (int i = 0; i < r->n; i++)
        for (int k = K_TRAIN_LOSS; k <= K_VAL_LOSS; k++)
            if (isfinite(r->v[i][k]) && r->v[i][k] > m) m = r->v[i][k];
    return m;
}

static void draw(buf *b, const rows *r, int stop_epoch, const shrink_mark *m, int nm)
{
    double last = r->n ? r->epoch[r->n - 1] : 0;
    for (int i = 0; i < nm; i++) last = fmax(last, m[i].epoch);
    /* Half an epoch of room right of a stop, so its line is not the frame. */
    double t1 = stop_epoch > 0 ? fmax(last, stop_epoch) + 0.5 : fmax(last, 1);
    double top = max_loss(r);
    double step = nice_step(top > 0 ? top : 1, 5);
    panel loss = {"losses", "Loss per epoch", "loss", 80, 70, 480, 210, 0, t1, 0,
                  ceil((top > 0 ? top : 1) / step) * step, K_TRAIN_LOSS, 2};
    panel qual = {"quality", "Validation quality per epoch", "Dice / IoU", 80, 360, 480, 210,
                  0, t1, 0, 1, K_VAL_DICE, 2};
    put(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
           "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
        SVG_W, SVG_H, SVG_W, SVG_H);
    put(b, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n");
    put(b, "<text x=\"20\" y=\"30\" font-size=\"16\" font-weight=\"bold\">unet-train: %d "
           "epoch%s%s%s</text>\n", r->n, r->n == 1 ? "" : "s",
        nm > 0 ? ", smaller batches for memory" : "",
        stop_epoch > 0 ? ", then stopped for memory" : "");
    draw_panel(b, &loss, r, stop_epoch, m, nm);
    draw_panel(b, &qual, r, stop_epoch, m, nm);
    put(b, "</svg>\n");
}

static int write_file(const char *path, const buf *b, char *err, size_t len)
{
    mg_atomic a;
    int rc = mg_atomic_open(&a, path);
    if (rc != 0) {
        snprintf(err, len, "%s: cannot create: %s", path, mg_strerror(rc));
        return -1;
    }
    if ((rc = mg_atomic_write(&a, b->p, b->n)) != 0 || (rc = mg_atomic_commit(&a)) != 0) {
        mg_atomic_abort(&a);
        snprintf(err, len, "%s: %s", path, mg_strerror(rc));
        return -1;
    }
    return 0;
}

int curves_write(const char *out, int stop_epoch, char *err, size_t len)
{
    char csv[1200], svg[1200];
    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    snprintf(svg, sizeof svg, "%s/curves.svg", out);
    rows r = {0};
    buf b = {0};
    shrink_mark m[SHRINKS_MAX];
    int rc = read_rows(csv, &r, err, len);
    if (rc == 0) {
        /* Up to the epoch in progress: a resumed run's later rows are
         * of the timeline its resume replaced. */
        int upto = (r.n ? r.epoch[r.n - 1] : 0) + 1;
        draw(&b, &r, stop_epoch, m, read_shrinks(out, upto > stop_epoch ? upto : stop_epoch, m));
        if (b.failed) {
            snprintf(err, len, "%s: out of memory", svg);
            rc = -1;
        } else {
            rc = write_file(svg, &b, err, len);
        }
    }
    free(b.p);
    free(r.epoch);
    free(r.v);
    return rc;
}
