/* SPDX-License-Identifier: MIT */
/*
 * mg_ops_test.h: helpers of the trainer's op tests (test_ops_bn.c,
 * test_ops_pool.c, test_ops_loss.c, test_adam.c): a fixed-seed uniform
 * generator, NCHW and blocked tensors, the sentinel border check, error
 * measures, and torch_ref(), which runs tests/py/ref_ops.py on PyTorch.
 * Header-only (static inline), included once per test executable.
 */
#ifndef MG_OPS_TEST_H
#define MG_OPS_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "layout.h"
#include "mg_test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static inline float urand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (float)((double)(rng_state >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static inline float *fill_nchw(shape s, float scale, float offset)
{
    size_t n = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w;
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = urand() * scale + offset;
    return v;
}

static inline float *blocked(shape s, const float *nchw)
{
    float *t = malloc(shape_floats(s) * sizeof *t);
    layout_pack(t, s, nchw);
    return t;
}

/* A blocked buffer filled with a sentinel, to see what an op writes. */
static inline float *sentinel(shape s)
{
    float *t = malloc(shape_floats(s) * sizeof *t);
    for (size_t i = 0; i < shape_floats(s); i++)
        t[i] = 777.0f;
    return t;
}

/* 1 when the border is untouched (still the sentinel) and padded channels
 * of the interior are 0. */
static inline int border_ok(shape s, const float *t)
{
    int nb = shape_blocks(s);
    for (int c = 0; c < nb * CB; c++)
        for (int b = 0; b < s.b; b++)
            for (int y = -1; y <= s.h; y++)
                for (int x = -1; x <= s.w; x++) {
                    float v = t[shape_at(s, c, b, y, x)];
                    int border = y < 0 || x < 0 || y == s.h || x == s.w;
                    if (border && v != 777.0f)
                        return 0;
                    if (!border && c >= s.c && v != 0.0f)
                        return 0;
                }
    return 1;
}

/* max |a-b| / max |b| over n values (error relative to the tensor scale). */
static inline double rel_err_f(const float *a, const float *b, size_t n)
{
    double e = 0.0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > e)
            e = d;
        if (fabs((double)b[i]) > m)
            m = fabs((double)b[i]);
    }
    return e / m;
}

static inline double rel_err_d(const float *a, const double *b, size_t n)
{
    double e = 0.0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e)
            e = d;
        if (fabs(b[i]) > m)
            m = fabs(b[i]);
    }
    return e / m;
}

/* Runs tests/py/ref_ops.py OP on `in` (float32) and reads exactly nout
 * float64 results. Returns 0, or -1 after failing the current test with a
 * message (python3 or torch missing is a failure, not a skip). */
static inline int torch_ref(const char *op, const char *args, const float *in, size_t nin,
                     double *out, size_t nout)
{
    char inp[512], outp[512], cmd[2048];
    snprintf(inp, sizeof inp, "%s/ref_%s_%ld.in", MG_TMPDIR, op, (long)getpid());
    snprintf(outp, sizeof outp, "%s/ref_%s_%ld.out", MG_TMPDIR, op, (long)getpid());
    FILE *f = fopen(inp, "wb");
    if (!f || fwrite(in, sizeof *in, nin, f) != nin) {
        MG_FAIL_("cannot write %s", inp);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s/tests/py/ref_ops.py %s %s %s %s", MG_PYTHON,
             MG_SOURCE_DIR, op, inp, outp, args);
    int rc = system(cmd);
    unlink(inp);
    if (rc != 0) {
        MG_FAIL_("PyTorch reference failed (status %d): `%s`. The parity tests need "
                 "%s with torch 1.13 (scripts/setup.sh installs python3-torch).",
                 rc, cmd, MG_PYTHON);
        unlink(outp);
        return -1;
    }
    f = fopen(outp, "rb");
    size_t got = f ? fread(out, sizeof *out, nout, f) : 0;
    int extra = f ? fgetc(f) != EOF : 0;
    if (f)
        fclose(f);
    unlink(outp);
    if (got != nout || extra) {
        MG_FAIL_("PyTorch reference wrote %zu values, expected %zu", got, nout);
        return -1;
    }
    return 0;
}

#endif /* MG_OPS_TEST_H */
