/* SPDX-License-Identifier: MIT */
/*
 * bn.h: BatchNorm2d fused with the ReLU that follows it, on the blocked
 * layout of layout.h: the training forward (batch statistics, running-stat
 * update), its backward, and the eval forward from running statistics.
 * It does not do BN without ReLU, affine=False, or momentum=None
 * (cumulative averaging); the UNet needs none of them.
 *
 * Arithmetic follows PyTorch 1.13's CPU kernels (batch_norm_kernel.cpp):
 * statistics are accumulated in double, mean and invstd are rounded to
 * float, the output is x*alpha + beta with alpha = invstd*gamma and
 * beta' = beta - mean*alpha in float, and the running statistics are updated
 * in double with the unbiased variance var*n/(n-1). Results agree with
 * torch to ~1e-6 relative (tests/unet/cpu/test_ops_bn.c).
 *
 * Conventions (the same as conv.h):
 * - `s` is the activation shape (C,B,H,W); x, y, dy, dx are blocked,
 *   zero-bordered tensors of that shape. Per-channel arrays (gamma, beta,
 *   mean, rstd, running stats, dgamma, dbeta) have s.c entries, no padding.
 * - Only the interior is written; padded channels come out as 0.
 * - Outputs never alias inputs (pointers are restrict).
 * - Threads: OpenMP. Reductions run over a fixed partition (one unit per
 *   channel block and image), summed in unit order, so every result is
 *   bitwise reproducible and independent of the thread count.
 * - Kernels (isa.h): lane-wise GCC vector code over a block's 8 channels,
 *   built for AVX2 (avx2) and for the baseline ISA, SSE2 on x86-64 (base),
 *   picked at run time; UNET_KERNELS=ref forces the *_ref versions. Both
 *   builds give the same bits (no FMA contraction in ISO C mode, lane-wise
 *   accumulators).
 * - Measured (B=8, 128x128, all 18 BN layers of the UNet, 16.0 M values,
 *   best of 12 on this shared 2-core EPYC): fwd+bwd 22-25 ms on 1 thread
 *   (fwd 8, bwd 14-16), 10.6-10.9 ms on 2 threads.
 *
 * What the training forward keeps for backward: per channel, the batch
 * mean and rstd = 1/sqrt(var + eps) (2*C floats, the caller's arrays); and
 * the backward also reads the pre-BN input x, which the model keeps anyway,
 * and takes the ReLU mask from it (not from the output y, which the model
 * recomputes only where a conv's weight gradient needs it).
 */
#ifndef UNET_BN_H
#define UNET_BN_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* "ref", "base" or "avx2": what the calls below run now (isa.h). */
const char *bn_kernels_name(void);

/* Scratch floats for bn_relu_forward and bn_relu_backward on shape s:
 * 32 doubles per (channel block, image) unit, 2 C + 1 doubles of
 * per-channel totals, and alignment slack (64 KB + 4 KB at C=256, B=8).
 * The scratch need not be aligned and holds nothing between calls. */
size_t bn_scratch_floats(shape s);

/* Training forward, fused with ReLU:
 *   y (C,B,H,W) = relu(gamma * (x - mean) * rstd + beta), x (C,B,H,W)
 *   mean, rstd (C): batch statistics over B*H*W, biased variance, saved
 *   for backward.
 *   running_mean, running_var (C) and *num_batches_tracked are updated
 *   like torch (momentum, unbiased variance); pass NULL to skip them.
 * Needs B*H*W > 1 (torch refuses a single value per channel too). */
void bn_relu_forward(float *restrict y, const float *restrict x, shape s,
                     const float *restrict gamma, const float *restrict beta,
                     float *restrict mean, float *restrict rstd,
                     float *restrict running_mean, float *restrict running_var,
                     int64_t *restrict num_batches_tracked, double momentum, double eps,
                     float *restrict scratch);
void bn_relu_forward_ref(float *restrict y, const float *restrict x, shape s,
                         const float *restrict gamma, const float *restrict beta,
                         float *restrict mean, float *restrict rstd,
                         float *restrict running_mean, float *restrict running_var,
                         int64_t *restrict num_batches_tracked, double momentum, double eps);

/* bn_relu_forward as SyncBatchNorm: with a sync hook (tensor.h), the
 * statistics are those of the whole batch over every process that calls
 * it (sum and count summed first, then the squares around that mean), so
 * each gets the same mean, rstd and running statistics, and the running
 * variance's n - 1 is the global count's. A NULL hook is bn_relu_forward,
 * bitwise. The hook is called between the parallel regions, from the
 * calling thread: twice per call (the reference: twice per channel). */
void bn_relu_forward_sync(float *restrict y, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          float *restrict mean, float *restrict rstd,
                          float *restrict running_mean, float *restrict running_var,
                          int64_t *restrict num_batches_tracked, double momentum, double eps,
                          float *restrict scratch, const unet_sum_hook *sync);

/* Backward of bn_relu_forward. dy (C,B,H,W) is the gradient w.r.t. y.
 *   g = dy * [y > 0], where y > 0 is taken as x alpha + beta' > 0 with
 *   the forward's own constants (bitwise the same test: the ReLU output
 *   is not read)
 *   dbeta (C) = sum g;  dgamma (C) = rstd * sum g * (x - mean)
 *   dx (C,B,H,W) = (g - dbeta/n - (x - mean) * k) * rstd * gamma,
 *                  k = dgamma * rstd / n
 * dgamma and dbeta are overwritten, not accumulated. x, y, mean, rstd are
 * the forward's. */
void bn_relu_backward(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                      const float *restrict dy, const float *restrict x, shape s,
                      const float *restrict gamma, const float *restrict beta,
                      const float *restrict mean, const float *restrict rstd,
                      float *restrict scratch);
void bn_relu_backward_ref(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                          const float *restrict dy, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          const float *restrict mean, const float *restrict rstd);

/* bn_relu_backward as SyncBatchNorm's: with a sync hook, dx uses the sums
 * of g and g (x - mean) and the count over every process (once per call;
 * the reference: once per channel); dgamma and dbeta stay this process's
 * own sums, which the gradient sum over processes adds up. A NULL hook is
 * bn_relu_backward, bitwise. */
void bn_relu_backward_sync(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                           const float *restrict dy, const float *restrict x, shape s,
                           const float *restrict gamma, const float *restrict beta,
                           const float *restrict mean, const float *restrict rstd,
                           float *restrict scratch, const unet_sum_hook *sync);

/* y (C,B,H,W) = relu(bn(x)) from the batch statistics a training forward
 * kept (mean, rstd): its output stage alone, bitwise the same (one code
 * for both in bn.c, at every UNET_KERNELS level; test_ops_bn checks), so
 * the model can recompute a ReLU output in backward instead of storing it. */
void bn_relu_apply(float *restrict y, const float *restrict x, shape s,
                   const float *restrict gamma, const float *restrict beta,
                   const float *restrict mean, const float *restrict rstd);

/* Eval forward from running statistics (model.eval()):
 *   y (C,B,H,W) = relu(gamma * (x - running_mean) / sqrt(running_var + eps)
 *                      + beta), x (C,B,H,W). Stores nothing. */
void bn_relu_forward_eval(float *restrict y, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          const float *restrict running_mean,
                          const float *restrict running_var, double eps);
void bn_relu_forward_eval_ref(float *restrict y, const float *restrict x, shape s,
                              const float *restrict gamma, const float *restrict beta,
                              const float *restrict running_mean,
                              const float *restrict running_var, double eps);

#endif /* UNET_BN_H */
