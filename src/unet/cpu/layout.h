/* SPDX-License-Identifier: MIT */
/*
 * layout.h: the CPU backend's activation layout, shared by every kernel of
 * the trainer. It declares shapes and index arithmetic only; no kernel.
 *
 * Activations are stored channel-blocked with a zero border:
 *
 *     [C/8][B][H+2][W+2][8]      (float32, 8 channels innermost)
 *
 * - SIMD runs across the 8 channels of a block, which is what lets a direct
 *   3x3 convolution reach 64-78 GFLOPS per core here (research/cnn-in-c.md
 *   3.4) against oneDNN's use of the same layout (nChw8c) inside PyTorch.
 * - The one-pixel border is always zero, so 3x3 kernels have no padding
 *   branches. Kernels must never write it (or must zero it again).
 * - Channel blocks are outermost, so concatenating [skip ; up] along C is
 *   a view: the two halves are contiguous block ranges of one buffer.
 * - A channel count that is not a multiple of 8 (the 3-channel input, the
 *   1-channel output) is padded to whole blocks; padded channels hold 0.
 *
 * Weights stay in PyTorch's order (OIHW for conv, IOHW for ConvTranspose2d)
 * everywhere outside the kernels, so checkpoints map one to one; a kernel
 * may repack them into its own scratch.
 */
#ifndef UNET_LAYOUT_H
#define UNET_LAYOUT_H

#include <stddef.h>

#include "tensor.h" /* shape: (C,B,H,W), border excluded */

#define CB 8 /* channels per block */

/* Channel blocks: ceil(c / 8). */
static inline int shape_blocks(shape s) { return (s.c + CB - 1) / CB; }

/* Floats in one padded plane of one block of one image: (H+2)(W+2)8. */
static inline size_t shape_plane(shape s)
{
    return (size_t)(s.h + 2) * (size_t)(s.w + 2) * CB;
}

/* Floats in the whole tensor, border and padded channels included. */
static inline size_t shape_floats(shape s)
{
    return (size_t)shape_blocks(s) * (size_t)s.b * shape_plane(s);
}

/* Offset of channel c, image b, row y, column x, with y in [-1, h] and x in
 * [-1, w] (the border is at -1 and h / w). */
static inline size_t shape_at(shape s, int c, int b, int y, int x)
{
    return (((size_t)(c / CB) * (size_t)s.b + (size_t)b) * (size_t)(s.h + 2) + (size_t)(y + 1))
               * (size_t)(s.w + 2) * CB
           + (size_t)(x + 1) * CB + (size_t)(c % CB);
}

/* NCHW <-> blocked conversion at the model's edges (input batch, logits,
 * parity tests). pack writes the border and padded channels as zeros. */
void layout_pack(float *dst, shape s, const float *nchw);
void layout_unpack(float *nchw, shape s, const float *src);

/* Zeroes the one-pixel border of every plane of t (shape s): for buffers
 * that serve tensors of several shapes, whose old interiors would
 * otherwise show through as border. */
void layout_zero_border(float *t, shape s);

#endif /* UNET_LAYOUT_H */
