/* SPDX-License-Identifier: MIT */
/*
 * test_ops_loss.c: BCEWithLogits + soft Dice (loss.c). Optimised
 * against the double-precision reference, finite differences in double,
 * parity with research/torch_unet_ref.py's bce_dice_loss in PyTorch 1.13
 * (value, parts, gradient), extreme logits, and bitwise determinism across
 * thread counts. Fails, with a message, when python3 or torch is missing.
 */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>

#include "mg_ops_test.h"
#include "loss.h"

/* ---- loss fixtures -------------------------------------------------------- */

typedef struct loss_case {
    int n, hw;
    float *x, *t;
} loss_case;

/* Logits in [-scale, scale]; binary targets, or soft ones in [0, 1]. */
static loss_case loss_make(int n, int hw, float scale, int soft)
{
    loss_case k = {n, hw, NULL, NULL};
    size_t m = (size_t)n * (size_t)hw;
    k.x = malloc(m * sizeof(float));
    k.t = malloc(m * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        k.x[i] = scale * urand();
        float u = 0.5f * (urand() + 1.0f);
        k.t[i] = soft ? u : (u > 0.6f ? 1.0f : 0.0f);
    }
    return k;
}

static void loss_free(loss_case *k)
{
    free(k->x);
    free(k->t);
}

/* The loss in double, straight from the formula, for finite differences. */
static double loss_d(const double *x, const float *t, int n, int hw)
{
    double bce = 0.0, dice = 0.0;
    for (int i = 0; i < n; i++) {
        double I = 0.0, D = 0.0;
        for (int j = 0; j < hw; j++) {
            double xv = x[i * hw + j], tv = t[i * hw + j], p = 1.0 / (1.0 + exp(-xv));
            bce += -(tv * log(p) + (1.0 - tv) * log(1.0 - p));
            I += p * tv;
            D += p + tv;
        }
        dice += 1.0 - (2.0 * I + 1.0) / (D + 1.0);
    }
    return bce / (n * hw) + dice / n;
}

static void run_opt(const loss_case *k, loss_parts *r, float *g)
{
    float *st = malloc(bce_dice_state_floats(k->n) * sizeof(float));
    float *scr = malloc(bce_dice_scratch_floats(k->n, k->hw) * sizeof(float));
    *r = bce_dice_forward(k->x, k->t, k->n, k->hw, st, scr);
    bce_dice_backward(g, k->x, k->t, k->n, k->hw, st);
    free(st);
    free(scr);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_loss_opt_matches_ref(void)
{
    static const int sizes[][2] = {{1, 35}, {3, 35}, {2, 5600}, {8, 4096}, {1, 1}};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int soft = 0; soft < 2; soft++) {
            loss_case k = loss_make(sizes[i][0], sizes[i][1], 6.0f, soft);
            size_t m = (size_t)k.n * (size_t)k.hw;
            float *g = malloc(m * sizeof(float)), *gr = malloc(m * sizeof(float));
            double *grd = malloc(m * sizeof(double));
            float *st = malloc(bce_dice_state_floats(k.n) * sizeof(float));
            loss_parts a, r;
            run_opt(&k, &a, g);
            r = bce_dice_forward_ref(k.x, k.t, k.n, k.hw, st);
            bce_dice_backward_ref(gr, k.x, k.t, k.n, k.hw, st);
            for (size_t j = 0; j < m; j++)
                grd[j] = gr[j];
            double e = rel_err_d(g, grd, m);
            CHECK_NEAR(a.loss, r.loss, 1e-6 * fabs(r.loss));
            CHECK_NEAR(a.bce, r.bce, 1e-6 * fabs(r.bce));
            CHECK_NEAR(a.dice, r.dice, 1e-6 * fabs(r.dice) + 1e-9);
            CHECK_NEAR(a.loss, a.bce + a.dice, 1e-12);
            CHECK(e <= 1e-5);
            if (e > worst)
                worst = e;
            free(g);
            free(gr);
            free(grd);
            free(st);
            loss_free(&k);
        }
    printf("# loss optimised vs reference: max rel err dlogits %.3g\n", worst);
}

static void test_loss_finite_differences(void)
{
    loss_case k = loss_make(2, 6, 3.0f, 0);
    size_t m = 12;
    float g[12];
    loss_parts r;
    run_opt(&k, &r, g);
    double x[12];
    for (size_t i = 0; i < m; i++)
        x[i] = k.x[i];
    CHECK_NEAR(r.loss, loss_d(x, k.t, 2, 6), 1e-6);
    double worst = 0.0;
    for (size_t i = 0; i < m; i++) {
        const double h = 1e-6;
        double keep = x[i];
        x[i] = keep + h;
        double lp = loss_d(x, k.t, 2, 6);
        x[i] = keep - h;
        double lm = loss_d(x, k.t, 2, 6);
        x[i] = keep;
        double num = (lp - lm) / (2 * h);
        double e = fabs(num - g[i]) / (fabs(num) + 1e-3);
        if (e > worst)
            worst = e;
        CHECK_NEAR(g[i], num, 1e-5 * fabs(num) + 1e-7);
    }
    printf("# loss finite differences: max rel err %.3g\n", worst);
    loss_free(&k);
}

/* Extreme logits: finite loss, finite gradients of the right sign. */
static void test_loss_extreme_logits(void)
{
    float x[4] = {100.0f, -100.0f, 88.0f, -1e30f}, t[4] = {0.0f, 1.0f, 1.0f, 0.0f}, g[4];
    loss_case k = {1, 4, x, t};
    loss_parts r;
    run_opt(&k, &r, g);
    CHECK(isfinite(r.loss));
    CHECK(r.bce > 49.0);
    for (int i = 0; i < 4; i++)
        CHECK(isfinite(g[i]));
    CHECK(g[0] > 0.0f);
    CHECK(g[1] < 0.0f);
}

static void loss_torch_case(int n, int h, int w, int soft)
{
    int hw = h * w;
    loss_case k = loss_make(n, hw, 4.0f, soft);
    size_t m = (size_t)n * (size_t)hw;
    float *in = malloc(2 * m * sizeof(float)), *g = malloc(m * sizeof(float));
    memcpy(in, k.x, m * sizeof(float));
    memcpy(in + m, k.t, m * sizeof(float));
    double *ref = malloc((3 + m) * sizeof(double));
    char args[64];
    snprintf(args, sizeof args, "%d %d %d", n, h, w);
    if (torch_ref("loss", args, in, 2 * m, ref, 3 + m) == 0) {
        loss_parts r;
        run_opt(&k, &r, g);
        double el = fabs(r.loss - ref[0]) / fabs(ref[0]);
        double eb = fabs(r.bce - ref[1]) / fabs(ref[1]);
        double ed = fabs(r.dice - ref[2]) / fabs(ref[2]);
        double eg = rel_err_d(g, ref + 3, m);
        printf("# loss vs torch N%d %dx%d soft %d: loss %.9g (torch %.9g) rel err loss %.2g "
               "bce %.2g dice %.2g dlogits %.2g\n",
               n, h, w, soft, r.loss, ref[0], el, eb, ed, eg);
        CHECK(el <= 1e-5);
        CHECK(eb <= 1e-5);
        CHECK(ed <= 1e-5);
        CHECK(eg <= 1e-5);
    }
    free(in);
    free(g);
    free(ref);
    loss_free(&k);
}

static void test_loss_matches_torch(void)
{
    loss_torch_case(3, 7, 5, 0);
    loss_torch_case(2, 80, 70, 0);
    loss_torch_case(4, 16, 16, 1);
}

static void test_loss_deterministic(void)
{
    loss_case k = loss_make(3, 9000, 5.0f, 0);
    size_t m = (size_t)k.n * (size_t)k.hw;
    float *g1 = malloc(m * sizeof(float)), *g2 = malloc(m * sizeof(float));
    loss_parts r1, r2;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    run_opt(&k, &r1, g1);
    omp_set_num_threads(2);
    run_opt(&k, &r2, g2);
    omp_set_num_threads(saved);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    CHECK(memcmp(g1, g2, m * sizeof(float)) == 0);
    free(g1);
    free(g2);
    loss_free(&k);
}

int main(void)
{
    MG_RUN(test_loss_opt_matches_ref);
    MG_RUN(test_loss_finite_differences);
    MG_RUN(test_loss_extreme_logits);
    MG_RUN(test_loss_matches_torch);
    MG_RUN(test_loss_deterministic);
    return mg_test_exit();
}
