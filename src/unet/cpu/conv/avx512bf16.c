/* SPDX-License-Identifier: MIT */
/*
 * avx512bf16.c: the bf16 convolution kernel (conv.h's *_bf16 calls,
 * --precision bf16): the two loops of kernel.h on AVX512_BF16's VDPBF16PS,
 * which adds to each float32 lane the two products of a pair of bfloat16
 * lanes. Tensors stay float32 in the blocked layout; this file rounds what
 * it multiplies (bf16.h's rule: VCVTNEPS2BF16 is that rule) as it reads
 * it, into small buffers that stay in L1, and drive.c packs the weights
 * as rounded pairs (pack_weights with its bf16 flag). Compiled for plain
 * x86-64 (target attributes); conv.c runs it only when the CPU has
 * AVX512_BF16 and BW.
 *
 * The pairs run along the sum of each op:
 * - forward-type ops (out_tile_bf, out_tile_bf_s3): pairs of input
 *   channels. Per output tile and input block, the tile's input pixels
 *   (its 3 kernel rows for a 3x3) are rounded into buf[row][pixel][8];
 *   per channel pair, NZ packed weight zmm (16 output channels x 2 input
 *   channels each) and one broadcast pair per pixel feed NZ VDPBF16PS.
 *   One zmm (16 output channels) sweeps the 3x3 rows as avx512.c's
 *   out_tile_s3 does: one broadcast feeds three taps.
 * - weight gradients (dw_bundle_s3, dw_bundle_any): pairs of pixels.
 *   Per bundle of rows (or row segments), dout becomes dp[pair][zmm] (16
 *   output channels x 2 pixels) and each input row two copies of pixel
 *   pairs per channel, starting at even and at odd pixels (ev, od: the 3x3
 *   taps shift by one pixel), so every product is one VDPBF16PS against a
 *   broadcast pair.
 * A pixel past the row's end (odd widths) pairs with a zero.
 *
 * Partition, packing, partial sums and the bias gradient are avx512.c's
 * (dW bitwise independent of the thread count); the products are exact
 * and the sums float32, in an order of their own: results are within
 * float32 rounding of conv.h's bf16 reference (tests/test_ops_conv.c).
 *
 * VDPBF16PS is not fast everywhere: on the Intel host of 2026-12 (family
 * 6 model 207) bench/fma_peak measures it at about half the float32 FMA
 * rate in flops, so --precision bf16 is slower there than float32; on
 * CPUs that run it at the FMA's instruction rate it does twice the work
 * per instruction.
 *
 * Not here: each op's geometry and the dW reduction (drive.c), dispatch
 * (conv.c), the reference (ref.c's bf16 loops), bf16 storage of tensors.
 */
#include "kernel.h"
#include "isa.h"

#if defined(__x86_64__) || defined(__i386__)

#include <string.h>

#include "zmm.h"

#define ZBF __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,fma")))
#define ZBF_INLINE                                                                         \
    static inline __attribute__((always_inline,                                            \
                                 target("avx512f,avx512vl,avx512bw,avx512bf16,fma")))

/* Widest output tiles (pixels) for 1 and 2 zmm of output channels, as in
 * avx512.c: up to 16 (1 zmm) and 12 (2 zmm) accumulators. */
#define NP1 16
#define NP2 12
#define NP_MAX 16

typedef unsigned short bfu; /* the bits of one bfloat16 */

/* ---- rounding and broadcasting -------------------------------------------------- */

/* The 8 channels of one pixel, rounded, to dst[0..7]. */
ZBF_INLINE void round8(bfu *dst, const float *src)
{
    __m128bh h = _mm256_cvtneps_pbh(_mm256_loadu_ps(src));
    _mm_storeu_si128((__m128i *)(void *)dst, (__m128i)h);
}

/* n pixels of 8 channels, px floats apart, rounded to dst[n][8]. */
ZBF_INLINE void round_pixels(bfu *dst, const float *src, ptrdiff_t px, int n)
{
    int p = 0;
    if (px == CB)
        for (; p + 2 <= n; p += 2) {
            __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + p * CB));
            _mm256_storeu_si256((__m256i *)(void *)(dst + p * CB), (__m256i)h);
        }
    for (; p < n; p++)
        round8(dst + p * CB, src + p * px);
}

/* The bfloat16 pair at p (2-byte aligned), in every 32-bit lane. */
ZBF_INLINE __m512bh bcast_pair(const bfu *p)
{
    int v;
    memcpy(&v, p, sizeof v);
    return (__m512bh)_mm512_set1_epi32(v);
}

ZBF_INLINE __m512bh load_bh(const bfu *p) { return (__m512bh)_mm512_loadu_si512(p); }

/* ---- forward-type ops --------------------------------------------------------------- */

/* Input channel pairs that carry data in a block of icn real lanes. */
static inline int pairs_of(int icn) { return (icn + 1) / 2; }

/* NZ zmm x NP pixels, any taps. Per input block: the NP pixels of each
 * tap rounded into buf[tap][p][8] (for a 3x3, the NP + 2 pixels of each
 * kernel row once, buf[kh][q][8], tap kw reading from q = kw), then per
 * tap and channel pair NZ weight loads and NP broadcasts feed NZ * NP
 * VDPBF16PS. */
ZBF_INLINE void out_tile_bf(const int NZ, const int NP, const conv__fwd *d, const float *in,
                            const float *wp, const float *bias, float *out, int nb)
{
    __m512 acc[2][NP_MAX];
    bfu buf[9 * NP_MAX * CB];
    for (int z = 0; z < NZ; z++)
        for (int p = 0; p < NP; p++)
            acc[z][p] = bias ? _mm512_loadu_ps(bias + z * 16) : _mm512_setzero_ps();
    const bfu *w = (const bfu *)(const void *)wp;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int np = pairs_of(cb == d->ncib - 1 ? d->icn_last : CB);
        const float *ib = in + cb * d->in_cs;
        const int s3 = d->stencil3, len = s3 ? NP + 2 : NP;
        for (int r = 0; r < (s3 ? 3 : d->ntaps); r++)
            round_pixels(buf + r * len * CB, ib + d->tap[s3 ? 3 * r : r], d->in_px, len);
        for (int t = 0; t < d->ntaps; t++) {
            const bfu *row = s3 ? buf + ((t / 3) * len + t % 3) * CB : buf + t * NP * CB;
            const bfu *wt = w + (ptrdiff_t)t * 4 * NZ * 32;
            for (int ip = 0; ip < np; ip++) {
                const __m512bh w0 = load_bh(wt + (ip * NZ) * 32);
                const __m512bh w1 = NZ == 2 ? load_bh(wt + (ip * NZ + 1) * 32) : w0;
                for (int p = 0; p < NP; p++) {
                    const __m512bh x = bcast_pair(row + p * CB + 2 * ip);
                    acc[0][p] = _mm512_dpbf16_ps(acc[0][p], w0, x);
                    if (NZ == 2)
                        acc[1][p] = _mm512_dpbf16_ps(acc[1][p], w1, x);
                }
            }
        }
        w += (ptrdiff_t)d->ntaps * 4 * NZ * 32;
    }
    for (int p = 0; p < NP; p++)
        for (int z = 0; z < NZ; z++)
            store_pair(out + p * d->out_px, d->out_cs, 2 * z, nb, acc[z][p]);
}

/* One zmm x NP pixels of a 3x3 stencil: each kernel row's NP + 2 input
 * pixels rounded once, each broadcast pair feeding its three taps (kw)
 * into three neighbouring output pixels, as avx512.c's out_tile_s3. */
ZBF_INLINE void out_tile_bf_s3(const int NP, const conv__fwd *d, const float *in,
                               const float *wp, const float *bias, float *out, int nb)
{
    __m512 acc[NP_MAX];
    bfu buf[3 * (NP_MAX + 2) * CB];
    for (int p = 0; p < NP; p++)
        acc[p] = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const bfu *w = (const bfu *)(const void *)wp;
    for (int cb = 0; cb < d->ncib; cb++) {
        const int np = pairs_of(cb == d->ncib - 1 ? d->icn_last : CB);
        const float *ib = in + cb * d->in_cs;
        for (int kh = 0; kh < 3; kh++)
            round_pixels(buf + kh * (NP + 2) * CB, ib + d->tap[kh * 3], d->in_px, NP + 2);
        for (int kh = 0; kh < 3; kh++) {
            const bfu *row = buf + kh * (NP + 2) * CB;
            const bfu *wk = w + (ptrdiff_t)kh * 3 * 4 * 32;
            for (int ip = 0; ip < np; ip++) {
                const __m512bh w0 = load_bh(wk + (0 * 4 + ip) * 32);
                const __m512bh w1 = load_bh(wk + (1 * 4 + ip) * 32);
                const __m512bh w2 = load_bh(wk + (2 * 4 + ip) * 32);
#pragma GCC unroll 18
                for (int q = 0; q < NP + 2; q++) {
                    const __m512bh x = bcast_pair(row + q * CB + 2 * ip);
                    if (q < NP)
                        acc[q] = _mm512_dpbf16_ps(acc[q], w0, x);
                    if (q >= 1 && q - 1 < NP)
                        acc[q - 1] = _mm512_dpbf16_ps(acc[q - 1], w1, x);
                    if (q >= 2)
                        acc[q - 2] = _mm512_dpbf16_ps(acc[q - 2], w2, x);
                }
            }
        }
        w += 9 * 4 * 32;
    }
    for (int p = 0; p < NP; p++)
        store_pair(out + p * d->out_px, d->out_cs, 0, nb, acc[p]);
}

#define Z512_TILE out_tile_bf
#define Z512_TILE_S3 out_tile_bf_s3
Z512_OUT_TILE_ANY(ZBF)

/* One output row of a group of nb blocks, in tiles. */
ZBF static void fwd_row(const conv__fwd *d, int nb, const float *in, const float *wp,
                        const float *bias, float *out)
{
    const int nz = (nb + 1) / 2;
    const int step = z512_tile_step(nz == 2 ? NP2 : NP1, d->w);
    for (int x = 0; x < d->w; x += step) {
        const int np = d->w - x < step ? d->w - x : step;
        out_tile_any(nz, np, d, in + x * d->in_px, wp, bias, out + x * d->out_px, nb);
    }
}

/* ---- weight gradients ------------------------------------------------------------- */

/* 16 floats: the 8 channels of a (pixel x) and b (pixel x + 1)
 * interleaved, a0 b0 a1 b1 ... a7 b7; b NULL reads as zeros. */
ZBF_INLINE __m512 interleave(const float *a, const float *b)
{
    const __m512i idx = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    __m256 hb = b ? _mm256_loadu_ps(b) : _mm256_setzero_ps();
    __m512 ab = _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(a))), _mm256_castps_pd(hb), 1));
    return _mm512_permutexvar_ps(idx, ab);
}

/* dout of pixels [p0, p0 + 2n) of one row (pixel p at dv + p*px, block j
 * at + j*cs; pixels from `end` on read as 0), as dp[q][z]: zmm z of the
 * group (blocks 2z, 2z+1 of nb) for the pixel pair (p0 + 2q, p0 + 2q + 1),
 * 32 bfloat16: channel o's two pixels side by side. */
ZBF_INLINE void round_dout(bfu *dp, const int NZ, const float *dv, ptrdiff_t px, ptrdiff_t cs,
                           int nb, int p0, int n, int end)
{
    for (int q = 0; q < n; q++) {
        const int p = p0 + 2 * q;
        for (int z = 0; z < NZ; z++) {
            __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
            for (int h = 0; h < 2; h++) {
                const int j = 2 * z + h;
                if (j >= nb)
                    break;
                const float *a = dv + j * cs + p * px;
                const __m512 v = interleave(a, p + 1 < end ? a + px : NULL);
                if (h == 0)
                    lo = v;
                else
                    hi = v;
            }
            __m512bh r = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(dp + (q * NZ + z) * 32, (__m512i)r);
        }
    }
}

/* The input pixels x0 + 2m, x0 + 2m + 1 (m < n) of one row (pixel x at
 * bc + x*px; pixels at or past `end` read as 0) as pairs per channel:
 * dst[m][i][2], one 32-bit pair per channel i. */
ZBF_INLINE void round_in_pairs(bfu *dst, const float *bc, ptrdiff_t px, int x0, int n, int end)
{
    for (int m = 0; m < n; m++) {
        const int x = x0 + 2 * m;
        __m512 v = x < end ? interleave(bc + x * px, x + 1 < end ? bc + (x + 1) * px : NULL)
                           : _mm512_setzero_ps();
        _mm256_storeu_si256((__m256i *)(void *)(dst + m * 16), (__m256i)_mm512_cvtneps_pbh(v));
    }
}

/* acc[z][t][i] += dp[q][z] x the pair of input lane i that tap t reads
 * for pixel pair q, over n pairs: per pair, NZ dout loads and NI
 * broadcasts feed NZ * NT * NI VDPBF16PS. in[t] points at tap t's pairs
 * (16 bfloat16 per pair). */
ZBF_INLINE void dw_pairs(const int NZ, const int NT, const int NI, const bfu *dp,
                         const bfu *const *in, int n, __m512 acc[2][3][CB])
{
    for (int q = 0; q < n; q++) {
        const __m512bh d0 = load_bh(dp + (q * NZ) * 32);
        const __m512bh d1 = NZ == 2 ? load_bh(dp + (q * NZ + 1) * 32) : d0;
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NI; i++) {
                const __m512bh x = bcast_pair(in[t] + q * 16 + 2 * i);
                acc[0][t][i] = _mm512_dpbf16_ps(acc[0][t][i], d0, x);
                if (NZ == 2)
                    acc[1][t][i] = _mm512_dpbf16_ps(acc[1][t][i], d1, x);
            }
    }
}

ZBF_INLINE void acc_load(const int NZ, const int NT, const int NI, __m512 acc[2][3][CB],
                         const float *tile, ptrdiff_t ow, const int *taps)
{
    for (int z = 0; z < NZ; z++)
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NI; i++)
                acc[z][t][i] = _mm512_loadu_ps(tile + (taps[t] * CB + i) * ow + z * 16);
}

ZBF_INLINE void acc_store(const int NZ, const int NT, const int NI, __m512 acc[2][3][CB],
                          float *tile, ptrdiff_t ow, const int *taps)
{
    for (int z = 0; z < NZ; z++)
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NI; i++)
                _mm512_storeu_ps(tile + (taps[t] * CB + i) * ow + z * 16, acc[z][t][i]);
}

/* dout of group k and the input of block cb at pixel 0 of row r (before
 * any tap). */
static const float *dv_row(const conv__dw *d, int k, int r)
{
    const int b = r / d->h, y = r % d->h;
    return d->dv + (k * conv__group(d->nob)) * d->dv_cs + b * d->dv_bs + y * d->dv_rs
           + d->dv_org;
}

static const float *bc_row(const conv__dw *d, int cb, int r)
{
    const int b = r / d->h, y = r % d->h;
    return d->bc + cb * d->bc_cs + b * d->bc_bs + y * d->bc_rs + d->bc_org;
}

/* A task's rows go by bundles of items, an item being a row or a segment
 * of at most BUNDLE pixels of one (and a bundle at most BUNDLE pixels and
 * MAX_ITEMS items: 16 rows at W = 8, as avx512.c's bundles): each
 * bundle's rounded copies (< 32 KB) stay in L1 while every tap sweeps
 * them. */
#define BUNDLE 128
#define MAX_ITEMS 32
/* Pixel pairs of a bundle, with one odd row end per item. */
#define BUNDLE_PAIRS (BUNDLE / 2 + MAX_ITEMS)

typedef struct dw_bundle {
    int n;               /* items */
    int r[MAX_ITEMS];    /* row (image * H + y) */
    int p0[MAX_ITEMS];   /* first pixel */
    int pairs[MAX_ITEMS];/* pixel pairs from p0 */
} dw_bundle;

/* The next bundle of rows [*r, r1) from pixel *p0 on; advances them. */
static void next_bundle(dw_bundle *bu, int w, int *r, int *p0, int r1)
{
    int pix = 0;
    bu->n = 0;
    while (*r < r1 && bu->n < MAX_ITEMS) {
        const int len = w - *p0 < BUNDLE ? w - *p0 : BUNDLE;
        if (bu->n > 0 && pix + len > BUNDLE)
            break;
        bu->r[bu->n] = *r;
        bu->p0[bu->n] = *p0;
        bu->pairs[bu->n] = (len + 1) / 2;
        bu->n++;
        pix += len;
        *p0 += len;
        if (*p0 >= w) {
            *p0 = 0;
            ++*r;
        }
    }
}

/* A 3x3's dW (stencil3: dout taps 0, the input's the 3x3 stencil) over
 * one bundle, for one zmm (NZ = 1: the three taps of a kernel row at once,
 * 3 x NI accumulators) or two (one tap at a time). First each item's dout
 * is rounded into pairs once, and each of its three input rows into pairs
 * starting at even pixels (ev, from pixel -1) and at odd ones (od, from
 * pixel 0); then tap kw of pixel pair q reads ev[q], od[q] or ev[q + 1]. */
ZBF_INLINE void dw_bundle_s3(const int NZ, const int NI, const conv__dw *d, int k, int cb,
                             int nb, const dw_bundle *bu, float *tile, ptrdiff_t ow)
{
    bfu dp[BUNDLE_PAIRS * 2 * 32];
    bfu ev[3 * (BUNDLE_PAIRS + MAX_ITEMS) * 16], od[3 * BUNDLE_PAIRS * 16];
    int dq[MAX_ITEMS], eq[MAX_ITEMS], oq[MAX_ITEMS]; /* each item's first pair */
    int nd = 0, ne = 0, no = 0;
    for (int j = 0; j < bu->n; j++) {
        const int n = bu->pairs[j], p0 = bu->p0[j];
        dq[j] = nd, eq[j] = ne, oq[j] = no;
        round_dout(dp + nd * NZ * 32, NZ, dv_row(d, k, bu->r[j]), d->dv_px, d->dv_cs, nb, p0, n,
                   d->w);
        nd += n;
        for (int kh = 0; kh < 3; kh++) {
            /* Pixel 0 of input row y + kh - 1 (tap kw = 1). */
            const float *x = bc_row(d, cb, bu->r[j]) + d->bc_tap[kh * 3 + 1];
            round_in_pairs(ev + ne * 16, x, d->bc_px, p0 - 1, n + 1, d->w + 1);
            round_in_pairs(od + no * 16, x, d->bc_px, p0, n, d->w + 1);
            ne += n + 1;
            no += n;
        }
    }
    __m512 acc[2][3][CB];
    const int NT = NZ == 1 ? 3 : 1;
    for (int kh = 0; kh < 3; kh++)
        for (int kw0 = 0; kw0 < 3; kw0 += NT) {
            const int taps[3] = {kh * 3 + kw0, kh * 3 + kw0 + 1, kh * 3 + kw0 + 2};
            acc_load(NZ, NT, NI, acc, tile, ow, taps);
            for (int j = 0; j < bu->n; j++) {
                const bfu *e = ev + (eq[j] + kh * (bu->pairs[j] + 1)) * 16;
                const bfu *o = od + (oq[j] + kh * bu->pairs[j]) * 16;
                const bfu *src[3] = {e, o, e + 16};
                const bfu *in[3] = {src[kw0], NT > 1 ? src[1] : NULL, NT > 1 ? src[2] : NULL};
                dw_pairs(NZ, NT, NI, dp + dq[j] * NZ * 32, in, bu->pairs[j], acc);
            }
            acc_store(NZ, NT, NI, acc, tile, ow, taps);
        }
}

/* Any other dW (ConvTranspose's four sub-positions, conv1x1): one tap at
 * a time, dout and input both read at the tap's offsets and rounded into
 * pixel pairs from the item's first pixel. */
ZBF_INLINE void dw_bundle_any(const int NZ, const int NI, const conv__dw *d, int k, int cb,
                              int nb, const dw_bundle *bu, float *tile, ptrdiff_t ow)
{
    bfu dp[(BUNDLE / 2 + 1) * 2 * 32], xp[(BUNDLE / 2 + 1) * 16];
    __m512 acc[2][3][CB];
    for (int t = 0; t < d->ntaps; t++) {
        const int taps[1] = {t};
        acc_load(NZ, 1, NI, acc, tile, ow, taps);
        for (int j = 0; j < bu->n; j++) {
            const int n = bu->pairs[j], p0 = bu->p0[j];
            round_dout(dp, NZ, dv_row(d, k, bu->r[j]) + d->dv_tap[t], d->dv_px, d->dv_cs, nb, p0,
                       n, d->w);
            round_in_pairs(xp, bc_row(d, cb, bu->r[j]) + d->bc_tap[t], d->bc_px, p0, n, d->w);
            const bfu *in[1] = {xp};
            dw_pairs(NZ, 1, NI, dp, in, n, acc);
        }
        acc_store(NZ, 1, NI, acc, tile, ow, taps);
    }
}

/* The dW loop: avx512.c's tasks (chunk, group, input block), each
 * summing its rows into its own tile of part[]. */
ZBF static void run_dw(const conv__dw *d)
{
    ptrdiff_t ow;
    size_t tile_f;
    const int ntasks = z512_dw_tasks(d, &ow, &tile_f);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntasks; task++) {
        const z512_dw_task tk = z512_dw_task_of(d, task, tile_f);
        const int cb = tk.cb, k = tk.k, nb = tk.nb, r1 = tk.r1;
        const int wide = nb > 2, full = tk.full;
        float *tile = tk.tile;
        int r = tk.r0, p0 = 0;
        dw_bundle bu;
        while (r < r1) {
            next_bundle(&bu, d->w, &r, &p0, r1);
            if (d->stencil3) {
                if (wide && full) dw_bundle_s3(2, CB, d, k, cb, nb, &bu, tile, ow);
                else if (wide) dw_bundle_s3(2, 4, d, k, cb, nb, &bu, tile, ow);
                else if (full) dw_bundle_s3(1, CB, d, k, cb, nb, &bu, tile, ow);
                else dw_bundle_s3(1, 4, d, k, cb, nb, &bu, tile, ow);
            } else {
                if (wide && full) dw_bundle_any(2, CB, d, k, cb, nb, &bu, tile, ow);
                else if (wide) dw_bundle_any(2, 4, d, k, cb, nb, &bu, tile, ow);
                else if (full) dw_bundle_any(1, CB, d, k, cb, nb, &bu, tile, ow);
                else dw_bundle_any(1, 4, d, k, cb, nb, &bu, tile, ow);
            }
        }
    }
}

/* ---- the kernel -------------------------------------------------------------- */

static void bias_grad(float *db, const float *dout, shape so)
{
    /* Sums are float32 in either precision: the AVX-512 kernel's. */
    conv__kernel_avx512()->bias_grad(db, dout, so);
}

static const conv__kernel avx512bf16 = {
    .name = "AVX512_BF16",
    .have = unet_isa_avx512_bf16,
    .fwd_row = fwd_row,
    .run_dw = run_dw,
    .bias_grad = bias_grad,
    .dw_group = conv__group,
    .round = 16,
    .bf16 = 1,
};

const conv__kernel *conv__kernel_avx512bf16(void) { return &avx512bf16; }

#else

const conv__kernel *conv__kernel_avx512bf16(void) { return NULL; }

#endif /* x86 */
