/* SPDX-License-Identifier: MIT */
/*
 * loss.h: the training loss of research/torch_unet_ref.py,
 *
 *     loss = BCEWithLogits(x, t)  (mean over all N*H*W pixels)
 *          + mean over images i of (1 - (2 I_i + 1) / (D_i + 1)),
 *     p = sigmoid(x), I_i = sum p*t, D_i = sum p + sum t over image i,
 *
 * forward (value and its two parts) and backward (dLoss/dlogits). The
 * logits and targets are plain contiguous float arrays of N*H*W (one output
 * channel, NCHW with C = 1); the model unpacks them from the blocked
 * layout. It does not support pos_weight, class weights or other
 * reductions.
 *
 * BCE per pixel uses the stable form max(x,0) - x*t + log1p(exp(-|x|)), and
 * p is computed from the same exp(-|x|), so neither overflows for any
 * finite logit. Per-pixel math is float (expf, log1pf), sums are double.
 *
 * State for backward: I_i and D_i per image (the `state` buffer, filled by
 * the forward, read by the backward; 2 doubles per image). Threads: OpenMP
 * over fixed chunks of LOSS_CHUNK pixels with partial sums in `scratch`
 * reduced in chunk order, so results are bitwise the same for any thread
 * count. No allocation.
 */
#ifndef UNET_LOSS_H
#define UNET_LOSS_H

#include <stddef.h>

#include "tensor.h" /* loss_parts */

#define LOSS_DICE_SMOOTH 1.0 /* eps of bce_dice_loss in torch_unet_ref.py */
#define LOSS_CHUNK 4096      /* pixels per reduction chunk */

/* Floats for the forward's partial sums (need not be aligned). */
size_t bce_dice_scratch_floats(int n, int hw);
/* Floats for the state kept from forward to backward (need not be aligned). */
size_t bce_dice_state_floats(int n);

/* loss = bce(logits (N,HW), target (N,HW)) + dice; fills state (I_i, D_i). */
loss_parts bce_dice_forward(const float *restrict logits, const float *restrict target,
                            int n, int hw, float *restrict state, float *restrict scratch);
loss_parts bce_dice_forward_ref(const float *restrict logits, const float *restrict target,
                                int n, int hw, float *restrict state);

/* dlogits (N,HW) = dloss/dlogits for loss = 1, from the forward's state:
 *   (p - t) / (N*HW) - p (1 - p) (2 t (D+1) - (2I+1)) / (N (D+1)^2)
 * dlogits is overwritten. */
void bce_dice_backward(float *restrict dlogits, const float *restrict logits,
                       const float *restrict target, int n, int hw,
                       const float *restrict state);
void bce_dice_backward_ref(float *restrict dlogits, const float *restrict logits,
                           const float *restrict target, int n, int hw,
                           const float *restrict state);

#endif /* UNET_LOSS_H */
