/* SPDX-License-Identifier: MIT */
/*
 * zmm.h: what the two AVX-512 convolution kernels (avx512.c, float32, and
 * avx512bf16.c) share: their target attributes, the split store and the
 * joined load of two 8-channel blocks as one zmm, the choice of a row's
 * tile width and the switch that turns it and the zmm count into
 * constants (out_tile_any), and the tasks of the weight-gradient loop. Internal to those two files; included inside their
 * x86-only sections.
 *
 * Not here: the microkernels themselves, anything that knows a packing.
 */
#ifndef UNET_CONV_ZMM_H
#define UNET_CONV_ZMM_H

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernel.h"

#define Z512 __attribute__((target("avx512f,avx512vl,fma")))
#define Z512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512vl,fma")))

/* Stores one zmm as blocks j (low half) and j+1 (high half, if j+1 < nb)
 * of an output whose blocks are cs floats apart. */
Z512_INLINE void store_pair(float *o, ptrdiff_t cs, int j, int nb, __m512 v)
{
    _mm256_storeu_ps(o + j * cs, _mm512_castps512_ps256(v));
    if (j + 1 < nb)
        _mm256_storeu_ps(o + (j + 1) * cs,
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Blocks j, j+1 of a group with nb blocks at one pixel, as one zmm (upper
 * half 0 when block j+1 does not exist). */
Z512_INLINE __m512 load_pair(const float *p, ptrdiff_t cs, int j, int nb)
{
    __m512 lo = _mm512_castps256_ps512(_mm256_loadu_ps(p + j * cs));
    if (j + 1 < nb)
        return _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castps_pd(lo), _mm256_castps_pd(_mm256_loadu_ps(p + (j + 1) * cs)), 1));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(lo), _mm256_setzero_pd(), 1));
}

/* switch (np) over the tile widths 1..12 or 1..16, each a CASE(width):
 * the microkernels take their width as a constant. */
#define Z512_SWITCH_12(np, CASE)                                                           \
    switch (np) {                                                                          \
        CASE(1); CASE(2); CASE(3); CASE(4); CASE(5); CASE(6);                              \
        CASE(7); CASE(8); CASE(9); CASE(10); CASE(11); CASE(12);                           \
    default: break;                                                                        \
    }
#define Z512_SWITCH_16(np, CASE)                                                           \
    switch (np) {                                                                          \
        CASE(1); CASE(2); CASE(3); CASE(4); CASE(5); CASE(6); CASE(7); CASE(8);            \
        CASE(9); CASE(10); CASE(11); CASE(12); CASE(13); CASE(14); CASE(15); CASE(16);     \
    default: break;                                                                        \
    }

/* out_tile_any(nz, np, d, in, wp, bias, out, nb): the microkernel of nz
 * zmm and np pixels with both as constants: Z512_TILE(NZ, NP, ...), or
 * Z512_TILE_S3(NP, ...) for a 3x3 with one zmm. The including file
 * defines those two names, then writes Z512_OUT_TILE_ANY(its attribute). */
#define Z512_C1(NP)                                                                        \
    case NP:                                                                               \
        Z512_TILE(1, NP, d, in, wp, bias, out, nb);                                        \
        break
#define Z512_C2(NP)                                                                        \
    case NP:                                                                               \
        Z512_TILE(2, NP, d, in, wp, bias, out, nb);                                        \
        break
#define Z512_CS3(NP)                                                                       \
    case NP:                                                                               \
        Z512_TILE_S3(NP, d, in, wp, bias, out, nb);                                        \
        break
#define Z512_OUT_TILE_ANY(ATTR)                                                            \
    ATTR static void out_tile_any(int nz, int np, const conv__fwd *d, const float *in,     \
                                  const float *wp, const float *bias, float *out, int nb)  \
    {                                                                                      \
        if (nz == 2) {                                                                     \
            Z512_SWITCH_12(np, Z512_C2)                                                    \
        } else if (d->stencil3) {                                                          \
            Z512_SWITCH_16(np, Z512_CS3)                                                   \
        } else {                                                                           \
            Z512_SWITCH_16(np, Z512_C1)                                                    \
        }                                                                                  \
    }

/* Pixels per tile for a row of w pixels with at most `cap` per tile: the
 * widest tile down to half the cap that splits the row into equal tiles
 * (all UNet widths are powers of two), else the cap with a remainder
 * tile. */
static inline int z512_tile_step(int cap, int w)
{
    for (int s = cap; s >= (cap + 1) / 2; s--)
        if (w % s == 0)
            return s;
    return cap;
}

/* Task `task` of an AVX-512 weight-gradient loop: tasks are (chunk,
 * group of conv__group blocks, input block), chunk outermost; each owns
 * one tile of tile_f floats of d->part, zeroed here, and sums the rows
 * [r0, r1) of the B*H domain into it. */
typedef struct z512_dw_task {
    int cb, k, nb; /* input block, output group, its real blocks */
    int r0, r1;
    int full;      /* all 8 lanes of the input block (else at most 4) */
    float *tile;
} z512_dw_task;

/* The number of such tasks; *ow the lanes of a group (G*8), *tile_f the
 * floats of a task's tile. */
static inline int z512_dw_tasks(const conv__dw *d, ptrdiff_t *ow, size_t *tile_f)
{
    const int G = conv__group(d->nob), ngroups = (d->nob + G - 1) / G;
    *ow = (ptrdiff_t)G * CB;
    *tile_f = (size_t)d->ntaps * CB * (size_t)*ow;
    return d->nchunks * ngroups * d->ncib;
}

static inline z512_dw_task z512_dw_task_of(const conv__dw *d, int task, size_t tile_f)
{
    const int G = conv__group(d->nob), ngroups = (d->nob + G - 1) / G;
    const int rows = d->b * d->h, chunk = task / (d->ncib * ngroups);
    z512_dw_task t;
    t.cb = task % d->ncib;
    t.k = (task / d->ncib) % ngroups;
    t.nb = d->nob - t.k * G < G ? d->nob - t.k * G : G;
    t.r0 = (int)((long long)rows * chunk / d->nchunks);
    t.r1 = (int)((long long)rows * (chunk + 1) / d->nchunks);
    t.full = !(t.cb == d->ncib - 1 && d->icn_last <= 4);
    t.tile = d->part + (size_t)task * tile_f;
    memset(t.tile, 0, tile_f * sizeof *t.tile);
    return t;
}

#endif /* UNET_CONV_ZMM_H */
