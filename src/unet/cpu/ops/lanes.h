/* SPDX-License-Identifier: MIT */
/*
 * lanes.h: one channel block's 8 lanes (layout.h's CB) as a GCC vector,
 * for the memory-bound ops (bn.c, pool.c) that build the same code for
 * AVX2 and for the baseline ISA: 1 ymm with AVX2, 2 xmm otherwise;
 * lane-wise arithmetic, so both builds give the same bits. Plain arrays
 * over the lanes were vectorised too, but GCC versioned every pixel for
 * aliasing and did not vectorise the masked sums or selects (BN backward
 * took 25 ms of the 32 ms on 1 thread; max-pool backward 5x its forward).
 *
 * Not here: anything an op computes; the convolution kernels' own
 * registers (conv/).
 */
#ifndef UNET_LANES_H
#define UNET_LANES_H

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
/* Unaligned, aliasing view for loads and stores (vmovups); macros rather
 * than functions because passing 32-byte vectors by value trips GCC's
 * -Wpsabi in the SSE2 build. */
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));
#define ld(p) (*(const v8fu *)(const void *)(p))
#define st(p, v) (*(v8fu *)(void *)(p) = (v))
/* v where the mask m is all ones, +0 where it is 0. */
#define v8_keep(v, m) ((v8f)((v8i)(v) & (m)))

#endif /* UNET_LANES_H */
