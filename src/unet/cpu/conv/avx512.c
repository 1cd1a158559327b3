/* SPDX-License-Identifier: MIT */
/*
 * avx512.c: the AVX-512 (avx512f + FMA) convolution kernel on the blocked
 * layout of layout.h: the two loops of kernel.h (fwd_row, run_dw),
 * Winograd's dW sums and the bias gradient, which drive.c and wino.c turn
 * into the nine ops of conv.h. Compiled for plain x86-64 (target
 * attributes, no global -mavx512f); the dispatcher in conv.c uses it only
 * when the CPU has avx512f, and falls back to AVX2 / the reference
 * otherwise.
 *
 * The layout keeps 8 channels per block, so a 512-bit register holds TWO
 * consecutive output blocks (16 output channels), living in two separate
 * planes: loads join two 256-bit halves, stores split them. Two
 * microkernels serve all nine ops, like the AVX2 file:
 * - out_tile: NZ zmm (NZ = 1 or 2, i.e. 2 or 4 output blocks) x NP output
 *   pixels; per input channel, NZ weight loads and NP broadcast-FMAs (the
 *   broadcast folds into the FMA's memory operand). Forward-type ops are
 *   the same geometry tricks as in the AVX2 file (flipped weights for
 *   backward-data, stride-2 views for ConvTranspose). A 3x3 op with one
 *   zmm uses out_tile_s3 instead, which sweeps each input row once.
 * - dw_row: NZ zmm of output channels x NT taps x 8 input lanes of one
 *   input block (NZ * NT * 8 <= 24 accumulators), pixels inner; per pixel,
 *   NZ joined dout loads and 8 * NT broadcast-FMAs. A 3x3 op with one zmm
 *   uses dw_rows_s3, which sweeps each input row once for three taps:
 *   x1b 16->16 dW 170 -> 207 GFLOPS, the 3-channel input 97 -> 156. A
 *   3x3 with a full group of 2 zmm joins each row bundle's dout once for
 *   its nine taps (dw_join, dw_rows_joined).
 * And for Winograd's weight gradient (wino.c) its sums over tiles,
 * wino_dw: 32 output lanes x 8 input lanes.
 * An odd number of output blocks (Co = 8 layers, the 1-channel logit) runs
 * the last zmm with zero weights / a zero upper half and stores only its
 * lower half: wasted FMAs on a few tiny layers, no separate tail code.
 *
 * Measured on the AMD family-26 (Zen 5) host, 1 thread, B=8 128x128 UNet
 * shapes (bench/bench_conv.c, best of several runs on a shared machine):
 * 2 zmm x 8 pixels runs conv3x3 forward / backward-data at 240-255 GFLOPS
 * from 16x16 to 64x64 (AVX2 2x4 tile: 93-98), 200-225 at 8x8; 2 zmm x 4
 * pixels gave ~220. The 16-channel layers can only use 1 zmm, whose tile
 * needs one broadcast per FMA and ran at ~165-180 whatever the width (8,
 * 12 or 16 pixels: within noise); broadcasting lanes from a register with
 * vpermps instead of from memory was slower (120-150). For conv3x3 they
 * now sweep the input row once per kernel row (out_tile_s3: 3 FMAs per
 * broadcast): x1b 16->16 at 128x128 160 -> 220, the 3-channel input
 * 123 -> 170; with dw_rows_s3 for their dW, +4-5 % on a whole training
 * step. dW: 225-245 (AVX2: 117-120). conv3x3 fwd+bwd per training step:
 * 155 ms against 345 (AVX2) before the row sweeps.
 *
 * Reductions (dW, db) keep the AVX2 file's rule: a fixed partition of the
 * B*H rows chosen from the shape only (conv__dw_chunks on this file's task
 * count), partials summed in chunk order, so dW is bitwise identical for
 * any thread count. The results are not bitwise equal to the AVX2 ones
 * (other summation order); both are within 1e-5 of the reference.
 *
 * Not here: each op's geometry, weight packing and the dW reduction
 * (drive.c), dispatch and scratch sizing (conv.c), AVX2
 * (avx2.c), the reference (ref.c). No AVX-512 frequency
 * tricks, no bf16.
 */
#include "kernel.h"
#include "isa.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "zmm.h"

/* Widest register tiles (pixels) for 1 and 2 zmm of output channels:
 * chosen by bench/bench_conv.c, see tile_step. -D overrides are for
 * benchmarking only; the switch in out_tile_any covers up to 16 and 12. */
#ifndef UNET_Z512_NP1
#define UNET_Z512_NP1 16
#endif
#ifndef UNET_Z512_NP2
#define UNET_Z512_NP2 12
#endif
#define NP_MAX 16

/* ---- geometry ---------------------------------------------------------------- */

static int blocks(int c) { return conv__blocks(c); }

/* Blocks per output group: see conv__group in kernel.h. */
static int group_of(int nob) { return conv__group(nob); }

/* ---- output-stationary microkernel (forward-type ops) -------------------------- */

/* acc += packed weights of n input lanes x those lanes of NP pixels. */
Z512_INLINE void out_lanes(const int NZ, const int NP, const int n, const float *it,
                           ptrdiff_t px, const float *wt, __m512 acc[2][NP_MAX])
{
    for (int i = 0; i < n; i++) {
        const float *ahead = wt + CONV__PREFETCH_LANES * NZ * 16;
        _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        if (NZ == 2)
            _mm_prefetch((const char *)(ahead + 16), _MM_HINT_T0);
        __m512 w0 = _mm512_loadu_ps(wt);
        __m512 w1 = NZ == 2 ? _mm512_loadu_ps(wt + 16) : w0;
        for (int p = 0; p < NP; p++) {
            __m512 x = _mm512_set1_ps(it[p * px + i]);
            acc[0][p] = _mm512_fmadd_ps(w0, x, acc[0][p]);
            if (NZ == 2)
                acc[1][p] = _mm512_fmadd_ps(w1, x, acc[1][p]);
        }
        wt += NZ * 16;
    }
}

/* NZ zmm x NP pixels, fully unrolled; out points at block 0 of the group,
 * which has nb real blocks. Input pixels PX floats apart, or d->in_px
 * where PX is 0. */
Z512_INLINE void out_tile_px(const int NZ, const int NP, const int PX, const conv__fwd *d,
                             const float *in, const float *wp, const float *bias, float *out,
                             int nb)
{
    __m512 acc[2][NP_MAX];
    for (int z = 0; z < NZ; z++)
        for (int p = 0; p < NP; p++)
            acc[z][p] = bias ? _mm512_loadu_ps(bias + z * 16) : _mm512_setzero_ps();
    const ptrdiff_t px = PX ? PX : d->in_px;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int icn = cb == d->ncib - 1 ? d->icn_last : CB;
        const float *ib = in + cb * d->in_cs;
        for (int t = 0; t < d->ntaps; t++) {
            const float *it = ib + d->tap[t];
            if (icn == CB)
                out_lanes(NZ, NP, CB, it, px, wp, acc);
            else
                out_lanes(NZ, NP, icn, it, px, wp, acc);
            wp += CB * NZ * 16;
        }
    }
    /* The strides in locals and the loop unrolled: read through d after
     * the first store (which might alias it), and indexed by a variable
     * p, the accumulators went through the stack, and the stores took a
     * fifth of a 1-tap tile's time (perf: Winograd's products, K = 64). */
    const ptrdiff_t opx = d->out_px, ocs = d->out_cs;
    if (ocs == CB && nb == 2 * NZ) {
        /* Blocks side by side (Winograd's products, kernel.h): one store
         * a zmm. */
#pragma GCC unroll 16
        for (int p = 0; p < NP; p++)
#pragma GCC unroll 2
            for (int z = 0; z < NZ; z++)
                _mm512_storeu_ps(out + p * opx + z * 16, acc[z][p]);
        return;
    }
#pragma GCC unroll 16
    for (int p = 0; p < NP; p++)
#pragma GCC unroll 2
        for (int z = 0; z < NZ; z++)
            store_pair(out + p * opx, ocs, 2 * z, nb, acc[z][p]);
}

/* The pixel stride as a constant where it is one pixel (every op but the
 * transposed conv's backward-data): the broadcasts then address their
 * pixels by displacement, not by NP index registers, which GCC had run
 * out of (spilled to the stack and to xmm registers). */
Z512_INLINE void out_tile(const int NZ, const int NP, const conv__fwd *d, const float *in,
                          const float *wp, const float *bias, float *out, int nb)
{
    if (d->in_px == CB)
        out_tile_px(NZ, NP, CB, d, in, wp, bias, out, nb);
    else
        out_tile_px(NZ, NP, 0, d, in, wp, bias, out, nb);
}

/* One zmm (16 output channels) x NP pixels of a 3x3 stencil, swept along
 * the input row: each input value is broadcast once and feeds the three
 * taps of its kernel row (kw = 0, 1, 2) into three neighbouring output
 * pixels. Per input lane and kernel row: NP + 2 broadcasts and 3 weight
 * loads for 3*NP FMAs, where out_tile(1, NP) needs one broadcast per FMA,
 * which held the 16-channel layers to ~170 GFLOPS (2 zmm: ~245). */
Z512_INLINE void s3_lanes(const int NP, const int n, const float *row, ptrdiff_t px,
                          const float *wk, __m512 acc[NP_MAX])
{
    for (int i = 0; i < n; i++) {
        const __m512 w0 = _mm512_loadu_ps(wk + (0 * CB + i) * 16);
        const __m512 w1 = _mm512_loadu_ps(wk + (1 * CB + i) * 16);
        const __m512 w2 = _mm512_loadu_ps(wk + (2 * CB + i) * 16);
        /* Up to 18 iterations: past GCC's default full-peel limit (16),
         * without which acc[] would live in memory. */
#pragma GCC unroll 18
        for (int q = 0; q < NP + 2; q++) {
            const __m512 x = _mm512_set1_ps(row[q * px + i]);
            if (q < NP)
                acc[q] = _mm512_fmadd_ps(w0, x, acc[q]);
            if (q >= 1 && q - 1 < NP)
                acc[q - 1] = _mm512_fmadd_ps(w1, x, acc[q - 1]);
            if (q >= 2)
                acc[q - 2] = _mm512_fmadd_ps(w2, x, acc[q - 2]);
        }
    }
}

Z512_INLINE void out_tile_s3_px(const int NP, const int PX, const conv__fwd *d, const float *in,
                                const float *wp, const float *bias, float *out, int nb)
{
    __m512 acc[NP_MAX];
    for (int p = 0; p < NP; p++)
        acc[p] = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const ptrdiff_t px = PX ? PX : d->in_px;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int icn = cb == d->ncib - 1 ? d->icn_last : CB;
        const float *ib = in + cb * d->in_cs;
        for (int kh = 0; kh < 3; kh++) {
            const float *row = ib + d->tap[kh * 3];
            const float *wk = wp + (ptrdiff_t)kh * 3 * CB * 16;
            if (icn == CB)
                s3_lanes(NP, CB, row, px, wk, acc);
            else
                s3_lanes(NP, icn, row, px, wk, acc);
        }
        wp += 9 * CB * 16;
    }
    const ptrdiff_t opx = d->out_px, ocs = d->out_cs; /* as out_tile */
#pragma GCC unroll 16
    for (int p = 0; p < NP; p++)
        store_pair(out + p * opx, ocs, 0, nb, acc[p]);
}

/* out_tile_s3_px with the pixel stride a constant where it can be (as
 * out_tile). */
Z512_INLINE void out_tile_s3(const int NP, const conv__fwd *d, const float *in, const float *wp,
                             const float *bias, float *out, int nb)
{
    if (d->in_px == CB)
        out_tile_s3_px(NP, CB, d, in, wp, bias, out, nb);
    else
        out_tile_s3_px(NP, 0, d, in, wp, bias, out, nb);
}

#define Z512_TILE out_tile
#define Z512_TILE_S3 out_tile_s3
Z512_OUT_TILE_ANY(Z512)

/* Pixels per tile for a row of w pixels with nz zmm: the widest tile up to
 * the cap that splits the row into equal tiles (all UNet widths are
 * powers of two, so 8 or 16 for 1 zmm, 8 for 2: 24 + 2 + 1 of the 32 zmm
 * registers at most), else the cap with a remainder tile. */
static int tile_step(int nz, int w)
{
    return z512_tile_step(nz == 2 ? UNET_Z512_NP2 : UNET_Z512_NP1, w);
}

/* One output row of a group of nb blocks, in tiles of tile_step pixels. */
Z512 static void fwd_row(const conv__fwd *d, int nb, const float *in, const float *wp,
                         const float *bias, float *out)
{
    const int nz = (nb + 1) / 2;
    const int step = tile_step(nz, d->w);
    for (int x = 0; x < d->w; x += step) {
        const int np = d->w - x < step ? d->w - x : step;
        out_tile_any(nz, np, d, in + x * d->in_px, wp, bias, out + x * d->out_px, nb);
    }
}

/* ---- weight-stationary microkernel (weight gradients) ---------------------------- */


/* acc[z][t][i] (at tile + ((t0+t)*8 + i)*ow + z*16) += the sum over rows
 * [ra, rb) and their pixels of dout(pixel + dv_tap[t0+t])[zmm z of group
 * k] x in(pixel + bc_tap[t0+t])[lane i of block cb]. The accumulators stay
 * in registers across the rows: at the 8-pixel rows of the bottleneck,
 * reloading them per row cost 1 load + 1 store per 8 FMAs. NI = 4 serves
 * an input block with <= 4 real lanes (the 3-channel image): lanes 4..7
 * stay 0 in the tile and are never read back. */
Z512_INLINE void dw_rows(const int NZ, const int NT, const int NI, const conv__dw *d, int k,
                         int cb, int nb, int ra, int rb, int t0, float *tile, ptrdiff_t ow)
{
    const int G = group_of(d->nob);
    __m512 acc[2][3][CB];
    for (int z = 0; z < NZ; z++)
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NI; i++)
                acc[z][t][i] = _mm512_loadu_ps(tile + ((t0 + t) * CB + i) * ow + z * 16);
    for (int r = ra; r < rb; r++) {
        const int b = r / d->h, y = r % d->h;
        const float *dv = d->dv + (k * G) * d->dv_cs + b * d->dv_bs + y * d->dv_rs + d->dv_org;
        const float *bc = d->bc + cb * d->bc_cs + b * d->bc_bs + y * d->bc_rs + d->bc_org;
        for (int p = 0; p < d->w; p++) {
            for (int t = 0; t < NT; t++) {
                const float *x = bc + p * d->bc_px + d->bc_tap[t0 + t];
                const float *dp = dv + p * d->dv_px + d->dv_tap[t0 + t];
                __m512 d0 = load_pair(dp, d->dv_cs, 0, nb);
                __m512 d1 = NZ == 2 ? load_pair(dp, d->dv_cs, 2, nb) : d0;
                for (int i = 0; i < NI; i++) {
                    __m512 xi = _mm512_set1_ps(x[i]);
                    acc[0][t][i] = _mm512_fmadd_ps(d0, xi, acc[0][t][i]);
                    if (NZ == 2)
                        acc[1][t][i] = _mm512_fmadd_ps(d1, xi, acc[1][t][i]);
                }
            }
        }
    }
    for (int z = 0; z < NZ; z++)
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NI; i++)
                _mm512_storeu_ps(tile + ((t0 + t) * CB + i) * ow + z * 16, acc[z][t][i]);
}

/* Most pixels a joined-dout bundle holds (dw_rows_joined): 2 zmm each,
 * 32 KB on the stack. A float array read and written with unaligned
 * moves: GCC for 64-bit Windows does not align the stack beyond 16
 * bytes (its bug 54412), and an aligned move there would fault. */
#define JOIN_PX 256

/* The dout of rows [ra, rb) for a full group of 4 blocks, joined once:
 * the 16 floats at jd + 16 * (2 * (row * w + p) + z) are blocks 2z, 2z+1
 * at pixel p. */
Z512_INLINE void dw_join(const conv__dw *d, int k, int ra, int rb, float *jd)
{
    const int G = group_of(d->nob);
    for (int r = ra; r < rb; r++) {
        const int b = r / d->h, y = r % d->h;
        const float *dv = d->dv + (k * G) * d->dv_cs + b * d->dv_bs + y * d->dv_rs + d->dv_org;
        float *o = jd + (ptrdiff_t)32 * (r - ra) * d->w;
        for (int p = 0; p < d->w; p++) {
            _mm512_storeu_ps(o + 32 * p, load_pair(dv + p * d->dv_px, d->dv_cs, 0, 4));
            _mm512_storeu_ps(o + 32 * p + 16, load_pair(dv + p * d->dv_px, d->dv_cs, 2, 4));
        }
    }
}

/* dw_rows(2, 1, CB, ...) for tap t of a conv3x3 (dout unshifted) over a
 * bundle whose dout dw_join has joined: the same sums in the same order,
 * with one plain load per zmm instead of two half loads and an insert
 * per tap (the insert shares a port with the FMAs). */
Z512_INLINE void dw_rows_joined(const conv__dw *d, int cb, int ra, int rb, int t,
                                const float *jd, float *tile, ptrdiff_t ow)
{
    __m512 acc[2][CB];
    for (int z = 0; z < 2; z++)
        for (int i = 0; i < CB; i++)
            acc[z][i] = _mm512_loadu_ps(tile + (t * CB + i) * ow + z * 16);
    for (int r = ra; r < rb; r++) {
        const int b = r / d->h, y = r % d->h;
        const float *bc = d->bc + cb * d->bc_cs + b * d->bc_bs + y * d->bc_rs + d->bc_org
                          + d->bc_tap[t];
        const float *j = jd + (ptrdiff_t)32 * (r - ra) * d->w;
        for (int p = 0; p < d->w; p++) {
            const float *x = bc + p * d->bc_px;
            const __m512 d0 = _mm512_loadu_ps(j + 32 * p), d1 = _mm512_loadu_ps(j + 32 * p + 16);
            for (int i = 0; i < CB; i++) {
                const __m512 xi = _mm512_set1_ps(x[i]);
                acc[0][i] = _mm512_fmadd_ps(d0, xi, acc[0][i]);
                acc[1][i] = _mm512_fmadd_ps(d1, xi, acc[1][i]);
            }
        }
    }
    for (int z = 0; z < 2; z++)
        for (int i = 0; i < CB; i++)
            _mm512_storeu_ps(tile + (t * CB + i) * ow + z * 16, acc[z][i]);
}

/* dw_rows for one zmm and the three taps kw of kernel row kh of a 3x3
 * (stencil3), swept along the input row: input pixel q feeds tap kw of
 * output pixel q + 1 - kw, so each of its NI lanes is broadcast once for
 * three FMAs (dw_rows(1, 3, ...) broadcasts it once per tap), and one new
 * joined dout load per pixel rolls through three registers. The products
 * skipped at the row's ends are those with the zero border; the sums are
 * otherwise in the same order as dw_rows'. */
Z512_INLINE void dw_rows_s3(const int NI, const conv__dw *d, int k, int cb, int nb, int ra,
                            int rb, int kh, float *tile, ptrdiff_t ow)
{
    const int G = group_of(d->nob);
    __m512 acc[3][CB];
    for (int kw = 0; kw < 3; kw++)
        for (int i = 0; i < NI; i++)
            acc[kw][i] = _mm512_loadu_ps(tile + ((kh * 3 + kw) * CB + i) * ow);
    for (int r = ra; r < rb; r++) {
        const int b = r / d->h, y = r % d->h;
        const float *dv = d->dv + (k * G) * d->dv_cs + b * d->dv_bs + y * d->dv_rs + d->dv_org;
        /* x at output pixel 0, tap kw = 1: input pixel 0 of row y + kh - 1. */
        const float *x = d->bc + cb * d->bc_cs + b * d->bc_bs + y * d->bc_rs + d->bc_org
                         + d->bc_tap[kh * 3 + 1];
        __m512 dprev = load_pair(dv - d->dv_px, d->dv_cs, 0, nb); /* the border: 0 */
        __m512 dcur = load_pair(dv, d->dv_cs, 0, nb);
        for (int q = 0; q < d->w; q++) {
            const __m512 dnext = load_pair(dv + (q + 1) * d->dv_px, d->dv_cs, 0, nb);
            const float *xq = x + q * d->bc_px;
            for (int i = 0; i < NI; i++) {
                const __m512 xi = _mm512_set1_ps(xq[i]);
                acc[0][i] = _mm512_fmadd_ps(dnext, xi, acc[0][i]);
                acc[1][i] = _mm512_fmadd_ps(dcur, xi, acc[1][i]);
                acc[2][i] = _mm512_fmadd_ps(dprev, xi, acc[2][i]);
            }
            dprev = dcur;
            dcur = dnext;
        }
    }
    for (int kw = 0; kw < 3; kw++)
        for (int i = 0; i < NI; i++)
            _mm512_storeu_ps(tile + ((kh * 3 + kw) * CB + i) * ow, acc[kw][i]);
}

/* Runs a conv__dw: tasks are (chunk, group, input block); each owns one tile
 * of part[]. A task walks its rows in bundles of about 128 pixels (1 row
 * at W = 128, 16 rows at W = 8), and for each bundle sweeps all taps over
 * it while the bundle's dout and input rows (<= 24 KB) stay in L1. Tap
 * batching: 2 zmm take one tap at a time (16 accumulators); 1 zmm takes
 * up to 3 taps (24 accumulators) so that each joined dout load feeds
 * more FMAs. */
Z512 static void run_dw(const conv__dw *d)
{
    const int bundle = d->w >= 128 ? 1 : 128 / d->w;
    ptrdiff_t ow;
    size_t tile_f;
    const int ntasks = z512_dw_tasks(d, &ow, &tile_f);
#pragma omp parallel for schedule(guided)
    for (int task = 0; task < ntasks; task++) {
        const z512_dw_task tk = z512_dw_task_of(d, task, tile_f);
        const int cb = tk.cb, k = tk.k, nb = tk.nb, r1 = tk.r1;
        const int nz = (nb + 1) / 2;
        const int ni = tk.full ? CB : 4;
        float *tile = tk.tile;
        for (int ra = tk.r0; ra < r1; ra += bundle) {
            const int rb = ra + bundle < r1 ? ra + bundle : r1;
            if (nz == 2 && ni == CB && nb == 4 && d->stencil3 && (rb - ra) * d->w <= JOIN_PX) {
                /* A conv3x3's full group: its dout joined once for the 9
                 * taps (x4b 128->128 dW, 1 thread, B=4: see
                 * bench/bench_conv.c). */
                _Alignas(64) float jd[2 * JOIN_PX * 16];
                dw_join(d, k, ra, rb, jd);
                for (int t = 0; t < d->ntaps; t++)
                    dw_rows_joined(d, cb, ra, rb, t, jd, tile, ow);
            } else if (nz == 2 && ni == CB) {
                for (int t = 0; t < d->ntaps; t++)
                    dw_rows(2, 1, CB, d, k, cb, nb, ra, rb, t, tile, ow);
            } else if (nz == 2) {
                for (int t = 0; t < d->ntaps; t++)
                    dw_rows(2, 1, 4, d, k, cb, nb, ra, rb, t, tile, ow);
            } else if (d->stencil3) {
                /* A full pair passes its block count as a constant: the
                 * joined dout load has no test per pixel (x1b 16->16 dW,
                 * 1 thread, B=4: 150 -> 158 GFLOPS, bench/bench_conv.c). */
                for (int kh = 0; kh < 3; kh++) {
                    if (ni == CB && nb == 2)
                        dw_rows_s3(CB, d, k, cb, 2, ra, rb, kh, tile, ow);
                    else if (ni == CB)
                        dw_rows_s3(CB, d, k, cb, nb, ra, rb, kh, tile, ow);
                    else
                        dw_rows_s3(4, d, k, cb, nb, ra, rb, kh, tile, ow);
                }
            } else if (ni == CB) {
                int t = 0;
                for (; t + 3 <= d->ntaps; t += 3)
                    dw_rows(1, 3, CB, d, k, cb, nb, ra, rb, t, tile, ow);
                for (; t + 2 <= d->ntaps; t += 2)
                    dw_rows(1, 2, CB, d, k, cb, nb, ra, rb, t, tile, ow);
                for (; t < d->ntaps; t++)
                    dw_rows(1, 1, CB, d, k, cb, nb, ra, rb, t, tile, ow);
            } else {
                int t = 0;
                for (; t + 3 <= d->ntaps; t += 3)
                    dw_rows(1, 3, 4, d, k, cb, nb, ra, rb, t, tile, ow);
                for (; t < d->ntaps; t++)
                    dw_rows(1, 1, 4, d, k, cb, nb, ra, rb, t, tile, ow);
            }
        }
    }
}


/* Winograd's weight-gradient products (kernel.h's wino_dw): 2 zmm of 32
 * output lanes x 8 input lanes (16 accumulators); per tile, 2 loads and
 * 8 broadcasts for 16 FMAs. */
Z512 static void wino_dw(float *m, const float *x, const float *y, int n)
{
    __m512 acc[2][CB];
    for (int i = 0; i < CB; i++) {
        acc[0][i] = _mm512_loadu_ps(m + i * 32);
        acc[1][i] = _mm512_loadu_ps(m + i * 32 + 16);
    }
    for (int p = 0; p < n; p++) {
        const __m512 y0 = _mm512_loadu_ps(y + p * 32), y1 = _mm512_loadu_ps(y + p * 32 + 16);
        const float *xp = x + p * CB;
        for (int i = 0; i < CB; i++) {
            const __m512 xi = _mm512_set1_ps(xp[i]);
            acc[0][i] = _mm512_fmadd_ps(y0, xi, acc[0][i]);
            acc[1][i] = _mm512_fmadd_ps(y1, xi, acc[1][i]);
        }
    }
    for (int i = 0; i < CB; i++) {
        _mm512_storeu_ps(m + i * 32, acc[0][i]);
        _mm512_storeu_ps(m + i * 32 + 16, acc[1][i]);
    }
}

/* db[o] = sum of dout over the domain. One thread per block; per row, two
 * pixels per zmm (their halves folded at the row's end), rows added in
 * double in row order: deterministic, thread-count independent. */
Z512 static void bias_grad(float *db, const float *dout, shape so)
{
    const conv__geo g = conv__geo_of(so);
    const int nob = blocks(so.c);
#pragma omp parallel for schedule(static)
    for (int ob = 0; ob < nob; ob++) {
        double tot[CB] = {0};
        for (int b = 0; b < so.b; b++)
            for (int y = 0; y < so.h; y++) {
                const float *r = dout + ob * g.cs + b * g.bs + y * g.rs + g.org;
                __m512 s2 = _mm512_setzero_ps();
                int x = 0;
                for (; x + 2 <= so.w; x += 2)
                    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(r + x * CB));
                __m256 s = _mm256_add_ps(_mm512_castps512_ps256(s2),
                                         _mm256_castpd_ps(_mm512_extractf64x4_pd(
                                             _mm512_castps_pd(s2), 1)));
                if (x < so.w)
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

static const conv__kernel avx512 = {
    .name = "AVX-512",
    .have = unet_isa_avx512,
    .fwd_row = fwd_row,
    .run_dw = run_dw,
    .bias_grad = bias_grad,
    .dw_group = group_of,
    .round = 16, /* one zmm: 16 output lanes */
    .wino_min_sum = 64, .wino_min_tiles = 64,
    .wino_dw = wino_dw, .wino_dw_lanes = 32, .wino_dw_min_tiles = 32,
};

const conv__kernel *conv__kernel_avx512(void) { return &avx512; }

#else

/* No such kernel off x86: the dispatcher and the tests see NULL. */
const conv__kernel *conv__kernel_avx512(void) { return NULL; }

#endif /* x86 */
