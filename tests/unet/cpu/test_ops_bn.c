/* SPDX-License-Identifier: MIT */
/*
 * test_ops_bn.c: BatchNorm2d + ReLU (bn.c). Optimised against the naive
 * reference on odd shapes (padded channels included), finite differences of
 * the backward in double, parity with PyTorch 1.13 through
 * tests/py/ref_ops.py, bitwise determinism across runs and thread counts,
 * bn_relu_apply equal bit for bit to the forward's output, backward's ReLU
 * mask (from x) equal to the forward output's, and that the
 * border is never written. It fails, with a message, when
 * python3 or torch is missing.
 */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>

#include "layout.h"
#include "mg_ops_test.h"
#include "model.h" /* BN_EPS, BN_MOMENTUM */
#include "bn.h"

/* ---- BN fixtures --------------------------------------------------------- */

typedef struct bn_case {
    shape s;
    float *x, *dy;              /* blocked */
    float *gamma, *beta, *rm, *rv;
} bn_case;

static bn_case bn_make(shape s)
{
    bn_case k;
    k.s = s;
    float *xn = fill_nchw(s, 2.0f, 0.7f);
    float *dyn = fill_nchw(s, 1.0f, 0.0f);
    k.x = blocked(s, xn);
    k.dy = blocked(s, dyn);
    free(xn);
    free(dyn);
    k.gamma = malloc((size_t)s.c * sizeof(float));
    k.beta = malloc((size_t)s.c * sizeof(float));
    k.rm = malloc((size_t)s.c * sizeof(float));
    k.rv = malloc((size_t)s.c * sizeof(float));
    for (int c = 0; c < s.c; c++) {
        k.gamma[c] = 1.0f + 0.5f * urand();
        k.beta[c] = 0.3f * urand();
        k.rm[c] = 0.1f * urand();
        k.rv[c] = 1.0f + 0.2f * urand();
    }
    return k;
}

static void bn_free(bn_case *k)
{
    free(k->x);
    free(k->dy);
    free(k->gamma);
    free(k->beta);
    free(k->rm);
    free(k->rv);
}

typedef struct bn_out {
    float *y, *dx, *ye;
    float mean[64], rstd[64], rm[64], rv[64], dg[64], db[64];
    int64_t nbt;
} bn_out;

static void bn_run(const bn_case *k, bn_out *o, int ref)
{
    shape s = k->s;
    o->y = sentinel(s);
    o->dx = sentinel(s);
    o->ye = sentinel(s);
    memcpy(o->rm, k->rm, (size_t)s.c * sizeof(float));
    memcpy(o->rv, k->rv, (size_t)s.c * sizeof(float));
    o->nbt = 7;
    if (ref) {
        bn_relu_forward_ref(o->y, k->x, s, k->gamma, k->beta, o->mean, o->rstd, o->rm, o->rv,
                            &o->nbt, BN_MOMENTUM, BN_EPS);
        bn_relu_backward_ref(o->dx, o->dg, o->db, k->dy, k->x, s, k->gamma, k->beta, o->mean,
                             o->rstd);
        bn_relu_forward_eval_ref(o->ye, k->x, s, k->gamma, k->beta, o->rm, o->rv, BN_EPS);
    } else {
        float *scr = malloc(bn_scratch_floats(s) * sizeof(float));
        bn_relu_forward(o->y, k->x, s, k->gamma, k->beta, o->mean, o->rstd, o->rm, o->rv,
                        &o->nbt, BN_MOMENTUM, BN_EPS, scr);
        bn_relu_backward(o->dx, o->dg, o->db, k->dy, k->x, s, k->gamma, k->beta, o->mean,
                         o->rstd, scr);
        bn_relu_forward_eval(o->ye, k->x, s, k->gamma, k->beta, o->rm, o->rv, BN_EPS);
        free(scr);
    }
}

static void bn_out_free(bn_out *o)
{
    free(o->y);
    free(o->dx);
    free(o->ye);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_bn_opt_matches_ref(void)
{
    static const int cs[] = {8, 16, 24, 5};
    static const int bs[] = {1, 3};
    static const int hw[][2] = {{7, 5}, {4, 6}, {1, 3}, {9, 1}};
    double worst = 0.0;
    for (size_t ci = 0; ci < 4; ci++)
        for (size_t bi = 0; bi < 2; bi++)
            for (size_t hi = 0; hi < 4; hi++) {
                shape s = {cs[ci], bs[bi], hw[hi][0], hw[hi][1]};
                if (s.b * s.h * s.w < 2)
                    continue;
                bn_case k = bn_make(s);
                bn_out a, r;
                bn_run(&k, &a, 0);
                bn_run(&k, &r, 1);
                size_t n = shape_floats(s), c = (size_t)s.c;
                double e[] = {rel_err_f(a.y, r.y, n),         rel_err_f(a.dx, r.dx, n),
                              rel_err_f(a.ye, r.ye, n),       rel_err_f(a.mean, r.mean, c),
                              rel_err_f(a.rstd, r.rstd, c),   rel_err_f(a.rm, r.rm, c),
                              rel_err_f(a.rv, r.rv, c),       rel_err_f(a.dg, r.dg, c),
                              rel_err_f(a.db, r.db, c)};
                for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
                    if (!(e[i] <= 2e-6))
                        MG_FAIL_("shape C%d B%d %dx%d: output %zu rel err %.3g", s.c, s.b,
                                 s.h, s.w, i, e[i]);
                    if (e[i] > worst)
                        worst = e[i];
                }
                CHECK_INT(a.nbt, 8);
                CHECK_INT(r.nbt, 8);
                CHECK(border_ok(s, a.y));
                CHECK(border_ok(s, a.dx));
                CHECK(border_ok(s, a.ye));
                CHECK(border_ok(s, r.y));
                CHECK(border_ok(s, r.dx));
                bn_out_free(&a);
                bn_out_free(&r);
                bn_free(&k);
            }
    printf("# bn optimised vs reference: max rel err %.3g\n", worst);
}

/* Double-precision BN+ReLU forward for finite differences; returns
 * L = sum w * y over the interior for the fixed weights w (= dy). */
static double bn_loss_d(const double *x, const double *g, const double *bt, const double *w,
                        int c, int n)
{
    double L = 0.0;
    for (int ch = 0; ch < c; ch++) {
        double m = 0.0, v = 0.0;
        for (int i = 0; i < n; i++)
            m += x[ch * n + i];
        m /= n;
        for (int i = 0; i < n; i++)
            v += (x[ch * n + i] - m) * (x[ch * n + i] - m);
        v /= n;
        for (int i = 0; i < n; i++) {
            double yv = g[ch] * (x[ch * n + i] - m) / sqrt(v + BN_EPS) + bt[ch];
            L += w[ch * n + i] * (yv > 0.0 ? yv : 0.0);
        }
    }
    return L;
}

static void test_bn_finite_differences(void)
{
    shape s = {3, 2, 3, 2}; /* padded to one block; n = 12 per channel */
    int n = s.b * s.h * s.w;
    bn_case k = bn_make(s);
    bn_out a;
    bn_run(&k, &a, 0);
    /* channel-major double copies: index ch * n + (b, y, x) */
    double x[3 * 12], w[3 * 12], g[3], bt[3];
    for (int ch = 0; ch < s.c; ch++) {
        g[ch] = k.gamma[ch];
        bt[ch] = k.beta[ch];
        for (int b = 0, i = 0; b < s.b; b++)
            for (int yy = 0; yy < s.h; yy++)
                for (int xx = 0; xx < s.w; xx++, i++) {
                    x[ch * n + i] = k.x[shape_at(s, ch, b, yy, xx)];
                    w[ch * n + i] = k.dy[shape_at(s, ch, b, yy, xx)];
                }
    }
    const double h = 1e-6;
    double worst = 0.0;
    for (int ch = 0; ch < s.c; ch++) {
        for (int b = 0, i = 0; b < s.b; b++)
            for (int yy = 0; yy < s.h; yy++)
                for (int xx = 0; xx < s.w; xx++, i++) {
                    double keep = x[ch * n + i];
                    x[ch * n + i] = keep + h;
                    double lp = bn_loss_d(x, g, bt, w, s.c, n);
                    x[ch * n + i] = keep - h;
                    double lm = bn_loss_d(x, g, bt, w, s.c, n);
                    x[ch * n + i] = keep;
                    double num = (lp - lm) / (2 * h);
                    double an = a.dx[shape_at(s, ch, b, yy, xx)];
                    double e = fabs(an - num) / (fabs(num) + 1e-2);
                    if (e > worst)
                        worst = e;
                    CHECK_NEAR(an, num, 1e-4 + 1e-4 * fabs(num));
                }
        double keep = g[ch];
        g[ch] = keep + h;
        double lp = bn_loss_d(x, g, bt, w, s.c, n);
        g[ch] = keep - h;
        double lm = bn_loss_d(x, g, bt, w, s.c, n);
        g[ch] = keep;
        CHECK_NEAR(a.dg[ch], (lp - lm) / (2 * h), 1e-4);
        keep = bt[ch];
        bt[ch] = keep + h;
        lp = bn_loss_d(x, g, bt, w, s.c, n);
        bt[ch] = keep - h;
        lm = bn_loss_d(x, g, bt, w, s.c, n);
        bt[ch] = keep;
        CHECK_NEAR(a.db[ch], (lp - lm) / (2 * h), 1e-4);
    }
    printf("# bn finite differences: max rel err dx %.3g\n", worst);
    bn_out_free(&a);
    bn_free(&k);
}

static void bn_torch_case(shape s)
{
    bn_case k = bn_make(s);
    size_t nn = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w, c = (size_t)s.c;
    size_t nin = 2 * nn + 4 * c;
    float *in = malloc(nin * sizeof *in);
    layout_unpack(in, s, k.x);
    memcpy(in + nn, k.gamma, c * sizeof(float));
    memcpy(in + nn + c, k.beta, c * sizeof(float));
    memcpy(in + nn + 2 * c, k.rm, c * sizeof(float));
    memcpy(in + nn + 3 * c, k.rv, c * sizeof(float));
    layout_unpack(in + nn + 4 * c, s, k.dy);
    size_t nout = 3 * nn + 6 * c + 1;
    double *ref = malloc(nout * sizeof *ref);
    char args[128];
    snprintf(args, sizeof args, "%d %d %d %d", s.c, s.b, s.h, s.w);
    if (torch_ref("bn", args, in, nin, ref, nout) == 0) {
        for (int pass = 0; pass < 2; pass++) {
            bn_out a;
            bn_run(&k, &a, pass);
            float *t = malloc(nn * sizeof *t);
            double e[10];
            layout_unpack(t, s, a.y);
            e[0] = rel_err_d(t, ref, nn);
            layout_unpack(t, s, a.dx);
            e[1] = rel_err_d(t, ref + nn, nn);
            e[2] = rel_err_d(a.dg, ref + 2 * nn, c);
            e[3] = rel_err_d(a.db, ref + 2 * nn + c, c);
            e[4] = rel_err_d(a.mean, ref + 2 * nn + 2 * c, c);
            e[5] = rel_err_d(a.rstd, ref + 2 * nn + 3 * c, c);
            e[6] = rel_err_d(a.rm, ref + 2 * nn + 4 * c, c);
            e[7] = rel_err_d(a.rv, ref + 2 * nn + 5 * c, c);
            layout_unpack(t, s, a.ye);
            e[8] = rel_err_d(t, ref + 2 * nn + 6 * c + 1, nn);
            /* torch started from 0, we from 7: both add one */
            CHECK_NEAR((double)a.nbt - 7.0, ref[2 * nn + 6 * c], 0.0);
            static const char *names[] = {"y", "dx", "dgamma", "dbeta", "mean", "rstd",
                                          "running_mean", "running_var", "y_eval"};
            printf("# bn vs torch C%d B%d %dx%d (%s):", s.c, s.b, s.h, s.w,
                   pass ? "ref" : "opt");
            for (int i = 0; i < 9; i++) {
                printf(" %s %.2g", names[i], e[i]);
                if (!(e[i] <= 1e-5))
                    MG_FAIL_("%s differs from torch: rel err %.3g", names[i], e[i]);
            }
            printf("\n");
            free(t);
            bn_out_free(&a);
        }
    }
    free(ref);
    free(in);
    bn_free(&k);
}

static void test_bn_matches_torch(void)
{
    bn_torch_case((shape){24, 3, 7, 5});
    bn_torch_case((shape){16, 2, 32, 24});
    bn_torch_case((shape){5, 2, 4, 3});
}

static void test_bn_deterministic(void)
{
    shape s = {24, 3, 33, 17};
    bn_case k = bn_make(s);
    bn_out a, b, c;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    bn_run(&k, &a, 0);
    omp_set_num_threads(2);
    bn_run(&k, &b, 0);
    omp_set_num_threads(3);
    bn_run(&k, &c, 0);
    omp_set_num_threads(saved);
    size_t n = shape_floats(s) * sizeof(float), m = (size_t)s.c * sizeof(float);
    CHECK(memcmp(a.y, b.y, n) == 0 && memcmp(a.y, c.y, n) == 0);
    CHECK(memcmp(a.dx, b.dx, n) == 0 && memcmp(a.dx, c.dx, n) == 0);
    CHECK(memcmp(a.ye, b.ye, n) == 0);
    CHECK(memcmp(a.mean, b.mean, m) == 0 && memcmp(a.rstd, c.rstd, m) == 0);
    CHECK(memcmp(a.dg, b.dg, m) == 0 && memcmp(a.db, c.db, m) == 0);
    CHECK(memcmp(a.rv, b.rv, m) == 0 && memcmp(a.rm, c.rm, m) == 0);
    bn_out_free(&a);
    bn_out_free(&b);
    bn_out_free(&c);
    bn_free(&k);
}

/* bn_relu_apply with the statistics bn_relu_forward kept gives the
 * forward's output bit for bit (the model recomputes the ReLU output from
 * them in backward), for the optimised kernels and, under
 * UNET_KERNELS=ref, for the reference; padded channels included. */
static void test_bn_apply_is_forward(void)
{
    static const shape shapes[] = {{24, 3, 7, 5}, {5, 2, 9, 4}, {16, 1, 33, 17}};
    static const char *const levels[] = {NULL, "ref"};
    const char *old = getenv("UNET_KERNELS");
    char keep[32] = "";
    if (old) snprintf(keep, sizeof keep, "%s", old);
    for (size_t li = 0; li < 2; li++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            if (levels[li]) setenv("UNET_KERNELS", levels[li], 1);
            else unsetenv("UNET_KERNELS");
            shape s = shapes[si];
            bn_case k = bn_make(s);
            bn_out o;
            bn_run(&k, &o, 0);
            float *ya = sentinel(s);
            bn_relu_apply(ya, k.x, s, k.gamma, k.beta, o.mean, o.rstd);
            if (memcmp(ya, o.y, shape_floats(s) * sizeof(float)) != 0)
                MG_FAIL_("%s, shape C%d B%d %dx%d: apply differs from forward",
                         levels[li] ? levels[li] : "default kernels", s.c, s.b, s.h, s.w);
            free(ya);
            bn_out_free(&o);
            bn_free(&k);
        }
    if (old) setenv("UNET_KERNELS", keep, 1);
    else unsetenv("UNET_KERNELS");
}

/* Backward's ReLU mask, taken from x with the forward's constants, is
 * exactly the forward output's y > 0: zeroing dy where y == 0 first
 * changes no bit of dx, dgamma, dbeta; keeping dy only where y == 0
 * gives dgamma = dbeta = 0. For the optimised kernels and the
 * reference, padded channels included. */
static void test_bn_mask_is_forward(void)
{
    static const shape shapes[] = {{24, 3, 7, 5}, {5, 2, 9, 4}, {16, 1, 33, 17}};
    for (int ref = 0; ref < 2; ref++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            shape s = shapes[si];
            bn_case k = bn_make(s);
            bn_out o;
            bn_run(&k, &o, ref);
            const size_t n = shape_floats(s);
            float *on = malloc(n * sizeof(float)), *off = malloc(n * sizeof(float));
            float *dx = sentinel(s), *scr = malloc(bn_scratch_floats(s) * sizeof(float));
            float dg[64], db[64];
            int live = 0;
            for (size_t i = 0; i < n; i++) {
                on[i] = o.y[i] > 0.0f ? k.dy[i] : 0.0f;
                off[i] = o.y[i] > 0.0f ? 0.0f : k.dy[i];
                live += o.y[i] > 0.0f;
            }
            for (int pass = 0; pass < 2; pass++) {
                const float *dy = pass ? off : on;
                if (ref)
                    bn_relu_backward_ref(dx, dg, db, dy, k.x, s, k.gamma, k.beta, o.mean,
                                         o.rstd);
                else
                    bn_relu_backward(dx, dg, db, dy, k.x, s, k.gamma, k.beta, o.mean, o.rstd,
                                     scr);
                const size_t cb = (size_t)s.c * sizeof(float);
                if (pass == 0 && (memcmp(dx, o.dx, n * sizeof(float)) != 0
                                  || memcmp(dg, o.dg, cb) != 0 || memcmp(db, o.db, cb) != 0))
                    MG_FAIL_("%s, shape C%d B%d %dx%d: dy masked by y > 0 changes the result",
                             ref ? "ref" : "optimised", s.c, s.b, s.h, s.w);
                for (int c = 0; pass == 1 && c < s.c; c++)
                    if (dg[c] != 0.0f || db[c] != 0.0f)
                        MG_FAIL_("%s, shape C%d B%d %dx%d: channel %d takes gradient where "
                                 "y == 0", ref ? "ref" : "optimised", s.c, s.b, s.h, s.w, c);
            }
            CHECK(live > 0 && (size_t)live < n / 2 + n / 4); /* both sides of the mask */
            free(on);
            free(off);
            free(dx);
            free(scr);
            bn_out_free(&o);
            bn_free(&k);
        }
}

int main(void)
{
    MG_RUN(test_bn_opt_matches_ref);
    MG_RUN(test_bn_finite_differences);
    MG_RUN(test_bn_matches_torch);
    MG_RUN(test_bn_deterministic);
    MG_RUN(test_bn_apply_is_forward);
    MG_RUN(test_bn_mask_is_forward);
    return mg_test_exit();
}
