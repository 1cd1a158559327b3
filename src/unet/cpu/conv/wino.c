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
 * M[xi][output group][tile][group lanes], the output transform into the
 * destination's interior. No cache line of the buffer is touched by two
 * threads. Every output pixel's arithmetic is the same whatever the band,
 * the chunk or the thread, so results are bitwise reproducible and do not
 * depend on the thread count. They are not bitwise those of the direct
 * loop: F(2x2, 3x3) adds a few roundings (within 1e-6 of the reference in
 * tests/unet/cpu/test_ops_conv.c, whose bound is 1e-5).
 *
 * The weight gradient of the same layers is the adjoint (conv__wino_3x3_dw
 * at the end of the file): the same input transform, the dout tiles
 * transformed by A, 16 sums over all tiles of dout x input products on
 * the kernel's wino_dw microkernel, then G back to the 3x3 taps.
 *
 * Used where it pays (conv__wino_use, conv__wino_dw_use: the kernel's
 * thresholds, even H and W, UNET_WINOGRAD not off; the numbers at the
 * kernel's thresholds in kernel.h).
 *
 * Not here: the direct loops (drive.c), bf16 (the avx512bf16 kernel keeps
 * the direct loop), the microkernels (avx2.c, avx512.c), scratch sizing
 * (conv.c).
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

int conv__wino_dw_use(const conv__kernel *k, shape s, int co)
{
    return conv__wino_dw_takes(k, s, co) && !unet_winograd_off();
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

/* Rows [R0, R0 + NR) of V = B^T d B (positions 4*R0 .. 4*(R0+NR) - 1)
 * for the 4x4 patch at d (rows rs apart, pixels CB apart), position xi
 * stored at v + xi * xs; B^T = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0],
 * [0,1,0,-1]]. R0 and NR are constants where it is inlined: the rows
 * and loads not needed are dropped. */
WINO_AVX2_INLINE void in_tile(float *v, ptrdiff_t xs, const float *d, ptrdiff_t rs, const int R0,
                              const int NR)
{
    float t[4][4][CB]; /* B^T d */
    for (int c = 0; c < 4; c++) {
        const v8f d0 = ld(d + c * CB), d1 = ld(d + rs + c * CB);
        const v8f d2 = ld(d + 2 * rs + c * CB), d3 = ld(d + 3 * rs + c * CB);
        if (R0 == 0)
            st(t[0][c], d0 - d2), st(t[1][c], d1 + d2);
        if (R0 + NR == 4)
            st(t[2][c], d2 - d1), st(t[3][c], d1 - d3);
    }
    for (int r = R0; r < R0 + NR; r++) {
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

/* The dout side of the weight gradient: Y = A dy A^T for the 2x2 dout
 * tile at d (rows rs apart, pixels CB apart), position xi stored at
 * y + xi * ys; A = [[1,0], [1,1], [1,-1], [0,-1]] (the adjoint of
 * out_tile: the gradient of A^T m A with respect to m). */
WINO_AVX2_INLINE void dy_row(float *y, ptrdiff_t ys, v8f p, v8f q)
{
    st(y, p);
    st(y + ys, p + q);
    st(y + 2 * ys, p - q);
    st(y + 3 * ys, -q);
}

/* Rows half*2 and half*2 + 1 of Y (positions 8*half .. 8*half + 7). */
WINO_AVX2_INLINE void dy_tile(float *y, ptrdiff_t ys, const float *d, ptrdiff_t rs, int half)
{
    const v8f a = ld(d), b = ld(d + CB), c = ld(d + rs), e = ld(d + rs + CB);
    /* Row j of A dy is [p, q] (one vector a column); row j of A dy A^T is
     * p, p + q, p - q, -q. */
    if (half == 0) {
        dy_row(y, ys, a, b);
        dy_row(y + 4 * ys, ys, a + c, b + e);
    } else {
        dy_row(y + 8 * ys, ys, a - c, b - e);
        dy_row(y + 12 * ys, ys, -c, -e);
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
 * positions vx apart), tile by tile along the rows: all 16 positions
 * (half < 0), or positions 0-7 / 8-15 (half 0 / 1, the weight gradient's
 * share-out); and the output transform of M at m (groups mg apart) into
 * the layer's output. One call a band, the transforms inlined: as a call
 * per tile and block, they and their index arithmetic took a third more
 * (perf). */
WINO_AVX2 static void in_band(const wino_layer *L, float *v, ptrdiff_t vb, ptrdiff_t vx, int t0,
                              int n, int half)
{
    const conv__geo g = L->g;
    tile_at c = tile_of(L, t0);
    for (int j = 0; j < n; j++, tile_next(L, &c)) {
        const float *d = L->in + c.b * g.bs + g.org + (2 * c.ty - 1) * g.rs + (2 * c.tx - 1) * CB;
        for (int cb = 0; cb < L->nib; cb++) {
            float *vt = v + cb * vb + j * CB;
            const float *dc = d + cb * g.cs;
            if (half < 0)
                in_tile(vt, vx, dc, g.rs, 0, 4);
            else if (half == 0)
                in_tile(vt, vx, dc, g.rs, 0, 2);
            else
                in_tile(vt, vx, dc, g.rs, 2, 2);
        }
    }
}

WINO_AVX2 static void out_band(const wino_layer *L, const float *m, ptrdiff_t mg, ptrdiff_t mx,
                               int t0, int n)
{
    const conv__geo g = L->g;
    const int lanes = L->G * CB;
    tile_at c = tile_of(L, t0);
    for (int j = 0; j < n; j++, tile_next(L, &c)) {
        float *y = L->out + c.b * g.bs + g.org + 2 * c.ty * g.rs + 2 * c.tx * CB;
        for (int ob = 0; ob < L->nob; ob++)
            out_tile(y + ob * g.cs, g.rs, m + ob / L->G * mg + j * lanes + ob % L->G * CB, mx);
    }
}

/* Tiles [t0, t0 + n) of the layer with a thread's band buffer at v (for
 * bands of T tiles) in three passes: the input transform into V, the 16
 * products into M, the output transform. (Products of a chunk of tiles
 * kept in L1 and transformed at once were slower: each chunk reloaded
 * its weights from L2; bench/bench_conv.c.) */
static void wino_band(const wino_layer *L, float *v, int T, int t0, int n)
{
    const int lanes = L->G * CB;
    const ptrdiff_t vb = conv__wino_block(T), vx = conv__wino_pos(L->nib, T);
    const ptrdiff_t mg = conv__wino_jgroup(lanes, T), mx = conv__wino_jpos(L->nob * CB, lanes, T);
    float *m = v + XI * vx;
    in_band(L, v, vb, vx, t0, n, -1);
    conv__fwd d = {0};
    d.in_cs = vb, d.in_px = CB;
    d.ncib = L->nib, d.icn_last = CB; /* padded input lanes are 0 in V */
    d.ntaps = 1;
    d.out_cs = CB, d.out_px = lanes; /* M's joined groups */
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
                              m + x * mx + gr * mg + j0 * lanes);
            }
    out_band(L, m, mg, mx, t0, n);
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

/* ---- the weight gradient ------------------------------------------------- */

/* The transformed douts of tiles [t0, t0 + n) into Y at y (groups of
 * `lanes` output lanes yg apart, a tile's lanes side by side, positions
 * yx apart); lanes past the real blocks are 0. */
WINO_AVX2 static void dy_band(const wino_layer *L, const float *dout, float *y, ptrdiff_t yg,
                              ptrdiff_t yx, int lanes, int ngroups, int t0, int n, int half)
{
    const conv__geo g = L->g;
    const int per = lanes / CB;
    tile_at c = tile_of(L, t0);
    for (int j = 0; j < n; j++, tile_next(L, &c)) {
        const float *d = dout + c.b * g.bs + g.org + 2 * c.ty * g.rs + 2 * c.tx * CB;
        for (int ob = 0; ob < ngroups * per; ob++) {
            float *dst = y + ob / per * yg + j * lanes + ob % per * CB;
            if (ob < L->nob)
                dy_tile(dst, yx, d + ob * g.cs, g.rs, half);
            else
                for (int x = 8 * half; x < 8 * half + 8; x++)
                    memset(dst + x * yx, 0, CB * sizeof *dst);
        }
    }
}

/* dw[o][i][kh][kw] = (G^T M G)[kh][kw] of the 16 sums M[xi][o][i], G as in
 * wt_transform (the adjoint of U = G g G^T), for the (group, input block)
 * tile at m (positions m_x apart) into PyTorch order. */
static void dw_untransform(float *dw, const float *m, size_t m_x, int lanes, int o0, int nout,
                           int i0, int nin)
{
    for (int i = 0; i < CB && i0 + i < nin; i++)
        for (int o = 0; o < lanes && o0 + o < nout; o++) {
            const float *mo = m + (size_t)(i * lanes + o);
            float t[3][4]; /* G^T M */
            for (size_t c = 0; c < 4; c++) {
                const float m0 = mo[c * m_x], m1 = mo[(4 + c) * m_x];
                const float m2 = mo[(8 + c) * m_x], m3 = mo[(12 + c) * m_x];
                t[0][c] = m0 + 0.5f * (m1 + m2);
                t[1][c] = 0.5f * (m1 - m2);
                t[2][c] = 0.5f * (m1 + m2) + m3;
            }
            float *w = dw + ((size_t)(o0 + o) * (size_t)nin + (size_t)(i0 + i)) * 9;
            for (int r = 0; r < 3; r++) {
                w[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                w[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
                w[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
}

/* The weight gradient is the adjoint of the forward: with Y = A^T
 * (U . V) A per tile and U = G g G^T, dL/dg = G^T [sum over tiles of
 * (A dY A^T) . V] G. So: per band of tiles, all threads transform the
 * band's inputs (in_band, as the forward) and douts (dy_band), then add
 * the band's 16 products (kernel's wino_dw) into M, a (position, output
 * group, input block) tile per task; at the end each M tile goes back
 * through G into dw. Every sum in M runs over the tiles in tile order,
 * whatever the band, task or thread: bitwise thread-count independent.
 *
 * The transforms are shared out by halves of the 16 positions, a thread's
 * half the one whose products it then runs (the tasks are position
 * major): with the tiles split between the threads instead, each read
 * the other's transforms across the cores, and 64->64 at 64x64 B=8 took
 * 7.1 ms against 5.0 (2 threads, AVX-512, a scratch harness beside
 * bench/bench_conv.c). */
void conv__wino_3x3_dw(const conv__kernel *k, float *dw, const float *dout, const float *in,
                       shape s, int nout, float *scratch)
{
    wino_layer L;
    memset(&L, 0, sizeof L);
    L.k = k, L.in = in;
    L.nib = conv__blocks(s.c), L.nob = conv__blocks(nout);
    L.tw = s.w / 2, L.per_img = (s.h / 2) * L.tw;
    L.g = conv__geo_of(s);
    const int ntiles = s.b * L.per_img, lanes = k->wino_dw_lanes;
    const int ngroups = conv__wino_jgroups(nout, lanes);
    const int T = conv__wino_dw_band(s.c, nout, lanes, ntiles);
    const ptrdiff_t vb = conv__wino_block(T), vx = conv__wino_pos(L.nib, T);
    const ptrdiff_t yg = conv__wino_jgroup(lanes, T), yx = conv__wino_jpos(nout, lanes, T);
    const size_t tile_f = (size_t)CB * (size_t)lanes;
    const size_t m_x = (size_t)ngroups * (size_t)L.nib * tile_f; /* floats of a position */
    float *m = scratch;
    float *v = m + conv__wino_dw_m_floats(s.c, nout, lanes), *y = v + XI * vx;
    const int ntasks = XI * ngroups * L.nib;
#pragma omp parallel
    {
        const int nth = omp_get_num_threads();
        /* Static: a thread keeps its M tiles in its cache from band to band. */
#pragma omp for schedule(static)
        for (int task = 0; task < ntasks; task++)
            memset(m + (size_t)task * tile_f, 0, tile_f * sizeof *m);
        for (int t0 = 0; t0 < ntiles; t0 += T) {
            const int n = ntiles - t0 < T ? ntiles - t0 : T;
            /* Thread j of 2 transforms half j of all the band's tiles; of
             * more, halves of tile ranges in turn. */
#pragma omp for schedule(static)
            for (int part = 0; part < 2 * nth; part++) {
                const int half = part / nth, q = part % nth;
                const int j0 = (int)((long long)n * q / nth);
                const int j1 = (int)((long long)n * (q + 1) / nth);
                in_band(&L, v + j0 * CB, vb, vx, t0 + j0, j1 - j0, half);
                dy_band(&L, dout, y + (ptrdiff_t)j0 * lanes, yg, yx, lanes, ngroups, t0 + j0,
                        j1 - j0, half);
            }
#pragma omp for schedule(static)
            for (int task = 0; task < ntasks; task++) {
                const int x = task / (ngroups * L.nib), gr = task / L.nib % ngroups;
                const int cb = task % L.nib;
                k->wino_dw(m + (size_t)task * tile_f, v + x * vx + cb * vb, y + x * yx + gr * yg,
                           n);
            }
        }
#pragma omp for collapse(2) schedule(static)
        for (int gr = 0; gr < ngroups; gr++)
            for (int cb = 0; cb < L.nib; cb++)
                dw_untransform(dw, m + ((size_t)gr * (size_t)L.nib + (size_t)cb) * tile_f, m_x,
                               lanes, gr * lanes, nout, cb * CB, s.c);
    }
}
