/* SPDX-License-Identifier: MIT */
/*
 * pool.c: 2x2 stride-2 max pooling on the blocked layout (see pool.h for
 * semantics and why backward recomputes the argmax). SIMD runs across the 8
 * channels of a block: one output pixel is one 8-lane compare/select over 4
 * input pixels, which GCC vectorises from the plain lane loops below (no
 * intrinsics).
 */
#include "isa.h"
#include "pool.h"
#include "lanes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define POOL_AVX2 __attribute__((target("avx2")))
#else
#define POOL_AVX2
#endif
#define POOL_INLINE static inline __attribute__((always_inline))

/* The kernels pooling has besides its reference (isa.h): the lane loops
 * below built for the baseline ISA and for AVX2. */
#define POOL_HAS (UNET_KERNEL_BIT(UNET_KERNEL_BASE) | UNET_KERNEL_BIT(UNET_KERNEL_AVX2))

const char *pool_kernels_name(void)
{
    return unet_kernel_name(unet_kernel_pick(POOL_HAS));
}

/* torch's update rule: take v when v > m or v is NaN (v != v). */
#define POOL_TAKE(v, m) ((v) > (m) || (v) != (v))

/* One output row: r0, r1 are the two input rows, ow output pixels. */
POOL_INLINE void pool_fwd_body(float *restrict y, const float *restrict r0,
                               const float *restrict r1, int ow)
{
    for (int i = 0; i < ow; i++)
        for (int l = 0; l < CB; l++) {
            float m = r0[2 * i * CB + l];
            float v = r0[(2 * i + 1) * CB + l];
            m = POOL_TAKE(v, m) ? v : m;
            v = r1[2 * i * CB + l];
            m = POOL_TAKE(v, m) ? v : m;
            v = r1[(2 * i + 1) * CB + l];
            m = POOL_TAKE(v, m) ? v : m;
            y[i * CB + l] = m;
        }
}

/* One output row of backward: writes the two dx rows d0, d1 (ow windows;
 * the caller zeroes a floored last column). The forward's choice as lane
 * masks, no branches (with a branch per lane it took 329 us a call at
 * 128 px b4, 5x the forward: bench/omp_regions.c on unet-train). */
POOL_INLINE void pool_bwd_body(float *restrict d0, float *restrict d1,
                               const float *restrict dy, const float *restrict r0,
                               const float *restrict r1, int ow)
{
    for (int i = 0; i < ow; i++) {
        const v8f a = ld(r0 + 2 * i * CB), b = ld(r0 + (2 * i + 1) * CB);
        const v8f c = ld(r1 + 2 * i * CB), d = ld(r1 + (2 * i + 1) * CB);
        /* POOL_TAKE lane-wise, and the running maximum as a select. */
        const v8i tb = (b > a) | (b != b);
        const v8f mb = (v8f)(((v8i)b & tb) | ((v8i)a & ~tb));
        const v8i tc = (c > mb) | (c != c);
        const v8f mc = (v8f)(((v8i)c & tc) | ((v8i)mb & ~tc));
        const v8i td = (d > mc) | (d != d);
        const v8f g = ld(dy + i * CB);
        st(d0 + 2 * i * CB, v8_keep(g, ~(tb | tc | td)));
        st(d0 + (2 * i + 1) * CB, v8_keep(g, tb & ~(tc | td)));
        st(d1 + 2 * i * CB, v8_keep(g, tc & ~td));
        st(d1 + (2 * i + 1) * CB, v8_keep(g, td));
    }
}

static void pool_fwd_sse(float *y, const float *r0, const float *r1, int ow)
{
    pool_fwd_body(y, r0, r1, ow);
}
POOL_AVX2 static void pool_fwd_avx2(float *y, const float *r0, const float *r1, int ow)
{
    pool_fwd_body(y, r0, r1, ow);
}
static void pool_bwd_sse(float *d0, float *d1, const float *dy, const float *r0,
                         const float *r1, int ow)
{
    pool_bwd_body(d0, d1, dy, r0, r1, ow);
}
POOL_AVX2 static void pool_bwd_avx2(float *d0, float *d1, const float *dy, const float *r0,
                                    const float *r1, int ow)
{
    pool_bwd_body(d0, d1, dy, r0, r1, ow);
}

void maxpool2x2_forward(float *restrict y, const float *restrict x, shape s)
{
    unet_kernel kern = unet_kernel_pick(POOL_HAS);
    if (kern == UNET_KERNEL_REF) {
        maxpool2x2_forward_ref(y, x, s);
        return;
    }
    shape o = maxpool2x2_shape(s);
    int rows = shape_blocks(s) * s.b * o.h;
    int avx = kern == UNET_KERNEL_AVX2;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        int u = i / o.h, r = i % o.h; /* unit = block * B + image */
        int blk = u / s.b, b = u % s.b;
        const float *r0 = x + shape_at(s, blk * CB, b, 2 * r, 0);
        const float *r1 = x + shape_at(s, blk * CB, b, 2 * r + 1, 0);
        float *yr = y + shape_at(o, blk * CB, b, r, 0);
        if (avx)
            pool_fwd_avx2(yr, r0, r1, o.w);
        else
            pool_fwd_sse(yr, r0, r1, o.w);
    }
}

void maxpool2x2_forward_ref(float *restrict y, const float *restrict x, shape s)
{
    shape o = maxpool2x2_shape(s);
    for (int c = 0; c < shape_blocks(s) * CB; c++)
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < o.h; i++)
                for (int j = 0; j < o.w; j++) {
                    float m = x[shape_at(s, c, b, 2 * i, 2 * j)];
                    for (int k = 1; k < 4; k++) {
                        float v = x[shape_at(s, c, b, 2 * i + k / 2, 2 * j + k % 2)];
                        if (POOL_TAKE(v, m))
                            m = v;
                    }
                    y[shape_at(o, c, b, i, j)] = m;
                }
}

void maxpool2x2_backward(float *restrict dx, const float *restrict dy,
                         const float *restrict x, shape s)
{
    unet_kernel kern = unet_kernel_pick(POOL_HAS);
    if (kern == UNET_KERNEL_REF) {
        maxpool2x2_backward_ref(dx, dy, x, s);
        return;
    }
    shape o = maxpool2x2_shape(s);
    /* One task per dx row pair, plus the floored last row when H is odd. */
    int ph = (s.h + 1) / 2;
    int rows = shape_blocks(s) * s.b * ph;
    int avx = kern == UNET_KERNEL_AVX2;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        int u = i / ph, r = i % ph;
        int blk = u / s.b, b = u % s.b;
        float *d0 = dx + shape_at(s, blk * CB, b, 2 * r, 0);
        if (r == o.h) { /* odd H: last input row never selected */
            memset(d0, 0, (size_t)s.w * CB * sizeof *d0);
            continue;
        }
        float *d1 = dx + shape_at(s, blk * CB, b, 2 * r + 1, 0);
        const float *r0 = x + shape_at(s, blk * CB, b, 2 * r, 0);
        const float *r1 = x + shape_at(s, blk * CB, b, 2 * r + 1, 0);
        const float *g = dy + shape_at(o, blk * CB, b, r, 0);
        if (avx)
            pool_bwd_avx2(d0, d1, g, r0, r1, o.w);
        else
            pool_bwd_sse(d0, d1, g, r0, r1, o.w);
        if (s.w & 1) { /* odd W: last column never selected */
            memset(d0 + (size_t)(s.w - 1) * CB, 0, CB * sizeof *d0);
            memset(d1 + (size_t)(s.w - 1) * CB, 0, CB * sizeof *d1);
        }
    }
}

void maxpool2x2_backward_ref(float *restrict dx, const float *restrict dy,
                             const float *restrict x, shape s)
{
    shape o = maxpool2x2_shape(s);
    for (int c = 0; c < shape_blocks(s) * CB; c++)
        for (int b = 0; b < s.b; b++) {
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++)
                    dx[shape_at(s, c, b, i, j)] = 0.0f;
            for (int i = 0; i < o.h; i++)
                for (int j = 0; j < o.w; j++) {
                    int best = 0;
                    float m = x[shape_at(s, c, b, 2 * i, 2 * j)];
                    for (int k = 1; k < 4; k++) {
                        float v = x[shape_at(s, c, b, 2 * i + k / 2, 2 * j + k % 2)];
                        if (POOL_TAKE(v, m)) {
                            m = v;
                            best = k;
                        }
                    }
                    dx[shape_at(s, c, b, 2 * i + best / 2, 2 * j + best % 2)] =
                        dy[shape_at(o, c, b, i, j)];
                }
        }
}
