/* SPDX-License-Identifier: MIT */
/*
 * ops_conv_avx2.c: the AVX2+FMA convolution kernels on the blocked layout.
 * Compiled for plain x86-64 (target attributes, no global -mavx2); the
 * dispatcher in ops_conv.c calls them only when the CPU has AVX2 and FMA.
 *
 * Two microkernels serve all nine ops (research/cnn-in-c.md 3.4, 5.2):
 * - out_tile: 2 output-channel blocks x up to 6 output pixels (12 ymm
 *   accumulators; 4 pixels where the width allows, see run_fwd); per input
 *   channel, 2 weight loads + NP broadcasts feed 2*NP FMAs. The Zen3
 *   prototype ran at 64-78 GFLOPS/core; here 77-93 (bench/bench_conv.c). conv3x3 forward and backward-data (flipped, transposed weights),
 *   ConvTranspose forward (a 1-tap conv per output sub-position) and
 *   backward-data (a 4-tap conv reading dout at stride 2), and conv1x1 both
 *   ways are all this kernel with different strides and tap offsets.
 * - dw_row: 2 output-channel blocks x 4 input channels = 8 accumulators,
 *   pixels inner; per pixel, 2 vector loads of dout + 4 broadcasts of x.
 *   The accumulators live in a small per-task tile that stays in L1.
 * Weights are repacked into caller scratch on every call (1.8 M floats per
 * step in all, negligible against 36 GFLOP).
 *
 * Not here: dispatch, scratch sizing (ops_conv.c), the reference (ops_conv_ref.c).
 */
#include "ops_conv.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* ---- geometry ---------------------------------------------------------------- */

/* Strides of one blocked tensor, in floats. */
typedef struct geo {
    ptrdiff_t cs; /* between channel blocks: B * plane */
    ptrdiff_t bs; /* between images: plane */
    ptrdiff_t rs; /* between padded rows: (W+2)*8 */
    ptrdiff_t org; /* offset of interior pixel (0,0): rs + 8 */
} geo;

static geo geo_of(shape s)
{
    geo g;
    g.bs = (ptrdiff_t)shape_plane(s);
    g.cs = (ptrdiff_t)s.b * g.bs;
    g.rs = (ptrdiff_t)(s.w + 2) * CB;
    g.org = g.rs + CB;
    return g;
}

static int blocks(int c) { return (c + CB - 1) / CB; }

/* ---- output-stationary microkernel (forward-type ops) -------------------------- */

/* One "direct" op: out[ob][b][y][x] = bias + sum over input blocks, taps and
 * input lanes of w * in[cb][b][y][x] displaced by the tap. Row y, column x
 * of the iteration domain map to in at in_org + y*in_rs + x*in_px (+ tap)
 * and to out at out_org + y*out_rs + x*out_px. */
typedef struct fwd_desc {
    const float *in;
    ptrdiff_t in_cs, in_bs, in_rs, in_px, in_org;
    int ncib, icn_last; /* input blocks; real lanes in the last one */
    int ntaps;
    ptrdiff_t tap[9];
    const float *wp; /* packed [pair][cb][tap][ic 8][no*8], pairs 16 wide */
    const float *bias; /* nob*8 floats (padded with 0) or NULL */
    float *out;
    ptrdiff_t out_cs, out_bs, out_rs, out_px, out_org;
    int nob;
    int b, h, w; /* iteration domain */
} fwd_desc;

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
AVX2_INLINE void out_tile(const int NO, const int NP, const fwd_desc *d, const float *in,
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
AVX2 static void out_tile_any(int no, int np, const fwd_desc *d, const float *in,
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

/* Runs a fwd_desc over its whole domain. Work items are (output block pair,
 * image, row), pair outermost so that one thread's consecutive items share
 * the pair's packed weights (147 KB at 256 channels: L2-resident).
 * Tile width: on this machine (AMD family 26, 1 thread) 2x4 tiles ran the
 * conv3x3 layers at 91-93 GFLOPS against 73-82 for the 2x6 tile of the
 * Zen3 prototype, so rows whose width is a multiple of 4 (every UNet
 * layer) use 4; 6 stays for other widths and for the 3-channel input
 * (62 GFLOPS with 4 against 75 with 6: its lane loop is too short). */
AVX2 static void run_fwd(const fwd_desc *d)
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

/* Packs weights for run_fwd: conv__pack with pairs of blocks (G = 2),
 * each pair's lanes its real blocks x 8. */
static void pack_out_tiles(float *dst, conv__wview w, int nout, int nin, int ntaps)
{
    conv__pack(dst, w, nout, nin, ntaps, 2, CB);
}

/* ---- weight-stationary microkernel (weight gradients) ---------------------------- */

/* One weight-gradient op: part[o][i][t] = sum over the domain of
 * dv[o-block] (vector, 8 output lanes) x bc[i] (broadcast), where dv and bc
 * are addressed like fwd_desc's out and in, with a tap on either side. */
typedef struct dw_desc {
    const float *dv;
    ptrdiff_t dv_cs, dv_bs, dv_rs, dv_px, dv_org;
    int nob;
    const float *bc;
    ptrdiff_t bc_cs, bc_bs, bc_rs, bc_px, bc_org;
    int ncib, icn_last;
    int ntaps;
    ptrdiff_t dv_tap[9], bc_tap[9];
    int b, h, w;
    int nchunks; /* row chunks: a function of the shape, not of threads */
    float *part; /* [chunk][pair][cb][tap][i 8][o 16] */
} dw_desc;

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

/* Runs a dw_desc: tasks are (chunk, pair, input block); each owns one tile
 * of part[], so there is no sharing and no reduction inside. Within a task,
 * each row's dout strip (<= 8 KB) and the three input rows it touches stay
 * in L1 while all taps and input lanes sweep over them. */
AVX2 static void run_dw(const dw_desc *d)
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
    const geo g = geo_of(so);
    const int nob = blocks(so.c);
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

/* ---- conv3x3 -------------------------------------------------------------- */

static void taps3x3(ptrdiff_t *tap, ptrdiff_t rs)
{
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            tap[kh * 3 + kw] = (kh - 1) * rs + (kw - 1) * CB;
}

/* A conv3x3-shaped fwd_desc from x (nin channels) to y (nout channels), both
 * H x W. */
static fwd_desc desc3x3(float *y, int nout, const float *x, int nin, shape s, const float *wp)
{
    shape si = {nin, s.b, s.h, s.w};
    geo g = geo_of(si);
    fwd_desc d = {0};
    d.in = x;
    d.in_cs = g.cs, d.in_bs = g.bs, d.in_rs = g.rs, d.in_px = CB, d.in_org = g.org;
    d.ncib = blocks(nin);
    d.icn_last = nin - (d.ncib - 1) * CB;
    d.ntaps = 9;
    taps3x3(d.tap, g.rs);
    d.wp = wp;
    d.out = y;
    d.out_cs = g.cs; /* same plane geometry: only the block count differs */
    d.out_bs = g.bs, d.out_rs = g.rs, d.out_px = CB, d.out_org = g.org;
    d.nob = blocks(nout);
    d.b = s.b, d.h = s.h, d.w = s.w;
    return d;
}

/* out (co,B,H,W) = w (co,Ci,3,3) * in (Ci,B,H,W) */
AVX2 void conv3x3_forward_avx2(float *out, const float *in, shape s, const float *w, int co,
                               float *scratch)
{
    pack_out_tiles(scratch, (conv__wview){w, (ptrdiff_t)s.c * 9, 9, 1}, co, s.c, 9);
    fwd_desc d = desc3x3(out, co, in, s.c, s, scratch);
    run_fwd(&d);
}

/* din (Ci,B,H,W) = w^T (co,Ci,3,3) *' dout (co,B,H,W) */
AVX2 void conv3x3_backward_data_avx2(float *din, const float *dout, shape s, const float *w,
                                     int co, float *scratch)
{
    /* (o, i, t) of the flipped transpose is w[i][o][8 - t]. */
    pack_out_tiles(scratch, (conv__wview){w + 8, 9, (ptrdiff_t)s.c * 9, -1}, s.c, co, 9);
    fwd_desc d = desc3x3(din, s.c, dout, co, s, scratch);
    run_fwd(&d);
}

/* dw (co,Ci,3,3) = sum over B,H,W of dout (co,B,H,W) x in (Ci,B,H,W) */
AVX2 void conv3x3_backward_weight_avx2(float *dw, const float *dout, const float *in, shape s,
                                       int co, float *scratch)
{
    geo g = geo_of(s);
    dw_desc d = {0};
    d.dv = dout;
    d.dv_cs = g.cs, d.dv_bs = g.bs, d.dv_rs = g.rs, d.dv_px = CB, d.dv_org = g.org;
    d.nob = blocks(co);
    d.bc = in;
    d.bc_cs = g.cs, d.bc_bs = g.bs, d.bc_rs = g.rs, d.bc_px = CB, d.bc_org = g.org;
    d.ncib = blocks(s.c);
    d.icn_last = s.c - (d.ncib - 1) * CB;
    d.ntaps = 9;
    taps3x3(d.bc_tap, g.rs);
    d.b = s.b, d.h = s.h, d.w = s.w;
    d.nchunks = (int)conv__dw_chunks((d.nob + 1) / 2 * d.ncib, s.b * s.h);
    d.part = scratch;
    run_dw(&d);
    conv__dw_reduce(d.part, d.nchunks, co, s.c, 9, 2, (conv__dwview){dw, (ptrdiff_t)s.c * 9, 9, 1});
}

/* ---- ConvTranspose2d 2x2, stride 2 ----------------------------------------- */

/* Packed weights of one sub-position: the forward packs all four in a row,
 * each a 1-tap pack_out_tiles of w[i][o][t]. */
static size_t convt_sub_floats(shape s, int co)
{
    return (size_t)(blocks(co) + 1) / 2 * 16 * (size_t)blocks(s.c) * CB;
}

/* out (co,B,2H,2W) = w (Ci,co,2,2) scattered from in (Ci,B,H,W) + bias (co) */
AVX2 void convt2x2_forward_avx2(float *out, const float *in, shape s, const float *w,
                                const float *bias, int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    geo gi = geo_of(s), go = geo_of(so);
    const int nob = blocks(co);
    float *bp = scratch; /* padded bias, 2 blocks of slack for the last pair */
    for (int o = 0; o < (nob + 1) * CB; o++)
        bp[o] = o < co ? bias[o] : 0.0f;
    float *wp = scratch + (size_t)(nob + 1) * CB;
    const size_t sub = convt_sub_floats(s, co);
    /* Sub-position t is a 1-tap op with (o, i) at w[i][o][t]. */
    for (int t = 0; t < 4; t++)
        pack_out_tiles(wp + (size_t)t * sub, (conv__wview){w + t, 4, (ptrdiff_t)co * 4, 0}, co,
                       s.c, 1);
    for (int t = 0; t < 4; t++) {
        const int a = t >> 1, c = t & 1;
        fwd_desc d = {0};
        d.in = in;
        d.in_cs = gi.cs, d.in_bs = gi.bs, d.in_rs = gi.rs, d.in_px = CB, d.in_org = gi.org;
        d.ncib = blocks(s.c);
        d.icn_last = s.c - (d.ncib - 1) * CB;
        d.ntaps = 1;
        d.tap[0] = 0;
        d.wp = wp + (size_t)t * sub;
        d.bias = bp;
        d.out = out;
        d.out_cs = go.cs, d.out_bs = go.bs, d.out_rs = 2 * go.rs, d.out_px = 2 * CB;
        d.out_org = go.org + a * go.rs + c * CB;
        d.nob = nob;
        d.b = s.b, d.h = s.h, d.w = s.w;
        run_fwd(&d);
    }
}

/* din (Ci,B,H,W) = w (Ci,co,2,2) gathered from dout (co,B,2H,2W) */
AVX2 void convt2x2_backward_data_avx2(float *din, const float *dout, shape s, const float *w,
                                      int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    geo gi = geo_of(s), go = geo_of(so);
    pack_out_tiles(scratch, (conv__wview){w, (ptrdiff_t)co * 4, 4, 1}, s.c, co, 4);
    fwd_desc d = {0};
    d.in = dout;
    d.in_cs = go.cs, d.in_bs = go.bs, d.in_rs = 2 * go.rs, d.in_px = 2 * CB, d.in_org = go.org;
    d.ncib = blocks(co);
    d.icn_last = co - (d.ncib - 1) * CB;
    d.ntaps = 4;
    for (int t = 0; t < 4; t++)
        d.tap[t] = (t >> 1) * go.rs + (t & 1) * CB;
    d.wp = scratch;
    d.out = din;
    d.out_cs = gi.cs, d.out_bs = gi.bs, d.out_rs = gi.rs, d.out_px = CB, d.out_org = gi.org;
    d.nob = blocks(s.c);
    d.b = s.b, d.h = s.h, d.w = s.w;
    run_fwd(&d);
}

/* dw (Ci,co,2,2) = sum in (Ci,B,H,W) x dout (co,B,2H,2W); db (co) = sum dout */
AVX2 void convt2x2_backward_weight_avx2(float *dw, float *db, const float *dout,
                                        const float *in, shape s, int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    geo gi = geo_of(s), go = geo_of(so);
    dw_desc d = {0};
    d.dv = dout;
    d.dv_cs = go.cs, d.dv_bs = go.bs, d.dv_rs = 2 * go.rs, d.dv_px = 2 * CB, d.dv_org = go.org;
    d.nob = blocks(co);
    d.bc = in;
    d.bc_cs = gi.cs, d.bc_bs = gi.bs, d.bc_rs = gi.rs, d.bc_px = CB, d.bc_org = gi.org;
    d.ncib = blocks(s.c);
    d.icn_last = s.c - (d.ncib - 1) * CB;
    d.ntaps = 4;
    for (int t = 0; t < 4; t++)
        d.dv_tap[t] = (t >> 1) * go.rs + (t & 1) * CB;
    d.b = s.b, d.h = s.h, d.w = s.w;
    d.nchunks = (int)conv__dw_chunks((d.nob + 1) / 2 * d.ncib, s.b * s.h);
    d.part = scratch;
    run_dw(&d);
    conv__dw_reduce(d.part, d.nchunks, co, s.c, 4, 2, (conv__dwview){dw, 4, (ptrdiff_t)co * 4, 1});
    bias_grad(db, dout, so);
}

/* ---- conv1x1 ------------------------------------------------------------------ */

/* A 1x1 fwd_desc from x (nin channels) to y (nout channels), same H x W. */
static fwd_desc desc1x1(float *y, int nout, const float *x, int nin, shape s, const float *wp,
                        const float *bias)
{
    fwd_desc d = desc3x3(y, nout, x, nin, s, wp);
    d.ntaps = 1;
    d.tap[0] = 0;
    d.bias = bias;
    return d;
}

/* out (co,B,H,W) = w (co,Ci,1,1) * in (Ci,B,H,W) + bias (co) */
AVX2 void conv1x1_forward_avx2(float *out, const float *in, shape s, const float *w,
                               const float *bias, int co, float *scratch)
{
    const int nob = blocks(co);
    float *bp = scratch;
    for (int o = 0; o < (nob + 1) * CB; o++)
        bp[o] = o < co ? bias[o] : 0.0f;
    float *wp = scratch + (size_t)(nob + 1) * CB;
    pack_out_tiles(wp, (conv__wview){w, s.c, 1, 0}, co, s.c, 1);
    fwd_desc d = desc1x1(out, co, in, s.c, s, wp, bp);
    run_fwd(&d);
}

/* din (Ci,B,H,W) = w^T (co,Ci) * dout (co,B,H,W) */
AVX2 void conv1x1_backward_data_avx2(float *din, const float *dout, shape s, const float *w,
                                     int co, float *scratch)
{
    pack_out_tiles(scratch, (conv__wview){w, 1, s.c, 0}, s.c, co, 1);
    fwd_desc d = desc1x1(din, s.c, dout, co, s, scratch, NULL);
    run_fwd(&d);
}

/* dw (co,Ci,1,1) = sum dout (co,B,H,W) x in (Ci,B,H,W); db (co) = sum dout */
AVX2 void conv1x1_backward_weight_avx2(float *dw, float *db, const float *dout, const float *in,
                                       shape s, int co, float *scratch)
{
    shape so = {co, s.b, s.h, s.w};
    geo g = geo_of(s);
    dw_desc d = {0};
    d.dv = dout;
    d.dv_cs = g.cs, d.dv_bs = g.bs, d.dv_rs = g.rs, d.dv_px = CB, d.dv_org = g.org;
    d.nob = blocks(co);
    d.bc = in;
    d.bc_cs = g.cs, d.bc_bs = g.bs, d.bc_rs = g.rs, d.bc_px = CB, d.bc_org = g.org;
    d.ncib = blocks(s.c);
    d.icn_last = s.c - (d.ncib - 1) * CB;
    d.ntaps = 1;
    d.b = s.b, d.h = s.h, d.w = s.w;
    d.nchunks = (int)conv__dw_chunks((d.nob + 1) / 2 * d.ncib, s.b * s.h);
    d.part = scratch;
    run_dw(&d);
    conv__dw_reduce(d.part, d.nchunks, co, s.c, 1, 2, (conv__dwview){dw, s.c, 1, 0});
    bias_grad(db, dout, so);
}

#endif /* x86 */
