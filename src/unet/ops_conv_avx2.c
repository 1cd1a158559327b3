/* SPDX-License-Identifier: MIT */
/*
 * ops_conv_avx2.c: the AVX2+FMA convolution kernel on the blocked layout:
 * the two loops of ops_conv_kernel.h (run_fwd, run_dw) and the bias
 * gradient. Compiled for plain x86-64 (target attributes, no global
 * -mavx2); the dispatcher in ops_conv.c uses it only when the CPU has AVX2
 * and FMA.
 *
 * Two microkernels serve all nine ops (research/cnn-in-c.md 3.4, 5.2):
 * - out_tile: 2 output-channel blocks x up to 6 output pixels (12 ymm
 *   accumulators; 4 pixels where the width allows, see run_fwd); per input
 *   channel, 2 weight loads + NP broadcasts feed 2*NP FMAs. The Zen3
 *   prototype ran at 64-78 GFLOPS/core; here 77-93 (bench/bench_conv.c).
 *   conv3x3 forward and backward-data (flipped, transposed weights),
 *   ConvTranspose forward (a 1-tap conv per output sub-position) and
 *   backward-data (a 4-tap conv reading dout at stride 2), and conv1x1 both
 *   ways are all this kernel with different strides and tap offsets.
 * - dw_row: 2 output-channel blocks x 4 input channels = 8 accumulators,
 *   pixels inner; per pixel, 2 vector loads of dout + 4 broadcasts of x.
 *   The accumulators live in a small per-task tile that stays in L1.
 * Weights are repacked into caller scratch on every call (1.8 M floats per
 * step in all, negligible against 36 GFLOP).
 *
 * Not here: each op's geometry, weight packing and the dW reduction
 * (ops_conv_drive.c), dispatch and scratch sizing (ops_conv.c), the
 * reference (ops_conv_ref.c).
 */
#include "ops_conv_kernel.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* ---- output-stationary microkernel (forward-type ops) -------------------------- */

/* acc += the packed weights of n input lanes x the n lanes of NP pixels. */
AVX2_INLINE void out_lanes(const int NO, const int NP, const int n, const float *it,
                           ptrdiff_t px, const float *wt, __m256 acc[2][6])
{
    for (int i = 0; i < n; i++) {
        __m256 w0 = _mm256_loadu_ps(wt);
        __m256 w1 = NO == 2 ? _mm256_loadu_ps(wt + CB) : w0;
        for (int p = 0; p < NP; p++) {
            __m256 x = _mm256_broadcast_ss(it + p * px + i);
            acc[0][p] = _mm256_fmadd_ps(w0, x, acc[0][p]);
            if (NO == 2)
                acc[1][p] = _mm256_fmadd_ps(w1, x, acc[1][p]);
        }
        wt += NO * CB;
    }
}

/* NO output blocks (1 or 2) x NP pixels (1..6), fully unrolled. */
AVX2_INLINE void out_tile(const int NO, const int NP, const conv__fwd *d, const float *in,
                          const float *wp, const float *bias, float *out0, float *out1)
{
    __m256 acc[2][6];
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
    for (int p = 0; p < NP; p++) {
        _mm256_storeu_ps(out0 + p * d->out_px, acc[0][p]);
        if (NO == 2)
            _mm256_storeu_ps(out1 + p * d->out_px, acc[1][p]);
    }
}

#define TILE_CASE(NO, NP)                                                                  \
    case NP:                                                                               \
        out_tile(NO, NP, d, in, wp, bias, out0, out1);                                     \
        break

/* One row segment of np <= 6 pixels; np picks the unrolled variant. */
AVX2 static void out_tile_any(int no, int np, const conv__fwd *d, const float *in,
                              const float *wp, const float *bias, float *out0, float *out1)
{
    if (no == 2) {
        switch (np) {
            TILE_CASE(2, 1); TILE_CASE(2, 2); TILE_CASE(2, 3);
            TILE_CASE(2, 4); TILE_CASE(2, 5); TILE_CASE(2, 6);
        default: break;
        }
    } else {
        switch (np) {
            TILE_CASE(1, 1); TILE_CASE(1, 2); TILE_CASE(1, 3);
            TILE_CASE(1, 4); TILE_CASE(1, 5); TILE_CASE(1, 6);
        default: break;
        }
    }
}

/* Runs a conv__fwd over its whole domain. Work items are (output block pair,
 * image, row), pair outermost so that one thread's consecutive items share
 * the pair's packed weights (147 KB at 256 channels: L2-resident).
 * Tile width: on this machine (AMD family 26, 1 thread) 2x4 tiles ran the
 * conv3x3 layers at 91-93 GFLOPS against 73-82 for the 2x6 tile of the
 * Zen3 prototype, so rows whose width is a multiple of 4 (every UNet
 * layer) use 4; 6 stays for other widths and for the 3-channel input
 * (62 GFLOPS with 4 against 75 with 6: its lane loop is too short). */
AVX2 static void run_fwd(const conv__fwd *d)
{
    const int npairs = (d->nob + 1) / 2;
    const ptrdiff_t pair_w = (ptrdiff_t)16 * d->ncib * d->ntaps * CB;
    const int step = (d->w % 4 == 0 && (d->ncib > 1 || d->icn_last == CB)) ? 4 : 6;
#pragma omp parallel for collapse(3) schedule(static)
    for (int k = 0; k < npairs; k++)
        for (int b = 0; b < d->b; b++)
            for (int y = 0; y < d->h; y++) {
                const int no = (2 * k + 1 < d->nob) ? 2 : 1;
                const float *wp = d->wp + k * pair_w;
                const float *bias = d->bias ? d->bias + 2 * k * CB : NULL;
                const float *in = d->in + b * d->in_bs + y * d->in_rs + d->in_org;
                float *out0 = d->out + (2 * k) * d->out_cs + b * d->out_bs + y * d->out_rs
                              + d->out_org;
                float *out1 = no == 2 ? out0 + d->out_cs : out0;
                for (int x = 0; x < d->w; x += step) {
                    int np = d->w - x < step ? d->w - x : step;
                    out_tile_any(no, np, d, in + x * d->in_px, wp, bias, out0 + x * d->out_px,
                                 out1 + x * d->out_px);
                }
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
#pragma omp parallel for schedule(static)
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
    .have = conv__have_avx2,
    .run_fwd = run_fwd,
    .run_dw = run_dw,
    .bias_grad = bias_grad,
    .group = group_pair,
    .round = CB, /* a pair's lanes: its real blocks x 8 */
};

const conv__kernel *conv__kernel_avx2(void) { return &avx2; }

#else

/* No such kernel off x86: the dispatcher and the tests see NULL. */
const conv__kernel *conv__kernel_avx2(void) { return NULL; }

#endif /* x86 */
