/* SPDX-License-Identifier: MIT */
/*
 * tensor.h: the values that cross the backend boundary (backend.h) besides
 * pointers: a tensor's logical shape, the loss's three numbers, Adam's
 * hyper-parameters and per-step scalars, and the hook through which
 * SyncBatchNorm sums its statistics over the processes of a data-parallel
 * run. The model and every backend
 * include it; it knows no layout, no kernel and no device.
 *
 * Not here: how a backend stores a tensor of a shape (the CPU's blocked
 * layout is cpu/layout.h), the op table itself (backend.h).
 */
#ifndef UNET_TENSOR_H
#define UNET_TENSOR_H

#include <stdint.h>

/* A tensor's logical shape: channels, batch, height, width. How many
 * floats it takes, strides, borders and padding are the backend's
 * (backend.h: act_floats). */
typedef struct shape {
    int c, b, h, w;
} shape;

/* The loss of one batch (BCE-with-logits + soft Dice) and its parts. */
typedef struct loss_parts {
    double loss; /* bce + dice */
    double bce;  /* BCEWithLogits, mean over N*H*W */
    double dice; /* mean over images of 1 - soft Dice */
} loss_parts;

/* torch.optim.Adam's settings, as torch's Python floats. */
typedef struct adam_hparams {
    double lr, beta1, beta2, eps, weight_decay;
} adam_hparams;

/* torch's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0. */
static inline adam_hparams adam_defaults(double lr)
{
    adam_hparams h = {lr, 0.9, 0.999, 1e-8, 0.0};
    return h;
}

/* The float scalars of one step, derived as torch derives them. */
typedef struct adam_scalars {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float weight_decay, bc2_sqrt, eps, neg_step_size;
    int use_wd; /* torch skips the L2 add when weight_decay == 0 */
} adam_scalars;

/* Scalars for step number `step` (1 for the first update), computed on
 * the host in double as torch's Python code does (cpu/ops/adam.h gives
 * the formulas); every backend's update takes them as they are. */
adam_scalars adam_scalars_for(const adam_hparams *h, int64_t step);

/* A sum over the processes of a data-parallel run (dist/dist.h gives
 * one), for BatchNorm's statistics (SyncBatchNorm): sum(ctx, v, n)
 * replaces v[0..n) by the elementwise sum of every process's v, the same
 * bits on all of them. Every process calls it at the same points with the
 * same n, from the thread that runs the ops (never inside an OpenMP
 * parallel region). */
typedef struct unet_sum_hook {
    void (*sum)(void *ctx, double *v, int n);
    void *ctx;
} unet_sum_hook;

#endif /* UNET_TENSOR_H */
