/* SPDX-License-Identifier: MIT */
/*
 * model.c: the UNet's parameter table, memory plan, initialisation, and
 * forward / backward passes (see model.h). Every tensor lives in the one
 * arena planned here; every op runs through m->be (backend.h), so nothing
 * here knows the activation layout.
 *
 * The plan for B=8 at 128x128 with the default model (base 16, depth 4):
 * params + grads + Adam moments 29.7 MiB, activations 106 MiB (160 when
 * every ReLU output was kept too), activation gradients 57 MiB (the skip
 * gradients of every level plus three working buffers the size of the
 * largest activation, which also hold the blocked logits and their
 * gradient, instead of one gradient per activation: 160 MiB;
 * research/cnn-in-c.md 5.4); 197.9 MiB in all.
 */
#include "model.h"

#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

static int ch_of(const unet_cfg *c, int level) { return c->base << level; }

/* ---- parameter table -------------------------------------------------------- */

static int add_param(unet *m, const char *name, pkind kind, int ndim, int d0, int d1, int d2,
                     int d3, size_t *float_off, int *count_off, int *trainable)
{
    param *p = &m->p[m->nparams];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    p->dims[0] = d0;
    p->dims[1] = d1;
    p->dims[2] = d2;
    p->dims[3] = d3;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->numel *= (size_t)p->dims[i];
    if (kind == PK_BN_COUNT) {
        p->off = (size_t)(*count_off)++;
        p->trainable = -1;
    } else {
        p->off = *float_off;
        *float_off += p->numel;
        bool buffer = kind == PK_BN_MEAN || kind == PK_BN_VAR;
        p->trainable = buffer ? -1 : (*trainable)++;
    }
    return m->nparams++;
}

static void add_block(unet *m, block_params *bp, const char *prefix, int cin, int cout,
                      size_t *fo, int *co, int *tr)
{
    char n[40];
#define P(suffix, kind, nd, a, b, c, d)                                                   \
    (snprintf(n, sizeof n, "%s.%s", prefix, suffix),                                      \
     add_param(m, n, kind, nd, a, b, c, d, fo, co, tr))
    bp->w1 = P("0.weight", PK_CONV, 4, cout, cin, 3, 3);
    bp->g1 = P("1.weight", PK_BN_W, 1, cout, 0, 0, 0);
    bp->b1 = P("1.bias", PK_BN_B, 1, cout, 0, 0, 0);
    bp->m1 = P("1.running_mean", PK_BN_MEAN, 1, cout, 0, 0, 0);
    bp->v1 = P("1.running_var", PK_BN_VAR, 1, cout, 0, 0, 0);
    bp->n1 = P("1.num_batches_tracked", PK_BN_COUNT, 0, 0, 0, 0, 0);
    bp->w2 = P("3.weight", PK_CONV, 4, cout, cout, 3, 3);
    bp->g2 = P("4.weight", PK_BN_W, 1, cout, 0, 0, 0);
    bp->b2 = P("4.bias", PK_BN_B, 1, cout, 0, 0, 0);
    bp->m2 = P("4.running_mean", PK_BN_MEAN, 1, cout, 0, 0, 0);
    bp->v2 = P("4.running_var", PK_BN_VAR, 1, cout, 0, 0, 0);
    bp->n2 = P("4.num_batches_tracked", PK_BN_COUNT, 0, 0, 0, 0, 0);
#undef P
}

/* state_dict order: enc.*, bottleneck.*, up.*, dec.*, out.* (the modules'
 * registration order in unet_ref.py); trainable order is the same minus
 * the buffers, which is model.parameters() order. */
static void build_table(unet *m)
{
    const unet_cfg *c = &m->cfg;
    size_t fo = 0;
    int co = 0, tr = 0;
    char pre[32], n[40];
    m->nparams = 0;
    for (int i = 0; i < c->depth; i++) {
        snprintf(pre, sizeof pre, "enc.%d", i);
        add_block(m, &m->enc_p[i], pre, i ? ch_of(c, i - 1) : c->in_ch, ch_of(c, i), &fo, &co,
                  &tr);
    }
    add_block(m, &m->bott_p, "bottleneck", ch_of(c, c->depth - 1), ch_of(c, c->depth), &fo,
              &co, &tr);
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        snprintf(n, sizeof n, "up.%d.weight", j);
        m->up_w[j] = add_param(m, n, PK_UP_W, 4, ch_of(c, i + 1), ch_of(c, i), 2, 2, &fo, &co,
                               &tr);
        snprintf(n, sizeof n, "up.%d.bias", j);
        m->up_b[j] = add_param(m, n, PK_UP_B, 1, ch_of(c, i), 0, 0, 0, &fo, &co, &tr);
    }
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        snprintf(pre, sizeof pre, "dec.%d", j);
        add_block(m, &m->dec_p[j], pre, 2 * ch_of(c, i), ch_of(c, i), &fo, &co, &tr);
    }
    m->out_w = add_param(m, "out.weight", PK_OUT_W, 4, 1, ch_of(c, 0), 1, 1, &fo, &co, &tr);
    m->out_b = add_param(m, "out.bias", PK_OUT_B, 1, 1, 0, 0, 0, &fo, &co, &tr);
    m->ntrain = tr;
    m->plan.params_floats = fo;
    size_t t = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->p[i].trainable >= 0) t += m->p[i].numel;
    m->plan.train_floats = t;
}

static float *P(unet *m, int idx) { return m->params + m->p[idx].off; }
static float *G(unet *m, int idx) { return m->grads + m->p[idx].off; }

/* ---- the plan ---------------------------------------------------------------- */

/* A bump allocator over the arena; with base NULL it only measures. */
typedef struct bump {
    char *base;
    size_t used;
} bump;

static void *take(bump *b, size_t bytes)
{
    size_t off = (b->used + ALIGN - 1) / ALIGN * ALIGN;
    b->used = off + bytes;
    return b->base ? b->base + off : NULL;
}

static float *take_f(bump *b, size_t floats) { return take(b, floats * sizeof(float)); }

static shape level_shape(const unet_cfg *c, int level, int batch, int h, int w)
{
    return (shape){ch_of(c, level), batch, h >> level, w >> level};
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch of the largest op; every op runs alone, so one buffer serves. */
static size_t scratch_floats(const unet_backend *be, const unet_cfg *c, int batch, int h, int w)
{
    size_t s = 0;
    for (int i = 0; i <= c->depth; i++) {
        shape o = level_shape(c, i, batch, h, w);
        shape in = i == 0 ? (shape){c->in_ch, batch, h, w} : level_shape(c, i - 1, batch, h, w);
        in.h = o.h;
        in.w = o.w;
        s = max_sz(s, be->conv3x3_scratch(in, o.c));
        s = max_sz(s, be->conv3x3_scratch(o, o.c));
        s = max_sz(s, be->bn_scratch(o));
        if (i < c->depth) {
            shape cat = o;
            cat.c = 2 * o.c;
            s = max_sz(s, be->conv3x3_scratch(cat, o.c));
            shape deeper = level_shape(c, i + 1, batch, h, w);
            s = max_sz(s, be->convt2x2_scratch(deeper, o.c));
        }
    }
    s = max_sz(s, be->conv1x1_scratch(level_shape(c, 0, batch, h, w), 1));
    s = max_sz(s, be->loss_scratch(batch, h * w));
    return s;
}

/* Lays out (or, with base NULL, measures) every region of the arena. */
static void layout(unet *m, bump *b)
{
    const unet_cfg *c = &m->cfg;
    size_t (*const act)(shape) = m->be->act_floats;
    int B = m->batch, H = m->h, W = m->w;
    size_t pf = m->plan.params_floats;

    size_t u0 = b->used;
    m->params = take_f(b, pf);
    m->grads = take_f(b, pf);
    m->adam_m = take_f(b, pf);
    m->adam_v = take_f(b, pf);
    m->plan.param_bytes = b->used - u0;

    u0 = b->used;
    shape xin = {c->in_ch, B, H, W};
    m->x = take_f(b, act(xin));
    m->zero_lo = (char *)m->x;
    const float *prev = m->x;
    shape prev_s = xin;
    for (int i = 0; i < c->depth; i++) {
        shape o = level_shape(c, i, B, H, W);
        shape cat = o;
        cat.c = 2 * o.c;
        block_acts *a = &m->enc[i];
        a->s = o;
        a->in = prev_s;
        a->x = prev;
        a->a1 = take_f(b, act(o));
        a->a2 = take_f(b, act(o));
        m->cat[i] = take_f(b, act(cat));
        a->r2 = m->cat[i]; /* the skip half of the concat buffer */
        for (int k = 0; k < 4; k++) {
            float *stats = take_f(b, (size_t)o.c);
            if (k == 0) a->mean1 = stats;
            if (k == 1) a->rstd1 = stats;
            if (k == 2) a->mean2 = stats;
            if (k == 3) a->rstd2 = stats;
        }
        shape po = level_shape(c, i, B, H >> 1, W >> 1);
        m->pool[i] = take_f(b, act(po));
        prev = m->pool[i];
        prev_s = po;
    }
    block_acts *bt = &m->bott;
    bt->s = level_shape(c, c->depth, B, H, W);
    bt->in = prev_s;
    bt->x = prev;
    bt->a1 = take_f(b, act(bt->s));
    bt->a2 = take_f(b, act(bt->s));
    bt->r2 = NULL;
    bt->mean1 = take_f(b, (size_t)bt->s.c);
    bt->rstd1 = take_f(b, (size_t)bt->s.c);
    bt->mean2 = take_f(b, (size_t)bt->s.c);
    bt->rstd2 = take_f(b, (size_t)bt->s.c);
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        block_acts *a = &m->dec[j];
        a->s = level_shape(c, i, B, H, W);
        a->in = a->s;
        a->in.c = 2 * a->s.c;
        a->x = m->cat[i];
        a->a1 = take_f(b, act(a->s));
        a->a2 = take_f(b, act(a->s));
        a->r2 = NULL;
        a->mean1 = take_f(b, (size_t)a->s.c);
        a->rstd1 = take_f(b, (size_t)a->s.c);
        a->mean2 = take_f(b, (size_t)a->s.c);
        a->rstd2 = take_f(b, (size_t)a->s.c);
    }
    m->plan.act_bytes = b->used - u0;

    u0 = b->used;
    size_t work = 0;
    for (int i = 0; i <= c->depth; i++) {
        shape o = level_shape(c, i, B, H, W);
        work = max_sz(work, act(o));
        if (i < c->depth) {
            shape cat = o;
            cat.c = 2 * o.c;
            m->dcat[i] = take_f(b, act(cat));
        }
    }
    shape lo = {1, B, H, W};
    work = max_sz(work, act(lo));
    m->ga = take_f(b, work);
    m->gb = take_f(b, work);
    m->rtmp = take_f(b, work);
    /* The blocked logits (1 channel padded to a block) live only from the
     * output conv to their NCHW copy, while the gradient buffers are idle;
     * their gradient only until the output conv's backward, before the
     * decoders take ga and gb: 16 MiB of 370 at 256x256, batch 4. */
    m->logits = m->ga;
    m->dlogits = m->gb;
    m->zero_hi = b->base ? b->base + b->used : NULL;
    m->plan.grad_bytes = b->used - u0;

    u0 = b->used;
    m->scratch = take_f(b, scratch_floats(m->be, c, B, H, W));
    m->plan.scratch_bytes = b->used - u0;

    u0 = b->used;
    size_t px = (size_t)B * (size_t)H * (size_t)W;
    m->in_nchw = take_f(b, px * (size_t)c->in_ch);
    m->target_nchw = take_f(b, px);
    m->logits_nchw = take_f(b, px);
    m->dlogits_nchw = take_f(b, px);
    m->loss_state = take_f(b, m->be->loss_state(B));
    m->plan.io_bytes = b->used - u0;
    m->plan.total_bytes = (b->used + ALIGN - 1) / ALIGN * ALIGN;
}

int unet_check(const unet_cfg *cfg, int batch, int h, int w, char *msg, size_t msg_len)
{
#define FAIL(...) do { snprintf(msg, msg_len, __VA_ARGS__); return -1; } while (0)
    if (cfg->in_ch != 1 && cfg->in_ch != 3)
        FAIL("input channels %d: expected 1 (gray) or 3 (RGB)", cfg->in_ch);
    if (cfg->depth < 1 || cfg->depth > UNET_MAX_DEPTH)
        FAIL("depth %d: expected 1 to %d", cfg->depth, UNET_MAX_DEPTH);
    if (cfg->base < 8 || cfg->base > 256 || cfg->base % 8)
        FAIL("base width %d: expected a multiple of 8 from 8 to 256", cfg->base);
    if (batch < 1 || batch > 4096) FAIL("batch %d: expected 1 to 4096", batch);
    int unit = 1 << cfg->depth;
    if (h < unit || w < unit || h % unit || w % unit || h > 8192 || w > 8192)
        FAIL("image size %dx%d: expected a multiple of %d (2^depth) up to 8192", h, w, unit);
    return 0;
#undef FAIL
}

unet_plan unet_plan_for(const unet_cfg *cfg, int batch, int h, int w)
{
    unet_plan plan = {0};
    unet *m = calloc(1, sizeof *m); /* the table and the plan only */
    if (!m) return plan;
    m->cfg = *cfg;
    m->batch = batch;
    m->h = h;
    m->w = w;
    m->be = unet_backend_cpu();
    build_table(m);
    bump b = {NULL, 0};
    layout(m, &b);
    plan = m->plan;
    free(m);
    return plan;
}

/* PyTorch's default init: kaiming_uniform_(a=sqrt(5)) makes the bound
 * 1/sqrt(fan_in) for weights and biases alike; fan_in is dims[1] * kernel
 * area (for ConvTranspose2d that is dims[1] = out channels, as torch's
 * _calculate_fan_in_and_fan_out reads it). */
static void init_params(unet *m, uint64_t seed)
{
    unet_rng r;
    unet_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++) {
        param *p = &m->p[i];
        float *d = p->kind == PK_BN_COUNT ? NULL : m->params + p->off;
        switch (p->kind) {
        case PK_CONV: case PK_UP_W: case PK_OUT_W: case PK_UP_B: case PK_OUT_B: {
            const param *wp = p->kind == PK_UP_B ? &m->p[i - 1]
                            : p->kind == PK_OUT_B ? &m->p[i - 1] : p;
            double fan_in = (double)wp->dims[1] * wp->dims[2] * wp->dims[3];
            double bound = 1.0 / sqrt(fan_in);
            for (size_t k = 0; k < p->numel; k++)
                d[k] = (float)((2.0 * unet_rng_uniform(&r) - 1.0) * bound);
            break;
        }
        case PK_BN_W: case PK_BN_VAR:
            for (size_t k = 0; k < p->numel; k++) d[k] = 1.0f;
            break;
        case PK_BN_B: case PK_BN_MEAN:
            break; /* the arena is zeroed */
        case PK_BN_COUNT:
            m->counts[p->off] = 0;
            break;
        }
    }
}

unet *unet_create(const unet_cfg *cfg, int batch, int h, int w, uint64_t seed, char *msg,
                  size_t msg_len)
{
    if (unet_check(cfg, batch, h, w, msg, msg_len) < 0) return NULL;
    unet *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(msg, msg_len, "out of memory for the model description");
        return NULL;
    }
    m->cfg = *cfg;
    m->batch = batch;
    m->h = h;
    m->w = w;
    m->be = unet_backend_cpu();
    build_table(m);
    bump b = {NULL, 0};
    layout(m, &b);
    m->arena = aligned_alloc(ALIGN, m->plan.total_bytes);
    if (!m->arena) {
        snprintf(msg, msg_len, "cannot allocate %.1f MiB for batch %d at %dx%d",
                 (double)m->plan.total_bytes / 1048576.0, batch, h, w);
        free(m);
        return NULL;
    }
    /* Zeroed: the CPU layout's borders and padded channels must read 0,
     * and BN's bias and running mean start at 0. */
    m->be->zero(m->arena, m->plan.total_bytes);
    b = (bump){m->arena, 0};
    layout(m, &b);
    init_params(m, seed);
    return m;
}

void unet_destroy(unet *m)
{
    if (!m) return;
    free(m->arena);
    free(m);
}

/* ---- forward ----------------------------------------------------------------- */

/* One block forward. r1 goes to the shared rtmp buffer (its border zeroed:
 * the buffer serves several shapes and conv2 reads the border); r2 goes to
 * `r2` (an encoder's concat buffer, or rtmp for the next op to consume). */
static void block_forward(unet *m, const block_params *bp, block_acts *a, bool train, float *r2)
{
    const unet_backend *be = m->be;
    float *s = m->scratch, *r1 = m->rtmp;
    be->conv3x3_forward(a->a1, a->x, a->in, P(m, bp->w1), a->s.c, s);
    if (train)
        be->bn_relu_forward(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), a->mean1, a->rstd1,
                        P(m, bp->m1), P(m, bp->v1), &m->counts[m->p[bp->n1].off],
                        BN_MOMENTUM, BN_EPS, s);
    else
        be->bn_relu_forward_eval(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), P(m, bp->m1),
                             P(m, bp->v1), BN_EPS);
    be->reuse(r1, a->s);
    be->conv3x3_forward(a->a2, r1, a->s, P(m, bp->w2), a->s.c, s);
    if (train)
        be->bn_relu_forward(r2, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), a->mean2, a->rstd2,
                        P(m, bp->m2), P(m, bp->v2), &m->counts[m->p[bp->n2].off],
                        BN_MOMENTUM, BN_EPS, s);
    else
        be->bn_relu_forward_eval(r2, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), P(m, bp->m2),
                             P(m, bp->v2), BN_EPS);
}

/* A block's second ReLU output again, into rtmp (for the dW of the op that
 * consumed it, and BN's backward mask). */
static float *recompute_r2(unet *m, const block_params *bp, const block_acts *a)
{
    m->be->bn_relu_apply(m->rtmp, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), a->mean2, a->rstd2);
    m->be->reuse(m->rtmp, a->s);
    return m->rtmp;
}

/* A smaller batch (the last of an epoch) is a smaller shape over the same
 * buffers: in the CPU layout the batch sits inside each channel block, so
 * every tensor's border moves. Re-zero the activations and their
 * gradients and set the new shapes; at most a few times per epoch. */
static void set_batch(unet *m, int batch)
{
    if (batch == m->cur_batch) return;
    m->be->zero(m->zero_lo, (size_t)(m->zero_hi - m->zero_lo));
    for (int i = 0; i < m->cfg.depth; i++) {
        m->enc[i].s.b = m->enc[i].in.b = batch;
        m->dec[i].s.b = m->dec[i].in.b = batch;
    }
    m->bott.s.b = m->bott.in.b = batch;
    m->cur_batch = batch;
}

void unet_forward(unet *m, int batch, bool train)
{
    const unet_cfg *c = &m->cfg;
    const unet_backend *be = m->be;
    set_batch(m, batch);
    shape xin = {c->in_ch, batch, m->h, m->w};
    be->from_nchw(m->x, xin, m->in_nchw);
    for (int i = 0; i < c->depth; i++) {
        block_forward(m, &m->enc_p[i], &m->enc[i], train, m->cat[i]);
        be->maxpool2x2_forward(m->pool[i], m->enc[i].r2, m->enc[i].s);
    }
    block_forward(m, &m->bott_p, &m->bott, train, m->rtmp);
    const float *prev = m->rtmp; /* each r2 below is consumed before rtmp is reused */
    shape prev_s = m->bott.s;
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        shape o = m->enc[i].s;
        /* The upsampled half of the concat buffer, after the skip's channels. */
        float *up = be->channels(m->cat[i], m->dec[j].in, o.c);
        be->convt2x2_forward(up, prev, prev_s, P(m, m->up_w[j]), P(m, m->up_b[j]), o.c, m->scratch);
        block_forward(m, &m->dec_p[j], &m->dec[j], train, m->rtmp);
        prev = m->rtmp;
        prev_s = m->dec[j].s;
    }
    be->conv1x1_forward(m->logits, prev, prev_s, P(m, m->out_w), P(m, m->out_b), 1, m->scratch);
    shape lo = {1, batch, m->h, m->w};
    be->to_nchw(m->logits_nchw, lo, m->logits);
}

/* ---- backward ---------------------------------------------------------------- */

/* From the gradient of a block's output (dr2, in `g`) to the gradient of
 * its input, written to `din` (which may be `g` or another buffer, never
 * `t`; NULL skips it), using `t` as the other working buffer. `r2` is the
 * block's second ReLU output (stored, or just recomputed into rtmp); r1 is
 * recomputed into rtmp. Conv dW go straight into m->grads. The working
 * buffers serve tensors of several shapes, so their borders are zeroed
 * before a conv reads them. */
static void block_backward(unet *m, const block_params *bp, const block_acts *a, float *g,
                           float *t, float *din, const float *r2)
{
    const unet_backend *be = m->be;
    float *s = m->scratch, *r1 = m->rtmp;
    be->bn_relu_backward(t, G(m, bp->g2), G(m, bp->b2), g, a->a2, r2, a->s, P(m, bp->g2),
                     a->mean2, a->rstd2, s);
    be->reuse(t, a->s);
    be->bn_relu_apply(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), a->mean1, a->rstd1);
    be->reuse(r1, a->s);
    be->conv3x3_backward_weight(G(m, bp->w2), t, r1, a->s, a->s.c, s);
    be->conv3x3_backward_data(g, t, a->s, P(m, bp->w2), a->s.c, s);
    be->bn_relu_backward(t, G(m, bp->g1), G(m, bp->b1), g, a->a1, r1, a->s, P(m, bp->g1),
                     a->mean1, a->rstd1, s);
    be->reuse(t, a->s);
    be->conv3x3_backward_weight(G(m, bp->w1), t, a->x, a->in, a->s.c, s);
    if (din) be->conv3x3_backward_data(din, t, a->in, P(m, bp->w1), a->s.c, s);
}

void unet_backward(unet *m, int batch)
{
    const unet_cfg *c = &m->cfg;
    const unet_backend *be = m->be;
    shape lo = {1, batch, m->h, m->w};
    be->from_nchw(m->dlogits, lo, m->dlogits_nchw);
    const block_acts *last = &m->dec[c->depth - 1];
    const float *last_r2 = recompute_r2(m, &m->dec_p[c->depth - 1], last);
    be->conv1x1_backward_weight(G(m, m->out_w), G(m, m->out_b), m->dlogits, last_r2, last->s, 1,
                            m->scratch);
    be->conv1x1_backward_data(m->ga, m->dlogits, last->s, P(m, m->out_w), 1, m->scratch);

    /* Decoder, shallowest first: dec[depth-1] is level 0. The skip half of
     * dcat[i] is kept for the encoder; the up half goes through the
     * transposed conv into ga for the next (deeper) decoder block. */
    for (int j = c->depth - 1; j >= 0; j--) {
        int i = c->depth - 1 - j;
        const float *r2 = recompute_r2(m, &m->dec_p[j], &m->dec[j]);
        block_backward(m, &m->dec_p[j], &m->dec[j], m->ga, m->gb, m->dcat[i], r2);
        shape o = m->enc[i].s;
        const float *dup = be->channels(m->dcat[i], m->dec[j].in, o.c);
        const float *up_in = j == 0 ? recompute_r2(m, &m->bott_p, &m->bott)
                                    : recompute_r2(m, &m->dec_p[j - 1], &m->dec[j - 1]);
        shape up_s = j == 0 ? m->bott.s : m->dec[j - 1].s;
        be->convt2x2_backward_weight(G(m, m->up_w[j]), G(m, m->up_b[j]), dup, up_in, up_s, o.c,
                                 m->scratch);
        be->convt2x2_backward_data(m->ga, dup, up_s, P(m, m->up_w[j]), o.c, m->scratch);
    }
    /* Bottleneck: its input gradient (the deepest pool's) lands in ga. */
    block_backward(m, &m->bott_p, &m->bott, m->ga, m->gb, m->ga,
                   recompute_r2(m, &m->bott_p, &m->bott));
    float *dpool = m->ga, *g = m->gb;
    for (int i = c->depth - 1; i >= 0; i--) {
        block_acts *a = &m->enc[i];
        be->maxpool2x2_backward(g, dpool, a->r2, a->s);
        be->add(g, m->dcat[i], a->s); /* + the skip's gradient */
        block_backward(m, &m->enc_p[i], a, g, dpool, i ? g : NULL, a->r2);
        float *tmp = dpool; /* g now holds the gradient of pool[i-1] */
        dpool = g;
        g = tmp;
    }
}

/* ---- loss and optimiser ------------------------------------------------------ */

double unet_loss(unet *m, int batch, double *bce, double *dice)
{
    int hw = m->h * m->w;
    loss_parts lp = m->be->loss_forward(m->logits_nchw, m->target_nchw, batch, hw, m->loss_state,
                                     m->scratch);
    m->be->loss_backward(m->dlogits_nchw, m->logits_nchw, m->target_nchw, batch, hw,
                      m->loss_state);
    if (bce) *bce = lp.bce;
    if (dice) *dice = lp.dice;
    return lp.loss;
}

void unet_adam(unet *m, double lr, double beta1, double beta2, double eps, double wd)
{
    adam_hparams h = {lr, beta1, beta2, eps, wd};
    adam_scalars k = adam_scalars_for(&h, ++m->adam_step);
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        m->be->adam_update(m->params + p->off, m->grads + p->off, m->adam_m + p->off,
                    m->adam_v + p->off, p->numel, &k);
    }
}
