/* SPDX-License-Identifier: MIT */
/*
 * drive.c: the nine convolution ops of conv.h for any SIMD kernel
 * (kernel.h): the geometry of each op as descriptors, the packing of
 * PyTorch-order weights into the kernel's register tiles, and the sum of
 * the per-chunk weight-gradient partials back into PyTorch order. Plain C,
 * no intrinsics: the kernels (avx2.c, avx512.c) run the two hot loops; what
 * is here is geometry and memory moves the compiler vectorises well enough.
 *
 * Packing and the reduction run in parallel over (output group, input
 * block) tiles. They used to be serial loops calling a getter per
 * element: at batch 4, 128x128, they took ~9 % of a training step on 2
 * threads (perf, Zen 5), with the second thread spinning in libgomp.
 *
 * conv3x3's forward, backward-data and weight gradient go to wino.c
 * instead where conv__wino_use (conv__wino_dw_use) says Winograd is
 * faster (kernel.h).
 *
 * Not here: the arithmetic (the kernel files), dispatch and scratch
 * sizing (conv.c), the reference (ref.c), Winograd (wino.c).
 */
#include "kernel.h"

#include "bf16.h"

static int blocks(int c) { return conv__blocks(c); }

/* Chunks of B*H rows for a weight-gradient op with `tasks` (output pair or
 * group, input block) tasks: enough to give >= 32 tasks, so 2..16 threads balance even
 * on the first layer (one pair, one block), never more than the rows. A
 * function of the shape only, so dW does not depend on the thread count. */
size_t conv__dw_chunks(int tasks, int rows)
{
    int n = (32 + tasks - 1) / tasks;
    if (n > rows)
        n = rows;
    return (size_t)(n < 1 ? 1 : n);
}

/* Packs weights into dst[group][cb][tap][i 8][o lanes] for the forward-type
 * microkernels: groups of G output blocks, each group's lanes its real
 * blocks x 8 rounded up to `round` (8 for AVX2 ymm, 16 for AVX-512 zmm),
 * i over one input block; 0 outside [0,nout) x [0,nin). Groups before the
 * last are full, so group k starts at k * G*8 * blocks(nin)*8 * ntaps.
 * For a bf16 kernel (kernel.h) the same groups at the same offsets (a
 * group's float32 place, of which it fills half) hold bf16.h-rounded
 * values as dst[cb][tap][pair 4][o lanes][2]: lanes 2p and 2p+1 of the
 * input block side by side for each output lane, what one VDPBF16PS
 * multiplies against a broadcast pair of input lanes.
 *
 * The inner loops are branch-free runs over the output lanes (a strided
 * read into a tile that stays in L1), the zero padding separate: with a
 * bounds test and the bf16 choice per element, packing took ~6 % of a
 * training step at 128 px b4 (perf; bench/omp_regions.c: 57 packs a step,
 * ~185 us each). */
static void pack_run(float *p, uint16_t *q, const float *src, ptrdiff_t so, int n, int width,
                     int bf16)
{
    if (bf16) {
        for (int o = 0; o < n; o++)
            q[2 * o] = bf16_bits(src[o * so]);
        for (int o = n; o < width; o++)
            q[2 * o] = 0;
    } else {
        for (int o = 0; o < n; o++)
            p[o] = src[o * so];
        for (int o = n; o < width; o++)
            p[o] = 0.0f;
    }
}

static void pack_weights(float *dst, conv__wview w, int nout, int nin, int ntaps, int G,
                         int round, int bf16)
{
    const int nob = blocks(nout), nib = blocks(nin);
    const int ngroups = (nob + G - 1) / G;
    /* Groups before the last are full: G*8 lanes, a multiple of `round`. */
    const ptrdiff_t group_f = (ptrdiff_t)G * CB * nib * ntaps * CB;
#pragma omp parallel for collapse(2) schedule(static) if (ngroups * group_f >= CONV__PAR_MIN)
    for (int k = 0; k < ngroups; k++)
        for (int cb = 0; cb < nib; cb++) {
            const conv__pgroup pg = conv__pgroup_of(k, G, nout, round);
            const int width = pg.width, o0 = pg.o0, n = pg.n;
            const ptrdiff_t at = (ptrdiff_t)cb * ntaps * CB * width;
            float *p = dst + k * group_f + at;
            uint16_t *q = (uint16_t *)(void *)(dst + k * group_f) + at;
            for (int t = 0; t < ntaps; t++)
                for (int i = 0; i < CB; i++) {
                    const int j = cb * CB + i;
                    /* fp32: row (t, i) of width lanes; bf16: lane i of
                     * pair i/2, every other uint16 of the pair's row. */
                    const ptrdiff_t row = (ptrdiff_t)t * CB * width
                                          + (bf16 ? (ptrdiff_t)(i / 2) * 2 * width + i % 2
                                                  : (ptrdiff_t)i * width);
                    pack_run(p + row, q + row, w.w + o0 * w.so + j * w.si + t * w.st, w.so,
                             j < nin ? n : 0, width, bf16);
                }
        }
}

/* Sums weight-gradient partials part[chunk][group][cb][tap][i 8][o G*8]
 * over the chunks, in chunk order, into dw (part is clobbered). */
static void dw_reduce(float *part, int nchunks, int nout, int nin, int ntaps, int G,
                      conv__dwview dw)
{
    const int nob = blocks(nout), nib = blocks(nin);
    const int ngroups = (nob + G - 1) / G;
    const ptrdiff_t ow = (ptrdiff_t)G * CB;
    const ptrdiff_t tile_f = ntaps * CB * ow;
    const ptrdiff_t chunk_f = ngroups * nib * tile_f;
#pragma omp parallel for collapse(2) schedule(static) if (nchunks * chunk_f >= CONV__PAR_MIN)
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
            const int o0 = k * G * CB;
            const int n = nout - o0 < G * CB ? nout - o0 : G * CB; /* real output lanes */
            for (int t = 0; t < ntaps; t++)
                for (int i = cb * CB; i < cb * CB + CB && i < nin; i++) {
                    float *to = dw.w + o0 * dw.so + i * dw.si + t * dw.st;
                    const float *from = acc + (t * CB + i - cb * CB) * ow;
                    for (int o = 0; o < n; o++)
                        to[o * dw.so] = from[o];
                }
        }
}

/* ---- the forward loop -------------------------------------------------------- */

/* Runs n conv__fwd ops of one geometry (the same input rows, groups and
 * domain; their own weights and outputs) over their domain on k's rows.
 * Work items are (output group, image, row), group outermost so that one
 * thread's consecutive items share the group's packed weights (295 KB for
 * 4 blocks at 256 input channels: L2-resident, 1 MB per core here); each
 * item runs the n ops on its row one after the other, so that the
 * transposed conv's four sub-positions, which write every other pixel of
 * every other row, fill an output row's cache lines while they are in L1
 * (as four passes over the output, each line was fetched and written back
 * twice: 21 GFLOPS against 61-74 for the other transposed convs,
 * bench_conv's up1 at 1 thread, AVX2), and one parallel region serves
 * the four. Guided scheduling: contiguous runs of items, smaller towards
 * the end, so a thread slowed by the machine hands its last rows to the
 * other (static halves: 49.1 -> 50.0 images/s at 128 px b4, 50.3 -> 51.7
 * at b8, medians of interleaved unet-train runs); each output row is
 * computed the same whoever runs it. */
static void run_fwd_n(const conv__kernel *k, const conv__fwd *d, int n)
{
    const int G = conv__group(d->nob);
    const int ngroups = (d->nob + G - 1) / G;
    const ptrdiff_t group_w = (ptrdiff_t)G * CB * d->ncib * d->ntaps * CB;
#pragma omp parallel for collapse(3) schedule(guided)
    for (int g = 0; g < ngroups; g++)
        for (int b = 0; b < d->b; b++)
            for (int y = 0; y < d->h; y++) {
                const int nb = d->nob - g * G < G ? d->nob - g * G : G;
                for (int t = 0; t < n; t++) {
                    const conv__fwd *e = d + t;
                    k->fwd_row(e, nb, e->in + b * e->in_bs + y * e->in_rs + e->in_org,
                               e->wp + g * group_w, e->bias ? e->bias + g * G * CB : NULL,
                               e->out + (g * G) * e->out_cs + b * e->out_bs + y * e->out_rs
                                   + e->out_org);
                }
            }
}

/* Runs one conv__fwd over its domain. */
static void run_fwd(const conv__kernel *k, const conv__fwd *d) { run_fwd_n(k, d, 1); }

/* ---- descriptors ----------------------------------------------------------- */

/* Packs weights for k's forward loop. */
static void pack(const conv__kernel *k, float *dst, conv__wview w, int nout, int nin, int ntaps)
{
    pack_weights(dst, w, nout, nin, ntaps, conv__group(blocks(nout)), k->round, k->bf16);
}

/* Padded bias: whole groups plus a block of slack for the last zmm of an
 * odd group. Returns the floats written. */
static size_t pack_bias(float *bp, const float *bias, int co)
{
    const int nob = blocks(co), G = conv__group(nob);
    const int n = ((nob + G - 1) / G * G + 1) * CB;
    for (int o = 0; o < n; o++)
        bp[o] = o < co ? bias[o] : 0.0f;
    return (size_t)n;
}

static void taps3x3(ptrdiff_t *tap, ptrdiff_t rs)
{
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            tap[kh * 3 + kw] = (kh - 1) * rs + (kw - 1) * CB;
}

/* A conv3x3-shaped forward op from x (nin channels) to y (nout channels),
 * both H x W (same plane geometry: only the block counts differ). */
static conv__fwd fwd3x3(float *y, int nout, const float *x, int nin, shape s, const float *wp)
{
    shape si = {nin, s.b, s.h, s.w};
    conv__geo g = conv__geo_of(si);
    conv__fwd d = {0};
    d.in = x;
    d.in_cs = g.cs, d.in_bs = g.bs, d.in_rs = g.rs, d.in_px = CB, d.in_org = g.org;
    d.ncib = blocks(nin);
    d.icn_last = nin - (d.ncib - 1) * CB;
    d.ntaps = 9;
    taps3x3(d.tap, g.rs);
    d.stencil3 = 1;
    d.wp = wp;
    d.out = y;
    d.out_cs = g.cs, d.out_bs = g.bs, d.out_rs = g.rs, d.out_px = CB, d.out_org = g.org;
    d.nob = blocks(nout);
    d.b = s.b, d.h = s.h, d.w = s.w;
    return d;
}

static conv__fwd fwd1x1(float *y, int nout, const float *x, int nin, shape s, const float *wp,
                        const float *bias)
{
    conv__fwd d = fwd3x3(y, nout, x, nin, s, wp);
    d.ntaps = 1;
    d.tap[0] = 0;
    d.stencil3 = 0;
    d.bias = bias;
    return d;
}

/* A weight-gradient op of dout (co channels: geometry gd, read with row
 * and pixel strides dv_rs, dv_px) against in (shape s), taps left at 0 for
 * the caller to set. */
static conv__dw dw_of(const conv__kernel *k, const float *dout, conv__geo gd, ptrdiff_t dv_rs,
                      ptrdiff_t dv_px, int co, const float *in, shape s, int ntaps,
                      float *scratch)
{
    conv__geo gi = conv__geo_of(s);
    conv__dw d = {0};
    d.dv = dout;
    d.dv_cs = gd.cs, d.dv_bs = gd.bs, d.dv_rs = dv_rs, d.dv_px = dv_px, d.dv_org = gd.org;
    d.nob = blocks(co);
    d.bc = in;
    d.bc_cs = gi.cs, d.bc_bs = gi.bs, d.bc_rs = gi.rs, d.bc_px = CB, d.bc_org = gi.org;
    d.ncib = blocks(s.c);
    d.icn_last = s.c - (d.ncib - 1) * CB;
    d.ntaps = ntaps;
    d.b = s.b, d.h = s.h, d.w = s.w;
    const int G = k->dw_group(d.nob);
    d.nchunks = (int)conv__dw_chunks((d.nob + G - 1) / G * d.ncib, s.b * s.h);
    d.part = scratch;
    return d;
}

/* ---- conv3x3 -------------------------------------------------------------- */

/* out (co,B,H,W) = w (co,Ci,3,3) * in (Ci,B,H,W) */
void conv__3x3_forward(const conv__kernel *k, float *out, const float *in, shape s,
                       const float *w, int co, float *scratch)
{
    const conv__wview v = {w, (ptrdiff_t)s.c * 9, 9, 1};
    if (conv__wino_use(k, s, co)) {
        conv__wino_3x3(k, out, in, s, v, co, s.c, scratch);
        return;
    }
    pack(k, scratch, v, co, s.c, 9);
    conv__fwd d = fwd3x3(out, co, in, s.c, s, scratch);
    run_fwd(k, &d);
}

/* din (Ci,B,H,W) = w^T (co,Ci,3,3) *' dout (co,B,H,W) */
void conv__3x3_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                             const float *w, int co, float *scratch)
{
    /* (o, i, t) of the flipped transpose is w[i][o][8 - t]. */
    const conv__wview v = {w + 8, 9, (ptrdiff_t)s.c * 9, -1};
    if (conv__wino_use(k, s, co)) {
        conv__wino_3x3(k, din, dout, s, v, s.c, co, scratch);
        return;
    }
    pack(k, scratch, v, s.c, co, 9);
    conv__fwd d = fwd3x3(din, s.c, dout, co, s, scratch);
    run_fwd(k, &d);
}

/* dw (co,Ci,3,3) = sum over B,H,W of dout (co,B,H,W) x in (Ci,B,H,W) */
void conv__3x3_backward_weight(const conv__kernel *k, float *dw, const float *dout,
                               const float *in, shape s, int co, float *scratch)
{
    if (conv__wino_dw_use(k, s, co)) {
        conv__wino_3x3_dw(k, dw, dout, in, s, co, scratch);
        return;
    }
    conv__geo g = conv__geo_of(s);
    conv__dw d = dw_of(k, dout, g, g.rs, CB, co, in, s, 9, scratch);
    taps3x3(d.bc_tap, g.rs);
    d.stencil3 = 1;
    k->run_dw(&d);
    dw_reduce(d.part, d.nchunks, co, s.c, 9, k->dw_group(d.nob),
              (conv__dwview){dw, (ptrdiff_t)s.c * 9, 9, 1});
}

/* ---- ConvTranspose2d 2x2, stride 2 ----------------------------------------- */

/* out (co,B,2H,2W) = w (Ci,co,2,2) scattered from in (Ci,B,H,W) + bias (co):
 * four 1-tap ops, one per output sub-position t = 2a + c, each writing
 * every other pixel of every other row, run row by row together. */
void conv__t2x2_forward(const conv__kernel *k, float *out, const float *in, shape s,
                        const float *w, const float *bias, int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    conv__geo gi = conv__geo_of(s), go = conv__geo_of(so);
    const int nob = blocks(co), G = conv__group(nob);
    float *bp = scratch;
    float *wp = scratch + pack_bias(bp, bias, co);
    const size_t sub = (size_t)((nob + G - 1) / G * G) * CB * (size_t)blocks(s.c) * CB;
    /* Sub-position t is a 1-tap op with (o, i) at w[i][o][t]. */
    for (int t = 0; t < 4; t++)
        pack(k, wp + (size_t)t * sub, (conv__wview){w + t, 4, (ptrdiff_t)co * 4, 0}, co, s.c,
             1);
    conv__fwd ops[4];
    for (int t = 0; t < 4; t++) {
        const int a = t >> 1, c = t & 1;
        conv__fwd d = {0};
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
        ops[t] = d;
    }
    run_fwd_n(k, ops, 4);
}

/* din (Ci,B,H,W) = w (Ci,co,2,2) gathered from dout (co,B,2H,2W): one op
 * with the four sub-positions as taps. */
void conv__t2x2_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                              const float *w, int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    conv__geo gi = conv__geo_of(s), go = conv__geo_of(so);
    pack(k, scratch, (conv__wview){w, (ptrdiff_t)co * 4, 4, 1}, s.c, co, 4);
    conv__fwd d = {0};
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
    run_fwd(k, &d);
}

/* dw (Ci,co,2,2) = sum in (Ci,B,H,W) x dout (co,B,2H,2W); db (co) = sum dout */
void conv__t2x2_backward_weight(const conv__kernel *k, float *dw, float *db, const float *dout,
                                const float *in, shape s, int co, float *scratch)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    conv__geo go = conv__geo_of(so);
    conv__dw d = dw_of(k, dout, go, 2 * go.rs, 2 * CB, co, in, s, 4, scratch);
    for (int t = 0; t < 4; t++)
        d.dv_tap[t] = (t >> 1) * go.rs + (t & 1) * CB;
    k->run_dw(&d);
    dw_reduce(d.part, d.nchunks, co, s.c, 4, k->dw_group(d.nob),
              (conv__dwview){dw, 4, (ptrdiff_t)co * 4, 1});
    k->bias_grad(db, dout, so);
}

/* ---- conv1x1 ------------------------------------------------------------------ */

/* out (co,B,H,W) = w (co,Ci,1,1) * in (Ci,B,H,W) + bias (co) */
void conv__1x1_forward(const conv__kernel *k, float *out, const float *in, shape s,
                       const float *w, const float *bias, int co, float *scratch)
{
    float *bp = scratch;
    float *wp = scratch + pack_bias(bp, bias, co);
    pack(k, wp, (conv__wview){w, s.c, 1, 0}, co, s.c, 1);
    conv__fwd d = fwd1x1(out, co, in, s.c, s, wp, bp);
    run_fwd(k, &d);
}

/* din (Ci,B,H,W) = w^T (co,Ci) * dout (co,B,H,W) */
void conv__1x1_backward_data(const conv__kernel *k, float *din, const float *dout, shape s,
                             const float *w, int co, float *scratch)
{
    pack(k, scratch, (conv__wview){w, 1, s.c, 0}, s.c, co, 1);
    conv__fwd d = fwd1x1(din, s.c, dout, co, s, scratch, NULL);
    run_fwd(k, &d);
}

/* dw (co,Ci,1,1) = sum dout (co,B,H,W) x in (Ci,B,H,W); db (co) = sum dout */
void conv__1x1_backward_weight(const conv__kernel *k, float *dw, float *db, const float *dout,
                               const float *in, shape s, int co, float *scratch)
{
    shape so = {co, s.b, s.h, s.w};
    conv__geo g = conv__geo_of(s);
    conv__dw d = dw_of(k, dout, g, g.rs, CB, co, in, s, 1, scratch);
    k->run_dw(&d);
    dw_reduce(d.part, d.nchunks, co, s.c, 1, k->dw_group(d.nob),
              (conv__dwview){dw, s.c, 1, 0});
    k->bias_grad(db, dout, so);
}
