/* SPDX-License-Identifier: MIT */
/*
 * backend.h: the device boundary of unet-train. The model (model/) says
 * what to compute, in which order, into which region of its arena; a
 * backend says where that memory lives and how each op runs on it.
 * Nothing reaches the arena but through this table: the model allocates
 * it, moves data in and out of it and runs every op through it, and
 * neither the model nor the trainer, the checkpoint or predict reads or
 * writes a tensor itself, unless host_visible says the host may (then the
 * staging and the checkpoint use the arena in place). The CPU backend
 * (cpu/backend_cpu.h) fills the table; tests/unet/backend/test_backend_fenced.c proves
 * the claim with a backend whose arena the host cannot touch.
 *
 * The contract, which a second backend (CUDA with cuDNN / cuBLAS, say)
 * must keep:
 * - Memory first, as in ggml's backend: the arena comes from alloc() and
 *   goes back through free(); the host reaches it only through upload()
 *   and download() into host memory (alloc_host(), pinned on a device),
 *   unless host_visible says it may dereference the arena (the CPU).
 *   The model keeps three host staging buffers, input, target and logits
 *   (model.h: unet_input_host ...); the checkpoint keeps a host mirror of
 *   the parameters, Adam's moments and BN's counters (ckpt.h), reserved
 *   at start-up so an emergency save allocates nothing.
 * - Activations are `float *` into regions sized by act_floats() in the
 *   backend's own layout. `shape` (tensor.h) is logical (C,B,H,W); only
 *   the backend knows strides, padding or borders. A concat along C is
 *   channels(cat, s, c0): the layout must make the upper channels of a
 *   tensor a tensor of their own (channel-outer layouts do; the CPU
 *   backend's [C/8][B][H+2][W+2][8] does, as would cuDNN's CHWN).
 * - Parameters, their gradients and Adam's moments are flat float arrays
 *   in PyTorch's state_dict order and shapes (OIHW, IOHW), so checkpoints
 *   and the optimiser state map one to one whatever the backend. Kernels
 *   may repack weights into their scratch, never in place. BatchNorm's
 *   num_batches_tracked counters are int64 in the arena too.
 * - The model's edges are NCHW: from_nchw / to_nchw convert the input
 *   batch, the logits and their gradient inside the arena. The loss runs
 *   on NCHW.
 * - Outputs are overwritten, never accumulated, except add().
 * - Every op may use the one `scratch` region, sized from the *_scratch
 *   functions for the largest op; ops run one at a time, in the order
 *   issued, and so do upload / download with them.
 * - Results are reproducible for given inputs and independent of the
 *   thread count (the CPU backend's reductions use fixed partitions).
 *
 * What still assumes the host: loss_forward returns its loss_parts by
 * value (a sync point on a device), and the trainer's memory accounting
 * (guard.c, --batch auto) measures RAM, not device memory.
 *
 * It lives in its own folder, below both the model and the backends: the
 * model consumes it and each backend implements it, and neither includes
 * the other. Not here: the ops themselves (cpu/conv/, cpu/ops/), the CPU
 * table (cpu/backend_cpu.c), the values that cross it (tensor.h).
 */
#ifndef UNET_BACKEND_H
#define UNET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef struct unet_backend {
    const char *(*name)(void); /* e.g. "cpu-avx512", for logs */

    /* ---- memory: alloc, free, host staging, upload, download, zero,
     * discard, sync; then whether the host may touch the arena ---- */
    /* The arena: `bytes` (a multiple of 64) of backend memory, 64-byte
     * aligned, contents undefined (the model zeroes it); NULL when there is
     * not enough. free() takes the same size back. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p, size_t bytes);
    /* Host memory for staging copies (pinned on a device), 64-byte
     * aligned; NULL when there is not enough. */
    void *(*alloc_host)(size_t bytes);
    void (*free_host)(void *p, size_t bytes);
    /* Host -> arena and arena -> host copies of `bytes`, in order with the
     * ops; each returns when its host side may be reused or read. */
    void (*upload)(void *dst, const void *host, size_t bytes);
    void (*download)(void *host, const void *src, size_t bytes);
    /* Zeroes `bytes` of the arena (a new arena, a batch-size change,
     * optimiser state that a checkpoint does not have, discarded bytes
     * before their next use). */
    void (*zero)(void *p, size_t bytes);
    /* The contents of these arena bytes are not needed any more: give
     * their memory back if the backend can (the CPU: madvise
     * MADV_DONTNEED on the whole pages inside; on Windows they are
     * decommitted, so the commit charge falls). They stay the arena's; the
     * next use of them is a zero(), which makes them usable again. */
    void (*discard)(void *p, size_t bytes);
    /* Returns when every op and copy issued so far has finished. */
    void (*sync)(void);
    /* The host may read and write the arena directly (ggml's is_host):
     * then the model's staging buffers are the arena's own NCHW buffers
     * and the checkpoint points at the parameters, so nothing is copied. */
    bool host_visible;

    /* ---- layout ---- */
    size_t (*act_floats)(shape s);
    /* Channels [c0, s.c) of t (shape s) as a tensor of their own. */
    float *(*channels)(float *t, shape s, int c0);
    void (*from_nchw)(float *dst, shape s, const float *nchw);
    void (*to_nchw)(float *nchw, shape s, const float *src);
    /* t, a buffer that held tensors of other shapes, is about to be read
     * as shape s: whatever the layout needs (the CPU zeroes the border). */
    void (*reuse)(float *t, shape s);

    /* ---- scratch sizes (floats), for the plan ---- */
    size_t (*conv3x3_scratch)(shape s, int co);
    size_t (*convt2x2_scratch)(shape s, int co);
    size_t (*conv1x1_scratch)(shape s, int co);
    size_t (*bn_scratch)(shape s);
    size_t (*loss_scratch)(int n, int hw);
    size_t (*loss_state)(int n);

    /* ---- convolutions: the contracts of cpu/conv/conv.h ---- */
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

    /* ---- BatchNorm + ReLU, pooling, add: the contracts of cpu/ops/bn.h, pool.h ---- */
    /* sync: NULL, or SyncBatchNorm's sum over the processes of a
     * data-parallel run (tensor.h; bn.h: bn_relu_forward_sync). */
    void (*bn_relu_forward)(float *y, const float *x, shape s, const float *gamma,
                            const float *beta, float *mean, float *rstd, float *running_mean,
                            float *running_var, int64_t *num_batches_tracked, double momentum,
                            double eps, float *scratch, const unet_sum_hook *sync);
    void (*bn_relu_forward_eval)(float *y, const float *x, shape s, const float *gamma,
                                 const float *beta, const float *running_mean,
                                 const float *running_var, double eps);
    void (*bn_relu_apply)(float *y, const float *x, shape s, const float *gamma,
                          const float *beta, const float *mean, const float *rstd);
    void (*bn_relu_backward)(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, shape s, const float *gamma, const float *beta,
                             const float *mean, const float *rstd, float *scratch,
                             const unet_sum_hook *sync);
    void (*maxpool2x2_forward)(float *y, const float *x, shape s);
    void (*maxpool2x2_backward)(float *dx, const float *dy, const float *x, shape s);
    /* dst (shape s) += src (shape s) */
    void (*add)(float *dst, const float *src, shape s);
    /* x[0..n) *= a, on a flat array (a data-parallel rank's share of the
     * loss gradient) */
    void (*scale)(float *x, size_t n, float a);

    /* ---- loss (NCHW) and optimiser (flat parameter arrays): cpu/ops/loss.h, adam.h ---- */
    loss_parts (*loss_forward)(const float *logits, const float *target, int n, int hw,
                               float *state, float *scratch);
    void (*loss_backward)(float *dlogits, const float *logits, const float *target, int n,
                          int hw, const float *state);
    void (*adam_update)(float *p, const float *g, float *m, float *v, size_t n,
                        const adam_scalars *k);
} unet_backend;

#endif /* UNET_BACKEND_H */
