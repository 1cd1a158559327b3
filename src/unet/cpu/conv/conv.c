/* SPDX-License-Identifier: MIT */
/*
 * conv.c: the public convolution calls of conv.h. Each one runs the shared
 * driver (drive.c) on the AVX-512 kernel (avx512.c) or the AVX2+FMA kernel
 * (avx2.c), or the naive reference (ref.c): the highest the CPU runs and
 * UNET_KERNELS allows (isa.h has the one rule for every op); the bf16
 * calls the same way on the AVX512_BF16 kernel (avx512bf16.c) or the
 * reference's bf16 loops. Also sizes the caller's scratch, for whichever
 * kernel runs (the bf16 kernel packs into less than the float32 ones and
 * reduces the same partials). No arithmetic happens here.
 */
#include "isa.h"
#include "kernel.h"

#include <stdlib.h>
#include <string.h>

/* The kernels the convolutions have (isa.h); which one runs is decided on
 * every call: a getenv and a few CPUID-cached bit tests are nothing next
 * to a convolution, and there is no static state to race on. */
#define CONV_HAS (UNET_KERNEL_BIT(UNET_KERNEL_AVX2) | UNET_KERNEL_BIT(UNET_KERNEL_AVX512))
/* And those of the bf16 convolutions. */
#define CONV_HAS_BF16 UNET_KERNEL_BIT(UNET_KERNEL_AVX512BF16)

const char *conv_kernels_name(void)
{
    return unet_kernel_name(unet_kernel_pick(CONV_HAS));
}

const char *conv_kernels_name_bf16(void)
{
    return unet_kernel_name(unet_kernel_pick(CONV_HAS_BF16));
}

/* ---- scratch sizing ------------------------------------------------------------ */

static size_t nblk(int c) { return (size_t)((c + CB - 1) / CB); }

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}


/* Output channels rounded up to whole AVX-512 groups (2 or 4 blocks). */
static size_t grp_ch(int c)
{
    size_t g = (size_t)conv__group((int)nblk(c));
    return (nblk(c) + g - 1) / g * g * CB;
}

/* Floats of dW partials, for whichever kernel is larger. AVX2: chunks x
 * pairs x input blocks x taps x 8 x 16. AVX-512: chunks x groups x input
 * blocks x taps x 8 x (group blocks x 8). Both depend on the shape only. */
static size_t dw_floats(shape s, int co, int taps)
{
    size_t pairs = (nblk(co) + 1) / 2;
    size_t chunks = conv__dw_chunks((int)(pairs * nblk(s.c)), s.b * s.h);
    size_t a2 = chunks * pairs * nblk(s.c) * (size_t)taps * CB * 16;
    size_t g = (size_t)conv__group((int)nblk(co));
    size_t groups = (nblk(co) + g - 1) / g;
    size_t zchunks = conv__dw_chunks((int)(groups * nblk(s.c)), s.b * s.h);
    size_t a5 = zchunks * groups * nblk(s.c) * (size_t)taps * CB * (g * CB);
    return a2 > a5 ? a2 : a5;
}

/* Packed forward-type weights: pair_ch (AVX2) <= grp_ch (AVX-512). Padded
 * bias: (nob + 1) blocks for AVX2, whole groups + 1 block for AVX-512. */
static size_t wpack(int nout, int nin, int taps)
{
    return grp_ch(nout) * nblk(nin) * CB * (size_t)taps;
}

static size_t bias_pad(int co) { return grp_ch(co) + CB; }

/* Tiles of a shape that Winograd takes: at most 2^30 (kernel.h), where
 * the planner also asks about shapes whose tiles overflow an int. */
static int wino_tiles(shape s) { return s.b * (s.h / 2) * (s.w / 2); }

/* Winograd's (kernel.h) on either float32 kernel that takes the shape:
 * for forward and backward-data, 16 positions of packed 1-tap weights,
 * then the band buffer; for the weight gradient, its sums and its band
 * buffer; else 0. */
static size_t wino(shape s, int nout, int nin)
{
    const conv__kernel *ks[2] = {conv__kernel_avx2(), conv__kernel_avx512()};
    size_t f = 0;
    for (int i = 0; i < 2; i++) {
        const size_t fwd =
            conv__wino_takes(ks[i], s, nout)
                ? 16 * wpack(nout, nin, 1) + conv__wino_buf_floats(nin, nout, wino_tiles(s))
                : 0;
        const size_t dw =
            conv__wino_dw_takes(ks[i], s, nout)
                ? conv__wino_dw_floats(nin, nout, ks[i]->wino_dw_lanes, wino_tiles(s))
                : 0;
        f = max3(f, fwd, dw);
    }
    return f;
}

size_t conv3x3_scratch_floats(shape s, int co)
{
    size_t direct = max3(wpack(co, s.c, 9), /* forward weights */
                         wpack(s.c, co, 9), /* backward-data weights */
                         dw_floats(s, co, 9));
    return max3(direct, wino(s, co, s.c), wino(s, s.c, co));
}

size_t convt2x2_scratch_floats(shape s, int co)
{
    return max3(bias_pad(co) + 4 * wpack(co, s.c, 1), /* bias + weights */
                wpack(s.c, co, 4), dw_floats(s, co, 4));
}

size_t conv1x1_scratch_floats(shape s, int co)
{
    return max3(bias_pad(co) + wpack(co, s.c, 1), wpack(s.c, co, 1), dw_floats(s, co, 1));
}

/* ---- dispatch ---------------------------------------------------------------------- */

/* The SIMD kernel to run in float32 or (bf) bf16, or NULL for the
 * reference of that precision. */
static const conv__kernel *simd(int bf)
{
    if (bf)
        return unet_kernel_pick(CONV_HAS_BF16) == UNET_KERNEL_AVX512BF16
                   ? conv__kernel_avx512bf16()
                   : NULL;
    switch (unet_kernel_pick(CONV_HAS)) {
    case UNET_KERNEL_AVX512: return conv__kernel_avx512();
    case UNET_KERNEL_AVX2: return conv__kernel_avx2();
    default: return NULL;
    }
}

/* Each op once, for both precisions: the kernel, else the reference. */
static void c3_fwd(int bf, float *out, const float *in, shape s, const float *w, int co,
                   float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__3x3_forward(k, out, in, s, w, co, scratch);
    else
        (bf ? conv3x3_forward_ref_bf16 : conv3x3_forward_ref)(out, in, s, w, co);
}

static void c3_bwd_data(int bf, float *din, const float *dout, shape s, const float *w, int co,
                        float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__3x3_backward_data(k, din, dout, s, w, co, scratch);
    else
        (bf ? conv3x3_backward_data_ref_bf16 : conv3x3_backward_data_ref)(din, dout, s, w, co);
}

static void c3_bwd_weight(int bf, float *dw, const float *dout, const float *in, shape s, int co,
                          float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__3x3_backward_weight(k, dw, dout, in, s, co, scratch);
    else
        (bf ? conv3x3_backward_weight_ref_bf16 : conv3x3_backward_weight_ref)(dw, dout, in, s, co);
}

static void ct_fwd(int bf, float *out, const float *in, shape s, const float *w,
                   const float *bias, int co, float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__t2x2_forward(k, out, in, s, w, bias, co, scratch);
    else
        (bf ? convt2x2_forward_ref_bf16 : convt2x2_forward_ref)(out, in, s, w, bias, co);
}

static void ct_bwd_data(int bf, float *din, const float *dout, shape s, const float *w, int co,
                        float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__t2x2_backward_data(k, din, dout, s, w, co, scratch);
    else
        (bf ? convt2x2_backward_data_ref_bf16 : convt2x2_backward_data_ref)(din, dout, s, w, co);
}

static void ct_bwd_weight(int bf, float *dw, float *db, const float *dout, const float *in,
                          shape s, int co, float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__t2x2_backward_weight(k, dw, db, dout, in, s, co, scratch);
    else
        (bf ? convt2x2_backward_weight_ref_bf16 : convt2x2_backward_weight_ref)(dw, db, dout, in, s,
                                                                              co);
}

static void c1_fwd(int bf, float *out, const float *in, shape s, const float *w,
                   const float *bias, int co, float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__1x1_forward(k, out, in, s, w, bias, co, scratch);
    else
        (bf ? conv1x1_forward_ref_bf16 : conv1x1_forward_ref)(out, in, s, w, bias, co);
}

static void c1_bwd_data(int bf, float *din, const float *dout, shape s, const float *w, int co,
                        float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__1x1_backward_data(k, din, dout, s, w, co, scratch);
    else
        (bf ? conv1x1_backward_data_ref_bf16 : conv1x1_backward_data_ref)(din, dout, s, w, co);
}

static void c1_bwd_weight(int bf, float *dw, float *db, const float *dout, const float *in,
                          shape s, int co, float *scratch)
{
    const conv__kernel *k = simd(bf);
    if (k)
        conv__1x1_backward_weight(k, dw, db, dout, in, s, co, scratch);
    else
        (bf ? conv1x1_backward_weight_ref_bf16 : conv1x1_backward_weight_ref)(dw, db, dout, in, s,
                                                                            co);
}

/* ---- the calls of conv.h: float32, then bf16 ------------------------------------- */

/* NAME (PARAMS) and NAME_bf16 (PARAMS) calling IMPL(0 or 1, ARGS...). */
#define CONV_PAIR(name, impl, params, ...)                                                 \
    void name params { impl(0, __VA_ARGS__); }                                             \
    void name##_bf16 params { impl(1, __VA_ARGS__); }

CONV_PAIR(conv3x3_forward, c3_fwd,
          (float *out, const float *in, shape s, const float *w, int co, float *scratch), out, in,
          s, w, co, scratch)
CONV_PAIR(conv3x3_backward_data, c3_bwd_data,
          (float *din, const float *dout, shape s, const float *w, int co, float *scratch), din,
          dout, s, w, co, scratch)
CONV_PAIR(conv3x3_backward_weight, c3_bwd_weight,
          (float *dw, const float *dout, const float *in, shape s, int co, float *scratch), dw,
          dout, in, s, co, scratch)
CONV_PAIR(convt2x2_forward, ct_fwd,
          (float *out, const float *in, shape s, const float *w, const float *bias, int co,
           float *scratch),
          out, in, s, w, bias, co, scratch)
CONV_PAIR(convt2x2_backward_data, ct_bwd_data,
          (float *din, const float *dout, shape s, const float *w, int co, float *scratch), din,
          dout, s, w, co, scratch)
CONV_PAIR(convt2x2_backward_weight, ct_bwd_weight,
          (float *dw, float *db, const float *dout, const float *in, shape s, int co,
           float *scratch),
          dw, db, dout, in, s, co, scratch)
CONV_PAIR(conv1x1_forward, c1_fwd,
          (float *out, const float *in, shape s, const float *w, const float *bias, int co,
           float *scratch),
          out, in, s, w, bias, co, scratch)
CONV_PAIR(conv1x1_backward_data, c1_bwd_data,
          (float *din, const float *dout, shape s, const float *w, int co, float *scratch), din,
          dout, s, w, co, scratch)
CONV_PAIR(conv1x1_backward_weight, c1_bwd_weight,
          (float *dw, float *db, const float *dout, const float *in, shape s, int co,
           float *scratch),
          dw, db, dout, in, s, co, scratch)
