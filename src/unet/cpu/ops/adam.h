/* SPDX-License-Identifier: MIT */
/*
 * adam.h: torch.optim.Adam (torch 1.13, foreach=False, amsgrad=False,
 * maximize=False) over flat float arrays, bitwise equal to torch's CPU
 * _single_tensor_adam. weight_decay is L2 added to the gradient (Adam, not
 * AdamW). It does not do amsgrad, maximize, AdamW or per-group settings.
 *
 * What torch does, and what adam_scalars_for (backend/tensor.c, shared by
 * every backend) and adam_update replicate (checked bit for bit in
 * tests/unet/cpu/test_adam.c against torch for 5 steps):
 *   step += 1                                   (a float32 tensor in torch)
 *   bias_correction1 = 1 - beta1**step          (Python doubles, libm pow)
 *   bias_correction2 = 1 - beta2**step
 *   step_size = lr / bias_correction1; bc2_sqrt = sqrt(bias_correction2)
 * then per element in float32, each Python scalar cast to float first:
 *   g = fma(p, wd, g)             grad.add(param, alpha=wd): vec::fmadd
 *   m = fma(g, 1-b1, m*b1)        exp_avg.mul_(b1).add_(g, alpha=1-b1)
 *   v = fma((1-b2)*g, g, v*b2)    exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2)
 *   d = sqrt(v) / bc2_sqrt + eps
 *   p = p + (-step_size * m) / d  param.addcdiv_(m, d, value=-step_size)
 * torch's AVX2 kernels use FMA for add-with-alpha and addcmul; fmaf() here
 * gives the same single rounding on any CPU (vfmadd with AVX2+FMA, chosen
 * at run time; glibc's exact fmaf otherwise).
 *
 * Checkpoints: torch stores `step` per parameter as a float32 0-dim tensor
 * and exp_avg / exp_avg_sq with the parameter's shape; m and v here are the
 * same values in the same (flat, state_dict) order.
 *
 * Threads: OpenMP over the flat array; elementwise, so bitwise the same
 * for any thread count. Kernels (isa.h): avx2 (AVX2+FMA) or base, picked
 * at run time; UNET_KERNELS=ref forces adam_update_ref.
 */
#ifndef UNET_ADAM_H
#define UNET_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h" /* adam_hparams, adam_scalars, adam_scalars_for */

/* One update of n parameters p with gradient g and moments m, v (all
 * float[n], no aliasing), using the scalars of the current step. */
void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                 float *restrict v, size_t n, const adam_scalars *k);
void adam_update_ref(float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, size_t n, const adam_scalars *k);

/* "ref", "base" or "avx2": what adam_update runs now (isa.h). */
const char *adam_kernels_name(void);

/* opt.step() over one flat array: ++*step, then adam_update. When the
 * parameters live in several arrays, call adam_scalars_for once per step
 * and adam_update per array instead. */
void adam_step(const adam_hparams *h, int64_t *step, float *restrict p,
               const float *restrict g, float *restrict m, float *restrict v, size_t n);

#endif /* UNET_ADAM_H */
