/* SPDX-License-Identifier: MIT */
/*
 * plan.c: where every tensor of the model lives. The arena is laid out
 * region by region (parameters, gradients, Adam's moments and BN's
 * counters; the activations the backward pass keeps; activation
 * gradients and working buffers; the kernels' scratch; the NCHW edges),
 * each 64-byte aligned, in the backend's layout (act_floats and the
 * *_scratch sizes come from the backend's table). The same code measures
 * (unet_plan_for, and unet_create before it allocates) and places, so
 * the plan is exactly what is allocated. It does not allocate.
 *
 * The plan for B=8 at 128x128 with the default model (base 16, depth 4):
 * params + grads + Adam moments 29.7 MiB, activations 106 MiB (160 when
 * every ReLU output was kept too), activation gradients 16.5 MiB (two
 * working buffers the size of the largest activation, which also hold
 * the blocked logits and their gradient and the ReLU outputs forward
 * passes on and backward recomputes, instead of one gradient per
 * activation: 160 MiB; research/cnn-in-c.md 5.4; the skip gradients of
 * every level, 32 MiB more, live in a decoder block's two pre-BN
 * activations, which its backward has read when it writes them);
 * 162.7 MiB in all with Winograd's scratch (test_unet_parity prints it:
 * test_plan_is_linear_in_batch; `unet-train plan --batch 8`).
 */
#include "plan.h"

#include <stdlib.h>

#define ALIGN 64

/* A bump allocator over the arena; with base NULL it only measures. */
typedef struct bump {
    char *base;
    size_t used;
} bump;

static size_t round_up(size_t bytes) { return (bytes + ALIGN - 1) / ALIGN * ALIGN; }

static void *take(bump *b, size_t bytes)
{
    size_t off = round_up(b->used);
    b->used = off + bytes;
    return b->base ? b->base + off : NULL;
}

static float *take_f(bump *b, size_t floats) { return take(b, floats * sizeof(float)); }

static shape level_shape(const unet_cfg *c, int level, int batch, int h, int w)
{
    return (shape){unet_level_ch(c, level), batch, h >> level, w >> level};
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

/* Every region of the arena, one after the other. */
static void arena_regions(unet *m, bump *b)
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
    m->counts = take(b, (size_t)m->plan.ncounts * sizeof(int64_t));
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
        /* a1 and a2 as the two halves of one concat-shaped tensor: both are
         * dead once this block's backward has read them, which is when it
         * writes the gradient of its input (dcat[i], the concat's shape)
         * here, so the skip gradients the encoders need later cost nothing
         * (32 MiB of 198 at batch 8, 128x128). With a smaller batch the
         * skip half is still a1 at that batch, but the up half starts
         * earlier: it writes over a1's unused tail and the start of a2,
         * borders included, which nothing reads before the next forward
         * writes a1 and a2 again (BN, their only reader, reads the
         * interior; set_batch zeroes all when the batch size changes). */
        float *pair = take_f(b, act(a->in));
        a->a1 = pair;
        a->a2 = pair ? m->be->channels(pair, a->in, a->s.c) : NULL;
        m->dcat[i] = pair;
        a->r2 = NULL;
        a->mean1 = take_f(b, (size_t)a->s.c);
        a->rstd1 = take_f(b, (size_t)a->s.c);
        a->mean2 = take_f(b, (size_t)a->s.c);
        a->rstd2 = take_f(b, (size_t)a->s.c);
    }
    m->plan.act_bytes = b->used - u0;

    u0 = b->used;
    size_t work = 0;
    for (int i = 0; i <= c->depth; i++)
        work = max_sz(work, act(level_shape(c, i, B, H, W)));
    shape lo = {1, B, H, W};
    work = max_sz(work, act(lo));
    /* Two: the ReLU outputs the forward passes on and the backward
     * recomputes live in whichever of them is idle (model.c). */
    m->ga = take_f(b, work);
    m->gb = take_f(b, work);
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
    m->plan.total_bytes = round_up(b->used);
}

/* The host staging: the arena's own NCHW edges when the host may touch
 * them, else a block of their own. */
static void staging_regions(unet *m, bump *b)
{
    if (m->be->host_visible) {
        m->in_host = m->in_nchw;
        m->target_host = m->target_nchw;
        m->logits_host = m->logits_nchw;
        m->plan.staging_bytes = 0;
        return;
    }
    size_t px = (size_t)m->batch * (size_t)m->h * (size_t)m->w;
    m->in_host = take_f(b, px * (size_t)m->cfg.in_ch);
    m->target_host = take_f(b, px);
    m->logits_host = take_f(b, px);
    m->plan.staging_bytes = round_up(b->used);
}

void unet_layout(unet *m, char *arena, char *staging)
{
    bump a = {arena, 0}, s = {staging, 0};
    arena_regions(m, &a);
    staging_regions(m, &s);
}

unet_plan unet_plan_for(const unet_cfg *cfg, int batch, int h, int w, const unet_backend *be)
{
    unet_plan plan = {0};
    unet *m = calloc(1, sizeof *m); /* the table and the plan only */
    if (!m) return plan;
    m->cfg = *cfg;
    m->batch = batch;
    m->h = h;
    m->w = w;
    m->be = be;
    unet_table_build(m);
    unet_layout(m, NULL, NULL);
    plan = m->plan;
    free(m);
    return plan;
}
