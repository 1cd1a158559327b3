/* SPDX-License-Identifier: MIT */
/*
 * ref.c: naive reference loops for every convolution in conv.h, written
 * straight from the definitions with shape_at(). They are the test oracle
 * and the fallback on CPUs without AVX2/FMA, so they favour being obviously
 * right: sums run in double, in a fixed order, one output element per loop
 * iteration (OpenMP over outputs only, so results are bitwise reproducible
 * for any thread count). No blocking, no SIMD.
 *
 * Each loop serves two precisions: float32 (kernel.h's *_ref) and bf16
 * (*_ref_bf16: the oracle of the bf16 kernel and its fallback under
 * UNET_KERNELS=ref), where every factor of every product, and nothing
 * else (not a bias, not a sum), is first rounded to bfloat16 by bf16.h's
 * rule. A product of two bfloat16 is exact in float32 as in double, so
 * the bf16 kernel and this reference differ only in the order and the
 * precision of their sums, as the float32 ones do.
 */
#include "kernel.h"

#include "bf16.h"

#include <string.h>

/* A factor of a product, rounded to bfloat16 when bf is set. */
static inline double fac(float v, int bf) { return bf ? (double)bf16_round(v) : (double)v; }

/* Zero the whole tensor (border and padded channels included), then the
 * loops below fill the real interior. */
static void zero_tensor(float *t, shape s) { memset(t, 0, shape_floats(s) * sizeof *t); }

/* ---- conv3x3 ------------------------------------------------------------ */

/* out (co,B,H,W) = w (co,Ci,3,3) * in (Ci,B,H,W) */
static void c3_fwd(float *out, const float *in, shape s, const float *w, int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
    zero_tensor(out, so);
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < co; o++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    double acc = 0.0;
                    for (int i = 0; i < s.c; i++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++)
                                acc += fac(w[((size_t)o * (size_t)s.c + (size_t)i) * 9
                                             + (size_t)(kh * 3 + kw)], bf)
                                       * fac(in[shape_at(s, i, b, y + kh - 1, x + kw - 1)], bf);
                    out[shape_at(so, o, b, y, x)] = (float)acc;
                }
}

/* din (Ci,B,H,W) = w^T (co,Ci,3,3) *' dout (co,B,H,W). The zero border of
 * dout stands in for the padding, as in the forward pass. */
static void c3_bwd_data(float *din, const float *dout, shape s, const float *w, int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
    zero_tensor(din, s);
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < s.c; i++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    double acc = 0.0;
                    for (int o = 0; o < co; o++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++)
                                acc += fac(w[((size_t)o * (size_t)s.c + (size_t)i) * 9
                                             + (size_t)(kh * 3 + kw)], bf)
                                       * fac(dout[shape_at(so, o, b, y - kh + 1, x - kw + 1)], bf);
                    din[shape_at(s, i, b, y, x)] = (float)acc;
                }
}

/* dw (co,Ci,3,3) = sum over B,H,W of dout (co,B,H,W) x in (Ci,B,H,W) */
static void c3_bwd_weight(float *dw, const float *dout, const float *in, shape s, int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < co; o++)
        for (int i = 0; i < s.c; i++)
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    double acc = 0.0;
                    for (int b = 0; b < s.b; b++)
                        for (int y = 0; y < s.h; y++)
                            for (int x = 0; x < s.w; x++)
                                acc += fac(dout[shape_at(so, o, b, y, x)], bf)
                                       * fac(in[shape_at(s, i, b, y + kh - 1, x + kw - 1)], bf);
                    dw[((size_t)o * (size_t)s.c + (size_t)i) * 9 + (size_t)(kh * 3 + kw)] =
                        (float)acc;
                }
}

/* ---- ConvTranspose2d 2x2, stride 2 ---------------------------------------- */

/* out (co,B,2H,2W): out[o][2y+a][2x+c] = bias[o] + sum_i in[i][y][x] w[i][o][a][c] */
static void ct_fwd(float *out, const float *in, shape s, const float *w, const float *bias,
                   int co, int bf)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    zero_tensor(out, so);
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < co; o++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < so.h; y++)
                for (int x = 0; x < so.w; x++) {
                    int a = y & 1, c = x & 1;
                    double acc = bias[o];
                    for (int i = 0; i < s.c; i++)
                        acc += fac(w[(((size_t)i * (size_t)co + (size_t)o) * 2 + (size_t)a) * 2
                                     + (size_t)c], bf)
                               * fac(in[shape_at(s, i, b, y >> 1, x >> 1)], bf);
                    out[shape_at(so, o, b, y, x)] = (float)acc;
                }
}

/* din (Ci,B,H,W): din[i][y][x] = sum_{o,a,c} dout[o][2y+a][2x+c] w[i][o][a][c] */
static void ct_bwd_data(float *din, const float *dout, shape s, const float *w, int co, int bf)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
    zero_tensor(din, s);
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < s.c; i++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    double acc = 0.0;
                    for (int o = 0; o < co; o++)
                        for (int a = 0; a < 2; a++)
                            for (int c = 0; c < 2; c++)
                                acc += fac(w[(((size_t)i * (size_t)co + (size_t)o) * 2
                                              + (size_t)a) * 2 + (size_t)c], bf)
                                       * fac(dout[shape_at(so, o, b, 2 * y + a, 2 * x + c)], bf);
                    din[shape_at(s, i, b, y, x)] = (float)acc;
                }
}

/* dw (Ci,co,2,2) = sum in (Ci,B,H,W) x dout (co,B,2H,2W); db (co) = sum dout */
static void ct_bwd_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                          int co, int bf)
{
    shape so = {co, s.b, 2 * s.h, 2 * s.w};
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < s.c; i++)
        for (int o = 0; o < co; o++)
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++) {
                    double acc = 0.0;
                    for (int b = 0; b < s.b; b++)
                        for (int y = 0; y < s.h; y++)
                            for (int x = 0; x < s.w; x++)
                                acc += fac(in[shape_at(s, i, b, y, x)], bf)
                                       * fac(dout[shape_at(so, o, b, 2 * y + a, 2 * x + c)], bf);
                    dw[(((size_t)i * (size_t)co + (size_t)o) * 2 + (size_t)a) * 2 + (size_t)c] =
                        (float)acc;
                }
    for (int o = 0; o < co; o++) {
        double acc = 0.0;
        for (int b = 0; b < so.b; b++)
            for (int y = 0; y < so.h; y++)
                for (int x = 0; x < so.w; x++)
                    acc += dout[shape_at(so, o, b, y, x)];
        db[o] = (float)acc;
    }
}

/* ---- conv1x1 --------------------------------------------------------------- */

/* out (co,B,H,W) = w (co,Ci,1,1) * in (Ci,B,H,W) + bias (co) */
static void c1_fwd(float *out, const float *in, shape s, const float *w, const float *bias,
                   int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
    zero_tensor(out, so);
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < co; o++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    double acc = bias[o];
                    for (int i = 0; i < s.c; i++)
                        acc += fac(w[(size_t)o * (size_t)s.c + (size_t)i], bf)
                               * fac(in[shape_at(s, i, b, y, x)], bf);
                    out[shape_at(so, o, b, y, x)] = (float)acc;
                }
}

/* din (Ci,B,H,W) = w^T (co,Ci) * dout (co,B,H,W) */
static void c1_bwd_data(float *din, const float *dout, shape s, const float *w, int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
    zero_tensor(din, s);
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < s.c; i++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    double acc = 0.0;
                    for (int o = 0; o < co; o++)
                        acc += fac(w[(size_t)o * (size_t)s.c + (size_t)i], bf)
                               * fac(dout[shape_at(so, o, b, y, x)], bf);
                    din[shape_at(s, i, b, y, x)] = (float)acc;
                }
}

/* dw (co,Ci,1,1) = sum dout (co,B,H,W) x in (Ci,B,H,W); db (co) = sum dout */
static void c1_bwd_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                          int co, int bf)
{
    shape so = {co, s.b, s.h, s.w};
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < co; o++)
        for (int i = 0; i < s.c; i++) {
            double acc = 0.0;
            for (int b = 0; b < s.b; b++)
                for (int y = 0; y < s.h; y++)
                    for (int x = 0; x < s.w; x++)
                        acc += fac(dout[shape_at(so, o, b, y, x)], bf)
                               * fac(in[shape_at(s, i, b, y, x)], bf);
            dw[(size_t)o * (size_t)s.c + (size_t)i] = (float)acc;
        }
    for (int o = 0; o < co; o++) {
        double acc = 0.0;
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++)
                    acc += dout[shape_at(so, o, b, y, x)];
        db[o] = (float)acc;
    }
}

/* ---- the entry points: float32 and bf16 ---------------------------------------- */

/* NAME_ref (PARAMS) and NAME_ref_bf16 (PARAMS) calling IMPL(ARGS..., 0 or 1). */
#define REF_PAIR(name, impl, params, ...)                                                  \
    void name##_ref params { impl(__VA_ARGS__, 0); }                                        \
    void name##_ref_bf16 params { impl(__VA_ARGS__, 1); }

REF_PAIR(conv3x3_forward, c3_fwd, (float *out, const float *in, shape s, const float *w, int co),
         out, in, s, w, co)
REF_PAIR(conv3x3_backward_data, c3_bwd_data,
         (float *din, const float *dout, shape s, const float *w, int co), din, dout, s, w, co)
REF_PAIR(conv3x3_backward_weight, c3_bwd_weight,
         (float *dw, const float *dout, const float *in, shape s, int co), dw, dout, in, s, co)
REF_PAIR(convt2x2_forward, ct_fwd,
         (float *out, const float *in, shape s, const float *w, const float *bias, int co), out,
         in, s, w, bias, co)
REF_PAIR(convt2x2_backward_data, ct_bwd_data,
         (float *din, const float *dout, shape s, const float *w, int co), din, dout, s, w, co)
REF_PAIR(convt2x2_backward_weight, ct_bwd_weight,
         (float *dw, float *db, const float *dout, const float *in, shape s, int co), dw, db,
         dout, in, s, co)
REF_PAIR(conv1x1_forward, c1_fwd,
         (float *out, const float *in, shape s, const float *w, const float *bias, int co), out,
         in, s, w, bias, co)
REF_PAIR(conv1x1_backward_data, c1_bwd_data,
         (float *din, const float *dout, shape s, const float *w, int co), din, dout, s, w, co)
REF_PAIR(conv1x1_backward_weight, c1_bwd_weight,
         (float *dw, float *db, const float *dout, const float *in, shape s, int co), dw, db,
         dout, in, s, co)
