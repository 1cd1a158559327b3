/* SPDX-License-Identifier: MIT */
/*
 * test_ops_conv.c: the convolutions of conv.h.
 * - Finite differences on every reference op: L = sum(r * out) with random
 *   r, central differences in double, against the backward ops.
 * - Every AVX2 and every AVX-512 kernel against its reference on odd
 *   shapes (tile remainders, 1..5 output blocks so every group / pair has
 *   1, 2, 3 or 4 blocks, Ci = 3 padded), relative error
 *   max|opt - ref| / max|ref| <= 1e-5; the worst seen is printed.
 * - Optimised kernels never write the border, write 0 into padded
 *   channels; the reference leaves the border zero.
 * - dW / db bitwise equal across repeated runs and across 1, 2, 3 threads,
 *   for each kernel level the CPU has (UNET_KERNELS picks it).
 * - Winograd conv3x3 (wino.c: forward, backward-data, weight gradient)
 *   against the reference on shapes each SIMD kernel takes it for,
 *   bitwise equal across 1, 2, 3 threads, and UNET_WINOGRAD=off running
 *   the direct loops instead.
 * - bf16 (--precision bf16): bf16.h's rounding equals VCVTNEPS2BF16 on
 *   the cases that tell rules apart; the bf16 reference is the float32 one
 *   on rounded operands; the AVX512_BF16 kernel against the bf16
 *   reference on the same shapes and tolerance as above, and its dW / db
 *   deterministic the same way.
 * Skips a kernel level's tests with a note on CPUs without it.
 */
#include "mg_test.h"

#include <omp.h>

#include "bf16.h"
#include "isa.h"
#include "layout.h"
#include "kernel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define SENTINEL 3.25f

/* ---- helpers -------------------------------------------------------------------- */

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1), from a 64-bit LCG: reproducible on any libc. */
static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23)) - 1.0f;
}

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* A tensor with random real interior, zero border and padded channels. */
static float *rand_tensor(shape s)
{
    float *t = falloc(shape_floats(s));
    memset(t, 0, shape_floats(s) * sizeof *t);
    for (int c = 0; c < s.c; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++)
                    t[shape_at(s, c, b, y, x)] = frand();
    return t;
}

static float *rand_vec(size_t n)
{
    float *v = falloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = frand();
    return v;
}

static float *filled(size_t n, float v)
{
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

static int is_border(shape s, int y, int x) { return y < 0 || y >= s.h || x < 0 || x >= s.w; }

/* Every border float equals `border` and every padded-channel interior
 * float is 0. Returns the number of floats that are not. */
static int bad_outside(const float *t, shape s, float border)
{
    int bad = 0;
    for (int c = 0; c < shape_blocks(s) * CB; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = -1; y <= s.h; y++)
                for (int x = -1; x <= s.w; x++) {
                    float v = t[shape_at(s, c, b, y, x)];
                    if (is_border(s, y, x))
                        bad += v != border;
                    else if (c >= s.c)
                        bad += v != 0.0f;
                }
    return bad;
}

/* max |a - r| / max |r| over the real interior. */
static double rel_err_t(const float *a, const float *r, shape s)
{
    double num = 0.0, den = 1e-30;
    for (int c = 0; c < s.c; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    size_t i = shape_at(s, c, b, y, x);
                    num = fmax(num, fabs((double)a[i] - r[i]));
                    den = fmax(den, fabs((double)r[i]));
                }
    return num / den;
}

static double rel_err_v(const float *a, const float *r, size_t n)
{
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - r[i]));
        den = fmax(den, fabs((double)r[i]));
    }
    return num / den;
}

static double dot_t(const float *a, const float *r, shape s)
{
    double acc = 0.0;
    for (size_t i = 0; i < shape_floats(s); i++)
        acc += (double)a[i] * r[i];
    return acc;
}

/* ---- finite differences on the reference ------------------------------------ */

enum op { OP_C3, OP_CT, OP_C1 };

typedef struct fd_case {
    enum op op;
    int b, ci, co, h, w;
} fd_case;

static shape out_shape(enum op op, shape s, int co)
{
    shape so = {co, s.b, s.h, s.w};
    if (op == OP_CT)
        so.h *= 2, so.w *= 2;
    return so;
}

static size_t w_floats(enum op op, int ci, int co)
{
    return (size_t)ci * (size_t)co * (op == OP_C3 ? 9u : op == OP_CT ? 4u : 1u);
}

static void ref_forward(enum op op, float *out, const float *in, shape s, const float *w,
                        const float *bias, int co)
{
    if (op == OP_C3)
        conv3x3_forward_ref(out, in, s, w, co);
    else if (op == OP_CT)
        convt2x2_forward_ref(out, in, s, w, bias, co);
    else
        conv1x1_forward_ref(out, in, s, w, bias, co);
}

static double loss(enum op op, float *out, const float *in, shape s, const float *w,
                   const float *bias, int co, const float *r)
{
    ref_forward(op, out, in, s, w, bias, co);
    return dot_t(out, r, out_shape(op, s, co));
}

/* Largest |fd - analytic| / max(1, |analytic|) over all entries of v. */
static double fd_worst(enum op op, float *v, size_t n, const float *an, float *out,
                       float *in, shape s, float *w, float *bias, int co, const float *r)
{
    const float eps = 1e-2f;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double lp = loss(op, out, in, s, w, bias, co, r);
        v[i] = keep - eps;
        double lm = loss(op, out, in, s, w, bias, co, r);
        v[i] = keep;
        double fd = (lp - lm) / (2.0 * (double)eps);
        worst = fmax(worst, fabs(fd - an[i]) / fmax(1.0, fabs((double)an[i])));
    }
    return worst;
}

static void fd_check(fd_case k)
{
    shape s = {k.ci, k.b, k.h, k.w};
    shape so = out_shape(k.op, s, k.co);
    size_t nw = w_floats(k.op, k.ci, k.co);
    float *in = rand_tensor(s), *r = rand_tensor(so), *w = rand_vec(nw);
    float *bias = rand_vec((size_t)k.co), *out = falloc(shape_floats(so));
    float *din = filled(shape_floats(s), SENTINEL), *dw = falloc(nw), *db = falloc((size_t)k.co);
    if (k.op == OP_C3) {
        conv3x3_backward_data_ref(din, r, s, w, k.co);
        conv3x3_backward_weight_ref(dw, r, in, s, k.co);
    } else if (k.op == OP_CT) {
        convt2x2_backward_data_ref(din, r, s, w, k.co);
        convt2x2_backward_weight_ref(dw, db, r, in, s, k.co);
    } else {
        conv1x1_backward_data_ref(din, r, s, w, k.co);
        conv1x1_backward_weight_ref(dw, db, r, in, s, k.co);
    }
    CHECK_INT(bad_outside(din, s, 0.0f), 0);

    /* dL/din over the real interior only: the border is padding, not input. */
    double worst_in = 0.0;
    for (int c = 0; c < s.c; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    size_t i = shape_at(s, c, b, y, x);
                    worst_in = fmax(worst_in,
                                    fd_worst(k.op, in + i, 1, din + i, out, in, s, w, bias, k.co, r));
                }
    double worst_w = fd_worst(k.op, w, nw, dw, out, in, s, w, bias, k.co, r);
    double worst_b = k.op == OP_C3 ? 0.0
                                   : fd_worst(k.op, bias, (size_t)k.co, db, out, in, s, w, bias,
                                              k.co, r);
    ref_forward(k.op, out, in, s, w, bias, k.co);
    CHECK_INT(bad_outside(out, so, 0.0f), 0);
    CHECK(worst_in <= 1e-2);
    CHECK(worst_w <= 1e-2);
    CHECK(worst_b <= 1e-2);
    printf("# fd op %d B=%d Ci=%d Co=%d %dx%d: worst rel err din %.2e dw %.2e db %.2e\n",
           (int)k.op, k.b, k.ci, k.co, k.h, k.w, worst_in, worst_w, worst_b);
    free(in), free(r), free(w), free(bias), free(out), free(din), free(dw), free(db);
}

static void test_fd_conv3x3(void)
{
    fd_check((fd_case){OP_C3, 2, 8, 8, 5, 5});
    fd_check((fd_case){OP_C3, 2, 3, 8, 5, 4});
}

static void test_fd_convt2x2(void)
{
    fd_check((fd_case){OP_CT, 2, 8, 8, 3, 3});
    fd_check((fd_case){OP_CT, 1, 16, 8, 2, 3});
}

static void test_fd_conv1x1(void)
{
    fd_check((fd_case){OP_C1, 2, 8, 1, 5, 5});
    fd_check((fd_case){OP_C1, 2, 16, 8, 4, 5});
}

/* ---- optimised kernels against the reference ---------------------------------- */

static double worst_fwd[3], worst_bd[3], worst_bw[3];

/* Runs all three ops of one kind both ways on one shape. The optimised
 * outputs start as SENTINEL everywhere: their border must still be
 * SENTINEL. The scratch starts as NaN: a kernel that reads scratch it did
 * not write poisons its result. */
static void vs_ref(const conv__kernel *K, enum op op, int b, int ci, int co, int h, int w_)
{
    /* Each case's data from its own parameters, not from which cases ran
     * before it: adding a case elsewhere does not change this one's. */
    const int key[6] = {(int)op, b, ci, co, h, w_};
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 6; i++)
        rng_state = rng_state * 31 + (unsigned long long)key[i];
    shape s = {ci, b, h, w_};
    shape so = out_shape(op, s, co);
    size_t nw = w_floats(op, ci, co);
    size_t ns = op == OP_C3 ? conv3x3_scratch_floats(s, co)
                : op == OP_CT ? convt2x2_scratch_floats(s, co)
                              : conv1x1_scratch_floats(s, co);
    float *in = rand_tensor(s), *dout = rand_tensor(so), *w = rand_vec(nw);
    float *bias = rand_vec((size_t)co), *scratch = filled(ns, NAN);
    float *o_r = falloc(shape_floats(so)), *o_a = filled(shape_floats(so), SENTINEL);
    float *di_r = falloc(shape_floats(s)), *di_a = filled(shape_floats(s), SENTINEL);
    float *dw_r = falloc(nw), *dw_a = filled(nw, SENTINEL);
    float *db_r = filled((size_t)co, 0.0f), *db_a = filled((size_t)co, SENTINEL);

    /* The reference of K's precision: float32, or bf16 for a bf16 kernel. */
    const int bf = K->bf16;
    if (op == OP_C3) {
        (bf ? conv3x3_forward_ref_bf16 : conv3x3_forward_ref)(o_r, in, s, w, co);
        conv__3x3_forward(K, o_a, in, s, w, co, scratch);
        (bf ? conv3x3_backward_data_ref_bf16 : conv3x3_backward_data_ref)(di_r, dout, s, w, co);
        conv__3x3_backward_data(K, di_a, dout, s, w, co, scratch);
        (bf ? conv3x3_backward_weight_ref_bf16 : conv3x3_backward_weight_ref)(dw_r, dout, in, s,
                                                                              co);
        conv__3x3_backward_weight(K, dw_a, dout, in, s, co, scratch);
        memset(db_a, 0, (size_t)co * sizeof *db_a);
    } else if (op == OP_CT) {
        (bf ? convt2x2_forward_ref_bf16 : convt2x2_forward_ref)(o_r, in, s, w, bias, co);
        conv__t2x2_forward(K, o_a, in, s, w, bias, co, scratch);
        (bf ? convt2x2_backward_data_ref_bf16 : convt2x2_backward_data_ref)(di_r, dout, s, w, co);
        conv__t2x2_backward_data(K, di_a, dout, s, w, co, scratch);
        (bf ? convt2x2_backward_weight_ref_bf16 : convt2x2_backward_weight_ref)(dw_r, db_r, dout,
                                                                                in, s, co);
        conv__t2x2_backward_weight(K, dw_a, db_a, dout, in, s, co, scratch);
    } else {
        (bf ? conv1x1_forward_ref_bf16 : conv1x1_forward_ref)(o_r, in, s, w, bias, co);
        conv__1x1_forward(K, o_a, in, s, w, bias, co, scratch);
        (bf ? conv1x1_backward_data_ref_bf16 : conv1x1_backward_data_ref)(di_r, dout, s, w, co);
        conv__1x1_backward_data(K, di_a, dout, s, w, co, scratch);
        (bf ? conv1x1_backward_weight_ref_bf16 : conv1x1_backward_weight_ref)(dw_r, db_r, dout,
                                                                              in, s, co);
        conv__1x1_backward_weight(K, dw_a, db_a, dout, in, s, co, scratch);
    }
    double ef = rel_err_t(o_a, o_r, so), ed = rel_err_t(di_a, di_r, s);
    double ew = fmax(rel_err_v(dw_a, dw_r, nw), rel_err_v(db_a, db_r, (size_t)co));
    worst_fwd[op] = fmax(worst_fwd[op], ef);
    worst_bd[op] = fmax(worst_bd[op], ed);
    worst_bw[op] = fmax(worst_bw[op], ew);
    if (!(ef <= 1e-5 && ed <= 1e-5 && ew <= 1e-5))
        MG_FAIL_("%s op %d B=%d Ci=%d Co=%d %dx%d: rel err fwd %.2e bwd-data %.2e bwd-w %.2e",
                 K->name, (int)op, b, ci, co, h, w_, ef, ed, ew);
    CHECK_INT(bad_outside(o_a, so, SENTINEL), 0);
    CHECK_INT(bad_outside(di_a, s, SENTINEL), 0);
    CHECK_INT(bad_outside(o_r, so, 0.0f), 0);
    CHECK_INT(bad_outside(di_r, s, 0.0f), 0);
    free(in), free(dout), free(w), free(bias), free(scratch), free(o_r), free(o_a);
    free(di_r), free(di_a), free(dw_r), free(dw_a), free(db_r), free(db_a);
}

/* Spatial sizes: odd (remainder tiles), widths 8 / 16 that take whole
 * tiles, and 21 / 35 wider than the AVX-512 tiles (12 and 16 pixels) with
 * remainders. */
static const int sizes[][3] = {{1, 7, 5}, {2, 5, 13}, {2, 8, 8}, {1, 3, 16}, {1, 2, 21},
                               {1, 1, 35}};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

static int skip_without(const conv__kernel *K)
{
    if (K && K->have())
        return 0;
    printf("# no %s on this CPU: its kernels not tested\n", K ? K->name : "SIMD kernel");
    return 1;
}

static void reset_worst(void)
{
    for (int i = 0; i < 3; i++)
        worst_fwd[i] = worst_bd[i] = worst_bw[i] = 0.0;
}

/* Output / input channel counts of 1, 2, 3, 5 and 7 blocks, so that
 * groups of 2 and 4 blocks (AVX-512; AVX2's forward) and AVX2's dW pairs
 * each meet 1, 2 and 3 real blocks (5 = a full group of 4 + 1, 7 = 4 + 3),
 * with Ci = 3 padded. */
static void conv3x3_vs_ref(const conv__kernel *K)
{
    if (skip_without(K))
        return;
    reset_worst();
    static const int cis[] = {3, 8, 24, 40}, cos[] = {8, 16, 24, 40, 56};
    for (int z = 0; z < NSIZES; z++)
        for (int i = 0; i < 4; i++)
            for (int o = 0; o < 5; o++)
                vs_ref(K, OP_C3, sizes[z][0], cis[i], cos[o], sizes[z][1], sizes[z][2]);
    printf("# %s conv3x3 max rel err: fwd %.2e bwd-data %.2e bwd-weight %.2e\n", K->name,
           worst_fwd[OP_C3], worst_bd[OP_C3], worst_bw[OP_C3]);
}

static void convt2x2_vs_ref(const conv__kernel *K)
{
    if (skip_without(K))
        return;
    reset_worst();
    static const int cis[] = {8, 16, 24, 40}, cos[] = {8, 16, 24, 40, 56};
    for (int z = 0; z < NSIZES; z++)
        for (int i = 0; i < 4; i++)
            for (int o = 0; o < 5; o++)
                vs_ref(K, OP_CT, sizes[z][0], cis[i], cos[o], sizes[z][1], sizes[z][2]);
    printf("# %s convt2x2 max rel err: fwd %.2e bwd-data %.2e bwd-weight+bias %.2e\n",
           K->name, worst_fwd[OP_CT], worst_bd[OP_CT], worst_bw[OP_CT]);
}

static void conv1x1_vs_ref(const conv__kernel *K)
{
    if (skip_without(K))
        return;
    reset_worst();
    static const int cis[] = {8, 24, 40}, cos[] = {1, 3, 16, 40};
    for (int z = 0; z < NSIZES; z++)
        for (int i = 0; i < 3; i++)
            for (int o = 0; o < 4; o++)
                vs_ref(K, OP_C1, sizes[z][0], cis[i], cos[o], sizes[z][1], sizes[z][2]);
    printf("# %s conv1x1 max rel err: fwd %.2e bwd-data %.2e bwd-weight+bias %.2e\n", K->name,
           worst_fwd[OP_C1], worst_bd[OP_C1], worst_bw[OP_C1]);
}

static void test_avx2_conv3x3(void) { conv3x3_vs_ref(conv__kernel_avx2()); }
static void test_avx2_convt2x2(void) { convt2x2_vs_ref(conv__kernel_avx2()); }
static void test_avx2_conv1x1(void) { conv1x1_vs_ref(conv__kernel_avx2()); }
static void test_avx512_conv3x3(void) { conv3x3_vs_ref(conv__kernel_avx512()); }
static void test_avx512_convt2x2(void) { convt2x2_vs_ref(conv__kernel_avx512()); }
static void test_avx512_conv1x1(void) { conv1x1_vs_ref(conv__kernel_avx512()); }
static void test_bf16_conv3x3(void) { conv3x3_vs_ref(conv__kernel_avx512bf16()); }
static void test_bf16_convt2x2(void) { convt2x2_vs_ref(conv__kernel_avx512bf16()); }
static void test_bf16_conv1x1(void) { conv1x1_vs_ref(conv__kernel_avx512bf16()); }

/* The value of environment variable `name` (NULL: unset), to put back
 * with env_restore after a test changes it. */
static char *env_keep(const char *name)
{
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

static void env_restore(const char *name, char *keep)
{
    if (keep)
        setenv(name, keep, 1);
    else
        unsetenv(name);
    free(keep);
}

/* ---- Winograd (wino.c) ----------------------------------------------------------- */

/* conv3x3's three ops where K takes them as Winograd, against
 * the reference (vs_ref's tolerance, border and padded channels): channels
 * that fill no whole group (70 = 8 blocks + 6 lanes, 72, 36), tiles over
 * several bands and threads, H != W, few tiles (where AVX-512 takes only
 * the weight gradient). Each shape is checked to take
 * Winograd, so the test cannot pass on the direct loop alone. */
static void wino_vs_ref(const conv__kernel *K)
{
    if (skip_without(K))
        return;
    reset_worst();
    static const int cases[][5] = {/* b, ci, co, h, w */
                                   {1, 64, 64, 32, 32}, {2, 70, 72, 32, 20}, {2, 36, 128, 24, 22},
                                   {6, 128, 40, 12, 16}, {1, 16, 32, 32, 40}, {4, 64, 64, 8, 8},
                                   {2, 64, 64, 8, 8}};
    int taken = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *k = cases[c];
        const shape s = {k[1], k[0], k[3], k[4]};
        if (!conv__wino_takes(K, s, k[2]) && !conv__wino_dw_takes(K, s, k[2]))
            continue;
        /* The weight gradient takes Winograd from fewer tiles, never more. */
        CHECK(conv__wino_dw_takes(K, s, k[2]));
        taken++;
        vs_ref(K, OP_C3, k[0], k[1], k[2], k[3], k[4]);
    }
    CHECK(taken >= 3);
    printf("# %s Winograd conv3x3 (%d shapes) max rel err: fwd %.2e bwd-data %.2e "
           "bwd-weight %.2e\n",
           K->name, taken, worst_fwd[OP_C3], worst_bd[OP_C3], worst_bw[OP_C3]);
}

/* K's Winograd against the reference, whatever UNET_WINOGRAD the test
 * runs under. */
static void wino_on_vs_ref(const conv__kernel *K)
{
    char *keep = env_keep("UNET_WINOGRAD");
    setenv("UNET_WINOGRAD", "on", 1);
    wino_vs_ref(K);
    env_restore("UNET_WINOGRAD", keep);
}

static void test_avx2_wino(void) { wino_on_vs_ref(conv__kernel_avx2()); }
static void test_avx512_wino(void) { wino_on_vs_ref(conv__kernel_avx512()); }

/* Winograd's forward, backward-data and weight gradient are bitwise the
 * same for 1, 2 and 3 threads (each tile's sums, and each weight
 * gradient's sum over the tiles in tile order, do not depend on who
 * computes them), and UNET_WINOGRAD=off gives the direct loops, whose
 * results differ in the last bits but not past the tolerance. */
static void wino_threads_at(const char *level)
{
    setenv("UNET_KERNELS", level, 1);
    if (strcmp(conv_kernels_name(), level) != 0) {
        printf("# %s kernels not available: Winograd threads not tested for them\n", level);
        return;
    }
    const shape s = {64, 4, 16, 18};
    const int co = 72;
    const shape so = {co, 4, 16, 18};
    const conv__kernel *K = strcmp(level, "avx2") == 0 ? conv__kernel_avx2() : conv__kernel_avx512();
    CHECK(conv__wino_takes(K, s, co));
    float *in = rand_tensor(s), *dout = rand_tensor(so), *w = rand_vec((size_t)(64 * co * 9));
    float *scratch = falloc(conv3x3_scratch_floats(s, co));
    float *o1 = falloc(shape_floats(so)), *o2 = falloc(shape_floats(so));
    float *d1 = falloc(shape_floats(s)), *d2 = falloc(shape_floats(s));
    const size_t nw = (size_t)(64 * co * 9);
    float *g1 = falloc(nw), *g2 = falloc(nw);
    memcpy(o1, dout, shape_floats(so) * sizeof *o1), memcpy(o2, o1, shape_floats(so) * sizeof *o1);
    memcpy(d1, in, shape_floats(s) * sizeof *d1), memcpy(d2, d1, shape_floats(s) * sizeof *d1);
    omp_set_num_threads(1);
    conv3x3_forward(o1, in, s, w, co, scratch);
    conv3x3_backward_data(d1, dout, s, w, co, scratch);
    conv3x3_backward_weight(g1, dout, in, s, co, scratch);
    for (int nt = 1; nt <= 3; nt++) {
        omp_set_num_threads(nt);
        conv3x3_forward(o2, in, s, w, co, scratch);
        conv3x3_backward_data(d2, dout, s, w, co, scratch);
        conv3x3_backward_weight(g2, dout, in, s, co, scratch);
        CHECK(memcmp(o1, o2, shape_floats(so) * sizeof *o1) == 0);
        CHECK(memcmp(d1, d2, shape_floats(s) * sizeof *d1) == 0);
        CHECK(memcmp(g1, g2, nw * sizeof *g1) == 0);
    }
    setenv("UNET_WINOGRAD", "off", 1);
    conv3x3_forward(o2, in, s, w, co, scratch);
    conv3x3_backward_data(d2, dout, s, w, co, scratch);
    conv3x3_backward_weight(g2, dout, in, s, co, scratch);
    setenv("UNET_WINOGRAD", "on", 1);
    CHECK(memcmp(o1, o2, shape_floats(so) * sizeof *o1) != 0);
    CHECK(memcmp(g1, g2, nw * sizeof *g1) != 0);
    const double eg = rel_err_v(g2, g1, nw);
    CHECK(rel_err_t(o2, o1, so) <= 1e-5 && rel_err_t(d2, d1, s) <= 1e-5 && eg <= 1e-5);
    printf("# %s Winograd bitwise equal over {1,2,3} threads; direct within %.2e / %.2e / %.2e\n",
           level, rel_err_t(o2, o1, so), rel_err_t(d2, d1, s), eg);
    free(in), free(dout), free(w), free(scratch), free(o1), free(o2), free(d1), free(d2);
    free(g1), free(g2);
}

static void test_wino_threads(void)
{
    char *keep = env_keep("UNET_KERNELS"), *keep_w = env_keep("UNET_WINOGRAD");
    int nt0 = omp_get_max_threads();
    setenv("UNET_WINOGRAD", "on", 1);
    wino_threads_at("avx2");
    wino_threads_at("avx512");
    omp_set_num_threads(nt0);
    env_restore("UNET_KERNELS", keep);
    env_restore("UNET_WINOGRAD", keep_w);
}

/* ---- bf16: the rounding rule and the reference ------------------------------------ */

/* bf16.h's rule against the instruction that defines it, on the cases
 * that tell rules apart: ties both ways, subnormals, NaN, infinities, the
 * largest finite value and what rounds past it. */
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f,avx512vl,avx512bf16"))) static void cvt_hw(uint16_t *dst,
                                                                        const float *src)
{
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src));
    memcpy(dst, &h, 32);
}
#endif

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_bf16_rounding(void)
{
    static const uint32_t cases[] = {
        0x3f808000u, /* a tie, even below: stays */       0x3f818000u, /* a tie, odd: up */
        0x3f807fffu, 0x3f808001u, 0x00000001u, /* subnormal */ 0x807fffffu,
        0x7fc00001u, /* quiet NaN */ 0x7f800001u, /* signalling NaN */ 0x7f800000u, 0xff800000u,
        0x7f7f7fffu, /* rounds to the largest finite */ 0x7f7fffffu, /* past it: inf */
        0x00800000u, /* smallest normal */ 0x80000000u, 0x3eaaaaabu, 0xc2c80000u, 0x12345678u,
    };
    enum { N = sizeof cases / sizeof cases[0] };
    float f[32] = {0};
    uint16_t mine[32];
    for (int i = 0; i < N; i++) {
        f[i] = from_bits(cases[i]);
        mine[i] = bf16_bits(f[i]);
        /* bf16_round is exactly the bits, widened. */
        uint32_t back;
        float r = bf16_round(f[i]);
        memcpy(&back, &r, sizeof back);
        CHECK_INT((int)(back >> 16), (int)mine[i]);
        CHECK_INT((int)(back & 0xffffu), 0);
    }
    CHECK_INT(mine[0], 0x3f80);
    CHECK_INT(mine[1], 0x3f82);
    CHECK_INT(mine[4], 0x0000);
    CHECK_INT(mine[5], 0x8000);
    CHECK_INT(mine[11], 0x7f80);
#if defined(__x86_64__) || defined(__i386__)
    if (!unet_isa_avx512_bf16()) {
        printf("# no AVX512_BF16: the rounding rule checked against its table only\n");
        return;
    }
    uint16_t hw[32];
    cvt_hw(hw, f);
    cvt_hw(hw + 16, f + 16);
    for (int i = 0; i < N; i++) {
        /* NaN: any quiet NaN of the same sign will do. */
        int nan = (mine[i] & 0x7f80) == 0x7f80 && (mine[i] & 0x7f);
        if (nan) {
            CHECK((hw[i] & 0x7f80) == 0x7f80 && (hw[i] & 0x40) &&
                  (hw[i] & 0x8000) == (mine[i] & 0x8000));
        } else if (hw[i] != mine[i]) {
            MG_FAIL_("bf16 of 0x%08x: rule 0x%04x, VCVTNEPS2BF16 0x%04x", (unsigned)cases[i],
                     (unsigned)mine[i], (unsigned)hw[i]);
        }
    }
    printf("# bf16 rounding: %d cases equal to VCVTNEPS2BF16\n", N);
#endif
}

/* The bf16 reference is the float32 one on rounded operands: exactly so
 * when the operands are already bfloat16, and within bfloat16's rounding
 * (2^-8 relative per factor) of it otherwise. */
static void test_bf16_reference(void)
{
    shape s = {24, 2, 6, 7};
    const int co = 16;
    shape so = {co, 2, 6, 7};
    float *in = rand_tensor(s), *w = rand_vec((size_t)co * 24 * 9);
    float *a = falloc(shape_floats(so)), *b = falloc(shape_floats(so));
    conv3x3_forward_ref(a, in, s, w, co);
    conv3x3_forward_ref_bf16(b, in, s, w, co);
    double e = rel_err_t(b, a, so);
    printf("# bf16 reference vs float32 reference, random operands: %.2e\n", e);
    CHECK(e > 1e-5 && e < 2e-2);
    for (size_t i = 0; i < shape_floats(s); i++) in[i] = bf16_round(in[i]);
    for (int i = 0; i < co * 24 * 9; i++) w[i] = bf16_round(w[i]);
    conv3x3_forward_ref(a, in, s, w, co);
    conv3x3_forward_ref_bf16(b, in, s, w, co);
    CHECK(memcmp(a, b, shape_floats(so) * sizeof *a) == 0);
    free(in), free(w), free(a), free(b);
}

/* ---- determinism ---------------------------------------------------------------- */

/* dW and db through the dispatcher with nt threads, in float32 or (bf)
 * bf16. */
static void grads_with(int nt, int bf, float *dw3, float *dwt, float *dbt, float *dw1,
                       float *db1)
{
    static const shape s3 = {16, 3, 24, 20}, st = {32, 2, 10, 11}, s1 = {16, 3, 9, 13};
    static float *in3, *do3, *int_, *dot, *in1, *do1, *scratch;
    if (!dw3) {
        free(in3), free(do3), free(int_), free(dot), free(in1), free(do1), free(scratch);
        return;
    }
    if (!in3) {
        in3 = rand_tensor(s3), do3 = rand_tensor((shape){32, 3, 24, 20});
        int_ = rand_tensor(st), dot = rand_tensor((shape){16, 2, 20, 22});
        in1 = rand_tensor(s1), do1 = rand_tensor((shape){1, 3, 9, 13});
        size_t n = conv3x3_scratch_floats(s3, 32);
        size_t m = convt2x2_scratch_floats(st, 16);
        scratch = falloc(n > m ? n : m);
    }
    omp_set_num_threads(nt);
    (bf ? conv3x3_backward_weight_bf16 : conv3x3_backward_weight)(dw3, do3, in3, s3, 32, scratch);
    (bf ? convt2x2_backward_weight_bf16 : convt2x2_backward_weight)(dwt, dbt, dot, int_, st, 16,
                                                                   scratch);
    (bf ? conv1x1_backward_weight_bf16 : conv1x1_backward_weight)(dw1, db1, do1, in1, s1, 1,
                                                                 scratch);
}

/* Determinism at the level UNET_KERNELS selects (set by the caller). */
static void determinism_at(const char *level)
{
    enum { N3 = 32 * 16 * 9, NT = 32 * 16 * 4, N1 = 16 };
    float a3[N3], b3[N3], at[NT], bt[NT], adb[16], bdb[16], a1[N1], b1[N1], ad1[1], bd1[1];
    const int bf = strcmp(level, "avx512bf16") == 0;
    setenv("UNET_KERNELS", level, 1);
    if (strcmp(bf ? conv_kernels_name_bf16() : conv_kernels_name(), level) != 0) {
        printf("# %s kernels not available: determinism not tested for them\n", level);
        return;
    }
    grads_with(1, bf, a3, at, adb, a1, ad1);
    for (int nt = 1; nt <= 3; nt++)
        for (int rep = 0; rep < 2; rep++) {
            memset(b3, 0, sizeof b3), memset(bt, 0, sizeof bt), memset(b1, 0, sizeof b1);
            grads_with(nt, bf, b3, bt, bdb, b1, bd1);
            CHECK(memcmp(a3, b3, sizeof a3) == 0);
            CHECK(memcmp(at, bt, sizeof at) == 0);
            CHECK(memcmp(adb, bdb, sizeof adb) == 0);
            CHECK(memcmp(a1, b1, sizeof a1) == 0);
            CHECK(memcmp(ad1, bd1, sizeof ad1) == 0);
        }
    printf("# dW/db bitwise equal over 2 runs x {1,2,3} threads (%s kernels)\n", level);
}

static void test_determinism(void)
{
    char *keep = env_keep("UNET_KERNELS");
    int nt0 = omp_get_max_threads();
    determinism_at("ref");
    determinism_at("avx2");
    determinism_at("avx512");
    determinism_at("avx512bf16");
    grads_with(1, 0, NULL, NULL, NULL, NULL, NULL);
    omp_set_num_threads(nt0);
    env_restore("UNET_KERNELS", keep);
}

/* UNET_KERNELS=ref|avx2|avx512 caps the level; a level the CPU lacks falls
 * back to the best one it has. */
static void test_dispatch_override(void)
{
    char *keep = env_keep("UNET_KERNELS");
    const char *best = unet_isa_avx512() ? "avx512" : unet_isa_avx2_fma() ? "avx2" : "ref";
    setenv("UNET_KERNELS", "ref", 1);
    CHECK_STR(conv_kernels_name(), "ref");
    setenv("UNET_KERNELS", "avx2", 1);
    CHECK_STR(conv_kernels_name(), unet_isa_avx2_fma() ? "avx2" : "ref");
    setenv("UNET_KERNELS", "avx512", 1);
    CHECK_STR(conv_kernels_name(), best);
    unsetenv("UNET_KERNELS");
    CHECK_STR(conv_kernels_name(), best);
    printf("# default kernels here: %s\n", best);
    env_restore("UNET_KERNELS", keep);
}

int main(void)
{
    MG_RUN(test_fd_conv3x3);
    MG_RUN(test_fd_convt2x2);
    MG_RUN(test_fd_conv1x1);
    MG_RUN(test_avx2_conv3x3);
    MG_RUN(test_avx2_convt2x2);
    MG_RUN(test_avx2_conv1x1);
    MG_RUN(test_avx512_conv3x3);
    MG_RUN(test_avx512_convt2x2);
    MG_RUN(test_avx512_conv1x1);
    MG_RUN(test_avx2_wino);
    MG_RUN(test_avx512_wino);
    MG_RUN(test_wino_threads);
    MG_RUN(test_bf16_rounding);
    MG_RUN(test_bf16_reference);
    MG_RUN(test_bf16_conv3x3);
    MG_RUN(test_bf16_convt2x2);
    MG_RUN(test_bf16_conv1x1);
    MG_RUN(test_determinism);
    MG_RUN(test_dispatch_override);
    return mg_test_exit();
}
