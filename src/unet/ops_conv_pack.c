/* SPDX-License-Identifier: MIT */
/*
 * ops_conv_pack.c: the two data movements the SIMD convolution kernels
 * (ops_conv_avx2.c, ops_conv_avx512.c) share around their microkernels:
 * packing PyTorch-order weights into register tiles before a forward-type
 * op, and summing the per-chunk weight-gradient partials back into
 * PyTorch order after one. Plain C, no intrinsics: both are memory moves
 * the compiler vectorises well enough.
 *
 * Both run in parallel over (output group, input block) tiles. They used
 * to be serial loops calling a getter per element: at batch 4, 128x128,
 * they took ~9 % of a training step on 2 threads (perf, Zen 5), with the
 * second thread spinning in libgomp meanwhile.
 *
 * Not here: the arithmetic (the kernel files) and scratch sizing
 * (ops_conv.c).
 */
#include "ops_conv.h"

static int blocks(int c) { return (c + CB - 1) / CB; }

/* Lanes of group k (nb real blocks): nb*8 rounded up to `round`. */
static int lanes(int nb, int round) { return (nb * CB + round - 1) / round * round; }

void conv__pack(float *dst, conv__wview w, int nout, int nin, int ntaps, int G, int round)
{
    const int nob = blocks(nout), nib = blocks(nin);
    const int ngroups = (nob + G - 1) / G;
    /* Groups before the last are full: G*8 lanes, a multiple of `round`. */
    const ptrdiff_t group_f = (ptrdiff_t)G * CB * nib * ntaps * CB;
#pragma omp parallel for collapse(2) schedule(static)
    for (int k = 0; k < ngroups; k++)
        for (int cb = 0; cb < nib; cb++) {
            const int nb = nob - k * G < G ? nob - k * G : G;
            const int width = lanes(nb, round);
            float *p = dst + k * group_f + (ptrdiff_t)cb * ntaps * CB * width;
            for (int t = 0; t < ntaps; t++)
                for (int i = cb * CB; i < cb * CB + CB; i++)
                    for (int o = k * G * CB; o < k * G * CB + width; o++)
                        *p++ = (o < nout && i < nin)
                                   ? w.w[o * w.so + i * w.si + t * w.st]
                                   : 0.0f;
        }
}

void conv__dw_reduce(float *part, int nchunks, int nout, int nin, int ntaps, int G,
                     conv__dwview dw)
{
    const int nob = blocks(nout), nib = blocks(nin);
    const int ngroups = (nob + G - 1) / G;
    const ptrdiff_t ow = (ptrdiff_t)G * CB;
    const ptrdiff_t tile_f = ntaps * CB * ow;
    const ptrdiff_t chunk_f = ngroups * nib * tile_f;
#pragma omp parallel for collapse(2) schedule(static)
    for (int k = 0; k < ngroups; k++)
        for (int cb = 0; cb < nib; cb++) {
            /* Chunk 0's tile takes the sum, in chunk order: the fixed
             * order that makes dW independent of the thread count. */
            float *acc = part + (k * nib + cb) * tile_f;
            for (int c = 1; c < nchunks; c++) {
                const float *src = acc + c * chunk_f;
                for (ptrdiff_t e = 0; e < tile_f; e++)
                    acc[e] += src[e];
            }
            for (int t = 0; t < ntaps; t++)
                for (int i = cb * CB; i < cb * CB + CB && i < nin; i++)
                    for (int o = k * G * CB; o < k * G * CB + G * CB && o < nout; o++)
                        dw.w[o * dw.so + i * dw.si + t * dw.st] =
                            acc[(t * CB + i - cb * CB) * ow + o - k * G * CB];
        }
}
