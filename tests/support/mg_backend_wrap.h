/* SPDX-License-Identifier: MIT */
/*
 * mg_backend_wrap.h: a backend table (backend.h) that forwards every entry
 * which touches the arena (the copies, zero, discard, sync, the layout
 * conversions and every op) to an inner table, between two hooks the
 * including test defines: wrap_enter(op) before the call and
 * wrap_leave(op) after it. test_backend.c counts calls with them;
 * test_backend_fenced.c opens and closes its fence. The other entries
 * (name, alloc and free, the host staging, the sizes, and channels(),
 * which only computes a pointer) are the inner table's own. Test code
 * only.
 */
#ifndef MG_BACKEND_WRAP_H
#define MG_BACKEND_WRAP_H

#include "backend.h"

enum { UPLOAD, DOWNLOAD, ZERO, DISCARD, SYNC, FROM, TO, REUSE, C3F, C3D, C3W, CTF, CTD, CTW, C1F,
       C1D, C1W, BNF, BNE, BNA, BNB, MPF, MPB, ADD, SCALE, LF, LB, ADAM, NOPS };

static const unet_backend *wrap_inner;
static void wrap_enter(int op);
static void wrap_leave(int op);

#define WRAPPED(op, call)                                                                   \
    do {                                                                                    \
        wrap_enter(op);                                                                     \
        call;                                                                               \
        wrap_leave(op);                                                                     \
    } while (0)
#define IN wrap_inner

/* clang-format off */
static void w_upload(void *d, const void *h, size_t n) { WRAPPED(UPLOAD, IN->upload(d, h, n)); }
static void w_download(void *h, const void *s, size_t n) { WRAPPED(DOWNLOAD, IN->download(h, s, n)); }
static void w_zero(void *p, size_t n) { WRAPPED(ZERO, IN->zero(p, n)); }
static void w_discard(void *p, size_t n) { WRAPPED(DISCARD, IN->discard(p, n)); }
static void w_sync(void) { WRAPPED(SYNC, IN->sync()); }
static void w_from(float *d, shape s, const float *n) { WRAPPED(FROM, IN->from_nchw(d, s, n)); }
static void w_to(float *n, shape s, const float *d) { WRAPPED(TO, IN->to_nchw(n, s, d)); }
static void w_reuse(float *t, shape s) { WRAPPED(REUSE, IN->reuse(t, s)); }
static void c3f(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ WRAPPED(C3F, IN->conv3x3_forward(o, i, s, w, co, sc)); }
static void c3d(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ WRAPPED(C3D, IN->conv3x3_backward_data(o, i, s, w, co, sc)); }
static void c3w(float *dw, const float *d, const float *i, shape s, int co, float *sc)
{ WRAPPED(C3W, IN->conv3x3_backward_weight(dw, d, i, s, co, sc)); }
static void ctf(float *o, const float *i, shape s, const float *w, const float *b, int co, float *sc)
{ WRAPPED(CTF, IN->convt2x2_forward(o, i, s, w, b, co, sc)); }
static void ctd(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ WRAPPED(CTD, IN->convt2x2_backward_data(o, i, s, w, co, sc)); }
static void ctw(float *dw, float *db, const float *d, const float *i, shape s, int co, float *sc)
{ WRAPPED(CTW, IN->convt2x2_backward_weight(dw, db, d, i, s, co, sc)); }
static void c1f(float *o, const float *i, shape s, const float *w, const float *b, int co, float *sc)
{ WRAPPED(C1F, IN->conv1x1_forward(o, i, s, w, b, co, sc)); }
static void c1d(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ WRAPPED(C1D, IN->conv1x1_backward_data(o, i, s, w, co, sc)); }
static void c1w(float *dw, float *db, const float *d, const float *i, shape s, int co, float *sc)
{ WRAPPED(C1W, IN->conv1x1_backward_weight(dw, db, d, i, s, co, sc)); }
static void bnf(float *y, const float *x, shape s, const float *g, const float *b, float *m,
                float *r, float *rm, float *rv, int64_t *n, double mo, double e, float *sc,
                const unet_sum_hook *h)
{ WRAPPED(BNF, IN->bn_relu_forward(y, x, s, g, b, m, r, rm, rv, n, mo, e, sc, h)); }
static void bne(float *y, const float *x, shape s, const float *g, const float *b,
                const float *rm, const float *rv, double e)
{ WRAPPED(BNE, IN->bn_relu_forward_eval(y, x, s, g, b, rm, rv, e)); }
static void bna(float *y, const float *x, shape s, const float *g, const float *b,
                const float *m, const float *r)
{ WRAPPED(BNA, IN->bn_relu_apply(y, x, s, g, b, m, r)); }
static void bnb(float *dx, float *dg, float *db, const float *dy, const float *x, shape s,
                const float *g, const float *b, const float *m, const float *r, float *sc,
                const unet_sum_hook *h)
{ WRAPPED(BNB, IN->bn_relu_backward(dx, dg, db, dy, x, s, g, b, m, r, sc, h)); }
static void mpf(float *y, const float *x, shape s) { WRAPPED(MPF, IN->maxpool2x2_forward(y, x, s)); }
static void mpb(float *dx, const float *dy, const float *x, shape s)
{ WRAPPED(MPB, IN->maxpool2x2_backward(dx, dy, x, s)); }
static void add(float *d, const float *s_, shape s) { WRAPPED(ADD, IN->add(d, s_, s)); }
static void scale(float *x, size_t n, float a) { WRAPPED(SCALE, IN->scale(x, n, a)); }
static loss_parts lf(const float *l, const float *t, int n, int hw, float *st, float *sc)
{ loss_parts r; WRAPPED(LF, r = IN->loss_forward(l, t, n, hw, st, sc)); return r; }
static void lb(float *d, const float *l, const float *t, int n, int hw, const float *st)
{ WRAPPED(LB, IN->loss_backward(d, l, t, n, hw, st)); }
static void adam(float *p, const float *g, float *m, float *v, size_t n, const adam_scalars *k)
{ WRAPPED(ADAM, IN->adam_update(p, g, m, v, n, k)); }
/* clang-format on */

#undef IN

/* `inner` with every entry that touches the arena wrapped. */
static unet_backend wrap_table(const unet_backend *inner)
{
    unet_backend t = *inner;
    wrap_inner = inner;
    t.upload = w_upload, t.download = w_download, t.zero = w_zero, t.discard = w_discard;
    t.sync = w_sync, t.from_nchw = w_from, t.to_nchw = w_to, t.reuse = w_reuse;
    t.conv3x3_forward = c3f, t.conv3x3_backward_data = c3d, t.conv3x3_backward_weight = c3w;
    t.convt2x2_forward = ctf, t.convt2x2_backward_data = ctd, t.convt2x2_backward_weight = ctw;
    t.conv1x1_forward = c1f, t.conv1x1_backward_data = c1d, t.conv1x1_backward_weight = c1w;
    t.bn_relu_forward = bnf, t.bn_relu_forward_eval = bne, t.bn_relu_apply = bna;
    t.bn_relu_backward = bnb, t.maxpool2x2_forward = mpf, t.maxpool2x2_backward = mpb;
    t.add = add, t.scale = scale, t.loss_forward = lf, t.loss_backward = lb, t.adam_update = adam;
    return t;
}

#endif /* MG_BACKEND_WRAP_H */
