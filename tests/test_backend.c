/* SPDX-License-Identifier: MIT */
/*
 * test_backend.c: the model reaches every op through its backend table
 * (backend.h) and nothing else, so another backend can take the CPU's
 * place. A tracing backend forwards each op to the CPU table and counts
 * it; a training step (forward, loss, backward, Adam) on it must call
 * each op as often as the architecture says (a call that bypassed the
 * table would be missing from the count) and give bitwise the same
 * logits, loss, gradients and parameters as the CPU backend itself.
 */
#include "mg_test.h"

#include "backend_cpu.h"
#include "model.h"

#include <string.h>

static const unet_backend *cpu;

enum { C3F, C3D, C3W, CTF, CTD, CTW, C1F, C1D, C1W, BNF, BNE, BNA, BNB, MPF, MPB, ADD, LF, LB,
       ADAM, NOPS };
static int calls[NOPS];

/* clang-format off */
static void c3f(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ calls[C3F]++; cpu->conv3x3_forward(o, i, s, w, co, sc); }
static void c3d(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ calls[C3D]++; cpu->conv3x3_backward_data(o, i, s, w, co, sc); }
static void c3w(float *dw, const float *d, const float *i, shape s, int co, float *sc)
{ calls[C3W]++; cpu->conv3x3_backward_weight(dw, d, i, s, co, sc); }
static void ctf(float *o, const float *i, shape s, const float *w, const float *b, int co, float *sc)
{ calls[CTF]++; cpu->convt2x2_forward(o, i, s, w, b, co, sc); }
static void ctd(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ calls[CTD]++; cpu->convt2x2_backward_data(o, i, s, w, co, sc); }
static void ctw(float *dw, float *db, const float *d, const float *i, shape s, int co, float *sc)
{ calls[CTW]++; cpu->convt2x2_backward_weight(dw, db, d, i, s, co, sc); }
static void c1f(float *o, const float *i, shape s, const float *w, const float *b, int co, float *sc)
{ calls[C1F]++; cpu->conv1x1_forward(o, i, s, w, b, co, sc); }
static void c1d(float *o, const float *i, shape s, const float *w, int co, float *sc)
{ calls[C1D]++; cpu->conv1x1_backward_data(o, i, s, w, co, sc); }
static void c1w(float *dw, float *db, const float *d, const float *i, shape s, int co, float *sc)
{ calls[C1W]++; cpu->conv1x1_backward_weight(dw, db, d, i, s, co, sc); }
static void bnf(float *y, const float *x, shape s, const float *g, const float *b, float *m,
                float *r, float *rm, float *rv, int64_t *n, double mo, double e, float *sc)
{ calls[BNF]++; cpu->bn_relu_forward(y, x, s, g, b, m, r, rm, rv, n, mo, e, sc); }
static void bne(float *y, const float *x, shape s, const float *g, const float *b,
                const float *rm, const float *rv, double e)
{ calls[BNE]++; cpu->bn_relu_forward_eval(y, x, s, g, b, rm, rv, e); }
static void bna(float *y, const float *x, shape s, const float *g, const float *b,
                const float *m, const float *r)
{ calls[BNA]++; cpu->bn_relu_apply(y, x, s, g, b, m, r); }
static void bnb(float *dx, float *dg, float *db, const float *dy, const float *x, const float *y,
                shape s, const float *g, const float *m, const float *r, float *sc)
{ calls[BNB]++; cpu->bn_relu_backward(dx, dg, db, dy, x, y, s, g, m, r, sc); }
static void mpf(float *y, const float *x, shape s) { calls[MPF]++; cpu->maxpool2x2_forward(y, x, s); }
static void mpb(float *dx, const float *dy, const float *x, shape s)
{ calls[MPB]++; cpu->maxpool2x2_backward(dx, dy, x, s); }
static void add(float *d, const float *s_, shape s) { calls[ADD]++; cpu->add(d, s_, s); }
static loss_parts lf(const float *l, const float *t, int n, int hw, float *st, float *sc)
{ calls[LF]++; return cpu->loss_forward(l, t, n, hw, st, sc); }
static void lb(float *d, const float *l, const float *t, int n, int hw, const float *st)
{ calls[LB]++; cpu->loss_backward(d, l, t, n, hw, st); }
static void adam(float *p, const float *g, float *m, float *v, size_t n, const adam_scalars *k)
{ calls[ADAM]++; cpu->adam_update(p, g, m, v, n, k); }
/* clang-format on */

static unet_backend tracing(void)
{
    unet_backend t = *cpu; /* memory, layout and sizes: the CPU's own */
    t.conv3x3_forward = c3f, t.conv3x3_backward_data = c3d, t.conv3x3_backward_weight = c3w;
    t.convt2x2_forward = ctf, t.convt2x2_backward_data = ctd, t.convt2x2_backward_weight = ctw;
    t.conv1x1_forward = c1f, t.conv1x1_backward_data = c1d, t.conv1x1_backward_weight = c1w;
    t.bn_relu_forward = bnf, t.bn_relu_forward_eval = bne, t.bn_relu_apply = bna;
    t.bn_relu_backward = bnb, t.maxpool2x2_forward = mpf, t.maxpool2x2_backward = mpb;
    t.add = add, t.loss_forward = lf, t.loss_backward = lb, t.adam_update = adam;
    return t;
}

/* One training step and one eval forward of a fresh model on `be`. */
static unet *step(const unet_backend *be, const unet_cfg *cfg, int B, int S, double *loss)
{
    char msg[256];
    unet *m = unet_create(cfg, B, S, S, 11, be, msg, sizeof msg);
    if (!m) {
        MG_FAIL_("unet_create: %s", msg);
        return NULL;
    }
    size_t px = (size_t)B * (size_t)S * (size_t)S;
    float *in = unet_input_host(m), *target = unet_target_host(m);
    for (size_t i = 0; i < px * (size_t)cfg->in_ch; i++)
        in[i] = (float)((i * 7919u) % 1000u) / 1000.0f - 0.5f;
    for (size_t i = 0; i < px; i++)
        target[i] = (i * 31u) % 7u < 3u ? 1.0f : 0.0f;
    unet_forward(m, B, true);
    *loss = unet_loss(m, B, NULL, NULL);
    unet_backward(m, B);
    unet_adam(m, 1e-3, 0.9, 0.999, 1e-8, 0.0);
    unet_forward(m, B, false);
    return m;
}

static void test_every_op_through_the_table(void)
{
    cpu = unet_backend_cpu();
    const unet_backend tr = tracing();
    const unet_cfg cfg = {3, 8, 3};
    const int B = 2, S = 16, d = cfg.depth;
    double l_cpu = 0, l_tr = 0;
    unet *a = step(cpu, &cfg, B, S, &l_cpu);
    memset(calls, 0, sizeof calls);
    unet *b = step(&tr, &cfg, B, S, &l_tr);
    if (!a || !b) {
        unet_destroy(a);
        unet_destroy(b);
        return;
    }
    /* Blocks: d encoders, the bottleneck, d decoders; 2 convs each. */
    const int convs = 2 * (2 * d + 1);
    CHECK_INT(calls[C3F], 2 * convs);         /* train and eval forward */
    CHECK_INT(calls[C3D], convs - 1);         /* the input needs no gradient */
    CHECK_INT(calls[C3W], convs);
    CHECK_INT(calls[CTF], 2 * d);
    CHECK_INT(calls[CTD], d);
    CHECK_INT(calls[CTW], d);
    CHECK_INT(calls[C1F], 2);
    CHECK_INT(calls[C1D], 1);
    CHECK_INT(calls[C1W], 1);
    CHECK_INT(calls[BNF], convs);
    CHECK_INT(calls[BNE], convs);
    CHECK(calls[BNA] >= convs);                /* recomputed ReLU outputs */
    CHECK_INT(calls[BNB], convs);
    CHECK_INT(calls[MPF], 2 * d);
    CHECK_INT(calls[MPB], d);
    CHECK_INT(calls[ADD], d);                  /* the skip gradients */
    CHECK_INT(calls[LF], 1);
    CHECK_INT(calls[LB], 1);
    CHECK_INT(calls[ADAM], b->ntrain);
    /* The same numbers, to the bit. */
    CHECK(memcmp(&l_cpu, &l_tr, sizeof l_cpu) == 0);
    size_t px = (size_t)(B * S * S);
    CHECK(memcmp(unet_logits_host(a, B), unet_logits_host(b, B), px * sizeof(float)) == 0);
    /* The CPU arena is host-visible: its gradients and weights read directly. */
    CHECK(memcmp(a->grads, b->grads, a->plan.params_floats * sizeof(float)) == 0);
    CHECK(memcmp(a->params, b->params, a->plan.params_floats * sizeof(float)) == 0);
    printf("# %d conv3x3 forwards, %d BN applies, %d Adam tensors through the table\n",
           calls[C3F], calls[BNA], calls[ADAM]);
    unet_destroy(a);
    unet_destroy(b);
}

int main(void)
{
    MG_RUN(test_every_op_through_the_table);
    return mg_test_exit();
}
