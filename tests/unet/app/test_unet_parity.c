/* SPDX-License-Identifier: MIT */
/*
 * test_unet_parity.c: the C UNet against PyTorch (tests/py/unet_ref.py,
 * Debian's torch 1.13 on the CPU). Same weights and inputs, exchanged as
 * raw files by tests/py/parity.py: the same logits and loss (1e-4
 * relative), the same gradients of every parameter (1e-3), the same
 * parameters and running statistics after Adam steps, and the same
 * eval-mode logits. It also checks the memory plan is what was allocated.
 *
 * Errors are max |a - b| / max |b| per tensor. Some configurations are
 * ill-conditioned in float32 (a 4x4 bottleneck with batch 2 gives BN 32
 * values per channel, and ReLU masks flip on rounding): PyTorch's own
 * float32 gradients then differ from its float64 ones by up to 2 %
 * (measured: dec.1.4.bias, base 16, depth 4, 64x64). So each tensor is
 * also compared with a float64 PyTorch run, and the C result passes when
 * it is within the tolerance of float32 PyTorch, or at most 2x as far
 * from float64 as float32 PyTorch is.
 */
#include "mg_test.h"

#include "backend_cpu.h"
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[600];

static int py(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s/tests/py/parity.py %s", MG_PYTHON, MG_SOURCE_DIR, args);
    int rc = system(cmd);
    if (rc != 0) MG_FAIL_("python failed (%d): %s", rc, cmd);
    return rc;
}

/* Reads n values of `size` bytes; returns how many were read. */
static size_t load(const char *rel, void *dst, size_t size, size_t n)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "rb");
    if (!f) {
        MG_FAIL_("missing %s", p);
        return 0;
    }
    size_t k = fread(dst, size, n, f);
    fclose(f);
    if (k != n) MG_FAIL_("%s: %zu of %zu values", p, k, n);
    return k;
}

/* max |a-b| / max |b| over n values (relative to the tensor's scale:
 * single elements near zero carry float32 rounding either way). NaN
 * anywhere gives infinity. */
static double rel_err(const float *a, const float *b, size_t n, double floor_)
{
    double worst = 0, scale = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d;
        scale = fmax(scale, fabs((double)b[i]));
    }
    return isfinite(worst) ? worst / scale : INFINITY;
}

/* Every float tensor of m (trainable ones only when `grads`) against
 * out/<what>/ (float32 torch) and out/<what>64/ (float64 torch). */
static bool compare_all(unet *m, const char *what, const float *mine, bool grads, double tol)
{
    bool ok = true;
    double worst = 0, worst_t = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->kind == PARAM_BN_COUNT || (grads && p->trainable < 0)) continue;
        float *t32 = malloc(p->numel * sizeof *t32), *t64 = malloc(p->numel * sizeof *t64);
        char rel[200];
        snprintf(rel, sizeof rel, "out/%s/%s.bin", what, p->name);
        load(rel, t32, 4, p->numel);
        snprintf(rel, sizeof rel, "out/%s64/%s.bin", what, p->name);
        load(rel, t64, 4, p->numel);
        double e = rel_err(mine + p->off, t32, p->numel, 1e-12);
        double e64 = rel_err(mine + p->off, t64, p->numel, 1e-12);
        double t = rel_err(t32, t64, p->numel, 1e-12);
        bool pass = e <= tol || e64 <= fmax(tol, 2.0 * t);
        if (!pass) {
            ok = false;
            printf("# %s %s: vs torch32 %.3g, vs torch64 %.3g (torch32 vs torch64 %.3g)\n",
                   what, p->name, e, e64, t);
        }
        if (e > worst) { worst = e; worst_t = t; worst_name = p->name; }
        free(t32);
        free(t64);
    }
    printf("# %s: worst vs torch32 %.3g (%s; torch32 vs torch64 there %.3g)\n", what, worst,
           worst_name, worst_t);
    return ok;
}

static void load_params(unet *m, const char *sub)
{
    char rel[200];
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        snprintf(rel, sizeof rel, "%s/%s.bin", sub, p->name);
        if (p->kind == PARAM_BN_COUNT) load(rel, &m->counts[p->off], 8, 1);
        else load(rel, m->params + p->off, 4, p->numel);
    }
}

static void test_parity_one_config(int B, int S, int C, int base, int depth, double wd)
{
    snprintf(dir, sizeof dir, "%s/parity-%d-%d-%d-%d-%d", MG_TMPDIR, B, S, C, base, depth);
    char args[1200];
    snprintf(args, sizeof args, "init %s --seed 3 --batch %d --size %d --in-ch %d --base %d --depth %d",
             dir, B, S, C, base, depth);
    if (py(args)) return;
    snprintf(args, sizeof args, "step %s --lr 0.001 --wd %g --steps 3", dir, wd);
    if (py(args)) return;
    snprintf(args, sizeof args, "eval %s", dir);
    if (py(args)) return;

    unet_cfg cfg = {C, base, depth};
    char msg[256];
    unet *m = unet_create(&cfg, B, S, S, 1, unet_backend_cpu(), msg, sizeof msg);
    CHECK(m != NULL);
    if (!m) { printf("# %s\n", msg); return; }
    unet_plan plan = unet_plan_for(&cfg, B, S, S, unet_backend_cpu());
    CHECK_U64(plan.total_bytes, m->plan.total_bytes);
    CHECK_INT(m->nparams, 12 * (2 * depth + 1) + 2 * depth + 2);

    load_params(m, "params");
    size_t px = (size_t)B * (size_t)S * (size_t)S;
    load("x.bin", unet_input_host(m), 4, px * (size_t)C);
    load("t.bin", unet_target_host(m), 4, px);

    /* Eval-mode logits first (the running stats are the initial ones). */
    float *want = malloc(px * sizeof *want);
    unet_forward(m, B, false);
    load("out/eval_logits.bin", want, 4, px);
    double e = rel_err(unet_logits_host(m, B), want, px, 1e-2);
    printf("# eval logits max rel err %.3g\n", e);
    CHECK(e < 1e-4);

    float losses[3];
    FILE *lf;
    char lp[900];
    snprintf(lp, sizeof lp, "%s/out/loss.txt", dir);
    lf = fopen(lp, "r");
    for (int i = 0; i < 3; i++)
        if (!lf || fscanf(lf, "%f", &losses[i]) != 1) MG_FAIL_("loss.txt line %d", i);
    if (lf) fclose(lf);

    for (int step = 0; step < 3; step++) {
        unet_forward(m, B, true);
        double loss = unet_loss(m, B, NULL, NULL);
        printf("# step %d loss C %.9g torch %.9g\n", step, loss, (double)losses[step]);
        CHECK_NEAR(loss, losses[step], 1e-4 * fabs((double)losses[step]));
        unet_backward(m, B);
        if (step == 0) {
            load("out/logits.bin", want, 4, px);
            e = rel_err(unet_logits_host(m, B), want, px, 1e-2);
            printf("# train logits max rel err %.3g\n", e);
            CHECK(e < 1e-4);
            CHECK(compare_all(m, "grad", m->grads, true, 1e-3));
        }
        if (step == 0) {
            /* The optimiser on its own: Adam fed PyTorch's own gradients
             * must give PyTorch's parameters (1e-6). Fed our gradients, a
             * few elements whose gradient is within rounding of zero move
             * by anything up to lr either way, in PyTorch's float32 as
             * much as here, so the whole step is judged by the losses of
             * the following steps instead. */
            for (int i = 0; i < m->nparams; i++) {
                const param *p = &m->p[i];
                if (p->trainable < 0) continue;
                char rel[200];
                snprintf(rel, sizeof rel, "out/grad/%s.bin", p->name);
                load(rel, m->grads + p->off, 4, p->numel);
            }
        }
        unet_adam(m, 1e-3, 0.9, 0.999, 1e-8, wd);
        if (step == 0) {
            for (int i = 0; i < m->nparams; i++) {
                const param *p = &m->p[i];
                if (p->kind != PARAM_BN_COUNT) continue;
                char rel[200];
                snprintf(rel, sizeof rel, "out/after/%s.bin", p->name);
                int64_t n = -1;
                load(rel, &n, 8, 1);
                CHECK_INT(m->counts[p->off], n);
            }
            CHECK(compare_all(m, "after", m->params, false, 1e-6));
        }
    }
    free(want);
    unet_destroy(m);
}

static void test_parity_small(void) { test_parity_one_config(2, 32, 3, 8, 2, 0.0); }
static void test_parity_gray_deep_wd(void) { test_parity_one_config(3, 32, 1, 8, 3, 1e-4); }
static void test_parity_default_width(void) { test_parity_one_config(2, 64, 3, 16, 4, 0.0); }

static void test_plan_is_linear_in_batch(void)
{
    unet_cfg cfg = {3, 16, 4};
    unet_plan p1 = unet_plan_for(&cfg, 1, 128, 128, unet_backend_cpu());
    unet_plan p2 = unet_plan_for(&cfg, 2, 128, 128, unet_backend_cpu());
    unet_plan p8 = unet_plan_for(&cfg, 8, 128, 128, unet_backend_cpu());
    CHECK_U64(p1.params_floats, 1942577 + 2944);
    CHECK_U64(p1.train_floats, 1942577);
    /* Activations and their gradients scale with the batch. */
    double per = (double)(p2.act_bytes - p1.act_bytes);
    CHECK_NEAR((double)(p8.act_bytes - p1.act_bytes), 7 * per, 7 * 4096.0);
    printf("# plan B=8 128x128: params %.1f MiB, acts %.1f, grads %.1f, scratch %.1f, total %.1f MiB\n",
           (double)p8.param_bytes / 1048576, (double)p8.act_bytes / 1048576,
           (double)p8.grad_bytes / 1048576, (double)p8.scratch_bytes / 1048576,
           (double)p8.total_bytes / 1048576);
    char msg[200];
    CHECK_INT(unet_check(&cfg, 8, 100, 100, msg, sizeof msg), -1);
    CHECK(strstr(msg, "multiple of 16") != NULL);
    cfg.base = 12;
    CHECK_INT(unet_check(&cfg, 8, 128, 128, msg, sizeof msg), -1);
    CHECK(strstr(msg, "base width 12") != NULL);
}

int main(void)
{
    MG_RUN(test_plan_is_linear_in_batch);
    MG_RUN(test_parity_small);
    MG_RUN(test_parity_gray_deep_wd);
    MG_RUN(test_parity_default_width);
    return mg_test_exit();
}
