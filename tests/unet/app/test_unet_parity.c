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
#include "conv.h"
#include "isa.h"
#include "layout.h"
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

/* n numbers, one a line, from a text file of parity.py. */
static void read_text_floats(const char *rel, float *v, int n)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "r");
    for (int i = 0; i < n; i++)
        if (!f || fscanf(f, "%f", &v[i]) != 1) MG_FAIL_("%s line %d", p, i + 1);
    if (f) fclose(f);
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

/* Runs parity.py init (seed, shape) into dir = MG_TMPDIR/TAG-B-S-C-base-depth
 * and then each of cmds (printf formats of dir), and returns a model on
 * `be` holding the oracle's parameters, batch and targets (NULL after a
 * failed check). */
static unet *oracle_and_model(const char *tag, int seed, int B, int S, int C, int base,
                              int depth, const char *const *cmds, const unet_backend *be)
{
    snprintf(dir, sizeof dir, "%s/%s-%d-%d-%d-%d-%d", MG_TMPDIR, tag, B, S, C, base, depth);
    char args[1200];
    snprintf(args, sizeof args, "init %s --seed %d --batch %d --size %d --in-ch %d --base %d "
             "--depth %d", dir, seed, B, S, C, base, depth);
    if (py(args)) return NULL;
    for (; *cmds; cmds++) {
        snprintf(args, sizeof args, *cmds, dir);
        if (py(args)) return NULL;
    }
    unet_cfg cfg = {C, base, depth};
    char msg[256];
    unet *m = unet_create(&cfg, B, S, S, 1, be, msg, sizeof msg);
    CHECK(m != NULL);
    if (!m) {
        printf("# %s\n", msg);
        return NULL;
    }
    load_params(m, "params");
    size_t px = (size_t)B * (size_t)S * (size_t)S;
    load("x.bin", unet_input_host(m), 4, px * (size_t)C);
    load("t.bin", unet_target_host(m), 4, px);
    return m;
}

static void test_parity_one_config(int B, int S, int C, int base, int depth, double wd)
{
    char step_cmd[80];
    snprintf(step_cmd, sizeof step_cmd, "step %%s --lr 0.001 --wd %g --steps 3", wd);
    const char *cmds[] = {step_cmd, "eval %s", NULL};
    unet *m = oracle_and_model("parity", 3, B, S, C, base, depth, cmds, unet_backend_cpu());
    if (!m) return;
    unet_cfg cfg = {C, base, depth};
    unet_plan plan = unet_plan_for(&cfg, B, S, S, unet_backend_cpu());
    CHECK_U64(plan.total_bytes, m->plan.total_bytes);
    CHECK_INT(m->nparams, 12 * (2 * depth + 1) + 2 * depth + 2);
    size_t px = (size_t)B * (size_t)S * (size_t)S;

    /* Eval-mode logits first (the running stats are the initial ones). */
    float *want = malloc(px * sizeof *want);
    unet_forward(m, B, false);
    load("out/eval_logits.bin", want, 4, px);
    double e = rel_err(unet_logits_host(m, B), want, px, 1e-2);
    printf("# eval logits max rel err %.3g\n", e);
    CHECK(e < 1e-4);

    float losses[3];
    read_text_floats("out/loss.txt", losses, 3);

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

/* The index of the parameter called `name`, or -1. */
static int param_named(const unet *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->p[i].name, name) == 0) return i;
    return -1;
}

/* NCHW file -> a new blocked tensor of shape s (NULL when missing). */
static float *load_blocked(const char *rel, shape s)
{
    size_t n = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w;
    float *nchw = malloc(n * sizeof *nchw), *t = calloc(shape_floats(s), sizeof *t);
    if (load(rel, nchw, 4, n) == n) layout_pack(t, s, nchw);
    free(nchw);
    return t;
}

/* max |mine - want| / max |want| of a blocked result against an NCHW file. */
static double vs_file(const float *mine, shape s, const char *rel)
{
    size_t n = (size_t)s.b * (size_t)s.c * (size_t)s.h * (size_t)s.w;
    float *a = malloc(n * sizeof *a), *want = malloc(n * sizeof *want);
    layout_unpack(a, s, mine);
    load(rel, want, 4, n);
    double e = rel_err(a, want, n, 1e-12);
    free(a), free(want);
    return e;
}

/* Every convolution of the model, one at a time, on exactly what
 * autocast fed it (out/bf16/layers/, written by parity.py bf16): its
 * output, input gradient, weight and bias gradients against autocast's.
 * Both multiply the same bfloat16 factors; autocast rounds its results to
 * bfloat16 (2^-9 relative) and sums in another order, so each may differ
 * by a few 2^-9 of the tensor's largest value: <= 1e-2 relative. */
static void bf16_layers(unet *m, int B)
{
    char path[900], rel[300];
    snprintf(path, sizeof path, "%s/out/bf16/layers.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) { MG_FAIL_("missing %s", path); return; }
    char name[64];
    int ci, co, h, w, n = 0;
    double worst = 0;
    while (fscanf(f, "%63s %d %d %d %d", name, &ci, &co, &h, &w) == 5) {
        const bool up = strncmp(name, "up.", 3) == 0, out = strcmp(name, "out") == 0;
        shape s = {ci, B, h, w}, so = {co, B, up ? 2 * h : h, up ? 2 * w : w};
        char pn[80];
        snprintf(pn, sizeof pn, "%s.weight", name);
        int wi = param_named(m, pn);
        snprintf(pn, sizeof pn, "%s.bias", name);
        int bi = param_named(m, pn);
        if (wi < 0 || ((up || out) && bi < 0)) { MG_FAIL_("no parameter for %s", name); break; }
        const float *wt = m->params + m->p[wi].off, *bias = bi >= 0 ? m->params + m->p[bi].off : NULL;
        size_t ns = up ? convt2x2_scratch_floats(s, co) : out ? conv1x1_scratch_floats(s, co)
                                                              : conv3x3_scratch_floats(s, co);
        float *scr = malloc(ns * sizeof *scr), *y = calloc(shape_floats(so), sizeof *y);
        float *dx = calloc(shape_floats(s), sizeof *dx);
        float *dw = malloc(m->p[wi].numel * sizeof *dw), *db = malloc((size_t)co * sizeof *db);
        snprintf(rel, sizeof rel, "out/bf16/layers/%s/x.bin", name);
        float *x = load_blocked(rel, s);
        snprintf(rel, sizeof rel, "out/bf16/layers/%s/dy.bin", name);
        float *dy = load_blocked(rel, so);
        if (up) {
            convt2x2_forward_bf16(y, x, s, wt, bias, co, scr);
            convt2x2_backward_data_bf16(dx, dy, s, wt, co, scr);
            convt2x2_backward_weight_bf16(dw, db, dy, x, s, co, scr);
        } else if (out) {
            conv1x1_forward_bf16(y, x, s, wt, bias, co, scr);
            conv1x1_backward_data_bf16(dx, dy, s, wt, co, scr);
            conv1x1_backward_weight_bf16(dw, db, dy, x, s, co, scr);
        } else {
            conv3x3_forward_bf16(y, x, s, wt, co, scr);
            conv3x3_backward_data_bf16(dx, dy, s, wt, co, scr);
            conv3x3_backward_weight_bf16(dw, dy, x, s, co, scr);
        }
        snprintf(rel, sizeof rel, "out/bf16/layers/%s/y.bin", name);
        double e[4] = {vs_file(y, so, rel), 0, 0, 0};
        snprintf(rel, sizeof rel, "out/bf16/layers/%s/dx.bin", name);
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        if (access(path, R_OK) == 0) e[1] = vs_file(dx, s, rel);
        float *want = malloc(m->p[wi].numel * sizeof *want);
        snprintf(rel, sizeof rel, "out/bf16/grad/%s.weight.bin", name);
        load(rel, want, 4, m->p[wi].numel);
        e[2] = rel_err(dw, want, m->p[wi].numel, 1e-12);
        if (bi >= 0) {
            snprintf(rel, sizeof rel, "out/bf16/grad/%s.bias.bin", name);
            load(rel, want, 4, (size_t)co);
            e[3] = rel_err(db, want, (size_t)co, 1e-12);
        }
        for (int k = 0; k < 4; k++) worst = fmax(worst, e[k]);
        if (!(e[0] <= 1e-2 && e[1] <= 1e-2 && e[2] <= 1e-2 && e[3] <= 1e-2))
            MG_FAIL_("bf16 layer %s vs autocast: out %.3g, dx %.3g, dw %.3g, db %.3g", name, e[0],
                     e[1], e[2], e[3]);
        n++;
        free(scr), free(y), free(dx), free(dw), free(db), free(x), free(dy), free(want);
    }
    fclose(f);
    CHECK(n == 4 * m->cfg.depth + 2 + m->cfg.depth + 1);
    printf("# bf16: %d convolutions one by one on autocast's inputs: worst %.3g (out, dx, dw, db)\n",
           n, worst);
}

/* --precision bf16 against torch.autocast("cpu", dtype=torch.bfloat16) on
 * the same weights and batch: one training step's logits, loss and the
 * gradient of every parameter. The two differ by design (autocast also
 * stores every activation in bfloat16 and runs BatchNorm on it; here only
 * the factors of the convolutions' products are rounded, everything else
 * is float32), so each tensor is judged against the size of bf16's own
 * effect on it, autocast's distance from float32 torch (e_at): ours must
 * be at most that far from float32 torch, give or take 50 %, and at most
 * 2.5 x that far from autocast, with a floor of 1e-2 for tensors bf16
 * barely moves. */
static void test_parity_bf16_one(int B, int S, int C, int base, int depth)
{
    char err[200];
    if (unet_bf16_check(err, sizeof err) < 0) {
        printf("# bf16 parity skipped: %s\n", err);
        return;
    }
    const char *cmds[] = {"step %s --lr 0.001 --steps 1", "bf16 %s", NULL};
    unet *m = oracle_and_model("parity-bf16", 5, B, S, C, base, depth, cmds,
                               unet_backend_cpu_bf16());
    if (!m) return;
    size_t px = (size_t)B * (size_t)S * (size_t)S;
    unet_forward(m, B, true);
    double loss = unet_loss(m, B, NULL, NULL);
    unet_backward(m, B);

    float *at = malloc(px * sizeof *at), *f32 = malloc(px * sizeof *f32);
    load("out/bf16/logits.bin", at, 4, px);
    load("out/logits.bin", f32, 4, px);
    const float *mine = unet_logits_host(m, B);
    double e_a = rel_err(mine, at, px, 1e-2), e_f = rel_err(mine, f32, px, 1e-2);
    double e_at = rel_err(at, f32, px, 1e-2);
    printf("# bf16 logits: vs autocast %.3g, vs float32 torch %.3g (autocast vs float32 %.3g)\n",
           e_a, e_f, e_at);
    CHECK(e_f <= fmax(1e-2, 1.5 * e_at) && e_a <= fmax(1e-2, 2.5 * e_at));
    float lat = NAN;
    read_text_floats("out/bf16/loss.txt", &lat, 1);
    printf("# bf16 loss: C %.6g, autocast %.6g\n", loss, (double)lat);
    CHECK_NEAR(loss, lat, 1e-2 * fabs((double)lat));
    free(at), free(f32);

    double worst_a = 0, worst_at = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        float *ga = malloc(p->numel * sizeof *ga), *gf = malloc(p->numel * sizeof *gf);
        char rel[200];
        snprintf(rel, sizeof rel, "out/bf16/grad/%s.bin", p->name);
        load(rel, ga, 4, p->numel);
        snprintf(rel, sizeof rel, "out/grad/%s.bin", p->name);
        load(rel, gf, 4, p->numel);
        const float *g = m->grads + p->off;
        double a = rel_err(g, ga, p->numel, 1e-12), f = rel_err(g, gf, p->numel, 1e-12);
        double t = rel_err(ga, gf, p->numel, 1e-12);
        if (!(f <= fmax(1e-2, 1.5 * t) && a <= fmax(1e-2, 2.5 * t)))
            MG_FAIL_("bf16 grad %s: vs autocast %.3g, vs float32 torch %.3g (autocast vs "
                     "float32 %.3g)", p->name, a, f, t);
        if (a > worst_a) { worst_a = a; worst_at = t; worst_name = p->name; }
        free(ga), free(gf);
    }
    printf("# bf16 grads: worst vs autocast %.3g (%s; autocast vs float32 there %.3g)\n", worst_a,
           worst_name, worst_at);
    bf16_layers(m, B);
    unet_destroy(m);
}

static void test_parity_bf16(void) { test_parity_bf16_one(4, 64, 3, 16, 3); }

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
    MG_RUN(test_parity_bf16);
    return mg_test_exit();
}
