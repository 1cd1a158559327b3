/* SPDX-License-Identifier: MIT */
/*
 * model.c: the UNet's life (create, destroy), its edges to the host (the
 * staging buffers, the logits, giving activations back) and its passes
 * (forward, loss, backward, Adam); see model.h. Every tensor lives in the
 * arena that plan.c lays out and the backend allocates; every op and
 * every copy runs through m->be (backend.h), so nothing here knows the
 * activation layout or dereferences the arena. The parameter table is
 * params.c's.
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *P(unet *m, int idx) { return m->params + m->p[idx].off; }
static float *G(unet *m, int idx) { return m->grads + m->p[idx].off; }

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

/* ---- life ---------------------------------------------------------------------- */

/* The first values of the parameters and counters, written on the host
 * and uploaded (in place when the host may touch the arena). */
static int init_state(unet *m, uint64_t seed)
{
    const unet_backend *be = m->be;
    size_t pbytes = m->plan.params_floats * sizeof(float);
    size_t cbytes = (size_t)m->plan.ncounts * sizeof(int64_t);
    if (be->host_visible) {
        unet_table_init(m, seed, m->params, m->counts);
        return 0;
    }
    size_t at = (pbytes + sizeof(int64_t) - 1) / sizeof(int64_t) * sizeof(int64_t);
    float *params = calloc(1, at + cbytes);
    if (!params) return -1;
    int64_t *counts = (int64_t *)(void *)((char *)params + at);
    unet_table_init(m, seed, params, counts);
    be->upload(m->params, params, pbytes);
    be->upload(m->counts, counts, cbytes);
    free(params);
    return 0;
}

unet *unet_create(const unet_cfg *cfg, int batch, int h, int w, uint64_t seed,
                  const unet_backend *be, char *msg, size_t msg_len)
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
    m->be = be;
    m->cur_batch = -1;
    unet_table_build(m);
    unet_layout(m, NULL, NULL);
    m->arena = be->alloc(m->plan.total_bytes);
    m->staging = m->plan.staging_bytes ? be->alloc_host(m->plan.staging_bytes) : NULL;
    if (!m->arena || (m->plan.staging_bytes && !m->staging)) {
        snprintf(msg, msg_len, "cannot allocate %.1f MiB for batch %d at %dx%d",
                 (double)(m->plan.total_bytes + m->plan.staging_bytes) / 1048576.0, batch, h, w);
        unet_destroy(m);
        return NULL;
    }
    /* Zeroed: the CPU layout's borders and padded channels must read 0,
     * and BN's bias and running mean start at 0. */
    be->zero(m->arena, m->plan.total_bytes);
    unet_layout(m, m->arena, m->staging);
    if (init_state(m, seed) < 0) {
        snprintf(msg, msg_len, "out of memory for the initial weights");
        unet_destroy(m);
        return NULL;
    }
    return m;
}

void unet_destroy(unet *m)
{
    if (!m) return;
    if (m->arena) {
        m->be->sync();
        m->be->free(m->arena, m->plan.total_bytes);
    }
    if (m->staging) m->be->free_host(m->staging, m->plan.staging_bytes);
    free(m);
}

/* ---- the host's edges ------------------------------------------------------------ */

float *unet_input_host(unet *m) { return m->in_host; }
float *unet_target_host(unet *m) { return m->target_host; }

/* Host staging -> arena, unless the staging is the arena itself. */
static void stage_in(const unet *m, float *dev, const float *host, size_t floats)
{
    if (dev != host) m->be->upload(dev, host, floats * sizeof(float));
}

const float *unet_logits_host(unet *m, int batch)
{
    size_t n = (size_t)batch * (size_t)m->h * (size_t)m->w;
    if (m->logits_host != m->logits_nchw)
        m->be->download(m->logits_host, m->logits_nchw, n * sizeof(float));
    return m->logits_host;
}

void unet_release_activations(unet *m)
{
    m->be->sync();
    m->be->discard(m->zero_lo, (size_t)(m->zero_hi - m->zero_lo));
    m->cur_batch = -1; /* the next forward zeroes them and sets the shapes again */
}

/* ---- forward ----------------------------------------------------------------- */

/* One block forward. r1 goes to gb, idle until backward (its border
 * zeroed: the buffer serves several shapes and conv2 reads the border);
 * r2 goes to `r2` (an encoder's concat buffer, or gb itself for the next
 * op to consume: conv2 has read r1 by then). */
static void block_forward(unet *m, const block_params *bp, block_acts *a, bool train, float *r2)
{
    const unet_backend *be = m->be;
    float *s = m->scratch, *r1 = m->gb;
    be->conv3x3_forward(a->a1, a->x, a->in, P(m, bp->w1), a->s.c, s);
    if (train)
        be->bn_relu_forward(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), a->mean1, a->rstd1,
                        P(m, bp->m1), P(m, bp->v1), m->counts + m->p[bp->n1].off,
                        BN_MOMENTUM, BN_EPS, s, m->bn_sync);
    else
        be->bn_relu_forward_eval(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), P(m, bp->m1),
                             P(m, bp->v1), BN_EPS);
    be->reuse(r1, a->s);
    be->conv3x3_forward(a->a2, r1, a->s, P(m, bp->w2), a->s.c, s);
    if (train)
        be->bn_relu_forward(r2, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), a->mean2, a->rstd2,
                        P(m, bp->m2), P(m, bp->v2), m->counts + m->p[bp->n2].off,
                        BN_MOMENTUM, BN_EPS, s, m->bn_sync);
    else
        be->bn_relu_forward_eval(r2, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), P(m, bp->m2),
                             P(m, bp->v2), BN_EPS);
}

/* A block's second ReLU output again, into the idle working buffer
 * `into`, for the dW of the op that consumed it (BN's backward takes its
 * mask from the pre-BN input). */
static float *recompute_r2(unet *m, const block_params *bp, const block_acts *a, float *into)
{
    m->be->bn_relu_apply(into, a->a2, a->s, P(m, bp->g2), P(m, bp->b2), a->mean2, a->rstd2);
    m->be->reuse(into, a->s);
    return into;
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
    stage_in(m, m->in_nchw, m->in_host,
             (size_t)batch * (size_t)c->in_ch * (size_t)m->h * (size_t)m->w);
    shape xin = {c->in_ch, batch, m->h, m->w};
    be->from_nchw(m->x, xin, m->in_nchw);
    for (int i = 0; i < c->depth; i++) {
        block_forward(m, &m->enc_p[i], &m->enc[i], train, m->cat[i]);
        be->maxpool2x2_forward(m->pool[i], m->enc[i].r2, m->enc[i].s);
    }
    block_forward(m, &m->bott_p, &m->bott, train, m->gb);
    const float *prev = m->gb; /* each r2 below is consumed before gb is reused */
    shape prev_s = m->bott.s;
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        shape o = m->enc[i].s;
        /* The upsampled half of the concat buffer, after the skip's channels. */
        float *up = be->channels(m->cat[i], m->dec[j].in, o.c);
        be->convt2x2_forward(up, prev, prev_s, P(m, m->up_w[j]), P(m, m->up_b[j]), o.c, m->scratch);
        block_forward(m, &m->dec_p[j], &m->dec[j], train, m->gb);
        prev = m->gb;
        prev_s = m->dec[j].s;
    }
    be->conv1x1_forward(m->logits, prev, prev_s, P(m, m->out_w), P(m, m->out_b), 1, m->scratch);
    shape lo = {1, batch, m->h, m->w};
    be->to_nchw(m->logits_nchw, lo, m->logits);
}

/* ---- backward ---------------------------------------------------------------- */

/* From the gradient of a block's output (dr2, in `g`) to the gradient of
 * its input, written to `din` (which may be `g` or another buffer, never
 * `t`; NULL skips it), using `t` as the other working buffer. r1 is
 * recomputed into `g` for conv2's dW (dr2 is spent once BN2's backward
 * has read it, and conv2's backward-data writes g after the dW): no third
 * working buffer. Conv dW go straight into m->grads. The working buffers
 * serve tensors of several shapes, so their borders are zeroed before a
 * conv reads them. */
static void block_backward(unet *m, const block_params *bp, const block_acts *a, float *g,
                           float *t, float *din)
{
    const unet_backend *be = m->be;
    float *s = m->scratch, *r1 = g;
    be->bn_relu_backward(t, G(m, bp->g2), G(m, bp->b2), g, a->a2, a->s, P(m, bp->g2),
                         P(m, bp->b2), a->mean2, a->rstd2, s, m->bn_sync);
    be->reuse(t, a->s);
    be->bn_relu_apply(r1, a->a1, a->s, P(m, bp->g1), P(m, bp->b1), a->mean1, a->rstd1);
    be->reuse(r1, a->s);
    be->conv3x3_backward_weight(G(m, bp->w2), t, r1, a->s, a->s.c, s);
    be->conv3x3_backward_data(g, t, a->s, P(m, bp->w2), a->s.c, s);
    be->bn_relu_backward(t, G(m, bp->g1), G(m, bp->b1), g, a->a1, a->s, P(m, bp->g1),
                         P(m, bp->b1), a->mean1, a->rstd1, s, m->bn_sync);
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
    /* Into ga: the output conv's backward-data writes ga after its dW. */
    const float *last_r2 = recompute_r2(m, &m->dec_p[c->depth - 1], last, m->ga);
    be->conv1x1_backward_weight(G(m, m->out_w), G(m, m->out_b), m->dlogits, last_r2, last->s, 1,
                            m->scratch);
    be->conv1x1_backward_data(m->ga, m->dlogits, last->s, P(m, m->out_w), 1, m->scratch);

    /* Decoder, shallowest first: dec[depth-1] is level 0. The skip half of
     * dcat[i] is kept for the encoder; the up half goes through the
     * transposed conv into ga for the next (deeper) decoder block. dcat[i]
     * is dec[j]'s a1 and a2 (plan.c), which block_backward has read when
     * it writes it. */
    for (int j = c->depth - 1; j >= 0; j--) {
        int i = c->depth - 1 - j;
        block_backward(m, &m->dec_p[j], &m->dec[j], m->ga, m->gb, m->dcat[i]);
        shape o = m->enc[i].s;
        const float *dup = be->channels(m->dcat[i], m->dec[j].in, o.c);
        /* The up-conv's input, the block below's r2, into gb: ga and gb
         * are idle here (dup lives in dcat[i]). */
        const block_params *below_p = j == 0 ? &m->bott_p : &m->dec_p[j - 1];
        const block_acts *below = j == 0 ? &m->bott : &m->dec[j - 1];
        const float *up_in = recompute_r2(m, below_p, below, m->gb);
        shape up_s = below->s;
        be->convt2x2_backward_weight(G(m, m->up_w[j]), G(m, m->up_b[j]), dup, up_in, up_s, o.c,
                                 m->scratch);
        be->convt2x2_backward_data(m->ga, dup, up_s, P(m, m->up_w[j]), o.c, m->scratch);
    }
    /* Bottleneck: its input gradient (the deepest pool's) lands in ga. */
    block_backward(m, &m->bott_p, &m->bott, m->ga, m->gb, m->ga);
    float *dpool = m->ga, *g = m->gb;
    for (int i = c->depth - 1; i >= 0; i--) {
        block_acts *a = &m->enc[i];
        be->maxpool2x2_backward(g, dpool, a->r2, a->s);
        be->add(g, m->dcat[i], a->s); /* + the skip's gradient */
        block_backward(m, &m->enc_p[i], a, g, dpool, i ? g : NULL);
        float *tmp = dpool; /* g now holds the gradient of pool[i-1] */
        dpool = g;
        g = tmp;
    }
}

/* ---- loss and optimiser ------------------------------------------------------ */

double unet_loss(unet *m, int batch, double *bce, double *dice)
{
    int hw = m->h * m->w;
    stage_in(m, m->target_nchw, m->target_host, (size_t)batch * (size_t)hw);
    loss_parts lp = m->be->loss_forward(m->logits_nchw, m->target_nchw, batch, hw, m->loss_state,
                                     m->scratch);
    m->be->loss_backward(m->dlogits_nchw, m->logits_nchw, m->target_nchw, batch, hw,
                      m->loss_state);
    if (bce) *bce = lp.bce;
    if (dice) *dice = lp.dice;
    return lp.loss;
}

void unet_loss_share(unet *m, int batch, int total)
{
    if (total == batch) return;
    size_t n = (size_t)batch * (size_t)m->h * (size_t)m->w;
    m->be->scale(m->dlogits_nchw, n, (float)((double)batch / (double)total));
}

void unet_adam(unet *m, double lr, double beta1, double beta2, double eps, double wd)
{
    adam_hparams h = {lr, beta1, beta2, eps, wd};
    adam_scalars k = adam_scalars_for(&h, ++m->adam_step);
    /* Neighbouring trainable tensors (a conv weight and its BN's weight
     * and bias, the next block's conv weight...) are one flat run: one
     * call and one parallel region each, ~20 instead of 62 per step
     * (elementwise, so the same bits). */
    for (int i = 0; i < m->nparams;) {
        if (m->p[i].trainable < 0) {
            i++;
            continue;
        }
        const size_t off = m->p[i].off;
        size_t n = 0;
        for (; i < m->nparams && m->p[i].trainable >= 0 && m->p[i].off == off + n; i++)
            n += m->p[i].numel;
        m->be->adam_update(m->params + off, m->grads + off, m->adam_m + off, m->adam_v + off, n,
                           &k);
    }
}
