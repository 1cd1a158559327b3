/* SPDX-License-Identifier: MIT */
/*
 * avx2.c: the AVX2+FMA convolution kernel on the blocked layout: the two
 * loops of kernel.h (fwd_row, run_dw), Winograd's dW sums and the bias
 * gradient. Compiled for
 * plain x86-64 (target attributes, no global -mavx2); the dispatcher in
 * conv.c uses it only when the CPU has AVX2 and FMA.
 *
 * Two microkernels serve all nine ops (research/cnn-in-c.md 3.4, 5.2):
 * - out_tile: NO output-channel blocks x NP output pixels: 4 x 3 where a
 *   group has 4 blocks (32+ output channels), 2 x 6 for the 16-channel
 *   layers, both 12 ymm accumulators; per input channel, NP broadcasts and
 *   NO weight loads feed NO*NP FMAs. Those two tiles keep their
 *   accumulators in named variables: as an array GCC 12 left some on the
 *   stack. Measured (AMD family 26, 1 thread, bench/bench_conv.c,
 *   UNET_KERNELS=avx2): 4 x 3 runs conv3x3 at 114-126 GFLOPS, 2 x 6 at
 *   118-124; the old 2 x 4 tile (array accumulators) ran 91-97, and 4 x 3
 *   as an array 79-84. The Zen3 prototype's 2 x 6 ran at 64-78.
 *   conv3x3 forward and backward-data (flipped, transposed weights),
 *   ConvTranspose forward (a 1-tap conv per output sub-position) and
 *   backward-data (a 4-tap conv reading dout at stride 2), and conv1x1 both
 *   ways are all this kernel with different strides and tap offsets.
 * - dw_row: 2 output-channel blocks x 4 input channels = 8 accumulators,
 *   pixels inner; per pixel, 2 vector loads of dout + 4 broadcasts of x.
 *   The accumulators live in a small per-task tile that stays in L1
 *   (100-118 GFLOPS). conv3x3's dW uses dw_row_s3 instead, which sweeps
 *   each input row once for three taps (126-136 GFLOPS).
 * And for Winograd's weight gradient (wino.c) its sums over tiles,
 * wino_dw: 16 output lanes x 4 input lanes, twice per input block.
 * Weights are repacked into caller scratch on every call (1.8 M floats per
 * step in all, negligible against 36 GFLOP).
 *
 * Not here: each op's geometry, weight packing and the dW reduction
 * (drive.c), dispatch and scratch sizing (conv.c), the
 * reference (ref.c).
 */
#include "kernel.h"
#include "isa.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

#ifndef UNET_AVX2_NP2
#define UNET_AVX2_NP2 6
#endif

/* ---- output-stationary microkernel (forward-type ops) -------------------------- */

/* acc += the packed weights of n input lanes x the n lanes of NP pixels.
 * The NP broadcasts come first, then each weight vector feeds NP FMAs:
 * at NO = 4, NP = 3 that is 12 accumulators + 3 inputs + 1 weight, all 16
 * ymm registers, the compiler folding the weight loads into the FMAs. */
AVX2_INLINE void out_lanes(const int NO, const int NP, const int n, const float *it,
                           ptrdiff_t px, const float *wt, __m256 acc[4][6])
{
    for (int i = 0; i < n; i++) {
        const float *ahead = wt + CONV__PREFETCH_LANES * NO * CB;
        _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        if (NO > 2)
            _mm_prefetch((const char *)(ahead + 16), _MM_HINT_T0);
        __m256 x[6];
        for (int p = 0; p < NP; p++)
            x[p] = _mm256_broadcast_ss(it + p * px + i);
        for (int o = 0; o < NO; o++) {
            __m256 w = _mm256_loadu_ps(wt + o * CB);
            for (int p = 0; p < NP; p++)
                acc[o][p] = _mm256_fmadd_ps(w, x[p], acc[o][p]);
        }
        wt += NO * CB;
    }
}

/* NO output blocks (1..4) x NP pixels (1..6), fully unrolled; out points at
 * the group's first block, blocks cs apart. */
AVX2_INLINE void out_tile(const int NO, const int NP, const conv__fwd *d, const float *in,
                          const float *wp, const float *bias, float *out)
{
    __m256 acc[4][6];
    for (int o = 0; o < NO; o++)
        for (int p = 0; p < NP; p++)
            acc[o][p] = bias ? _mm256_loadu_ps(bias + o * CB) : _mm256_setzero_ps();
    const ptrdiff_t px = d->in_px;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int icn = cb == d->ncib - 1 ? d->icn_last : CB;
        const float *ib = in + cb * d->in_cs;
        for (int t = 0; t < d->ntaps; t++) {
            const float *it = ib + d->tap[t];
            if (icn == CB) /* the common case, fully unrolled */
                out_lanes(NO, NP, CB, it, px, wp, acc);
            else
                out_lanes(NO, NP, icn, it, px, wp, acc);
            wp += CB * NO * CB;
        }
    }
    /* Strides in locals, loops unrolled: else the accumulators go
     * through the stack (see avx512.c's out_tile). */
    const ptrdiff_t opx = d->out_px, ocs = d->out_cs;
#pragma GCC unroll 4
    for (int o = 0; o < NO; o++)
#pragma GCC unroll 6
        for (int p = 0; p < NP; p++)
            _mm256_storeu_ps(out + o * ocs + p * opx, acc[o][p]);
}

/* The 4 x 3 tile with named accumulators: as an array GCC 12 kept some of
 * them on the stack (an FMA with a memory accumulator every few). */
AVX2_INLINE void out_lanes43(const int n, const float *it, ptrdiff_t px, const float *wt,
                             __m256 *a)
{
    __m256 a00 = a[0], a01 = a[1], a02 = a[2], a10 = a[3], a11 = a[4], a12 = a[5];
    __m256 a20 = a[6], a21 = a[7], a22 = a[8], a30 = a[9], a31 = a[10], a32 = a[11];
    for (int i = 0; i < n; i++) {
        _mm_prefetch((const char *)(wt + CONV__PREFETCH_LANES * 4 * CB), _MM_HINT_T0);
        _mm_prefetch((const char *)(wt + CONV__PREFETCH_LANES * 4 * CB + 16), _MM_HINT_T0);
        const __m256 x0 = _mm256_broadcast_ss(it + i), x1 = _mm256_broadcast_ss(it + px + i);
        const __m256 x2 = _mm256_broadcast_ss(it + 2 * px + i);
        __m256 w = _mm256_loadu_ps(wt);
        a00 = _mm256_fmadd_ps(w, x0, a00), a01 = _mm256_fmadd_ps(w, x1, a01);
        a02 = _mm256_fmadd_ps(w, x2, a02);
        w = _mm256_loadu_ps(wt + CB);
        a10 = _mm256_fmadd_ps(w, x0, a10), a11 = _mm256_fmadd_ps(w, x1, a11);
        a12 = _mm256_fmadd_ps(w, x2, a12);
        w = _mm256_loadu_ps(wt + 2 * CB);
        a20 = _mm256_fmadd_ps(w, x0, a20), a21 = _mm256_fmadd_ps(w, x1, a21);
        a22 = _mm256_fmadd_ps(w, x2, a22);
        w = _mm256_loadu_ps(wt + 3 * CB);
        a30 = _mm256_fmadd_ps(w, x0, a30), a31 = _mm256_fmadd_ps(w, x1, a31);
        a32 = _mm256_fmadd_ps(w, x2, a32);
        wt += 4 * CB;
    }
    a[0] = a00, a[1] = a01, a[2] = a02, a[3] = a10, a[4] = a11, a[5] = a12;
    a[6] = a20, a[7] = a21, a[8] = a22, a[9] = a30, a[10] = a31, a[11] = a32;
}

/* The 2 x 6 tile (16-channel layers), named the same way: 12 accumulators,
 * 2 weights, 1 input. */
AVX2_INLINE void out_lanes26(const int n, const float *it, ptrdiff_t px, const float *wt,
                             __m256 *a)
{
    __m256 a00 = a[0], a01 = a[1], a02 = a[2], a03 = a[3], a04 = a[4], a05 = a[5];
    __m256 a10 = a[6], a11 = a[7], a12 = a[8], a13 = a[9], a14 = a[10], a15 = a[11];
    for (int i = 0; i < n; i++) {
        _mm_prefetch((const char *)(wt + CONV__PREFETCH_LANES * 2 * CB), _MM_HINT_T0);
        const __m256 w0 = _mm256_loadu_ps(wt), w1 = _mm256_loadu_ps(wt + CB);
        __m256 x = _mm256_broadcast_ss(it + i);
        a00 = _mm256_fmadd_ps(w0, x, a00), a10 = _mm256_fmadd_ps(w1, x, a10);
        x = _mm256_broadcast_ss(it + px + i);
        a01 = _mm256_fmadd_ps(w0, x, a01), a11 = _mm256_fmadd_ps(w1, x, a11);
        x = _mm256_broadcast_ss(it + 2 * px + i);
        a02 = _mm256_fmadd_ps(w0, x, a02), a12 = _mm256_fmadd_ps(w1, x, a12);
        x = _mm256_broadcast_ss(it + 3 * px + i);
        a03 = _mm256_fmadd_ps(w0, x, a03), a13 = _mm256_fmadd_ps(w1, x, a13);
        x = _mm256_broadcast_ss(it + 4 * px + i);
        a04 = _mm256_fmadd_ps(w0, x, a04), a14 = _mm256_fmadd_ps(w1, x, a14);
        x = _mm256_broadcast_ss(it + 5 * px + i);
        a05 = _mm256_fmadd_ps(w0, x, a05), a15 = _mm256_fmadd_ps(w1, x, a15);
        wt += 2 * CB;
    }
    a[0] = a00, a[1] = a01, a[2] = a02, a[3] = a03, a[4] = a04, a[5] = a05;
    a[6] = a10, a[7] = a11, a[8] = a12, a[9] = a13, a[10] = a14, a[11] = a15;
}

/* The two 12-accumulator tiles, NO x (12 / NO): 4 x 3 or 2 x 6. */
AVX2_INLINE void out_tile12(const int NO, const conv__fwd *d, const float *in, const float *wp,
                            const float *bias, float *out)
{
    const int NP = 12 / NO;
    __m256 acc[12];
    for (int o = 0; o < NO; o++)
        for (int p = 0; p < NP; p++)
            acc[o * NP + p] = bias ? _mm256_loadu_ps(bias + o * CB) : _mm256_setzero_ps();
    const ptrdiff_t px = d->in_px;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int icn = cb == d->ncib - 1 ? d->icn_last : CB;
        const float *ib = in + cb * d->in_cs;
        for (int t = 0; t < d->ntaps; t++) {
            if (NO == 4)
                out_lanes43(icn, ib + d->tap[t], px, wp, acc);
            else
                out_lanes26(icn, ib + d->tap[t], px, wp, acc);
            wp += CB * NO * CB;
        }
    }
    const ptrdiff_t opx = d->out_px, ocs = d->out_cs; /* as above */
#pragma GCC unroll 4
    for (int o = 0; o < NO; o++)
#pragma GCC unroll 6
        for (int p = 0; p < NP; p++)
            _mm256_storeu_ps(out + o * ocs + p * opx, acc[o * NP + p]);
}

#define TILE_CASE(NO, NP)                                                                  \
    case NP:                                                                               \
        out_tile(NO, NP, d, in, wp, bias, out);                                            \
        break

/* One row segment of np <= 6 pixels of no blocks; picks the unrolled variant. */
AVX2 static void out_tile_any(int no, int np, const conv__fwd *d, const float *in,
                              const float *wp, const float *bias, float *out)
{
    switch (no) {
    case 4:
        if (np == 3) out_tile12(4, d, in, wp, bias, out);
        else switch (np) { TILE_CASE(4, 1); TILE_CASE(4, 2); default: break; }
        break;
    case 3:
        switch (np) {
            TILE_CASE(3, 1); TILE_CASE(3, 2); TILE_CASE(3, 3); TILE_CASE(3, 4);
        default: break;
        }
        break;
    case 2:
        if (np == 6) {
            out_tile12(2, d, in, wp, bias, out);
            break;
        }
        switch (np) {
            TILE_CASE(2, 1); TILE_CASE(2, 2); TILE_CASE(2, 3);
            TILE_CASE(2, 4); TILE_CASE(2, 5); TILE_CASE(2, 6);
        default: break;
        }
        break;
    default:
        switch (np) {
            TILE_CASE(1, 1); TILE_CASE(1, 2); TILE_CASE(1, 3);
            TILE_CASE(1, 4); TILE_CASE(1, 5); TILE_CASE(1, 6);
        default: break;
        }
        break;
    }
}

/* Pixels per tile for nb output blocks (a group of conv__group): 3 for 4
 * blocks, 4 for 3, else UNET_AVX2_NP2 (6; -D overrides are for
 * benchmarking). On this machine (AMD family 26, 1 thread) the named 2x6
 * tile ran the 16-channel layers at 118-124 GFLOPS against 94-97 for the
 * old 2x4 array tile. */
static int tile_pixels(int nb)
{
    if (nb == 4) return 3;
    if (nb == 3) return 4;
    return UNET_AVX2_NP2;
}

/* One output row of a group of nb blocks, in tiles of tile_pixels. */
AVX2 static void fwd_row(const conv__fwd *d, int nb, const float *in, const float *wp,
                         const float *bias, float *out)
{
    const int step = tile_pixels(nb);
    for (int x = 0; x < d->w; x += step) {
        const int np = d->w - x < step ? d->w - x : step;
        out_tile_any(nb, np, d, in + x * d->in_px, wp, bias, out + x * d->out_px);
    }
}

/* ---- weight-stationary microkernel (weight gradients) ---------------------------- */

/* 2 (or 1) output blocks x 4 input lanes, over n pixels of one row. */
AVX2_INLINE void dw_row(const int NO, const float *dv0, const float *dv1, ptrdiff_t dv_px,
                        const float *bc, ptrdiff_t bc_px, int n, float *tile)
{
    __m256 a00 = _mm256_loadu_ps(tile + 0 * 16), a01 = _mm256_loadu_ps(tile + 1 * 16);
    __m256 a02 = _mm256_loadu_ps(tile + 2 * 16), a03 = _mm256_loadu_ps(tile + 3 * 16);
    __m256 a10 = _mm256_setzero_ps(), a11 = a10, a12 = a10, a13 = a10;
    if (NO == 2) {
        a10 = _mm256_loadu_ps(tile + 0 * 16 + 8);
        a11 = _mm256_loadu_ps(tile + 1 * 16 + 8);
        a12 = _mm256_loadu_ps(tile + 2 * 16 + 8);
        a13 = _mm256_loadu_ps(tile + 3 * 16 + 8);
    }
    for (int p = 0; p < n; p++) {
        const float *x = bc + p * bc_px;
        __m256 d0 = _mm256_loadu_ps(dv0 + p * dv_px);
        __m256 x0 = _mm256_broadcast_ss(x + 0), x1 = _mm256_broadcast_ss(x + 1);
        __m256 x2 = _mm256_broadcast_ss(x + 2), x3 = _mm256_broadcast_ss(x + 3);
        a00 = _mm256_fmadd_ps(d0, x0, a00);
        a01 = _mm256_fmadd_ps(d0, x1, a01);
        a02 = _mm256_fmadd_ps(d0, x2, a02);
        a03 = _mm256_fmadd_ps(d0, x3, a03);
        if (NO == 2) {
            __m256 d1 = _mm256_loadu_ps(dv1 + p * dv_px);
            a10 = _mm256_fmadd_ps(d1, x0, a10);
            a11 = _mm256_fmadd_ps(d1, x1, a11);
            a12 = _mm256_fmadd_ps(d1, x2, a12);
            a13 = _mm256_fmadd_ps(d1, x3, a13);
        }
    }
    _mm256_storeu_ps(tile + 0 * 16, a00);
    _mm256_storeu_ps(tile + 1 * 16, a01);
    _mm256_storeu_ps(tile + 2 * 16, a02);
    _mm256_storeu_ps(tile + 3 * 16, a03);
    if (NO == 2) {
        _mm256_storeu_ps(tile + 0 * 16 + 8, a10);
        _mm256_storeu_ps(tile + 1 * 16 + 8, a11);
        _mm256_storeu_ps(tile + 2 * 16 + 8, a12);
        _mm256_storeu_ps(tile + 3 * 16 + 8, a13);
    }
}

/* conv3x3's dW (stencil3) for one output block, 4 input lanes and the
 * three taps kw of one kernel row, swept along the input row: input pixel
 * q feeds tap kw of output pixel q + 1 - kw, so each lane is broadcast
 * once for three FMAs and one new dout load per pixel rolls through three
 * registers (12 accumulators + 3 dout + 1 input: the 16 ymm). dw_row does
 * one tap at a time: 2 dout loads and 4 broadcasts per 8 FMAs. The
 * products skipped at the row's ends are those with the zero border; the
 * sums are otherwise in dw_row's order. tile points at [kw 0][lane 0] of
 * this block; kw are CB*16 apart, lanes 16. */
AVX2_INLINE void dw_row_s3(const float *dv, ptrdiff_t dv_px, const float *x, ptrdiff_t px,
                           int n, float *tile)
{
#define S3_LOAD(kw, j) _mm256_loadu_ps(tile + (kw) * CB * 16 + (j) * 16)
#define S3_STORE(kw, j, v) _mm256_storeu_ps(tile + (kw) * CB * 16 + (j) * 16, v)
    __m256 a00 = S3_LOAD(0, 0), a01 = S3_LOAD(0, 1), a02 = S3_LOAD(0, 2), a03 = S3_LOAD(0, 3);
    __m256 a10 = S3_LOAD(1, 0), a11 = S3_LOAD(1, 1), a12 = S3_LOAD(1, 2), a13 = S3_LOAD(1, 3);
    __m256 a20 = S3_LOAD(2, 0), a21 = S3_LOAD(2, 1), a22 = S3_LOAD(2, 2), a23 = S3_LOAD(2, 3);
    __m256 dprev = _mm256_loadu_ps(dv - dv_px), dcur = _mm256_loadu_ps(dv);
    for (int q = 0; q < n; q++) {
        const __m256 dnext = _mm256_loadu_ps(dv + (q + 1) * dv_px);
        const float *xq = x + q * px;
        __m256 xi = _mm256_broadcast_ss(xq + 0);
        a00 = _mm256_fmadd_ps(dnext, xi, a00), a10 = _mm256_fmadd_ps(dcur, xi, a10);
        a20 = _mm256_fmadd_ps(dprev, xi, a20);
        xi = _mm256_broadcast_ss(xq + 1);
        a01 = _mm256_fmadd_ps(dnext, xi, a01), a11 = _mm256_fmadd_ps(dcur, xi, a11);
        a21 = _mm256_fmadd_ps(dprev, xi, a21);
        xi = _mm256_broadcast_ss(xq + 2);
        a02 = _mm256_fmadd_ps(dnext, xi, a02), a12 = _mm256_fmadd_ps(dcur, xi, a12);
        a22 = _mm256_fmadd_ps(dprev, xi, a22);
        xi = _mm256_broadcast_ss(xq + 3);
        a03 = _mm256_fmadd_ps(dnext, xi, a03), a13 = _mm256_fmadd_ps(dcur, xi, a13);
        a23 = _mm256_fmadd_ps(dprev, xi, a23);
        dprev = dcur;
        dcur = dnext;
    }
    S3_STORE(0, 0, a00), S3_STORE(0, 1, a01), S3_STORE(0, 2, a02), S3_STORE(0, 3, a03);
    S3_STORE(1, 0, a10), S3_STORE(1, 1, a11), S3_STORE(1, 2, a12), S3_STORE(1, 3, a13);
    S3_STORE(2, 0, a20), S3_STORE(2, 1, a21), S3_STORE(2, 2, a22), S3_STORE(2, 3, a23);
#undef S3_LOAD
#undef S3_STORE
}

/* Runs a conv__dw: tasks are (chunk, pair, input block); each owns one tile
 * of part[], so there is no sharing and no reduction inside. Within a task,
 * each row's dout strip (<= 8 KB) and the three input rows it touches stay
 * in L1 while all taps and input lanes sweep over them. */
AVX2 static void run_dw(const conv__dw *d)
{
    const int npairs = (d->nob + 1) / 2;
    const int rows = d->b * d->h;
    const size_t tile_f = (size_t)d->ntaps * CB * 16;
    const int ntasks = d->nchunks * npairs * d->ncib;
#pragma omp parallel for schedule(guided)
    for (int task = 0; task < ntasks; task++) {
        const int cb = task % d->ncib;
        const int k = (task / d->ncib) % npairs;
        const int chunk = task / (d->ncib * npairs);
        const int no = (2 * k + 1 < d->nob) ? 2 : 1;
        const int ngroups = cb == d->ncib - 1 ? (d->icn_last + 3) / 4 : 2;
        float *tile = d->part + (size_t)task * tile_f;
        memset(tile, 0, tile_f * sizeof *tile);
        const int r0 = (int)((long long)rows * chunk / d->nchunks);
        const int r1 = (int)((long long)rows * (chunk + 1) / d->nchunks);
        for (int r = r0; r < r1; r++) {
            const int b = r / d->h, y = r % d->h;
            const float *dv0 = d->dv + (2 * k) * d->dv_cs + b * d->dv_bs + y * d->dv_rs
                               + d->dv_org;
            const float *dv1 = no == 2 ? dv0 + d->dv_cs : dv0;
            const float *bc = d->bc + cb * d->bc_cs + b * d->bc_bs + y * d->bc_rs + d->bc_org;
            if (d->stencil3) {
                for (int kh = 0; kh < 3; kh++)
                    for (int g = 0; g < ngroups; g++)
                        for (int o = 0; o < no; o++)
                            dw_row_s3(o ? dv1 : dv0, d->dv_px,
                                      bc + d->bc_tap[kh * 3 + 1] + g * 4, d->bc_px, d->w,
                                      tile + ((size_t)kh * 3 * CB + (size_t)g * 4) * 16
                                          + (size_t)o * CB);
                continue;
            }
            for (int t = 0; t < d->ntaps; t++)
                for (int g = 0; g < ngroups; g++) {
                    float *tg = tile + ((size_t)t * CB + (size_t)g * 4) * 16;
                    const float *bct = bc + d->bc_tap[t] + g * 4;
                    if (no == 2)
                        dw_row(2, dv0 + d->dv_tap[t], dv1 + d->dv_tap[t], d->dv_px, bct,
                               d->bc_px, d->w, tg);
                    else
                        dw_row(1, dv0 + d->dv_tap[t], dv1, d->dv_px, bct, d->bc_px, d->w, tg);
                }
        }
    }
}

/* Winograd's weight-gradient products (kernel.h's wino_dw): 2 ymm of 16
 * output lanes x 4 input lanes at a time (8 accumulators), the two halves
 * of the input block one after the other; per tile and half, 2 loads and
 * 4 broadcasts for 8 FMAs. */
AVX2 static void wino_dw(float *m, const float *x, const float *y, int n)
{
    for (int h = 0; h < CB; h += 4) {
        __m256 a00 = _mm256_loadu_ps(m + (h + 0) * 16), a10 = _mm256_loadu_ps(m + (h + 0) * 16 + 8);
        __m256 a01 = _mm256_loadu_ps(m + (h + 1) * 16), a11 = _mm256_loadu_ps(m + (h + 1) * 16 + 8);
        __m256 a02 = _mm256_loadu_ps(m + (h + 2) * 16), a12 = _mm256_loadu_ps(m + (h + 2) * 16 + 8);
        __m256 a03 = _mm256_loadu_ps(m + (h + 3) * 16), a13 = _mm256_loadu_ps(m + (h + 3) * 16 + 8);
        for (int p = 0; p < n; p++) {
            const __m256 y0 = _mm256_loadu_ps(y + p * 16), y1 = _mm256_loadu_ps(y + p * 16 + 8);
            const float *xp = x + p * CB + h;
            __m256 xi = _mm256_broadcast_ss(xp + 0);
            a00 = _mm256_fmadd_ps(y0, xi, a00), a10 = _mm256_fmadd_ps(y1, xi, a10);
            xi = _mm256_broadcast_ss(xp + 1);
            a01 = _mm256_fmadd_ps(y0, xi, a01), a11 = _mm256_fmadd_ps(y1, xi, a11);
            xi = _mm256_broadcast_ss(xp + 2);
            a02 = _mm256_fmadd_ps(y0, xi, a02), a12 = _mm256_fmadd_ps(y1, xi, a12);
            xi = _mm256_broadcast_ss(xp + 3);
            a03 = _mm256_fmadd_ps(y0, xi, a03), a13 = _mm256_fmadd_ps(y1, xi, a13);
        }
        _mm256_storeu_ps(m + (h + 0) * 16, a00), _mm256_storeu_ps(m + (h + 0) * 16 + 8, a10);
        _mm256_storeu_ps(m + (h + 1) * 16, a01), _mm256_storeu_ps(m + (h + 1) * 16 + 8, a11);
        _mm256_storeu_ps(m + (h + 2) * 16, a02), _mm256_storeu_ps(m + (h + 2) * 16 + 8, a12);
        _mm256_storeu_ps(m + (h + 3) * 16, a03), _mm256_storeu_ps(m + (h + 3) * 16 + 8, a13);
    }
}

/* db[o] = sum of dout over the domain, for co real channels. Each block is
 * summed by one thread: 8 float lanes per row, rows added in double in row
 * order. Deterministic and thread-count independent. */
AVX2 static void bias_grad(float *db, const float *dout, shape so)
{
    const conv__geo g = conv__geo_of(so);
    const int nob = conv__blocks(so.c);
#pragma omp parallel for schedule(static)
    for (int ob = 0; ob < nob; ob++) {
        double tot[CB] = {0};
        for (int b = 0; b < so.b; b++)
            for (int y = 0; y < so.h; y++) {
                const float *r = dout + ob * g.cs + b * g.bs + y * g.rs + g.org;
                __m256 s = _mm256_setzero_ps();
                for (int x = 0; x < so.w; x++)
                    s = _mm256_add_ps(s, _mm256_loadu_ps(r + x * CB));
                float lane[CB];
                _mm256_storeu_ps(lane, s);
                for (int j = 0; j < CB; j++)
                    tot[j] += lane[j];
            }
        for (int j = 0; j < CB && ob * CB + j < so.c; j++)
            db[ob * CB + j] = (float)tot[j];
    }
}

/* ---- the kernel -------------------------------------------------------------- */

/* Pairs of output blocks: two ymm of 8 lanes each. */
static int group_pair(int nob)
{
    (void)nob;
    return 2;
}

static const conv__kernel avx2 = {
    .name = "AVX2",
    .have = unet_isa_avx2_fma,
    .fwd_row = fwd_row,
    .run_dw = run_dw,
    .bias_grad = bias_grad,
    .dw_group = group_pair,
    .round = CB, /* a pair's lanes: its real blocks x 8 */
    .wino_min_sum = 48, .wino_min_tiles = 1,
    .wino_dw = wino_dw, .wino_dw_lanes = 16, .wino_dw_min_tiles = 1,
};

const conv__kernel *conv__kernel_avx2(void) { return &avx2; }

#else

/* No such kernel off x86: the dispatcher and the tests see NULL. */
const conv__kernel *conv__kernel_avx2(void) { return NULL; }

#endif /* x86 */
