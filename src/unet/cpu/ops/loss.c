/* SPDX-License-Identifier: MIT */
/*
 * loss.c: BCEWithLogits + soft Dice (see loss.h). The loss touches N*H*W
 * values once per step (131072 at B=8, 128x128), so it is written for
 * exactness and determinism first: one expf and one log1pf per pixel,
 * chunked partial sums in double, chunks reduced in order.
 */
#include "loss.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOSS_SLOT 8 /* doubles per chunk: bce, sum p t, sum p, sum t; 64 B */

static double *loss_align(const float *p)
{
    uintptr_t a = ((uintptr_t)p + 63u) & ~(uintptr_t)63u;
    return (double *)a;
}

static int loss_chunks(int hw) { return (hw + LOSS_CHUNK - 1) / LOSS_CHUNK; }

size_t bce_dice_scratch_floats(int n, int hw)
{
    return (size_t)n * (size_t)loss_chunks(hw) * LOSS_SLOT * 2 + 16;
}

size_t bce_dice_state_floats(int n) { return (size_t)n * 4 + 16; }

/* e = exp(-|x|); p = sigmoid(x) from e; returns the BCE term. */
static inline float loss_pixel(float x, float t, float *p)
{
    float e = expf(-fabsf(x));
    float inv = 1.0f / (1.0f + e);
    *p = x >= 0.0f ? inv : e * inv;
    return (x > 0.0f ? x : 0.0f) - x * t + log1pf(e);
}

static loss_parts loss_finish(const double *per_img, int n, int hw, double bce_sum)
{
    loss_parts r;
    double dsum = 0.0;
    for (int i = 0; i < n; i++) {
        double I = per_img[2 * i], D = per_img[2 * i + 1];
        dsum += 1.0 - (2.0 * I + LOSS_DICE_SMOOTH) / (D + LOSS_DICE_SMOOTH);
    }
    r.bce = bce_sum / ((double)n * (double)hw);
    r.dice = dsum / (double)n;
    r.loss = r.bce + r.dice;
    return r;
}

loss_parts bce_dice_forward(const float *restrict logits, const float *restrict target,
                            int n, int hw, float *restrict state, float *restrict scratch)
{
    int cpi = loss_chunks(hw), chunks = n * cpi;
    double *part = loss_align(scratch), *st = loss_align(state);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < chunks; k++) {
        int img = k / cpi, c = k % cpi;
        size_t lo = (size_t)img * (size_t)hw + (size_t)c * LOSS_CHUNK;
        size_t hi = (size_t)img * (size_t)hw
                    + (size_t)((c + 1) * LOSS_CHUNK < hw ? (c + 1) * LOSS_CHUNK : hw);
        double b = 0.0, pt = 0.0, ps = 0.0, ts = 0.0;
        for (size_t j = lo; j < hi; j++) {
            float p, t = target[j];
            b += loss_pixel(logits[j], t, &p);
            pt += p * t;
            ps += p;
            ts += t;
        }
        double *o = part + (size_t)k * LOSS_SLOT;
        o[0] = b;
        o[1] = pt;
        o[2] = ps;
        o[3] = ts;
    }
    double bce = 0.0;
    for (int i = 0; i < n; i++) {
        double pt = 0.0, ps = 0.0, ts = 0.0;
        for (int c = 0; c < cpi; c++) {
            const double *o = part + (size_t)(i * cpi + c) * LOSS_SLOT;
            bce += o[0];
            pt += o[1];
            ps += o[2];
            ts += o[3];
        }
        st[2 * i] = pt;
        st[2 * i + 1] = ps + ts;
    }
    return loss_finish(st, n, hw, bce);
}

loss_parts bce_dice_forward_ref(const float *restrict logits, const float *restrict target,
                                int n, int hw, float *restrict state)
{
    double *st = loss_align(state), bce = 0.0;
    for (int i = 0; i < n; i++) {
        double I = 0.0, D = 0.0;
        for (int j = 0; j < hw; j++) {
            size_t k = (size_t)i * (size_t)hw + (size_t)j;
            double x = logits[k], t = target[k];
            double p = 1.0 / (1.0 + exp(-x));
            bce += (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
            I += p * t;
            D += p + t;
        }
        st[2 * i] = I;
        st[2 * i + 1] = D;
    }
    return loss_finish(st, n, hw, bce);
}

void bce_dice_backward(float *restrict dlogits, const float *restrict logits,
                       const float *restrict target, int n, int hw,
                       const float *restrict state)
{
    const double *st = loss_align(state);
    double total = (double)n * (double)hw;
    float inv_total = (float)(1.0 / total);
    int cpi = loss_chunks(hw), chunks = n * cpi;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < chunks; k++) {
        int img = k / cpi, c = k % cpi;
        double I = st[2 * img], D1 = st[2 * img + 1] + LOSS_DICE_SMOOTH;
        /* d dice_i / dp_j = -(1/N) (2 t_j / (D+1) - (2I+1) / (D+1)^2)
         *                 = v - u t_j */
        float u = (float)(2.0 / D1 / (double)n);
        float v = (float)((2.0 * I + LOSS_DICE_SMOOTH) / (D1 * D1) / (double)n);
        size_t lo = (size_t)img * (size_t)hw + (size_t)c * LOSS_CHUNK;
        size_t hi = (size_t)img * (size_t)hw
                    + (size_t)((c + 1) * LOSS_CHUNK < hw ? (c + 1) * LOSS_CHUNK : hw);
        for (size_t j = lo; j < hi; j++) {
            float p, t = target[j];
            (void)loss_pixel(logits[j], t, &p);
            dlogits[j] = (p - t) * inv_total + (v - u * t) * (p * (1.0f - p));
        }
    }
}

void bce_dice_backward_ref(float *restrict dlogits, const float *restrict logits,
                           const float *restrict target, int n, int hw,
                           const float *restrict state)
{
    const double *st = loss_align(state);
    double total = (double)n * (double)hw;
    for (int i = 0; i < n; i++) {
        double I = st[2 * i], D1 = st[2 * i + 1] + LOSS_DICE_SMOOTH;
        for (int j = 0; j < hw; j++) {
            size_t k = (size_t)i * (size_t)hw + (size_t)j;
            double x = logits[k], t = target[k];
            double p = 1.0 / (1.0 + exp(-x));
            double ddice = -(2.0 * t * D1 - (2.0 * I + LOSS_DICE_SMOOTH)) / (D1 * D1) / n;
            dlogits[k] = (float)((p - t) / total + ddice * p * (1.0 - p));
        }
    }
}
