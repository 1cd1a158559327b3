/* SPDX-License-Identifier: MIT */
/*
 * ops_conv.c: the public convolution calls of ops_conv.h. Each one sends
 * its arguments to the AVX2+FMA kernel (ops_conv_avx2.c) when the CPU has
 * both, else to the naive reference (ops_conv_ref.c); UNET_KERNELS=ref
 * forces the reference for debugging. Also sizes the caller's scratch.
 * No arithmetic happens here.
 */
#include "ops_conv.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

int conv__have_avx2(void)
{
#if HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Decided on every call: a getenv and two CPUID-cached bit tests are
 * nothing next to a convolution, and there is no static state to race on. */
static int use_avx2(void)
{
    const char *k = getenv("UNET_KERNELS");
    if (k && strcmp(k, "ref") == 0)
        return 0;
    return conv__have_avx2();
}

const char *conv_kernels_name(void) { return use_avx2() ? "avx2" : "ref"; }

/* ---- scratch sizing ------------------------------------------------------------ */

static size_t nblk(int c) { return (size_t)((c + CB - 1) / CB); }

/* Output channels rounded up to whole block pairs (the kernels' tile). */
static size_t pair_ch(int c) { return (nblk(c) + 1) / 2 * 16; }

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* Chunks of B*H rows for a weight-gradient op with `tasks` (pair, input
 * block) tasks: enough to give >= 32 tasks, so 2..16 threads balance even
 * on the first layer (one pair, one block), never more than the rows. A
 * function of the shape only, so dW does not depend on the thread count. */
size_t conv__dw_chunks(int tasks, int rows)
{
    int n = (32 + tasks - 1) / tasks;
    if (n > rows)
        n = rows;
    return (size_t)(n < 1 ? 1 : n);
}

/* Floats of dW partials: chunks x pairs x input blocks x taps x 8 x 16. */
static size_t dw_floats(shape s, int co, int taps)
{
    size_t pairs = (nblk(co) + 1) / 2;
    size_t chunks = conv__dw_chunks((int)(pairs * nblk(s.c)), s.b * s.h);
    return chunks * pairs * nblk(s.c) * (size_t)taps * CB * 16;
}

size_t conv3x3_scratch_floats(shape s, int co, int nthreads)
{
    (void)nthreads;
    return max3(pair_ch(co) * nblk(s.c) * CB * 9, /* forward weights */
                pair_ch(s.c) * nblk(co) * CB * 9, /* backward-data weights */
                dw_floats(s, co, 9));
}

size_t convt2x2_scratch_floats(shape s, int co, int nthreads)
{
    (void)nthreads;
    return max3((nblk(co) + 1) * CB + 4 * pair_ch(co) * nblk(s.c) * CB, /* bias + weights */
                pair_ch(s.c) * nblk(co) * CB * 4, dw_floats(s, co, 4));
}

size_t conv1x1_scratch_floats(shape s, int co, int nthreads)
{
    (void)nthreads;
    return max3((nblk(co) + 1) * CB + pair_ch(co) * nblk(s.c) * CB,
                pair_ch(s.c) * nblk(co) * CB, dw_floats(s, co, 1));
}

/* ---- dispatch ---------------------------------------------------------------------- */

#if HAVE_X86
#define DISPATCH(avx2_call, ref_call)                                                      \
    do {                                                                                   \
        if (use_avx2())                                                                    \
            avx2_call;                                                                     \
        else                                                                               \
            ref_call;                                                                      \
    } while (0)
#else
#define DISPATCH(avx2_call, ref_call) do { (void)scratch; ref_call; } while (0)
#endif

/* out (co,B,H,W) = w (co,Ci,3,3) * in (Ci,B,H,W) */
void conv3x3_forward(float *out, const float *in, shape s, const float *w, int co,
                     float *scratch)
{
    DISPATCH(conv3x3_forward_avx2(out, in, s, w, co, scratch),
             conv3x3_forward_ref(out, in, s, w, co));
}

/* din (Ci,B,H,W) = w^T (co,Ci,3,3) *' dout (co,B,H,W) */
void conv3x3_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                           float *scratch)
{
    DISPATCH(conv3x3_backward_data_avx2(din, dout, s, w, co, scratch),
             conv3x3_backward_data_ref(din, dout, s, w, co));
}

/* dw (co,Ci,3,3) = sum over B,H,W of dout (co,B,H,W) x in (Ci,B,H,W) */
void conv3x3_backward_weight(float *dw, const float *dout, const float *in, shape s, int co,
                             float *scratch)
{
    DISPATCH(conv3x3_backward_weight_avx2(dw, dout, in, s, co, scratch),
             conv3x3_backward_weight_ref(dw, dout, in, s, co));
}

/* out (co,B,2H,2W) = w (Ci,co,2,2) scattered from in (Ci,B,H,W) + bias (co) */
void convt2x2_forward(float *out, const float *in, shape s, const float *w, const float *bias,
                      int co, float *scratch)
{
    DISPATCH(convt2x2_forward_avx2(out, in, s, w, bias, co, scratch),
             convt2x2_forward_ref(out, in, s, w, bias, co));
}

/* din (Ci,B,H,W) = w (Ci,co,2,2) gathered from dout (co,B,2H,2W) */
void convt2x2_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                            float *scratch)
{
    DISPATCH(convt2x2_backward_data_avx2(din, dout, s, w, co, scratch),
             convt2x2_backward_data_ref(din, dout, s, w, co));
}

/* dw (Ci,co,2,2) = sum in (Ci,B,H,W) x dout (co,B,2H,2W); db (co) = sum dout */
void convt2x2_backward_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                              int co, float *scratch)
{
    DISPATCH(convt2x2_backward_weight_avx2(dw, db, dout, in, s, co, scratch),
             convt2x2_backward_weight_ref(dw, db, dout, in, s, co));
}

/* out (co,B,H,W) = w (co,Ci,1,1) * in (Ci,B,H,W) + bias (co) */
void conv1x1_forward(float *out, const float *in, shape s, const float *w, const float *bias,
                     int co, float *scratch)
{
    DISPATCH(conv1x1_forward_avx2(out, in, s, w, bias, co, scratch),
             conv1x1_forward_ref(out, in, s, w, bias, co));
}

/* din (Ci,B,H,W) = w^T (co,Ci) * dout (co,B,H,W) */
void conv1x1_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                           float *scratch)
{
    DISPATCH(conv1x1_backward_data_avx2(din, dout, s, w, co, scratch),
             conv1x1_backward_data_ref(din, dout, s, w, co));
}

/* dw (co,Ci,1,1) = sum dout (co,B,H,W) x in (Ci,B,H,W); db (co) = sum dout */
void conv1x1_backward_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                             int co, float *scratch)
{
    DISPATCH(conv1x1_backward_weight_avx2(dw, db, dout, in, s, co, scratch),
             conv1x1_backward_weight_ref(dw, db, dout, in, s, co));
}
