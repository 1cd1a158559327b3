/* SPDX-License-Identifier: MIT */
/*
 * test_ops_pool.c: MaxPool2d 2x2 stride 2 (pool.c). Optimised against
 * the naive reference on even and odd sizes (odd sizes floor), with many
 * ties (quantised inputs) and NaN; parity with PyTorch 1.13 for values and
 * for which tied element gets the gradient; bitwise determinism across
 * thread counts; borders never written. Fails, with a message, when
 * python3 or torch is missing.
 */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>

#include "layout.h"
#include "mg_ops_test.h"
#include "pool.h"

/* Input with many ties: values from {-1, 0, 1, 2} * 0.5 when `ties`. */
static float *pool_input(shape s, int ties)
{
    size_t n = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w;
    float *v = fill_nchw(s, 1.0f, 0.0f);
    if (ties)
        for (size_t i = 0; i < n; i++)
            v[i] = 0.5f * floorf(v[i] * 2.0f + 0.5f);
    float *t = blocked(s, v);
    free(v);
    return t;
}

/* Equal, treating NaN as equal to NaN. */
static int same(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (a[i] != a[i] && b[i] != b[i])))
            return 0;
    return 1;
}

static void pool_pair(shape s, int ties, int nans)
{
    shape o = maxpool2x2_shape(s);
    float *x = pool_input(s, ties);
    if (nans)
        for (size_t i = 0; i < shape_floats(s); i += 37) {
            size_t px = i / CB % (size_t)(s.w + 2), row = i / CB / (size_t)(s.w + 2) % (size_t)(s.h + 2);
            int lane = (int)(i % CB), blk = (int)(i / shape_plane(s) / (size_t)s.b);
            if (px > 0 && px <= (size_t)s.w && row > 0 && row <= (size_t)s.h
                && blk * CB + lane < s.c)
                x[i] = NAN;
        }
    float *dyn = fill_nchw(o, 1.0f, 0.0f);
    float *dy = blocked(o, dyn);
    float *y1 = sentinel(o), *y2 = sentinel(o), *d1 = sentinel(s), *d2 = sentinel(s);
    maxpool2x2_forward(y1, x, s);
    maxpool2x2_forward_ref(y2, x, s);
    maxpool2x2_backward(d1, dy, x, s);
    maxpool2x2_backward_ref(d2, dy, x, s);
    if (!same(y1, y2, shape_floats(o)) || !same(d1, d2, shape_floats(s)))
        MG_FAIL_("pool C%d B%d %dx%d ties %d nans %d: optimised != reference", s.c, s.b, s.h,
                 s.w, ties, nans);
    CHECK(border_ok(o, y1));
    CHECK(border_ok(s, d1));
    CHECK(border_ok(o, y2));
    CHECK(border_ok(s, d2));
    free(x);
    free(dyn);
    free(dy);
    free(y1);
    free(y2);
    free(d1);
    free(d2);
}

static void test_pool_opt_matches_ref(void)
{
    static const int cs[] = {8, 16, 24, 3};
    static const int hw[][2] = {{8, 8}, {7, 5}, {6, 9}, {1, 4}, {3, 3}, {2, 2}};
    for (size_t ci = 0; ci < 4; ci++)
        for (int b = 1; b <= 3; b += 2)
            for (size_t hi = 0; hi < sizeof hw / sizeof hw[0]; hi++)
                for (int ties = 0; ties < 2; ties++) {
                    shape s = {cs[ci], b, hw[hi][0], hw[hi][1]};
                    pool_pair(s, ties, 0);
                    pool_pair(s, ties, 1);
                }
}

/* Gradient routing by hand: a window of four equal values sends the
 * gradient to its top-left element; equal maxima in the second row go to
 * the left one. */
static void test_pool_tie_break(void)
{
    shape s = {8, 1, 2, 4}, o = maxpool2x2_shape(s);
    float *x = calloc(shape_floats(s), sizeof(float));
    float *dy = calloc(shape_floats(o), sizeof(float));
    float *dx = sentinel(s);
    for (int c = 0; c < 8; c++) {
        /* window 0: all 1.0; window 1: max 3 at (1,2) and (1,3) */
        x[shape_at(s, c, 0, 0, 0)] = 1.0f;
        x[shape_at(s, c, 0, 0, 1)] = 1.0f;
        x[shape_at(s, c, 0, 1, 0)] = 1.0f;
        x[shape_at(s, c, 0, 1, 1)] = 1.0f;
        x[shape_at(s, c, 0, 0, 2)] = 2.0f;
        x[shape_at(s, c, 0, 0, 3)] = -1.0f;
        x[shape_at(s, c, 0, 1, 2)] = 3.0f;
        x[shape_at(s, c, 0, 1, 3)] = 3.0f;
        dy[shape_at(o, c, 0, 0, 0)] = 5.0f;
        dy[shape_at(o, c, 0, 0, 1)] = 7.0f;
    }
    maxpool2x2_backward(dx, dy, x, s);
    for (int c = 0; c < 8; c++) {
        CHECK(dx[shape_at(s, c, 0, 0, 0)] == 5.0f);
        CHECK(dx[shape_at(s, c, 0, 0, 1)] == 0.0f);
        CHECK(dx[shape_at(s, c, 0, 1, 0)] == 0.0f);
        CHECK(dx[shape_at(s, c, 0, 1, 1)] == 0.0f);
        CHECK(dx[shape_at(s, c, 0, 1, 2)] == 7.0f);
        CHECK(dx[shape_at(s, c, 0, 1, 3)] == 0.0f);
        CHECK(dx[shape_at(s, c, 0, 0, 2)] == 0.0f);
    }
    free(x);
    free(dy);
    free(dx);
}

/* Finite differences on distinct values (no ties): y is piecewise linear,
 * so central differences are exact up to rounding. */
static void test_pool_finite_differences(void)
{
    shape s = {3, 2, 5, 4}, o = maxpool2x2_shape(s);
    float *x = pool_input(s, 0);
    float *dyn = fill_nchw(o, 1.0f, 0.0f), *dy = blocked(o, dyn);
    float *dx = sentinel(s), *y = sentinel(o);
    maxpool2x2_backward(dx, dy, x, s);
    double worst = 0.0;
    for (int c = 0; c < s.c; c++)
        for (int b = 0; b < s.b; b++)
            for (int i = 0; i < s.h; i++)
                for (int j = 0; j < s.w; j++) {
                    size_t k = shape_at(s, c, b, i, j);
                    float keep = x[k];
                    double l[2];
                    for (int sg = 0; sg < 2; sg++) {
                        x[k] = keep + (sg ? -1e-3f : 1e-3f);
                        maxpool2x2_forward(y, x, s);
                        double acc = 0.0;
                        for (int cc = 0; cc < s.c; cc++)
                            for (int bb = 0; bb < s.b; bb++)
                                for (int ii = 0; ii < o.h; ii++)
                                    for (int jj = 0; jj < o.w; jj++) {
                                        size_t q = shape_at(o, cc, bb, ii, jj);
                                        acc += (double)dy[q] * (double)y[q];
                                    }
                        l[sg] = acc;
                    }
                    x[k] = keep;
                    double num = (l[0] - l[1]) / (2.0 * (double)1e-3f);
                    double e = fabs(num - (double)dx[k]);
                    if (e > worst)
                        worst = e;
                    CHECK_NEAR(dx[k], num, 1e-3);
                }
    printf("# pool finite differences: max abs err %.3g\n", worst);
    free(x);
    free(dyn);
    free(dy);
    free(dx);
    free(y);
}

static void pool_torch_case(shape s, int ties)
{
    shape o = maxpool2x2_shape(s);
    size_t nx = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w;
    size_t ny = (size_t)o.b * (size_t)o.c * (size_t)o.h * (size_t)o.w;
    float *x = pool_input(s, ties);
    float *dyn = fill_nchw(o, 1.0f, 0.0f), *dy = blocked(o, dyn);
    float *in = malloc((nx + ny) * sizeof *in);
    layout_unpack(in, s, x);
    memcpy(in + nx, dyn, ny * sizeof *in);
    double *ref = malloc((ny + nx) * sizeof *ref);
    char args[128];
    snprintf(args, sizeof args, "%d %d %d %d", s.c, s.b, s.h, s.w);
    if (torch_ref("pool", args, in, nx + ny, ref, ny + nx) == 0) {
        float *y = sentinel(o), *dx = sentinel(s);
        float *yn = malloc(ny * sizeof *yn), *dxn = malloc(nx * sizeof *dxn);
        maxpool2x2_forward(y, x, s);
        maxpool2x2_backward(dx, dy, x, s);
        layout_unpack(yn, o, y);
        layout_unpack(dxn, s, dx);
        size_t bad = 0;
        for (size_t i = 0; i < ny; i++)
            bad += (double)yn[i] != ref[i];
        for (size_t i = 0; i < nx; i++)
            bad += (double)dxn[i] != ref[ny + i];
        printf("# pool vs torch C%d B%d %dx%d ties %d: %zu of %zu values differ\n", s.c, s.b,
               s.h, s.w, ties, bad, nx + ny);
        CHECK_INT(bad, 0);
        free(y);
        free(dx);
        free(yn);
        free(dxn);
    }
    free(x);
    free(dyn);
    free(dy);
    free(in);
    free(ref);
}

static void test_pool_matches_torch(void)
{
    pool_torch_case((shape){16, 3, 8, 6}, 1);
    pool_torch_case((shape){24, 1, 7, 5}, 1);
    pool_torch_case((shape){8, 3, 9, 11}, 0);
}

static void test_pool_deterministic(void)
{
    shape s = {24, 3, 33, 17}, o = maxpool2x2_shape(s);
    float *x = pool_input(s, 1);
    float *dyn = fill_nchw(o, 1.0f, 0.0f), *dy = blocked(o, dyn);
    float *y[2], *dx[2];
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        y[t] = sentinel(o);
        dx[t] = sentinel(s);
        maxpool2x2_forward(y[t], x, s);
        maxpool2x2_backward(dx[t], dy, x, s);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(y[0], y[1], shape_floats(o) * sizeof(float)) == 0);
    CHECK(memcmp(dx[0], dx[1], shape_floats(s) * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
    free(x);
    free(dyn);
    free(dy);
}

int main(void)
{
    MG_RUN(test_pool_opt_matches_ref);
    MG_RUN(test_pool_tie_break);
    MG_RUN(test_pool_finite_differences);
    MG_RUN(test_pool_matches_torch);
    MG_RUN(test_pool_deterministic);
    return mg_test_exit();
}
