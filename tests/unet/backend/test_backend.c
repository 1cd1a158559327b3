/* SPDX-License-Identifier: MIT */
/*
 * test_backend.c: the model reaches every op through its backend table
 * (backend.h) and nothing else, so another backend can take the CPU's
 * place. A tracing backend forwards each op to the CPU table and counts
 * it (mg_backend_wrap.h); a training step (forward, loss, backward, Adam) on it must call
 * each op as often as the architecture says (a call that bypassed the
 * table would be missing from the count) and give bitwise the same
 * logits, loss, gradients and parameters as the CPU backend itself.
 */
#include "mg_backend_wrap.h"
#include "mg_test.h"

#include "backend_cpu.h"
#include "model.h"

#include <string.h>

static const unet_backend *cpu;
static int calls[NOPS];

static void wrap_enter(int op) { calls[op]++; }
static void wrap_leave(int op) { (void)op; }

/* The floats Adam updated, over all its calls. */
static size_t adam_floats;
static void (*adam_counted)(float *, const float *, float *, float *, size_t,
                            const adam_scalars *);
static void adam_counting(float *p, const float *g, float *m, float *v, size_t n,
                          const adam_scalars *k)
{
    adam_floats += n;
    adam_counted(p, g, m, v, n, k);
}

/* The CPU table, every entry that touches the arena counted. */
static unet_backend tracing(void)
{
    unet_backend t = wrap_table(cpu);
    adam_counted = t.adam_update;
    t.adam_update = adam_counting;
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
    /* Recomputed ReLU outputs, for a conv's dW only (BN's backward takes
     * its mask from x): every block's first (conv2's input), the last
     * decoder's second (the output conv's), each transposed conv's input. */
    CHECK_INT(calls[BNA], (2 * d + 1) + 1 + d);
    CHECK_INT(calls[BNB], convs);
    CHECK_INT(calls[MPF], 2 * d);
    CHECK_INT(calls[MPB], d);
    CHECK_INT(calls[ADD], d);                  /* the skip gradients */
    CHECK_INT(calls[LF], 1);
    CHECK_INT(calls[LB], 1);
    /* Every trainable float once, in runs of neighbouring tensors (at
     * least one call, at most one per tensor). */
    CHECK(adam_floats == b->plan.train_floats);
    CHECK(calls[ADAM] >= 1 && calls[ADAM] <= b->ntrain);
    /* The same numbers, to the bit. */
    CHECK(memcmp(&l_cpu, &l_tr, sizeof l_cpu) == 0);
    size_t px = (size_t)(B * S * S);
    CHECK(memcmp(unet_logits_host(a, B), unet_logits_host(b, B), px * sizeof(float)) == 0);
    /* The CPU arena is host-visible: its gradients and weights read directly. */
    CHECK(memcmp(a->grads, b->grads, a->plan.params_floats * sizeof(float)) == 0);
    CHECK(memcmp(a->params, b->params, a->plan.params_floats * sizeof(float)) == 0);
    printf("# %d conv3x3 forwards, %d BN applies, %d Adam calls (%d tensors) through the table\n",
           calls[C3F], calls[BNA], calls[ADAM], b->ntrain);
    unet_destroy(a);
    unet_destroy(b);
}

int main(void)
{
    MG_RUN(test_every_op_through_the_table);
    return mg_test_exit();
}
