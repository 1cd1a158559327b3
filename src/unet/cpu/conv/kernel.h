/* SPDX-License-Identifier: MIT */
/*
 * kernel.h: what a SIMD convolution kernel (avx2.c, avx512.c) gives the
 * shared driver (drive.c), and the driver's nine ops over it. Internal to
 * the convolution files, their tests and bench_conv: outside them only
 * backend_cpu.c includes a convolution header, conv.h (the model sees
 * backend.h). Also here: the naive reference loops (ref.c) and the
 * scratch partition the planner and the driver share.
 *
 * Every op of conv.h is one of two loops over the blocked layout:
 * - a forward-type op (conv3x3 forward and backward-data, the transposed
 *   conv's forward and backward-data, conv1x1's): out = bias + the sum
 *   over input blocks, taps and lanes of packed weights x shifted inputs,
 *   described by a conv__fwd;
 * - a weight-gradient op: per-chunk partials of dout x shifted inputs,
 *   described by a conv__dw, summed afterwards in chunk order.
 * The driver builds the descriptors (geometry, taps, strides), packs the
 * weights, reduces the partials and spreads the forward rows over the
 * threads; a kernel runs the rows and the dW loop (and the bias gradient)
 * with its own registers and tile sizes.
 */
#ifndef UNET_CONV_KERNEL_H
#define UNET_CONV_KERNEL_H

#include "conv.h"

/* ---- the reference loops (ref.c): the ref level of every op, and the
 * oracle of tests and bench_conv ------------------------------------------ */

void conv3x3_forward_ref(float *out, const float *in, shape s, const float *w, int co);
void conv3x3_backward_data_ref(float *din, const float *dout, shape s, const float *w, int co);
void conv3x3_backward_weight_ref(float *dw, const float *dout, const float *in, shape s, int co);
void convt2x2_forward_ref(float *out, const float *in, shape s, const float *w,
                          const float *bias, int co);
void convt2x2_backward_data_ref(float *din, const float *dout, shape s, const float *w, int co);
void convt2x2_backward_weight_ref(float *dw, float *db, const float *dout, const float *in,
                                  shape s, int co);
void conv1x1_forward_ref(float *out, const float *in, shape s, const float *w, const float *bias,
                         int co);
void conv1x1_backward_data_ref(float *din, const float *dout, shape s, const float *w, int co);
void conv1x1_backward_weight_ref(float *dw, float *db, const float *dout, const float *in,
                                 shape s, int co);
/* The same loops in bf16 (the oracle of the *_bf16 calls). */
void conv3x3_forward_ref_bf16(float *out, const float *in, shape s, const float *w, int co);
void conv3x3_backward_data_ref_bf16(float *din, const float *dout, shape s, const float *w,
                                    int co);
void conv3x3_backward_weight_ref_bf16(float *dw, const float *dout, const float *in, shape s,
                                      int co);
void convt2x2_forward_ref_bf16(float *out, const float *in, shape s, const float *w,
                               const float *bias, int co);
void convt2x2_backward_data_ref_bf16(float *din, const float *dout, shape s, const float *w,
                                     int co);
void convt2x2_backward_weight_ref_bf16(float *dw, float *db, const float *dout, const float *in,
                                       shape s, int co);
void conv1x1_forward_ref_bf16(float *out, const float *in, shape s, const float *w,
                              const float *bias, int co);
void conv1x1_backward_data_ref_bf16(float *din, const float *dout, shape s, const float *w,
                                    int co);
void conv1x1_backward_weight_ref_bf16(float *dw, float *db, const float *dout, const float *in,
                                      shape s, int co);

/* Scratch layout sizes, shared by conv.c (planning) and the driver
 * (drive.c); no kernel calls it. */
size_t conv__dw_chunks(int tasks, int rows);

/* Output blocks per work group of the SIMD forward loops (AVX-512: one or
 * two zmm; AVX2: a 4x3 or 2x6 tile) and of AVX-512's dW: 4 once there are
 * at least 4 output blocks, else 2. Packed weights, padded bias and scratch
 * are laid out by these groups. A function of the block count only, so
 * the dW partition stays thread-count independent. */
static inline int conv__group(int nob) { return nob >= 4 ? 4 : 2; }

/* Input lanes ahead (one tap of one input block) at which the forward
 * microkernels prefetch their packed weights: a group's weights (up to
 * 295 KB) stream from L2 once per output tile, and the hardware
 * prefetcher left the FMAs waiting on them (1 thread, B=4: conv3x3
 * forward 130-140 -> 150-158 GFLOPS AVX-512, bench/bench_conv.c). */
#define CONV__PREFETCH_LANES 8

/* Strides of one blocked tensor, in floats. */
typedef struct conv__geo {
    ptrdiff_t cs;  /* between channel blocks: B * plane */
    ptrdiff_t bs;  /* between images: plane */
    ptrdiff_t rs;  /* between padded rows: (W+2)*8 */
    ptrdiff_t org; /* offset of interior pixel (0,0): rs + 8 */
} conv__geo;

static inline conv__geo conv__geo_of(shape s)
{
    conv__geo g;
    g.bs = (ptrdiff_t)shape_plane(s);
    g.cs = (ptrdiff_t)s.b * g.bs;
    g.rs = (ptrdiff_t)(s.w + 2) * CB;
    g.org = g.rs + CB;
    return g;
}

static inline int conv__blocks(int c) { return (c + CB - 1) / CB; }

/* Lanes of a group of nb real blocks in packed weights: nb*8 rounded up
 * to the kernel's `round`. */
static inline int conv__lanes(int nb, int round) { return (nb * CB + round - 1) / round * round; }

/* Group k (of G blocks) of nout packed output channels: its first output
 * o0, its lanes (conv__lanes of its real blocks) and the real ones, n. */
typedef struct conv__pgroup {
    int o0, width, n;
} conv__pgroup;

static inline conv__pgroup conv__pgroup_of(int k, int G, int nout, int round)
{
    const int nob = conv__blocks(nout), nb = nob - k * G < G ? nob - k * G : G;
    conv__pgroup p;
    p.o0 = k * G * CB;
    p.width = conv__lanes(nb, round);
    p.n = nout - p.o0 < p.width ? nout - p.o0 : p.width;
    return p;
}

/* Floats below which the driver's memory passes (weight packing, the dW
 * reduction) run on the calling thread: a parallel region costs tens of
 * microseconds on a busy machine, more than such a pass (the UNet's
 * smaller layers; bench/omp_regions.c shows each region's time). Their
 * results do not depend on the threads either way. */
#define CONV__PAR_MIN 65536

/* A forward-type op: out[ob][b][y][x] = bias + sum over input blocks, taps
 * and input lanes of w * in[cb][b][y][x] displaced by the tap. Row y,
 * column x of the iteration domain map to in at in_org + y*in_rs + x*in_px
 * (+ tap) and to out at out_org + y*out_rs + x*out_px. */
typedef struct conv__fwd {
    const float *in;
    ptrdiff_t in_cs, in_bs, in_rs, in_px, in_org;
    int ncib, icn_last; /* input blocks; real lanes in the last one */
    int ntaps;
    ptrdiff_t tap[9];
    /* The taps are a 3x3 stencil: tap[kh*3 + kw] = tap[kh*3] + kw*in_px,
     * so a kernel may sweep a row of input once for the three kw. */
    int stencil3;
    const float *wp;   /* packed (drive.c's pack_weights) with the kernel's group and round */
    const float *bias; /* padded to whole groups + 1 block, or NULL */
    float *out;
    ptrdiff_t out_cs, out_bs, out_rs, out_px, out_org;
    int nob;
    int b, h, w; /* iteration domain */
} conv__fwd;

/* A weight-gradient op: part[chunk][group][cb][tap][i 8][o G*8] = the sum
 * over chunk's rows of the domain of dv[o] (shifted by dv_tap) x bc[i]
 * (shifted by bc_tap); dv and bc are addressed like conv__fwd's out and
 * in. Chunks are a function of the shape only (conv__dw_chunks). */
typedef struct conv__dw {
    const float *dv;
    ptrdiff_t dv_cs, dv_bs, dv_rs, dv_px, dv_org;
    int nob;
    const float *bc;
    ptrdiff_t bc_cs, bc_bs, bc_rs, bc_px, bc_org;
    int ncib, icn_last;
    int ntaps;
    ptrdiff_t dv_tap[9], bc_tap[9];
    /* conv3x3's weight gradient: dv_tap all 0 and bc_tap the 3x3 stencil
     * (bc_tap[kh*3 + kw] = bc_tap[kh*3] + kw*bc_px), with dv's one-pixel
     * border zero, so a kernel may sweep an input row once for the three
     * kw. */
    int stencil3;
    int b, h, w;
    int nchunks;
    float *part;
} conv__dw;

typedef struct conv__kernel {
    const char *name;
    int (*have)(void); /* the CPU can run it */
    /* One output row of one group of nb output blocks: in, out at the
     * row's pixel 0, wp and bias at the group's (the driver walks groups,
     * images and rows over the threads). */
    void (*fwd_row)(const conv__fwd *d, int nb, const float *in, const float *wp,
                    const float *bias, float *out);
    void (*run_dw)(const conv__dw *d);
    /* db (so.c) = sum of dout (so) over B, H, W; deterministic. */
    void (*bias_grad)(float *db, const float *dout, shape so);
    /* Output blocks per work group of the dW loop (its partials): a
     * function of the block count only, so the dW partition is
     * thread-count independent (the forward loop's are conv__group's).
     * Then the lane rounding of a group's packed weights (8: ymm, 16: zmm). */
    int (*dw_group)(int nob);
    int round;
    /* Where conv3x3 forward and backward-data run as Winograd instead
     * (conv__wino_takes): channels in + out and tiles at least these; 0:
     * never. Where the transforms' memory passes cost less than the
     * multiply-adds saved, by the kernel's own speed (conv3x3 forward
     * against UNET_WINOGRAD=off in one process, 2 threads: AVX2 1.55-1.63x
     * from 32+32 channels, 1.24-1.29x at 16+32, 0.83x at 16+16; AVX-512,
     * 1.09-1.35x from 32+32 channels, 0.88x at 16+32; since its products
     * store whole zmm (joined groups) and its direct loop addresses
     * pixels by displacement, 1.16-1.37x at 64 tiles (8x8, B=4) and
     * 0.97-1.13x at 32 (B=2), 1.41-1.64x at 16x16 B=2-4 and 32x32 B=1).
     * The weight gradient at the same thresholds,
     * against the direct dW (2 threads, B=8 unless said): AVX-512 1.20x
     * at 32->32, 1.52-1.78x from 32->64; AVX2 1.18x at 16->32, 1.34-1.37x
     * at 32->32, 1.53-1.74x from 32->64; AVX-512 at 16+16 and 16+32
     * channels 0.50-0.98x. */
    int wino_min_sum, wino_min_tiles;
    /* conv3x3's weight gradient as Winograd (wino.c), where the forward
     * runs as Winograd: m[i][o] (i < 8, o < wino_dw_lanes, rows
     * wino_dw_lanes floats apart) += the sum over tiles p < n, in p order,
     * of x[p][i] (8 floats a tile) times y[p][o] (wino_dw_lanes floats a
     * tile). NULL: the direct dW loop always. */
    void (*wino_dw)(float *m, const float *x, const float *y, int n);
    int wino_dw_lanes;
    /* The fewest tiles at which the weight gradient runs as Winograd
     * (with wino_min_sum): its transforms are a smaller share of its
     * work than of the forward's (AVX-512 at 8x8, 2 threads: B=4 1.35x,
     * B=2 1.20x, B=1 1.01x against the direct dW; the forward 0.97-1.13x
     * at B=2). */
    int wino_dw_min_tiles;
    /* The kernel multiplies bfloat16 pairs (AVX512_BF16): the driver packs
     * its weights as bf16.h-rounded pairs of input lanes (pack_weights
     * in drive.c) in the float32 packing's place, and its fwd_row and
     * run_dw round activations and gradients the same way as they read
     * them. 0: float32 throughout. */
    int bf16;
} conv__kernel;

/* Element (o, i, t) of a PyTorch weight tensor (or its flipped or
 * transposed reading) is w[o*so + i*si + t*st]; a flipped tap has st < 0
 * with w pointing at the last tap. */
typedef struct conv__wview {
    const float *w;
    ptrdiff_t so, si, st;
} conv__wview;

typedef struct conv__dwview {
    float *w;
    ptrdiff_t so, si, st;
} conv__dwview;

/* The kernels, or NULL where they are not compiled (off x86). */
const conv__kernel *conv__kernel_avx2(void);
const conv__kernel *conv__kernel_avx512(void);
const conv__kernel *conv__kernel_avx512bf16(void);

/* The nine ops of conv.h on kernel k (same contracts). */
void conv__3x3_forward(const conv__kernel *k, float *out, const float *in, shape s,
                       const float *w, int co, float *scratch);
void conv__3x3_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                             const float *w, int co, float *scratch);
void conv__3x3_backward_weight(const conv__kernel *k, float *dw, const float *dout,
                               const float *in, shape s, int co, float *scratch);
void conv__t2x2_forward(const conv__kernel *k, float *out, const float *in, shape s,
                        const float *w, const float *bias, int co, float *scratch);
void conv__t2x2_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                              const float *w, int co, float *scratch);
void conv__t2x2_backward_weight(const conv__kernel *k, float *dw, float *db, const float *dout,
                                const float *in, shape s, int co, float *scratch);
void conv__1x1_forward(const conv__kernel *k, float *out, const float *in, shape s,
                       const float *w, const float *bias, int co, float *scratch);
void conv__1x1_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                             const float *w, int co, float *scratch);
void conv__1x1_backward_weight(const conv__kernel *k, float *dw, float *db, const float *dout,
                               const float *in, shape s, int co, float *scratch);

/* ---- Winograd F(2x2, 3x3) for conv3x3's three ops (wino.c) --------------- */

/* Whether a conv3x3 on input shape s with co outputs fits Winograd on k
 * with at least min_tiles tiles: a float32 kernel that has Winograd
 * thresholds, even H and W (2x2 output tiles), >= 16 channels both sides,
 * at least k->wino_min_sum of them together, at most 2^30 tiles (so that
 * wino.c's tile arithmetic fits an int; the planner asks about shapes no
 * machine holds). Symmetric in s.c and co, so the forward and
 * backward-data of one layer agree. */
static inline int conv__wino_fits(const conv__kernel *k, shape s, int co, int min_tiles)
{
    const long long tiles = (long long)s.b * (s.h / 2) * (s.w / 2);
    return k && k->wino_min_sum > 0 && s.h % 2 == 0 && s.w % 2 == 0 && s.c >= 16 && co >= 16
           && s.c + co >= k->wino_min_sum && tiles >= min_tiles && tiles <= (1LL << 30);
}

/* Whether conv3x3 forward and backward-data run as Winograd on k (at
 * k->wino_min_tiles), and whether its weight gradient does (a kernel with
 * wino_dw, at k->wino_dw_min_tiles); UNET_WINOGRAD=off is
 * conv__wino_use's. */
static inline int conv__wino_takes(const conv__kernel *k, shape s, int co)
{
    return k && conv__wino_fits(k, s, co, k->wino_min_tiles);
}
static inline int conv__wino_dw_takes(const conv__kernel *k, shape s, int co)
{
    return k && k->wino_dw && conv__wino_fits(k, s, co, k->wino_dw_min_tiles);
}

/* A thread's band buffer: per position (16), the transformed inputs'
 * blocks, each a band of tiles x 8 lanes plus CONV__WINO_PAD floats (a
 * cache line), each position too; then the products in groups of output
 * blocks joined (conv__wino_jpos: a tile's G x 8 lanes side by side, so
 * that an AVX-512 accumulator is one store, not two halves and an
 * extract, which took ~10 % of a 1-tap product tile at K = 64). At
 * power-of-two strides the transforms' 16 streams and the products'
 * blocks fell into one L1 set (in_tile took 26 % of a Winograd layer,
 * perf). Strides in floats: */
#define CONV__WINO_PAD 16
static inline ptrdiff_t conv__wino_block(int band) { return (ptrdiff_t)band * CB + CONV__WINO_PAD; }
static inline ptrdiff_t conv__wino_pos(int nblocks, int band)
{
    return nblocks * conv__wino_block(band) + CONV__WINO_PAD;
}
/* Joined groups of `lanes` output lanes: a group's band, and a position
 * of all nout channels' groups. */
static inline int conv__wino_jgroups(int nout, int lanes)
{
    return (conv__blocks(nout) * CB + lanes - 1) / lanes;
}
static inline ptrdiff_t conv__wino_jgroup(int lanes, int band)
{
    return (ptrdiff_t)band * lanes + CONV__WINO_PAD;
}
static inline ptrdiff_t conv__wino_jpos(int nout, int lanes, int band)
{
    return conv__wino_jgroups(nout, lanes) * conv__wino_jgroup(lanes, band) + CONV__WINO_PAD;
}
/* The forward's product groups: conv__group's blocks. */
static inline int conv__wino_lanes(int nout) { return conv__group(conv__blocks(nout)) * CB; }
/* Floats a tile takes in a band, pads aside: 16 positions of the input
 * blocks and of the output groups of `lanes`. */
static inline size_t conv__wino_tile_floats(int nin, int nout, int lanes)
{
    return (size_t)16 * ((size_t)conv__blocks(nin) * CB
                         + (size_t)conv__wino_jgroups(nout, lanes) * (size_t)lanes);
}
/* Tiles per product call (the microkernel's row): a multiple of both
 * kernels' widest pixel tiles (AVX-512 12, AVX2 6). */
#define CONV__WINO_CHUNK 48
/* Floats of a thread's band of `band` tiles. */
static inline size_t conv__wino_band_floats(int nin, int nout, int band)
{
    return (size_t)16
           * (size_t)(conv__wino_pos(conv__blocks(nin), band)
                      + conv__wino_jpos(nout, conv__wino_lanes(nout), band));
}
/* The most tiles whose band fits `floats` (0 if none). */
static inline int conv__wino_band_fit(int nin, int nout, size_t floats)
{
    int t = (int)(floats / conv__wino_tile_floats(nin, nout, conv__wino_lanes(nout)));
    while (t > 0 && conv__wino_band_floats(nin, nout, t) > floats)
        t--;
    return t;
}
/* The fewest tiles a thread's band holds: one microkernel tile. */
static inline int conv__wino_band_min(int ntiles) { return ntiles < 12 ? ntiles : 12; }
/* Floats of the whole band buffer, shared out among the threads: 1 MB
 * (512 KB a thread for 2 threads: an L2 holds the band and the weights;
 * 2^17..2^20 floats were within noise of each other at 128 px),
 * never more than all the tiles need, and room for at least
 * CONV__WINO_MIN_THREADS threads' smallest bands (fewer threads run the
 * layer past what it holds). A function of the shape only. */
#define CONV__WINO_BUF_FLOATS ((size_t)1 << 18)
#define CONV__WINO_MIN_THREADS 8
static inline size_t conv__wino_buf_floats(int nin, int nout, int ntiles)
{
    const size_t all = conv__wino_band_floats(nin, nout, ntiles);
    const size_t min =
        CONV__WINO_MIN_THREADS * conv__wino_band_floats(nin, nout, conv__wino_band_min(ntiles));
    const size_t f = CONV__WINO_BUF_FLOATS > min ? CONV__WINO_BUF_FLOATS : min;
    return f < all ? f : all;
}

/* Winograd's weight gradient (conv__wino_3x3_dw) on a kernel whose
 * products take `lanes` output lanes: the sums M[xi][group][input block]
 * [i 8][o lanes] over all tiles, then a band buffer shared by all
 * threads: per position, the transformed inputs' blocks (conv__wino_block
 * apart) and then the transformed douts' joined groups
 * (conv__wino_jpos). Bands of CONV__WINO_DW_BUF_FLOATS at most (each band
 * costs two barriers; 2 MB: a position's slice of a band, which the
 * products read, stays in L2); never more than all tiles. */
#define CONV__WINO_DW_BUF_FLOATS ((size_t)1 << 19)
static inline size_t conv__wino_dw_m_floats(int nin, int nout, int lanes)
{
    return (size_t)16 * (size_t)conv__wino_jgroups(nout, lanes) * (size_t)lanes
           * (size_t)conv__blocks(nin) * CB;
}
static inline size_t conv__wino_dw_band_floats(int nin, int nout, int lanes, int band)
{
    return (size_t)16
           * (size_t)(conv__wino_pos(conv__blocks(nin), band) + conv__wino_jpos(nout, lanes, band));
}
/* Tiles a band: as many as CONV__WINO_DW_BUF_FLOATS holds, at least one,
 * at most ntiles. A function of the shape only. */
static inline int conv__wino_dw_band(int nin, int nout, int lanes, int ntiles)
{
    size_t t = CONV__WINO_DW_BUF_FLOATS / conv__wino_tile_floats(nin, nout, lanes);
    if (t > (size_t)ntiles)
        t = (size_t)ntiles;
    while (t > 1 && conv__wino_dw_band_floats(nin, nout, lanes, (int)t) > CONV__WINO_DW_BUF_FLOATS)
        t--;
    return t < 1 ? 1 : (int)t;
}
static inline size_t conv__wino_dw_floats(int nin, int nout, int lanes, int ntiles)
{
    return conv__wino_dw_m_floats(nin, nout, lanes)
           + conv__wino_dw_band_floats(nin, nout, lanes,
                                       conv__wino_dw_band(nin, nout, lanes, ntiles));
}

/* conv__wino_takes and conv__wino_dw_takes, unless UNET_WINOGRAD is
 * "off". */
int conv__wino_use(const conv__kernel *k, shape s, int co);
int conv__wino_dw_use(const conv__kernel *k, shape s, int co);

/* out (nout,B,H,W) = the 3x3 view w (nout x nin x 9 taps) * in (nin,B,H,W),
 * by Winograd on k's forward loop; s gives B, H and W. scratch: the
 * packed transformed weights (16 x wpack(nout, nin, 1)), then the band
 * buffer (conv__wino_buf_floats), shared out among the threads. */
void conv__wino_3x3(const conv__kernel *k, float *out, const float *in, shape s,
                    conv__wview w, int nout, int nin, float *scratch);

/* dw (nout,nin,3,3, PyTorch order) = the sum over B, H, W of dout
 * (nout,B,H,W) x in (nin,B,H,W) shifted by each tap, by Winograd on k's
 * wino_dw (where conv__wino_dw_use); s is in's shape.
 * scratch: conv__wino_dw_floats. */
void conv__wino_3x3_dw(const conv__kernel *k, float *dw, const float *dout, const float *in,
                       shape s, int nout, float *scratch);

#endif /* UNET_CONV_KERNEL_H */
