/* SPDX-License-Identifier: MIT */
/*
 * bn.c: BatchNorm2d + ReLU on the blocked layout (see bn.h for the formulas
 * and what is kept for backward). It does not allocate; all partial sums
 * live in the caller's scratch.
 *
 * Work is split into units, one per (channel block, image): a padded plane
 * of (H+2)(W+2)*8 floats, 540 KB at 128x128, which fits the 2 MB L2 here.
 * - Forward statistics take two passes over a unit back to back (sum, then
 *   sum of squares around that unit's own mean), so the second pass reads
 *   L2, not L3/DRAM. Units are then merged in unit order with the exact
 *   shift identity sum (x-m)^2 = sum (x-c)^2 + 2(c-m) sum (x-c) + n(c-m)^2,
 *   which is as accurate as torch's global two-pass formula.
 * - Within a row, the 8 lanes of a block accumulate in float (two
 *   accumulators, even and odd pixels); each row's partial is added to a
 *   double. That keeps the inner loop at one vector add per pixel while the
 *   float error stays that of a W-term sum (W <= 256).
 * - Elementwise passes (y, dx) are split by rows of units; any split gives
 *   the same bits.
 */
#include "isa.h"
#include "bn.h"
#include "lanes.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Doubles per unit slot: forward uses 24 (sum, centred sum of squares,
 * centre), backward 16. Padded to 256 bytes so that two threads never write
 * the same cache line. */
#define BN_SLOT 32

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define BN_AVX2 __attribute__((target("avx2")))
#else
#define BN_AVX2
#endif
#define BN_INLINE static inline __attribute__((always_inline))

/* The kernels BN has besides its reference (isa.h): the vector code below
 * built for the baseline ISA and for AVX2. */
#define BN_HAS (UNET_KERNEL_BIT(UNET_KERNEL_BASE) | UNET_KERNEL_BIT(UNET_KERNEL_AVX2))

const char *bn_kernels_name(void)
{
    return unet_kernel_name(unet_kernel_pick(BN_HAS));
}

static double *bn_slots(float *scratch)
{
    uintptr_t a = ((uintptr_t)scratch + 63u) & ~(uintptr_t)63u;
    return (double *)a;
}

/* The per-channel totals after the unit slots: 2 C + 1 doubles (sums,
 * then sums of squares or products, then the count), what a sync hook
 * sums over processes. */
static double *bn_totals(float *scratch, shape s)
{
    return bn_slots(scratch) + (size_t)shape_blocks(s) * (size_t)s.b * BN_SLOT;
}

size_t bn_scratch_floats(shape s)
{
    return ((size_t)shape_blocks(s) * (size_t)s.b * BN_SLOT + 2 * (size_t)s.c + 1) * 2 + 16;
}

/* Pointer to interior row r of unit u (channel block * B + image). */
static inline size_t bn_row(shape s, int u, int r)
{
    return (size_t)u * shape_plane(s) + ((size_t)(r + 1) * (size_t)(s.w + 2) + 1) * CB;
}

/* ---- per-unit kernels (inlined into an SSE2 and an AVX2 build) ---------- */

/* g = y > 0 ? d : 0 (torch's threshold_backward); relu(v) = max(v, 0).
 * Backward takes the mask from the pre-ReLU value v = x * a + b, which
 * is > 0 exactly where relu(v) is: it reads x, which it needs anyway,
 * instead of the ReLU output as well (two reads of a tensor fewer per BN
 * layer). */
#define relu_mask(y, d) v8_keep(d, (y) > (v8f){0})
#define relu(v) relu_mask(v, v)

/* out[0..7] = sum x, out[8..15] = sum (x - c)^2, out[16..23] = c, where c is
 * this unit's mean rounded to float. p: one unit's interior rows. */
BN_INLINE void bn_stats_body(const float *restrict p, size_t rstride, int h, int w,
                             double *restrict out)
{
    double s[CB], q[CB];
    for (int l = 0; l < CB; l++)
        s[l] = q[l] = 0.0;
    for (int r = 0; r < h; r++) {
        const float *row = p + (size_t)r * rstride;
        v8f a0 = {0}, a1 = {0};
        int x = 0;
        for (; x + 1 < w; x += 2) {
            a0 += ld(row + x * CB);
            a1 += ld(row + (x + 1) * CB);
        }
        if (x < w)
            a0 += ld(row + x * CB);
        a0 += a1;
        for (int l = 0; l < CB; l++)
            s[l] += (double)a0[l];
    }
    double n = (double)h * (double)w;
    v8f c;
    for (int l = 0; l < CB; l++)
        c[l] = (float)(s[l] / n);
    for (int r = 0; r < h; r++) {
        const float *row = p + (size_t)r * rstride;
        v8f a0 = {0}, a1 = {0};
        int x = 0;
        for (; x + 1 < w; x += 2) {
            v8f d0 = ld(row + x * CB) - c, d1 = ld(row + (x + 1) * CB) - c;
            a0 += d0 * d0;
            a1 += d1 * d1;
        }
        if (x < w) {
            v8f d0 = ld(row + x * CB) - c;
            a0 += d0 * d0;
        }
        a0 += a1;
        for (int l = 0; l < CB; l++)
            q[l] += (double)a0[l];
    }
    for (int l = 0; l < CB; l++) {
        out[l] = s[l];
        out[CB + l] = q[l];
        out[2 * CB + l] = (double)c[l];
    }
}

/* One row: y = relu(x * a + b). */
BN_INLINE void bn_apply_body(float *restrict y, const float *restrict x, int w,
                             const float *restrict a, const float *restrict b)
{
    v8f va = ld(a), vb = ld(b);
    for (int i = 0; i < w; i++)
        st(y + i * CB, relu(ld(x + i * CB) * va + vb));
}

/* The backward elementwise pass's constants for one channel block: the
 * forward's a, b (its ReLU mask), mean, rstd, gamma, and torch's grad_mean
 * and k. */
typedef struct bn_bconst {
    float a[CB], b[CB], m[CB], rs[CB], ga[CB], gm[CB], k[CB];
} bn_bconst;

/* out[0..7] = sum g, out[8..15] = sum g (x - mean), g = dy [x a + b > 0]
 * (a, b: the forward's constants, bn_apply_lanes). */
BN_INLINE void bn_bred_body(const float *restrict dy, const float *restrict x, size_t rstride,
                            int h, int w, const float *restrict mean, const float *restrict a,
                            const float *restrict b, double *restrict out)
{
    double sg[CB], sq[CB];
    v8f m = ld(mean), va = ld(a), vb = ld(b);
    for (int l = 0; l < CB; l++)
        sg[l] = sq[l] = 0.0;
    for (int r = 0; r < h; r++) {
        size_t o = (size_t)r * rstride;
        v8f g0 = {0}, g1 = {0}, q0 = {0}, q1 = {0};
        int i = 0;
        for (; i + 1 < w; i += 2) {
            size_t k0 = o + (size_t)(i * CB), k1 = k0 + CB;
            v8f xa = ld(x + k0), xb = ld(x + k1);
            v8f ga = relu_mask(xa * va + vb, ld(dy + k0));
            v8f gb = relu_mask(xb * va + vb, ld(dy + k1));
            g0 += ga;
            g1 += gb;
            q0 += ga * (xa - m);
            q1 += gb * (xb - m);
        }
        if (i < w) {
            size_t k0 = o + (size_t)(i * CB);
            v8f xa = ld(x + k0);
            v8f ga = relu_mask(xa * va + vb, ld(dy + k0));
            g0 += ga;
            q0 += ga * (xa - m);
        }
        g0 += g1;
        q0 += q1;
        for (int l = 0; l < CB; l++) {
            sg[l] += (double)g0[l];
            sq[l] += (double)q0[l];
        }
    }
    for (int l = 0; l < CB; l++) {
        out[l] = sg[l];
        out[CB + l] = sq[l];
    }
}

/* One row: dx = ((g - gm) - (x - mean) k) * rstd * gamma, torch's order. */
BN_INLINE void bn_bapply_body(float *restrict dx, const float *restrict dy,
                              const float *restrict x, int w, const bn_bconst *c)
{
    v8f vm = ld(c->m), vgm = ld(c->gm), vk = ld(c->k), vrs = ld(c->rs), vga = ld(c->ga);
    v8f va = ld(c->a), vb = ld(c->b);
    for (int i = 0; i < w; i++) {
        int j = i * CB;
        v8f xv = ld(x + j);
        v8f g = relu_mask(xv * va + vb, ld(dy + j));
        st(dx + j, ((g - vgm) - (xv - vm) * vk) * vrs * vga);
    }
}

static void bn_stats_sse(const float *p, size_t rs, int h, int w, double *out)
{
    bn_stats_body(p, rs, h, w, out);
}
BN_AVX2 static void bn_stats_avx2(const float *p, size_t rs, int h, int w, double *out)
{
    bn_stats_body(p, rs, h, w, out);
}
static void bn_apply_sse(float *y, const float *x, int w, const float *a, const float *b)
{
    bn_apply_body(y, x, w, a, b);
}
BN_AVX2 static void bn_apply_avx2(float *y, const float *x, int w, const float *a,
                                  const float *b)
{
    bn_apply_body(y, x, w, a, b);
}
static void bn_bred_sse(const float *dy, const float *x, size_t rs, int h, int w,
                        const float *mean, const float *a, const float *b, double *out)
{
    bn_bred_body(dy, x, rs, h, w, mean, a, b, out);
}
BN_AVX2 static void bn_bred_avx2(const float *dy, const float *x, size_t rs, int h, int w,
                                 const float *mean, const float *a, const float *b,
                                 double *out)
{
    bn_bred_body(dy, x, rs, h, w, mean, a, b, out);
}
static void bn_bapply_sse(float *dx, const float *dy, const float *x, int w, const bn_bconst *c)
{
    bn_bapply_body(dx, dy, x, w, c);
}
BN_AVX2 static void bn_bapply_avx2(float *dx, const float *dy, const float *x, int w,
                                   const bn_bconst *c)
{
    bn_bapply_body(dx, dy, x, w, c);
}

/* Per-block constants from per-channel arrays; padded lanes get 0 so their
 * outputs (y, dx) come out 0. */
static void bn_lanes(float *dst, const float *src, int blk, int c)
{
    for (int l = 0; l < CB; l++) {
        int ch = blk * CB + l;
        dst[l] = ch < c ? src[ch] : 0.0f;
    }
}

/* The elementwise pass's constants for channel block blk: y = relu(x * a
 * + b) with a = rstd * gamma and b = beta - mean * a per lane, in float,
 * torch's order. */
static void bn_apply_lanes(float *a, float *b, int blk, shape s, const float *gamma,
                           const float *beta, const float *mean, const float *rstd)
{
    float g[CB], bt[CB], m[CB], rs[CB];
    bn_lanes(g, gamma, blk, s.c);
    bn_lanes(bt, beta, blk, s.c);
    bn_lanes(m, mean, blk, s.c);
    bn_lanes(rs, rstd, blk, s.c);
    for (int l = 0; l < CB; l++) {
        a[l] = rs[l] * g[l];
        b[l] = bt[l] - m[l] * a[l];
    }
}

/* The elementwise pass over every interior row (row i: unit i / h,
 * interior row i % h). The last phase of bn_relu_forward and the whole of
 * bn_relu_apply are this one function, so the two give the same bits by
 * construction (model.h recomputes the ReLU output with apply). Each
 * thread takes a contiguous run of rows and sets a block's constants when
 * it enters the block, not for every row (at 16x16 that setup cost as
 * much as the row). */
static void bn_apply_rows(float *y, const float *x, shape s, const float *gamma,
                          const float *beta, const float *mean, const float *rstd, int avx)
{
    const int rows = shape_blocks(s) * s.b * s.h;
#pragma omp parallel
    {
        int cur = -1;
        float a[CB] = {0}, b[CB] = {0};
#pragma omp for schedule(static)
        for (int i = 0; i < rows; i++) {
            int u = i / s.h, r = i % s.h, blk = u / s.b;
            if (blk != cur) {
                bn_apply_lanes(a, b, blk, s, gamma, beta, mean, rstd);
                cur = blk;
            }
            size_t o = bn_row(s, u, r);
            if (avx)
                bn_apply_avx2(y + o, x + o, s.w, a, b);
            else
                bn_apply_sse(y + o, x + o, s.w, a, b);
        }
    }
}

/* The reference's elementwise pass over channel c: y = relu(x * a + b),
 * or 0 for a padded channel (c >= s.c). bn_relu_forward_ref,
 * bn_relu_apply's reference and bn_relu_forward_eval_ref share it. */
static void bn_apply_channel_ref(float *y, const float *x, shape s, int c, float a, float b)
{
    for (int n = 0; n < s.b; n++)
        for (int i = 0; i < s.h; i++)
            for (int j = 0; j < s.w; j++) {
                size_t k = shape_at(s, c, n, i, j);
                float v = c < s.c ? x[k] * a + b : 0.0f;
                y[k] = v > 0.0f ? v : 0.0f;
            }
}

/* The references with a sync hook (below); the public *_ref pass none. */
static void bn_forward_ref(float *restrict y, const float *restrict x, shape s,
                           const float *restrict gamma, const float *restrict beta,
                           float *restrict mean, float *restrict rstd,
                           float *restrict running_mean, float *restrict running_var,
                           int64_t *restrict num_batches_tracked, double momentum, double eps,
                           const unet_sum_hook *sync);
static void bn_backward_ref(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                            const float *restrict dy, const float *restrict x, shape s,
                            const float *restrict gamma, const float *restrict beta,
                            const float *restrict mean, const float *restrict rstd,
                            const unet_sum_hook *sync);

/* Merge the units of each channel (unit order) into the channel's sum
 * and its sum of squares around the mean (through the shift identity),
 * set mean/rstd, update the running statistics. With a sync hook, the sums
 * and the count are those of every process (SyncBatchNorm): the sum and
 * the count first, then the squares around the global mean. tot: 2 C + 1
 * doubles. */
static void bn_merge(const double *slots, shape s, float *mean, float *rstd, float *rmean,
                     float *rvar, int64_t *nbt, double momentum, double eps,
                     const unet_sum_hook *sync, double *tot)
{
    double nu = (double)s.h * (double)s.w;
    double *m2 = tot + s.c + 1;
    for (int ch = 0; ch < s.c; ch++) {
        int blk = ch / CB, l = ch % CB;
        double sum = 0.0;
        for (int b = 0; b < s.b; b++)
            sum += slots[(size_t)(blk * s.b + b) * BN_SLOT + (size_t)l];
        tot[ch] = sum;
    }
    tot[s.c] = nu * (double)s.b;
    if (sync)
        sync->sum(sync->ctx, tot, s.c + 1);
    double n = tot[s.c];
    for (int ch = 0; ch < s.c; ch++) {
        int blk = ch / CB, l = ch % CB;
        double m = tot[ch] / n, q = 0.0;
        for (int b = 0; b < s.b; b++) {
            const double *u = slots + (size_t)(blk * s.b + b) * BN_SLOT;
            double c = u[2 * CB + l], dc = c - m, dev = u[l] - nu * c;
            q += u[CB + l] + 2.0 * dc * dev + nu * dc * dc;
        }
        m2[ch] = q;
    }
    if (sync)
        sync->sum(sync->ctx, m2, s.c);
    for (int ch = 0; ch < s.c; ch++) {
        double m = tot[ch] / n, q = m2[ch] < 0.0 ? 0.0 : m2[ch];
        mean[ch] = (float)m;
        rstd[ch] = (float)(1.0 / sqrt(q / n + eps));
        if (rmean)
            rmean[ch] = (float)(momentum * (double)mean[ch] + (1.0 - momentum) * (double)rmean[ch]);
        if (rvar)
            rvar[ch] = (float)(momentum * (q / (n - 1.0)) + (1.0 - momentum) * (double)rvar[ch]);
    }
    if (nbt)
        (*nbt)++;
}

void bn_relu_forward_sync(float *restrict y, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          float *restrict mean, float *restrict rstd,
                          float *restrict running_mean, float *restrict running_var,
                          int64_t *restrict num_batches_tracked, double momentum, double eps,
                          float *restrict scratch, const unet_sum_hook *sync)
{
    unet_kernel kern = unet_kernel_pick(BN_HAS);
    if (kern == UNET_KERNEL_REF) {
        bn_forward_ref(y, x, s, gamma, beta, mean, rstd, running_mean, running_var,
                       num_batches_tracked, momentum, eps, sync);
        return;
    }
    int nb = shape_blocks(s), units = nb * s.b;
    int avx = kern == UNET_KERNEL_AVX2;
    size_t rstride = (size_t)(s.w + 2) * CB;
    double *slots = bn_slots(scratch);
#pragma omp parallel for schedule(static)
    for (int u = 0; u < units; u++) {
        const float *p = x + bn_row(s, u, 0);
        double *o = slots + (size_t)u * BN_SLOT;
        if (avx)
            bn_stats_avx2(p, rstride, s.h, s.w, o);
        else
            bn_stats_sse(p, rstride, s.h, s.w, o);
    }
    /* Between two parallel regions: the hook may only be called from the
     * thread that runs the ops (tensor.h). */
    bn_merge(slots, s, mean, rstd, running_mean, running_var, num_batches_tracked, momentum,
             eps, sync, bn_totals(scratch, s));
    bn_apply_rows(y, x, s, gamma, beta, mean, rstd, avx);
}

void bn_relu_forward(float *restrict y, const float *restrict x, shape s,
                     const float *restrict gamma, const float *restrict beta,
                     float *restrict mean, float *restrict rstd,
                     float *restrict running_mean, float *restrict running_var,
                     int64_t *restrict num_batches_tracked, double momentum, double eps,
                     float *restrict scratch)
{
    bn_relu_forward_sync(y, x, s, gamma, beta, mean, rstd, running_mean, running_var,
                         num_batches_tracked, momentum, eps, scratch, NULL);
}

/* The reference forward, channel by channel; with a sync hook each
 * channel's sum and count, then its sum of squares, are summed over the
 * processes (two calls per channel: slow, but it is the reference). */
static void bn_forward_ref(float *restrict y, const float *restrict x, shape s,
                           const float *restrict gamma, const float *restrict beta,
                           float *restrict mean, float *restrict rstd,
                           float *restrict running_mean, float *restrict running_var,
                           int64_t *restrict num_batches_tracked, double momentum, double eps,
                           const unet_sum_hook *sync)
{
    for (int c = 0; c < shape_blocks(s) * CB; c++) {
        if (c >= s.c) { /* padded channel: output 0 */
            bn_apply_channel_ref(y, x, s, c, 0.0f, 0.0f);
            continue;
        }
        /* torch: sum in double, mean rounded to float, then the sum of
         * squares of (x - mean) in float terms, accumulated in double. */
        double sn[2] = {0.0, (double)s.b * (double)s.h * (double)s.w};
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++)
                    sn[0] += x[shape_at(s, c, b, i, j)];
        if (sync)
            sync->sum(sync->ctx, sn, 2);
        double n = sn[1];
        float m = (float)(sn[0] / n);
        double vs = 0.0;
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++) {
                    float d = x[shape_at(s, c, b, i, j)] - m;
                    vs += d * d;
                }
        if (sync)
            sync->sum(sync->ctx, &vs, 1);
        mean[c] = m;
        rstd[c] = (float)(1.0 / sqrt(vs / n + eps));
        if (running_mean)
            running_mean[c] = (float)(momentum * m + (1.0 - momentum) * running_mean[c]);
        if (running_var)
            running_var[c] =
                (float)(momentum * (vs / (n - 1.0)) + (1.0 - momentum) * running_var[c]);
        float a = rstd[c] * gamma[c];
        bn_apply_channel_ref(y, x, s, c, a, beta[c] - m * a);
    }
    if (num_batches_tracked)
        (*num_batches_tracked)++;
}

void bn_relu_forward_ref(float *restrict y, const float *restrict x, shape s,
                         const float *restrict gamma, const float *restrict beta,
                         float *restrict mean, float *restrict rstd,
                         float *restrict running_mean, float *restrict running_var,
                         int64_t *restrict num_batches_tracked, double momentum, double eps)
{
    bn_forward_ref(y, x, s, gamma, beta, mean, rstd, running_mean, running_var,
                   num_batches_tracked, momentum, eps, NULL);
}

/* Per channel of the backward: tot[c] = sum g, tot[C + c] = sum g (x -
 * mean) over this process's units (unit order), dbeta and dgamma from
 * them; tot[2C] the count. With a sync hook the totals become every
 * process's (dbeta and dgamma stay this process's: the gradient sum over
 * processes adds them up, as DDP does with SyncBatchNorm's). */
static void bn_backward_totals(const double *slots, shape s, const float *rstd, float *dgamma,
                               float *dbeta, const unet_sum_hook *sync, double *tot)
{
    for (int c = 0; c < s.c; c++) {
        int blk = c / CB, l = c % CB;
        double sg = 0.0, sq = 0.0;
        for (int b = 0; b < s.b; b++) {
            const double *u = slots + (size_t)(blk * s.b + b) * BN_SLOT;
            sg += u[l];
            sq += u[CB + l];
        }
        dbeta[c] = (float)sg;
        dgamma[c] = (float)(sq * (double)rstd[c]);
        tot[c] = sg;
        tot[s.c + c] = sq;
    }
    tot[2 * s.c] = (double)s.b * (double)s.h * (double)s.w;
    if (sync)
        sync->sum(sync->ctx, tot, 2 * s.c + 1);
}

/* Those of block blk from the totals (tot: 2 C + 1 doubles, the count
 * last). */
static void bn_backward_lanes(bn_bconst *c, int blk, shape s, const float *gamma,
                              const float *beta, const float *mean, const float *rstd,
                              const double *tot)
{
    double n = tot[2 * s.c];
    bn_apply_lanes(c->a, c->b, blk, s, gamma, beta, mean, rstd);
    bn_lanes(c->m, mean, blk, s.c);
    bn_lanes(c->rs, rstd, blk, s.c);
    bn_lanes(c->ga, gamma, blk, s.c);
    for (int l = 0; l < CB; l++) {
        int ch = blk * CB + l;
        if (ch < s.c) {
            /* torch: k = (float)dotp * invstd * invstd / n in float,
             * grad_mean = (float)(sum / n) */
            c->k[l] = (float)tot[s.c + ch] * c->rs[l] * c->rs[l] / (float)n;
            c->gm[l] = (float)(tot[ch] / n);
        } else {
            c->k[l] = c->gm[l] = 0.0f;
        }
    }
}

void bn_relu_backward_sync(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                           const float *restrict dy, const float *restrict x, shape s,
                           const float *restrict gamma, const float *restrict beta,
                           const float *restrict mean, const float *restrict rstd,
                           float *restrict scratch, const unet_sum_hook *sync)
{
    unet_kernel kern = unet_kernel_pick(BN_HAS);
    if (kern == UNET_KERNEL_REF) {
        bn_backward_ref(dx, dgamma, dbeta, dy, x, s, gamma, beta, mean, rstd, sync);
        return;
    }
    int nb = shape_blocks(s), units = nb * s.b, rows = units * s.h;
    int avx = kern == UNET_KERNEL_AVX2;
    size_t rstride = (size_t)(s.w + 2) * CB;
    double *slots = bn_slots(scratch), *tot = bn_totals(scratch, s);
#pragma omp parallel for schedule(static)
    for (int u = 0; u < units; u++) {
        size_t o = bn_row(s, u, 0);
        float m[CB], a[CB], b[CB];
        bn_lanes(m, mean, u / s.b, s.c);
        bn_apply_lanes(a, b, u / s.b, s, gamma, beta, mean, rstd);
        double *out = slots + (size_t)u * BN_SLOT;
        if (avx)
            bn_bred_avx2(dy + o, x + o, rstride, s.h, s.w, m, a, b, out);
        else
            bn_bred_sse(dy + o, x + o, rstride, s.h, s.w, m, a, b, out);
    }
    bn_backward_totals(slots, s, rstd, dgamma, dbeta, sync, tot);
    /* The elementwise pass, each thread on a contiguous run of rows,
     * setting a block's constants when it enters the block (as
     * bn_apply_rows). */
#pragma omp parallel
    {
        int cur = -1;
        bn_bconst c;
        memset(&c, 0, sizeof c);
#pragma omp for schedule(static)
        for (int i = 0; i < rows; i++) {
            int u = i / s.h, r = i % s.h, blk = u / s.b;
            if (blk != cur) {
                bn_backward_lanes(&c, blk, s, gamma, beta, mean, rstd, tot);
                cur = blk;
            }
            size_t o = bn_row(s, u, r);
            if (avx)
                bn_bapply_avx2(dx + o, dy + o, x + o, s.w, &c);
            else
                bn_bapply_sse(dx + o, dy + o, x + o, s.w, &c);
        }
    }
}

void bn_relu_backward(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                      const float *restrict dy, const float *restrict x, shape s,
                      const float *restrict gamma, const float *restrict beta,
                      const float *restrict mean, const float *restrict rstd,
                      float *restrict scratch)
{
    bn_relu_backward_sync(dx, dgamma, dbeta, dy, x, s, gamma, beta, mean, rstd, scratch, NULL);
}

/* The reference backward, channel by channel; a sync hook sums each
 * channel's two totals and count over the processes. */
static void bn_backward_ref(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                            const float *restrict dy, const float *restrict x, shape s,
                            const float *restrict gamma, const float *restrict beta,
                            const float *restrict mean, const float *restrict rstd,
                            const unet_sum_hook *sync)
{
    for (int c = 0; c < shape_blocks(s) * CB; c++) {
        if (c >= s.c) {
            for (int b = 0; b < s.b; b++)
                for (int i = 0; i < s.h; i++)
                    for (int j = 0; j < s.w; j++)
                        dx[shape_at(s, c, b, i, j)] = 0.0f;
            continue;
        }
        double t[3] = {0.0, 0.0, (double)s.b * (double)s.h * (double)s.w};
        /* The forward's ReLU mask: x a + b > 0 (bn_forward_ref's a, b). */
        const float a = rstd[c] * gamma[c], b0 = beta[c] - mean[c] * a;
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++) {
                    size_t k = shape_at(s, c, b, i, j);
                    float g = x[k] * a + b0 > 0.0f ? dy[k] : 0.0f;
                    t[0] += g;
                    t[1] += g * (x[k] - mean[c]);
                }
        dbeta[c] = (float)t[0];
        dgamma[c] = (float)(t[1] * (double)rstd[c]);
        if (sync)
            sync->sum(sync->ctx, t, 3);
        float kk = (float)t[1] * rstd[c] * rstd[c] / (float)t[2];
        float gm = (float)(t[0] / t[2]);
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++) {
                    size_t k = shape_at(s, c, b, i, j);
                    float g = x[k] * a + b0 > 0.0f ? dy[k] : 0.0f;
                    dx[k] = ((g - gm) - (x[k] - mean[c]) * kk) * rstd[c] * gamma[c];
                }
    }
}

void bn_relu_backward_ref(float *restrict dx, float *restrict dgamma, float *restrict dbeta,
                          const float *restrict dy, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          const float *restrict mean, const float *restrict rstd)
{
    bn_backward_ref(dx, dgamma, dbeta, dy, x, s, gamma, beta, mean, rstd, NULL);
}

/* Eval constants, torch's: invstd = 1/sqrt(var + eps) in float. */
void bn_relu_apply(float *restrict y, const float *restrict x, shape s,
                   const float *restrict gamma, const float *restrict beta,
                   const float *restrict mean, const float *restrict rstd)
{
    unet_kernel kern = unet_kernel_pick(BN_HAS);
    if (kern == UNET_KERNEL_REF) {
        /* The last loop of bn_relu_forward_ref. */
        for (int c = 0; c < shape_blocks(s) * CB; c++) {
            float a = c < s.c ? rstd[c] * gamma[c] : 0.0f;
            bn_apply_channel_ref(y, x, s, c, a, c < s.c ? beta[c] - mean[c] * a : 0.0f);
        }
        return;
    }
    bn_apply_rows(y, x, s, gamma, beta, mean, rstd, kern == UNET_KERNEL_AVX2);
}

static void bn_eval_lanes(float *a, float *b, int blk, shape s, const float *gamma,
                          const float *beta, const float *rm, const float *rv, double eps)
{
    for (int l = 0; l < CB; l++) {
        int ch = blk * CB + l;
        if (ch < s.c) {
            float inv = 1.0f / sqrtf(rv[ch] + (float)eps);
            a[l] = inv * gamma[ch];
            b[l] = beta[ch] - rm[ch] * a[l];
        } else {
            a[l] = b[l] = 0.0f;
        }
    }
}

void bn_relu_forward_eval(float *restrict y, const float *restrict x, shape s,
                          const float *restrict gamma, const float *restrict beta,
                          const float *restrict running_mean,
                          const float *restrict running_var, double eps)
{
    unet_kernel kern = unet_kernel_pick(BN_HAS);
    if (kern == UNET_KERNEL_REF) {
        bn_relu_forward_eval_ref(y, x, s, gamma, beta, running_mean, running_var, eps);
        return;
    }
    int rows = shape_blocks(s) * s.b * s.h;
    int avx = kern == UNET_KERNEL_AVX2;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        int u = i / s.h, r = i % s.h;
        float a[CB], b[CB];
        bn_eval_lanes(a, b, u / s.b, s, gamma, beta, running_mean, running_var, eps);
        size_t o = bn_row(s, u, r);
        if (avx)
            bn_apply_avx2(y + o, x + o, s.w, a, b);
        else
            bn_apply_sse(y + o, x + o, s.w, a, b);
    }
}

void bn_relu_forward_eval_ref(float *restrict y, const float *restrict x, shape s,
                              const float *restrict gamma, const float *restrict beta,
                              const float *restrict running_mean,
                              const float *restrict running_var, double eps)
{
    for (int blk = 0; blk < shape_blocks(s); blk++) {
        float a[CB], bb[CB];
        bn_eval_lanes(a, bb, blk, s, gamma, beta, running_mean, running_var, eps);
        for (int l = 0; l < CB; l++)
            bn_apply_channel_ref(y, x, s, blk * CB + l, a[l], bb[l]);
    }
}
