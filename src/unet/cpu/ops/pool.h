/* SPDX-License-Identifier: MIT */
/*
 * pool.h: MaxPool2d(kernel 2, stride 2) forward and backward on the
 * blocked layout of layout.h. Odd sizes are floored like PyTorch: the last
 * row / column of an odd input is never selected and gets zero gradient.
 * It does not do other kernel sizes, padding, dilation or ceil_mode.
 *
 * Ties and NaN follow PyTorch 1.13's CPU kernel exactly: the window is
 * scanned in row-major order (0,0) (0,1) (1,0) (1,1) and a value replaces
 * the current maximum only if it is strictly greater or NaN, so the first
 * maximum gets the gradient.
 *
 * State for backward: nothing. The backward recomputes the argmax from the
 * forward's input x, which the UNet keeps anyway (it is the skip tensor of
 * the encoder level, concatenated again in the decoder). Recomputing costs
 * 3 compares per window and saves B*C*H*W/4 bytes of indices per level, so
 * there is no *_bytes helper: the pool stores 0 bytes.
 *
 * Conventions (as conv.h): s is the input shape (C,B,H,W), the output
 * shape is maxpool2x2_shape(s); only interiors are written; no scratch; no
 * aliasing between outputs and inputs. Threads: OpenMP over rows; every
 * output element is computed independently, so results are bitwise the
 * same for any thread count. Kernels (isa.h): the same C built for AVX2
 * (avx2) and for the baseline ISA (base), picked at run time;
 * UNET_KERNELS=ref forces the *_ref versions.
 */
#ifndef UNET_POOL_H
#define UNET_POOL_H

#include "layout.h"

/* "ref", "base" or "avx2": what the calls below run now (isa.h). */
const char *pool_kernels_name(void);

/* Output shape: (C, B, floor(H/2), floor(W/2)). */
static inline shape maxpool2x2_shape(shape s)
{
    shape o = {s.c, s.b, s.h / 2, s.w / 2};
    return o;
}

/* y (C,B,H/2,W/2) = max over 2x2 windows of x (C,B,H,W) */
void maxpool2x2_forward(float *restrict y, const float *restrict x, shape s);
void maxpool2x2_forward_ref(float *restrict y, const float *restrict x, shape s);

/* dx (C,B,H,W) = dy (C,B,H/2,W/2) routed to each window's first maximum of
 * x (C,B,H,W); every other interior element of dx, including the floored
 * last row / column, is set to 0. */
void maxpool2x2_backward(float *restrict dx, const float *restrict dy,
                         const float *restrict x, shape s);
void maxpool2x2_backward_ref(float *restrict dx, const float *restrict dy,
                             const float *restrict x, shape s);

#endif /* UNET_POOL_H */
