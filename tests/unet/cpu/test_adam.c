/* SPDX-License-Identifier: MIT */
/*
 * test_adam.c: torch.optim.Adam (adam.c) and the FTZ/DAZ helper (fpenv.c).
 * Optimised against reference bit for bit, parity with torch 1.13 over 5
 * steps with and without weight decay (params, exp_avg, exp_avg_sq, step;
 * expected bitwise, required within 1e-6), determinism across thread
 * counts, and that fpenv_flush_denormals reaches every OpenMP thread.
 * Fails, with a message, when python3 or torch is missing.
 */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>

#include "adam.h"
#include "fpenv.h"
#include "mg_ops_test.h"

/* Gradients over many magnitudes (1e-6 .. 1), like a real network's. */
static float grad_value(void)
{
    float mag = powf(10.0f, -6.0f * 0.5f * (urand() + 1.0f));
    return mag * urand();
}

#define STEPS 5

static void adam_torch_case(size_t n, adam_hparams h)
{
    float *in = malloc(n * (STEPS + 1) * sizeof(float));
    for (size_t i = 0; i < n * (STEPS + 1); i++)
        in[i] = i < n ? urand() : grad_value();
    float *p = malloc(n * sizeof(float)), *m = calloc(n, sizeof(float)),
          *v = calloc(n, sizeof(float));
    memcpy(p, in, n * sizeof(float));
    int64_t step = 0;
    for (int s = 0; s < STEPS; s++)
        adam_step(&h, &step, p, in + n * (size_t)(s + 1), m, v, n);
    double *ref = malloc((3 * n + 1) * sizeof(double));
    char args[256];
    snprintf(args, sizeof args, "%zu %d %.17g %.17g %.17g %.17g %.17g", n, STEPS, h.lr,
             h.beta1, h.beta2, h.eps, h.weight_decay);
    if (torch_ref("adam", args, in, n * (STEPS + 1), ref, 3 * n + 1) == 0) {
        double ep = 0.0, em = 0.0, ev = 0.0;
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) {
            ep = fmax(ep, fabs(p[i] - ref[i]));
            em = fmax(em, fabs(m[i] - ref[n + i]));
            ev = fmax(ev, fabs(v[i] - ref[2 * n + i]));
            diff += (double)p[i] != ref[i] || (double)m[i] != ref[n + i]
                    || (double)v[i] != ref[2 * n + i];
        }
        printf("# adam vs torch n %zu wd %g, %d steps: max abs err param %.3g exp_avg %.3g "
               "exp_avg_sq %.3g; %zu of %zu elements not bitwise equal\n",
               n, h.weight_decay, STEPS, ep, em, ev, diff, n);
        CHECK(ep <= 1e-6);
        CHECK(em <= 1e-6);
        CHECK(ev <= 1e-6);
        CHECK_NEAR((double)step, ref[3 * n], 0.0);
    }
    free(in);
    free(p);
    free(m);
    free(v);
    free(ref);
}

static void test_adam_matches_torch(void)
{
    adam_hparams h = adam_defaults(1e-3);
    h.weight_decay = 1e-2;
    adam_torch_case(3001, h);
    adam_torch_case(1000, adam_defaults(1e-3));
    adam_hparams h2 = {3e-4, 0.8, 0.99, 1e-6, 0.5};
    adam_torch_case(777, h2);
}

static void test_adam_opt_matches_ref(void)
{
    size_t n = 100003;
    float *p0 = malloc(n * sizeof(float)), *p1 = malloc(n * sizeof(float));
    float *m0 = calloc(n, sizeof(float)), *m1 = calloc(n, sizeof(float));
    float *v0 = calloc(n, sizeof(float)), *v1 = calloc(n, sizeof(float));
    float *g = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p0[i] = p1[i] = urand();
    adam_hparams h = adam_defaults(1e-3);
    h.weight_decay = 1e-2;
    for (int64_t s = 1; s <= STEPS; s++) {
        for (size_t i = 0; i < n; i++)
            g[i] = grad_value();
        adam_scalars k = adam_scalars_for(&h, s);
        adam_update(p0, g, m0, v0, n, &k);
        adam_update_ref(p1, g, m1, v1, n, &k);
    }
    CHECK(memcmp(p0, p1, n * sizeof(float)) == 0);
    CHECK(memcmp(m0, m1, n * sizeof(float)) == 0);
    CHECK(memcmp(v0, v1, n * sizeof(float)) == 0);
    free(p0);
    free(p1);
    free(m0);
    free(m1);
    free(v0);
    free(v1);
    free(g);
}

static void test_adam_deterministic(void)
{
    size_t n = 200001;
    float *g = malloc(n * sizeof(float)), *p[2], *m[2], *v[2];
    for (size_t i = 0; i < n; i++)
        g[i] = grad_value();
    adam_hparams h = adam_defaults(1e-3);
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        p[t] = malloc(n * sizeof(float));
        m[t] = calloc(n, sizeof(float));
        v[t] = calloc(n, sizeof(float));
        for (size_t i = 0; i < n; i++)
            p[t][i] = (float)i * 1e-6f;
        int64_t step = 0;
        for (int s = 0; s < 3; s++)
            adam_step(&h, &step, p[t], g, m[t], v[t], n);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(p[0], p[1], n * sizeof(float)) == 0);
    CHECK(memcmp(m[0], m[1], n * sizeof(float)) == 0);
    CHECK(memcmp(v[0], v[1], n * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) {
        free(p[t]);
        free(m[t]);
        free(v[t]);
    }
    free(g);
}

/* FTZ: a denormal result becomes 0; DAZ: a denormal input reads as 0. Run
 * last: it changes this process's floating-point environment. */
static void test_fpenv_all_threads(void)
{
#if defined(__x86_64__)
    omp_set_num_threads(3);
    int n = fpenv_flush_denormals();
    CHECK_INT(n, 3);
    CHECK(fpenv_denormals_flushed());
    int bad = 0;
#pragma omp parallel num_threads(3) reduction(+ : bad)
    {
        volatile float tiny = 1e-30f, den = 1e-40f; /* den is denormal */
        float r = tiny * 1e-10f;                    /* 1e-40: denormal result */
        float d = den * 1.0f;
        bad += !fpenv_denormals_flushed() || r != 0.0f || d != 0.0f;
    }
    CHECK_INT(bad, 0);
#else
    CHECK_INT(fpenv_flush_denormals(), 0);
#endif
}

int main(void)
{
    MG_RUN(test_adam_matches_torch);
    MG_RUN(test_adam_opt_matches_ref);
    MG_RUN(test_adam_deterministic);
    MG_RUN(test_fpenv_all_threads);
    return mg_test_exit();
}
