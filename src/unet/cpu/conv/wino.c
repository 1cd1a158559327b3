/* SPDX-License-Identifier: MIT */
/*
 * wino.c: conv3x3 forward and backward-data as Winograd F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2016) on a SIMD kernel's forward loop: each 2x2 output tile is
 * A^T [U . V] A, with U = G g G^T the weights and V = B^T d B the 4x4
 * input patch around the tile, so the 9 multiply-adds per output pixel,
 * input and output channel of the direct loop become 4, in 16 independent
 * matrix products (one per position xi of the 4x4 tile: tiles x input
 * channels times input x output channels), which run as 1-tap forward
 * ops on the kernel's own fwd_row microkernel.
 *
 * The threads take bands of tiles as they come free, each band sized to
 * a thread's part of the band buffer (kernel.h: a buffer whose size
 * depends on the shape only), each band in three passes: the input
 * transform into V[xi][input block][tile][8], the 16 products into
 * M[xi][output block][tile][8], the output transform into the
 * destination's interior. No cache line of the buffer is touched by two
 * threads. Every output pixel's arithmetic is the same whatever the band,
 * the chunk or the thread, so results are bitwise reproducible and do not
 * depend on the thread count. They are not bitwise those of the direct
 * loop: F(2x2, 3x3) adds a few roundings (within 1e-6 of the reference in
 * tests/unet/cpu/test_ops_conv.c, whose bound is 1e-5).
 *
 * Used where it pays (conv__wino_use: the kernel's thresholds, even H and
 * W, UNET_WINOGRAD not off; the numbers at the kernel's thresholds in
 * kernel.h).
 *
 * Not here: the weight gradient (the direct loop's dW, drive.c), bf16
 * (the avx512bf16 kernel keeps the direct loop), the microkernel
 * (avx2.c, avx512.c), scratch sizing (conv.c).
 */
#include "kernel.h"

#include <omp.h>
#include <string.h>

#include "isa.h"
#include "lanes.h"

/* The transforms are lane-wise adds on 8-lane vectors: AVX2 code, run
 * only beside an AVX2 or AVX-512 kernel. Intermediate rows go through a
 * float array (unaligned moves) so that no vector is spilled to the stack
 * (GCC bug 54412 on 64-bit Windows: no 32-byte aligned stack). */
#if defined(__x86_64__) || defined(__i386__)
#define WINO_AVX2 __attribute__((target("avx2")))
#define WINO_AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))
#else
#define WINO_AVX2
#define WINO_AVX2_INLINE static inline
#endif

#define XI 16 /* positions of a 4x4 transformed tile */

/* ---- when ---------------------------------------------------------------- */

int conv__wino_use(const conv__kernel *k, shape s, int co)
{
    return conv__wino_takes(k, s, co) && !unet_winograd_off();
}

/* ---- weights: U = G g G^T, packed per position -------------------------- */

#define WINO_MAX_LANES (4 * CB) /* a group's lanes: conv__group's 4 blocks */

/* Rows xi of u (xi_f floats apart) = (G g G^T)[xi / 4][xi % 4] of the 3x3
 * g[tap][o], for n output lanes at once (loops the compiler vectorises),
 * G the F(2x2, 3x3) weight transform [[1,0,0], [.5,.5,.5], [.5,-.5,.5],
 * [0,0,1]]. */
WINO_AVX2 static void wt_transform(float *u, size_t xi_f, const float g[9][WINO_MAX_LANES],
                                   int n)
{
    float t[4][3][WINO_MAX_LANES]; /* G g */
    for (int c = 0; c < 3; c++)
        for (int o = 0; o < n; o++) {
            const float a = g[c][o], b = g[3 + c][o], d = g[6 + c][o];
            t[0][c][o] = a;
            t[1][c][o] = 0.5f * (a + b + d);
            t[2][c][o] = 0.5f * (a - b + d);
            t[3][c][o] = d;
        }
    for (int r = 0; r < 4; r++) {
        float *u0 = u + (size_t)(r * 4) * xi_f, *u1 = u0 + xi_f, *u2 = u1 + xi_f, *u3 = u2 + xi_f;
        for (int o = 0; o < n; o++) {
            const float a = t[r][0][o], b = t[r][1][o], d = t[r][2][o];
            u0[o] = a;
            u1[o] = 0.5f * (a + b + d);
            u2[o] = 0.5f * (a - b + d);
            u3[o] = d;
        }
    }
}

/* One (output group, input block) tile of pack_u: p at the tile in
 * position 0; nb real output blocks from output o0, real inputs below nin. */
WINO_AVX2 static void pack_u_tile(float *p, size_t xi_f, conv__wview w, int o0, int n, int width,
                                  int cb, int nin)
{
    /* Gathered an output lane at a time: its 8 x 9 taps are neighbours
     * in PyTorch's order (lanes at a time, 9 KB apart, took 3/4 of the
     * packing). */
    float g[CB][9][WINO_MAX_LANES];
    memset(g, 0, sizeof g);
    for (int o = 0; o < n; o++)
        for (int i = 0; i < CB && cb * CB + i < nin; i++) {
            const float *src = w.w + (o0 + o) * w.so + (cb * CB + i) * w.si;
            for (int t = 0; t < 9; t++)
                g[i][t][o] = src[t * w.st];
        }
    for (int i = 0; i < CB; i++)
        wt_transform(p + (size_t)i * (size_t)width, xi_f, g[i], width);
}

/* dst[xi] (xi_f floats apart) = position xi of the transformed weights in
 * the 1-tap layout of drive.c's pack_weights: [group][cb][i 8][o lanes],
 * zero outside [0,nout) x [0,nin). w is a 3x3 view (taps 0..8). */
static void pack_u(float *dst, size_t xi_f, conv__wview w, int nout, int nin, int G, int round)
{
    const int nob = conv__blocks(nout), nib = conv__blocks(nin);
    const int ngroups = (nob + G - 1) / G;
    const ptrdiff_t group_f = (ptrdiff_t)G * CB * nib * CB;
#pragma omp parallel for collapse(2) schedule(static) if (ngroups * group_f * XI >= CONV__PAR_MIN)
    for (int k = 0; k < ngroups; k++)
        for (int cb = 0; cb < nib; cb++) {
            const conv__pgroup pg = conv__pgroup_of(k, G, nout, round);
            pack_u_tile(dst + k * group_f + (ptrdiff_t)cb * CB * pg.width, xi_f, w, pg.o0, pg.n,
                        pg.width, cb, nin);
        }
}

/* ---- the input and output transforms ---------------------------------- */

/* V = B^T d B for the 4x4 patch at d (rows rs apart, pixels CB apart),
 * position xi stored at v + xi * xs; B^T = [[1,0,-1,0], [0,1,1,0],
 * [0,-1,1,0], [0,1,0,-1]]. */
WINO_AVX2_INLINE void in_tile(float *v, ptrdiff_t xs, const float *d, ptrdiff_t rs)
{
    float t[4][4][CB]; /* B^T d */
    for (int c = 0; c < 4; c++) {
        const v8f d0 = ld(d + c * CB), d1 = ld(d + rs + c * CB);
        const v8f d2 = ld(d + 2 * rs + c * CB), d3 = ld(d + 3 * rs + c * CB);
        st(t[0][c], d0 - d2);
        st(t[1][c], d1 + d2);
        st(t[2][c], d2 - d1);
        st(t[3][c], d1 - d3);
    }
    for (int r = 0; r < 4; r++) {
        const v8f a = ld(t[r][0]), b = ld(t[r][1]), c = ld(t[r][2]), e = ld(t[r][3]);
        st(v + (r * 4 + 0) * xs, a - c);
        st(v + (r * 4 + 1) * xs, b + c);
        st(v + (r * 4 + 2) * xs, c - b);
        st(v + (r * 4 + 3) * xs, b - e);
    }
}

/* Y = A^T m A for the 16 positions at m + xi * xs, the 2x2 result at y
 * (rows rs apart, pixels CB apart); A^T = [[1,1,1,0], [0,1,-1,-1]]. */
WINO_AVX2_INLINE void out_tile(float *y, ptrdiff_t rs, const float *m, ptrdiff_t xs)
{
    float t[2][4][CB]; /* A^T m */
    for (int c = 0; c < 4; c++) {
        const v8f m0 = ld(m + (0 * 4 + c) * xs), m1 = ld(m + (1 * 4 + c) * xs);
        const v8f m2 = ld(m + (2 * 4 + c) * xs), m3 = ld(m + (3 * 4 + c) * xs);
        st(t[0][c], m0 + m1 + m2);
        st(t[1][c], m1 - m2 - m3);
    }
    for (int r = 0; r < 2; r++) {
        const v8f a = ld(t[r][0]), b = ld(t[r][1]), c = ld(t[r][2]), e = ld(t[r][3]);
        st(y + r * rs, a + b + c);
        st(y + r * rs + CB, b - c - e);
    }
}

/* ---- the layer ------------------------------------------------------------ */

/* The layer and its packed weights, for the passes below. */
typedef struct wino_layer {
    const conv__kernel *k;
    const float *in;
    float *out;
    conv__geo g; /* of in and of out: the same plane geometry */
    int nib, nob, G, ngroups, tw, per_img;
    const float *u; /* packed transformed weights */
    size_t xi_f;    /* floats of one position's pack */
} wino_layer;

/* Tile t of the layer as image, tile row and tile column; tile_next
 * walks to t + 1 without a division. */
typedef struct tile_at {
    int b, ty, tx;
} tile_at;

static tile_at tile_of(const wino_layer *L, int t)
{
    tile_at c = {t / L->per_img, t % L->per_img / L->tw, t % L->tw};
    return c;
}

static inline void tile_next(const wino_layer *L, tile_at *c)
{
    if (++c->tx == L->tw) {
        c->tx = 0;
        if (++c->ty == L->per_img / L->tw)
            c->ty = 0, c->b++;
    }
}

/* The input transform of tiles [t0, t0 + n) into V at v (blocks vb,
 * positions vx apart), tile by tile along the rows; and the output
 * transform of M at m into the layer's output. One call a band, the
 * transforms inlined: as a call per tile and block, they and their index
 * arithmetic took a third more (perf). */
WINO_AVX2 static void in_band(const wino_layer *L, float *v, ptrdiff_t vb, ptrdiff_t vx, int t0,
                              int n)
{
    const conv__geo g = L->g;
    tile_at c = tile_of(L, t0);
    for (int j = 0; j < n; j++, tile_next(L, &c)) {
        const float *d = L->in + c.b * g.bs + g.org + (2 * c.ty - 1) * g.rs + (2 * c.tx - 1) * CB;
        for (int cb = 0; cb < L->nib; cb++)
            in_tile(v + cb * vb + j * CB, vx, d + cb * g.cs, g.rs);
    }
}

WINO_AVX2 static void out_band(const wino_layer *L, const float *m, ptrdiff_t mb, ptrdiff_t mx,
                               int t0, int n)
{
    const conv__geo g = L->g;
    tile_at c = tile_of(L, t0);
    for (int j = 0; j < n; j++, tile_next(L, &c)) {
        float *y = L->out + c.b * g.bs + g.org + 2 * c.ty * g.rs + 2 * c.tx * CB;
        for (int ob = 0; ob < L->nob; ob++)
            out_tile(y + ob * g.cs, g.rs, m + ob * mb + j * CB, mx);
    }
}

/* Tiles [t0, t0 + n) of the layer with a thread's band buffer at v (for
 * bands of T tiles) in three passes: the input transform into V, the 16
 * products into M, the output transform. (Products of a chunk of tiles
 * kept in L1 and transformed at once were slower: each chunk reloaded
 * its weights from L2; bench/bench_conv.c.) */
static void wino_band(const wino_layer *L, float *v, int T, int t0, int n)
{
    const ptrdiff_t vb = conv__wino_block(T), vx = conv__wino_pos(L->nib, T);
    const ptrdiff_t mx = conv__wino_pos(L->nob, T);
    float *m = v + XI * vx;
    in_band(L, v, vb, vx, t0, n);
    conv__fwd d = {0};
    d.in_cs = vb, d.in_px = CB;
    d.ncib = L->nib, d.icn_last = CB; /* padded input lanes are 0 in V */
    d.ntaps = 1;
    d.out_cs = vb, d.out_px = CB;
    d.nob = L->nob;
    d.b = 1, d.h = 1;
    const ptrdiff_t group_w = (ptrdiff_t)L->G * CB * L->nib * CB;
    for (int x = 0; x < XI; x++)
        for (int gr = 0; gr < L->ngroups; gr++)
            for (int j0 = 0; j0 < n; j0 += CONV__WINO_CHUNK) {
                const int nb = L->nob - gr * L->G < L->G ? L->nob - gr * L->G : L->G;
                d.w = n - j0 < CONV__WINO_CHUNK ? n - j0 : CONV__WINO_CHUNK;
                L->k->fwd_row(&d, nb, v + x * vx + j0 * CB,
                              L->u + (size_t)x * L->xi_f + gr * group_w, NULL,
                              m + x * mx + gr * L->G * vb + j0 * CB);
            }
    out_band(L, m, vb, mx, t0, n);
}

void conv__wino_3x3(const conv__kernel *k, float *out, const float *in, shape s,
                    conv__wview w, int nout, int nin, float *scratch)
{
    wino_layer L;
    L.k = k, L.in = in, L.out = out;
    L.nib = conv__blocks(nin), L.nob = conv__blocks(nout);
    L.G = conv__group(L.nob), L.ngroups = (L.nob + L.G - 1) / L.G;
    L.tw = s.w / 2, L.per_img = (s.h / 2) * L.tw;
    const int ntiles = s.b * L.per_img;
    shape si = {nin, s.b, s.h, s.w};
    L.g = conv__geo_of(si);
    L.xi_f = (size_t)(L.ngroups * L.G * CB) * (size_t)(L.nib * CB);
    float *u = scratch;
    L.u = u;
    float *buf = u + XI * L.xi_f;
    const size_t buf_f = conv__wino_buf_floats(nin, nout, ntiles);
    pack_u(u, L.xi_f, w, nout, nin, L.G, k->round);

    /* Each thread takes bands of tiles through all three passes in its own
     * part of the band buffer: no line of it is touched by two threads (as
     * three shared passes, or with the threads' tiles side by side in one
     * band, two threads ran 1.3x one: cache lines moving between the
     * cores). Bands are handed out as threads come free, so a thread the
     * machine slows gives its share to the other (than a contiguous half
     * each: 4 of 5 interleaved rounds faster at 128 px b8, the median
     * 47.6 -> 52.2 images/s; at b4 within this machine's noise). Every
     * thread gets at least conv__wino_band_min tiles of buffer; past that
     * many threads, fewer run. */
    int nt = omp_get_max_threads();
    const int cap = (int)(buf_f / conv__wino_band_floats(nin, nout, conv__wino_band_min(ntiles)));
    if (nt > cap)
        nt = cap < 1 ? 1 : cap;
#pragma omp parallel num_threads(nt)
    {
        const int nth = omp_get_num_threads(), id = omp_get_thread_num();
        const size_t part = buf_f / (size_t)nth / CONV__WINO_PAD * CONV__WINO_PAD;
        const int T = conv__wino_band_fit(nin, nout, part);
        float *v = buf + (size_t)id * part;
        const int nbands = (ntiles + T - 1) / T;
#pragma omp for schedule(dynamic, 1)
        for (int bnd = 0; bnd < nbands; bnd++) {
            const int t0 = bnd * T;
            wino_band(&L, v, T, t0, ntiles - t0 < T ? ntiles - t0 : T);
        }
    }
}
