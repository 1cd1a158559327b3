/* SPDX-License-Identifier: MIT */
/*
 * bench_conv.c: times the convolutions of conv.h on the UNet's layer
 * shapes at B=8, 128x128 (research/cnn-in-c.md 4), with 1 and 2 threads:
 * GFLOPS per op (median of REPS runs after a warm-up), and the ms one
 * training step spends in conv3x3 and convT fwd+bwd. Also the naive
 * reference on one layer, for scale. Built with the project:
 *
 *   build/bench_conv [threads...]          (default: 1 2)
 *   BENCH_BATCH=4 build/bench_conv         (another batch size; default 8)
 *   UNET_KERNELS=avx2 build/bench_conv     (the AVX2 kernels on an AVX-512 CPU)
 *   BENCH_PRECISION=bf16 build/bench_conv  (the *_bf16 calls of --precision bf16)
 *   UNET_WINOGRAD=off build/bench_conv     (every conv3x3 on the direct loop)
 *
 * GFLOPS count the direct loop's multiply-adds (x 2): for the conv3x3
 * ops that run as Winograd (kernel.h's thresholds) they are effective
 * rates, the direct loop's that would take the same time.
 *
 * The machine is a shared VM: run nothing else meanwhile (research 5.5).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "kernel.h"
#include "bench_time.h"

#define REPS 5

/* Batch size of every shape: BENCH_BATCH, else 8. Set once in main. */
static int BATCH = 8;

/* The calls timed: conv.h's float32 ones, or their *_bf16 twins
 * (BENCH_PRECISION=bf16). Set once in main. */
static struct {
    void (*c3f)(float *, const float *, shape, const float *, int, float *);
    void (*c3d)(float *, const float *, shape, const float *, int, float *);
    void (*c3w)(float *, const float *, const float *, shape, int, float *);
    void (*ctf)(float *, const float *, shape, const float *, const float *, int, float *);
    void (*ctd)(float *, const float *, shape, const float *, int, float *);
    void (*ctw)(float *, float *, const float *, const float *, shape, int, float *);
} ops = {conv3x3_forward,  conv3x3_backward_data,  conv3x3_backward_weight,
         convt2x2_forward, convt2x2_backward_data, convt2x2_backward_weight};

typedef struct layer {
    const char *name;
    int ci, co, hw, count; /* count: layers of this shape in one UNet step */
} layer;

/* The 18 conv3x3 of the UNet (base 16, 4 downsamplings), grouped by shape. */
static const layer conv3[] = {
    {"enc1a 3->16", 3, 16, 128, 1},     {"x1b 16->16", 16, 16, 128, 2},
    {"dec1a 32->16", 32, 16, 128, 1},   {"enc2a 16->32", 16, 32, 64, 1},
    {"x2b 32->32", 32, 32, 64, 2},      {"dec2a 64->32", 64, 32, 64, 1},
    {"enc3a 32->64", 32, 64, 32, 1},    {"x3b 64->64", 64, 64, 32, 2},
    {"dec3a 128->64", 128, 64, 32, 1},  {"enc4a 64->128", 64, 128, 16, 1},
    {"x4b 128->128", 128, 128, 16, 2},  {"dec4a 256->128", 256, 128, 16, 1},
    {"bota 128->256", 128, 256, 8, 1},  {"botb 256->256", 256, 256, 8, 1},
};

/* The 4 ConvTranspose2d: hw is the input size. */
static const layer convt[] = {
    {"up4 256->128", 256, 128, 8, 1},
    {"up3 128->64", 128, 64, 16, 1},
    {"up2 64->32", 64, 32, 32, 1},
    {"up1 32->16", 32, 16, 64, 1},
};

static float *rand_tensor(shape s)
{
    float *t = aligned_alloc(64, (shape_floats(s) * sizeof(float) + 63) / 64 * 64);
    if (!t)
        exit(2);
    memset(t, 0, shape_floats(s) * sizeof *t);
    unsigned r = 12345;
    for (int c = 0; c < s.c; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++) {
                    r = r * 1103515245u + 12345u;
                    t[shape_at(s, c, b, y, x)] = (float)(r >> 9) / (float)(1u << 23) - 0.5f;
                }
    return t;
}

static float *fvec(size_t n)
{
    float *v = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!v)
        exit(2);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return v;
}

enum { FWD, BWD_DATA, BWD_W };

/* Median seconds of one op over REPS runs, after one warm-up. */
static double time_op(int convt_op, int which, const layer *l, float *out, float *in, float *dout,
                      float *din, float *w, float *bias, float *dw, float *db, float *scratch)
{
    shape s = {l->ci, BATCH, l->hw, l->hw};
    double t[REPS];
    for (int r = -1; r < REPS; r++) {
        double t0 = now_s();
        if (!convt_op) {
            if (which == FWD)
                ops.c3f(out, in, s, w, l->co, scratch);
            else if (which == BWD_DATA)
                ops.c3d(din, dout, s, w, l->co, scratch);
            else
                ops.c3w(dw, dout, in, s, l->co, scratch);
        } else {
            if (which == FWD)
                ops.ctf(out, in, s, w, bias, l->co, scratch);
            else if (which == BWD_DATA)
                ops.ctd(din, dout, s, w, l->co, scratch);
            else
                ops.ctw(dw, db, dout, in, s, l->co, scratch);
        }
        if (r >= 0)
            t[r] = now_s() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp_d);
    return t[REPS / 2];
}

/* Times every layer of a table; returns the step's ms (count-weighted,
 * without bwd-data for the 3-channel input layer, which has no dX). */
static double bench_table(int convt_op, const layer *tab, int n)
{
    double step_ms = 0.0;
    for (int k = 0; k < n; k++) {
        const layer *l = &tab[k];
        shape s = {l->ci, BATCH, l->hw, l->hw};
        int oh = convt_op ? 2 * l->hw : l->hw;
        shape so = {l->co, BATCH, oh, oh};
        size_t nw = (size_t)l->ci * (size_t)l->co * (convt_op ? 4u : 9u);
        size_t ns = convt_op ? convt2x2_scratch_floats(s, l->co)
                             : conv3x3_scratch_floats(s, l->co);
        float *in = rand_tensor(s), *din = rand_tensor(s);
        float *out = rand_tensor(so), *dout = rand_tensor(so);
        float *w = fvec(nw), *dw = fvec(nw), *bias = fvec((size_t)l->co),
              *db = fvec((size_t)l->co), *scratch = fvec(ns);
        /* Multiply-adds x 2 over the real channels (the padded 3->8 input
         * costs more but is not counted). */
        double flop = 2.0 * BATCH * l->hw * l->hw * l->ci * l->co * (convt_op ? 4.0 : 9.0);
        double tf = time_op(convt_op, FWD, l, out, in, dout, din, w, bias, dw, db, scratch);
        double td = time_op(convt_op, BWD_DATA, l, out, in, dout, din, w, bias, dw, db, scratch);
        double tw = time_op(convt_op, BWD_W, l, out, in, dout, din, w, bias, dw, db, scratch);
        int has_dx = l->ci >= 8;
        printf("| %-15s | %4d | %7.1f | %7.1f | %7.1f | %7.2f |\n", l->name, l->hw,
               flop / tf * 1e-9, flop / td * 1e-9, flop / tw * 1e-9,
               1e3 * (tf + (has_dx ? td : 0.0) + tw));
        step_ms += l->count * 1e3 * (tf + (has_dx ? td : 0.0) + tw);
        free(in), free(din), free(out), free(dout), free(w), free(dw), free(bias), free(db),
            free(scratch);
    }
    return step_ms;
}

/* The naive reference on one mid-size layer at B=1, for scale. */
static void bench_ref(void)
{
    layer l = {"x2b 32->32", 32, 32, 64, 1};
    shape s = {l.ci, 1, l.hw, l.hw};
    float *in = rand_tensor(s), *out = rand_tensor(s), *w = fvec((size_t)l.ci * (size_t)l.co * 9);
    double flop = 2.0 * l.hw * l.hw * l.ci * l.co * 9.0;
    double t0 = now_s();
    conv3x3_forward_ref(out, in, s, w, l.co);
    double t = now_s() - t0;
    printf("reference conv3x3 forward, %s @%d, B=1: %.2f GFLOPS\n", l.name, l.hw, flop / t * 1e-9);
    free(in), free(out), free(w);
}

int main(int argc, char **argv)
{
    int threads[8] = {1, 2}, nt = 2;
    if (argc > 1) {
        nt = 0;
        for (int i = 1; i < argc && nt < 8; i++)
            threads[nt++] = atoi(argv[i]);
    }
    const char *b = getenv("BENCH_BATCH");
    if (b && atoi(b) > 0)
        BATCH = atoi(b);
    const char *prec = getenv("BENCH_PRECISION");
    const char *kname = conv_kernels_name();
    if (prec && strcmp(prec, "bf16") == 0) {
        ops.c3f = conv3x3_forward_bf16, ops.c3d = conv3x3_backward_data_bf16;
        ops.c3w = conv3x3_backward_weight_bf16, ops.ctf = convt2x2_forward_bf16;
        ops.ctd = convt2x2_backward_data_bf16, ops.ctw = convt2x2_backward_weight_bf16;
        kname = conv_kernels_name_bf16();
    }
    printf("kernels: %s, B=%d, median of %d\n", kname, BATCH, REPS);
    for (int i = 0; i < nt; i++) {
        omp_set_num_threads(threads[i]);
        printf("\n%d thread(s): GFLOPS per op, ms = fwd + bwd-data + bwd-weight per layer\n\n",
               threads[i]);
        printf("| conv3x3         |   hw |     fwd | bwd-dat |   bwd-w |      ms |\n");
        printf("|---|--:|--:|--:|--:|--:|\n");
        double c3 = bench_table(0, conv3, (int)(sizeof conv3 / sizeof conv3[0]));
        printf("| convT 2x2 s2    |   in |     fwd | bwd-dat | bwd-w+b |      ms |\n");
        double ct = bench_table(1, convt, (int)(sizeof convt / sizeof convt[0]));
        printf("\nper step (%d threads): conv3x3 fwd+bwd %.1f ms, convT fwd+bwd %.1f ms\n",
               threads[i], c3, ct);
    }
    omp_set_num_threads(1);
    printf("\n");
    bench_ref();
    return 0;
}
