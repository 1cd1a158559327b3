/* SPDX-License-Identifier: MIT */
/*
 * test_unet_fd.c: finite differences through the whole UNet, for what the
 * per-op tests (test_ops_*.c) cannot see: the wiring between ops. The
 * skip concat (a view in the CPU layout: its gradient is the split of
 * dcat into the skip half and the up half), the skip gradient added to the
 * pool's, the transposed convs and every block's recomputed ReLU outputs
 * all sit between the loss and the early weights.
 *
 * For every trainable tensor, central differences of the float32 loss at
 * the entry with the largest analytic gradient; for a decoder's first
 * conv, whose input is the concat, the largest in each half of its input
 * channels. A small model (depth 2, base 8, 1 channel, batch 2, 16x16)
 * keeps each loss evaluation at ~1 ms.
 *
 * Step and tolerance: float32 rounding of the loss (~1e-7 relative) over
 * a step h gives ~1e-7/h noise, the curvature O(h^2); h = 1e-2 of the
 * entry's scale balances them. ReLU masks and BN batch statistics make
 * the loss only piecewise smooth, so the bound is 5 % of the gradient
 * plus 1 % of the tensor's largest gradient: a wiring error (a skip
 * half dropped, a gradient sent to the wrong half) is off by 100 %.
 */
#include "mg_test.h"

#include "backend_cpu.h"
#include "model.h"
#include "rng.h"

#include <math.h>

static double loss_at(unet *m, int batch)
{
    unet_forward(m, batch, true);
    return unet_loss(m, batch, NULL, NULL);
}

/* |fd - an| against the bound above, for entry k of parameter p. */
static double check_entry(unet *m, int batch, const param *p, size_t k, double gmax,
                          double *worst)
{
    float *w = m->params + p->off + k;
    const float saved = *w;
    const double h = 1e-2 * fmax(fabs((double)saved), 0.1);
    const double an = (double)m->grads[p->off + k];
    *w = (float)((double)saved + h);
    double lp = loss_at(m, batch);
    *w = (float)((double)saved - h);
    double lm = loss_at(m, batch);
    *w = saved;
    const double fd = (lp - lm) / (((double)saved + h) - ((double)saved - h));
    const double err = fabs(fd - an) / (0.05 * fabs(an) + 0.01 * gmax);
    if (err > *worst) *worst = err;
    if (err > 1.0)
        MG_FAIL_("%s[%zu]: finite difference %.6g, backward %.6g (bound %.3g)", p->name, k, fd,
                 an, 0.05 * fabs(an) + 0.01 * gmax);
    return err;
}

/* Largest |g| over entries k of p with (k / inner) % outer in [lo, hi):
 * the input channels [lo, hi) of an OIHW weight (inner = kh*kw, outer =
 * Ci), or every entry with outer = 1. */
static size_t argmax_in(const unet *m, const param *p, size_t inner, size_t outer, size_t lo,
                        size_t hi)
{
    size_t best = 0;
    float bv = -1.0f;
    for (size_t k = 0; k < p->numel; k++) {
        size_t c = (k / inner) % outer;
        float g = fabsf(m->grads[p->off + k]);
        if (c >= lo && c < hi && g > bv) {
            bv = g;
            best = k;
        }
    }
    return best;
}

static void test_whole_model_gradients(void)
{
    unet_cfg cfg = {1, 8, 2};
    const int B = 2, S = 16;
    char msg[256];
    unet *m = unet_create(&cfg, B, S, S, 7, unet_backend_cpu(), msg, sizeof msg);
    if (!m) {
        MG_FAIL_("unet_create: %s", msg);
        return;
    }
    /* Images: smooth blobs plus noise; targets: the blobs' insides, so the
     * loss has both BCE and Dice gradient everywhere. */
    unet_rng r;
    unet_rng_seed(&r, 3);
    float *in = unet_input_host(m), *target = unet_target_host(m);
    for (int b = 0; b < B; b++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double cx = 5 + 6 * b, d = hypot(x - cx, y - 8.0);
                size_t i = (size_t)((b * S + y) * S + x);
                in[i] = (float)(exp(-d * d / 18.0) + 0.3 * unet_rng_uniform(&r));
                target[i] = d < 4.0 ? 1.0f : 0.0f;
            }
    loss_at(m, B);
    unet_backward(m, B);

    int checked = 0, concat_halves = 0;
    double worst = 0.0;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        double gmax = 0.0;
        for (size_t k = 0; k < p->numel; k++)
            gmax = fmax(gmax, fabs((double)m->grads[p->off + k]));
        CHECK(gmax > 0.0); /* every parameter takes part in the loss */
        if (p->kind == PARAM_CONV && p->dims[1] == 2 * p->dims[0]) {
            /* A decoder's first conv reads [skip ; up]: one entry in each. */
            size_t ci = (size_t)p->dims[1], half = ci / 2;
            check_entry(m, B, p, argmax_in(m, p, 9, ci, 0, half), gmax, &worst);
            check_entry(m, B, p, argmax_in(m, p, 9, ci, half, ci), gmax, &worst);
            checked += 2;
            concat_halves++;
        } else {
            check_entry(m, B, p, argmax_in(m, p, 1, 1, 0, 1), gmax, &worst);
            checked++;
        }
    }
    CHECK_INT(concat_halves, cfg.depth);
    printf("# whole model: %d entries checked, worst error %.2f of the bound\n", checked, worst);
    unet_destroy(m);
}

int main(void)
{
    MG_RUN(test_whole_model_gradients);
    return mg_test_exit();
}
