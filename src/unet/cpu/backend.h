/* SPDX-License-Identifier: MIT */
/*
 * backend.h: the boundary between the UNet (model.c: what to compute, in
 * which order, into which buffer of the arena) and a backend (how: the
 * kernels and the activation layout they run on). model.c calls ops only
 * through this table; it never indexes an activation.
 *
 * The contract, which a second backend (CUDA with cuDNN / cuBLAS, say)
 * must keep:
 * - Activations are `float *` into regions sized by act_floats() in the
 *   backend's own layout. `shape` is logical (C,B,H,W); only the backend
 *   knows strides, padding or borders. A concat along C is
 *   channels(cat, s, c0): the layout must make the upper channels of a
 *   tensor a tensor of their own (channel-outer layouts do; the CPU
 *   backend's [C/8][B][H+2][W+2][8] does, as would cuDNN's CHWN).
 * - Parameters, their gradients and Adam's moments are flat float arrays
 *   in PyTorch's state_dict order and shapes (OIHW, IOHW), so checkpoints
 *   and the optimiser state map one to one whatever the backend. Kernels
 *   may repack weights into their scratch, never in place.
 * - The model's edges are NCHW: from_nchw / to_nchw convert the input
 *   batch, the logits and their gradient. The loss runs on NCHW.
 * - Outputs are overwritten, never accumulated, except add().
 * - Every op may use the one `scratch` region, sized from the *_scratch
 *   functions for the largest op; ops run one at a time.
 * - Results are reproducible for given inputs and independent of the
 *   thread count (the CPU backend's reductions use fixed partitions).
 *
 * What this table does not carry yet: memory. The arena is host memory,
 * and code outside the table reads and writes it directly: the training
 * loop (train.c) fills the input and target batches, reads the logits for
 * the validation scores and madvise()s the activations away; predict.c
 * loads its images into the input batch and writes the logits to .npy and
 * the masks from them; the checkpoint
 * (ckpt.c, ckpt_read.c) reads and writes unet.params. A device backend
 * needs an allocator and host copies at each of those points first.
 *
 * It lives in cpu/ beside the one backend that fills it, because its
 * types (shape, loss_parts, adam_scalars) are the CPU ops' own; the model
 * (model/) includes it from here.
 *
 * Not here: the ops themselves (conv/, ops/), the CPU table
 * (backend_cpu.c).
 */
#ifndef UNET_BACKEND_H
#define UNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "adam.h"
#include "layout.h" /* shape */
#include "loss.h" /* loss_parts */

typedef struct unet_backend {
    const char *(*name)(void); /* e.g. "cpu-avx512", for logs */

    /* ---- layout ---- */
    size_t (*act_floats)(shape s);
    /* Channels [c0, s.c) of t (shape s) as a tensor of their own. */
    float *(*channels)(float *t, shape s, int c0);
    void (*from_nchw)(float *dst, shape s, const float *nchw);
    void (*to_nchw)(float *nchw, shape s, const float *src);
    /* t, a buffer that held tensors of other shapes, is about to be read
     * as shape s: whatever the layout needs (the CPU zeroes the border). */
    void (*reuse)(float *t, shape s);
    /* Zeroes `bytes` of activations (a batch-size change). */
    void (*zero)(void *p, size_t bytes);

    /* ---- scratch sizes (floats), for the plan ---- */
    size_t (*conv3x3_scratch)(shape s, int co);
    size_t (*convt2x2_scratch)(shape s, int co);
    size_t (*conv1x1_scratch)(shape s, int co);
    size_t (*bn_scratch)(shape s);
    size_t (*loss_scratch)(int n, int hw);
    size_t (*loss_state)(int n);

    /* ---- convolutions: the contracts of conv.h ---- */
    void (*conv3x3_forward)(float *out, const float *in, shape s, const float *w, int co,
                            float *scratch);
    void (*conv3x3_backward_data)(float *din, const float *dout, shape s, const float *w, int co,
                                  float *scratch);
    void (*conv3x3_backward_weight)(float *dw, const float *dout, const float *in, shape s,
                                    int co, float *scratch);
    void (*convt2x2_forward)(float *out, const float *in, shape s, const float *w,
                             const float *bias, int co, float *scratch);
    void (*convt2x2_backward_data)(float *din, const float *dout, shape s, const float *w, int co,
                                   float *scratch);
    void (*convt2x2_backward_weight)(float *dw, float *db, const float *dout, const float *in,
                                     shape s, int co, float *scratch);
    void (*conv1x1_forward)(float *out, const float *in, shape s, const float *w,
                            const float *bias, int co, float *scratch);
    void (*conv1x1_backward_data)(float *din, const float *dout, shape s, const float *w, int co,
                                  float *scratch);
    void (*conv1x1_backward_weight)(float *dw, float *db, const float *dout, const float *in,
                                    shape s, int co, float *scratch);

    /* ---- BatchNorm + ReLU, pooling, add: the contracts of bn.h, pool.h ---- */
    void (*bn_relu_forward)(float *y, const float *x, shape s, const float *gamma,
                            const float *beta, float *mean, float *rstd, float *running_mean,
                            float *running_var, int64_t *num_batches_tracked, double momentum,
                            double eps, float *scratch);
    void (*bn_relu_forward_eval)(float *y, const float *x, shape s, const float *gamma,
                                 const float *beta, const float *running_mean,
                                 const float *running_var, double eps);
    void (*bn_relu_apply)(float *y, const float *x, shape s, const float *gamma,
                          const float *beta, const float *mean, const float *rstd);
    void (*bn_relu_backward)(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *y, shape s, const float *gamma,
                             const float *mean, const float *rstd, float *scratch);
    void (*maxpool2x2_forward)(float *y, const float *x, shape s);
    void (*maxpool2x2_backward)(float *dx, const float *dy, const float *x, shape s);
    /* dst (shape s) += src (shape s) */
    void (*add)(float *dst, const float *src, shape s);

    /* ---- loss (NCHW) and optimiser (flat parameter arrays): loss.h, adam.h ---- */
    loss_parts (*loss_forward)(const float *logits, const float *target, int n, int hw,
                               float *state, float *scratch);
    void (*loss_backward)(float *dlogits, const float *logits, const float *target, int n,
                          int hw, const float *state);
    void (*adam_update)(float *p, const float *g, float *m, float *v, size_t n,
                        const adam_scalars *k);
} unet_backend;

/* The CPU backend: AVX-512, AVX2 or reference kernels picked at run time
 * (conv.h), OpenMP threads. */
const unet_backend *unet_backend_cpu(void);

#endif /* UNET_BACKEND_H */
