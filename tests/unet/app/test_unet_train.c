/* SPDX-License-Identifier: MIT */
/*
 * test_unet_train.c: unet-train end to end, as a user runs it, with
 * PyTorch (Debian's torch 1.13, /usr/bin/python3, tests/py/check_ckpt.py)
 * as the judge of what it writes:
 *   - a short synthetic run learns (validation Dice >= 0.8) and leaves
 *     last.pth, best.pth and metrics.csv, no temporaries;
 *   - its checkpoints load in torch: strict state_dict, the Adam state
 *     into torch.optim.Adam (and one step with it), every pickle opcode
 *     and global in torch 2.x's weights_only whitelist; torch 1.13's
 *     weights_only loader refuses them only for BINFLOAT (plain Python
 *     floats in config / param_groups, as PyTorch's own Adam state_dict
 *     has: 1.13 cannot load those either, 2.x can), shown by a float-free
 *     copy that 1.13 then loads;
 *   - --precision bf16 (where the CPU has it) reaches the same validation
 *     Dice and writes the same kind of checkpoint; its predict gives
 *     float32's logits within bfloat16's rounding;
 *   - `predict` gives torch's logits (1e-4 relative) and one mask per
 *     image at the image's own size, also for state_dicts torch wrote;
 *   - bad data and flags: exit 2 and one line naming the problem, nothing
 *     in --out touched by a bad --resume;
 *   - `plan` is what a run really uses (peak RSS, measured with wait4).
 * Every child runs in its own process group with a deadline; the group is
 * killed afterwards, so nothing outlives a check.
 */
#include "mg_unet_run.h"

#include "backend_cpu.h"
#include "isa.h"
#include "image.h"
#include "data.h"
#include "model.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PY_SCRIPT MG_SOURCE_DIR "/tests/py/check_ckpt.py"

static char root[900];     /* everything this test writes */
static bool have_torch;

/* Runs check_ckpt.py; returns its last stdout line as JSON (caller frees),
 * or NULL after a failed check saying why. */
static cJSON *py_v(const char *const *args, int timeout_ms)
{
    if (!have_torch) {
        MG_FAIL_("skipped: torch is not importable by %s (see test_torch_available)", MG_PYTHON);
        return NULL;
    }
    const char *argv[64] = {MG_PYTHON, PY_SCRIPT};
    int i = 2;
    for (const char *const *a = args; *a && i < 63; a++) argv[i++] = *a;
    argv[i] = NULL;
    run_argv(argv, timeout_ms);
    char *last = NULL;
    for (char *line = strtok(P.out, "\n"); line; line = strtok(NULL, "\n")) last = line;
    cJSON *j = last ? cJSON_Parse(last) : NULL;
    cJSON *e = cJSON_GetObjectItem(j, "error");
    if (P.status != 0 || !j || e) {
        MG_FAIL_("check_ckpt.py %s: exit %d, %s\nstderr:\n%s", args[0], P.status,
                 cJSON_IsString(e) ? e->valuestring : "no JSON result", P.err);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}
#define PY(timeout_ms, ...) py_v((const char *const[]){__VA_ARGS__, NULL}, timeout_ms)

static double jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(j, k);
    if (!cJSON_IsNumber(v)) {
        MG_FAIL_("JSON has no number \"%s\"", k);
        return NAN;
    }
    return v->valuedouble;
}

static bool jtrue(const cJSON *j, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItem(j, k));
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Prints the whole JSON once when a test failed, to see what torch saw. */
static void dump_if_failed(const cJSON *j, int before)
{
    if (mg_test_failed_checks == before || !j) return;
    char *s = cJSON_PrintUnformatted(j);
    printf("# check_ckpt.py said: %s\n", s ? s : "?");
    free(s);
}

/* ---- files ------------------------------------------------------------------------------ */

/* A folder's plain files as "name type size hash" lines, to tell whether
 * anything in it changed. */
static void fingerprint(const char *dir, char *out, size_t len)
{
    tree_list(dir, out, len);
}

/* A gray PNG of w x h with some structure. */
static void gray_png(const char *path, int w, int h, int seed)
{
    uint8_t *px = malloc((size_t)w * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px[y * w + x] = (uint8_t)((x * 7 + y * 13 + seed * 31 + (x * y) % 17) & 0xff);
    char err[256];
    if (unet_png_write_gray8(path, px, w, h, err, sizeof err) < 0) MG_FAIL_("%s", err);
    free(px);
}

/* ---- the first run, shared by the tests after it ---------------------------------- */

static char run_dir[1000];
static int run_ok;
/* The sanitizer build (Debug, ASan) runs the kernels some 30x slower: a
 * smaller problem there, which still learns (Dice ~0.93). */
#ifdef MG_SANITIZE
static const int R_N = 96, R_SIZE = 32, R_BASE = 8, R_DEPTH = 2, R_BATCH = 8, R_EPOCHS = 4;
static const int R_TIMEOUT_MS = 100000, PLAN_SAMPLES = 10;
#else
static const int R_N = 160, R_SIZE = 64, R_BASE = 8, R_DEPTH = 3, R_BATCH = 8, R_EPOCHS = 4;
static const int R_TIMEOUT_MS = 60000, PLAN_SAMPLES = 16;
#endif
static const double R_LR = 0.001;
static int r_train, r_val;       /* from the run's header */
static int r_best_epoch;         /* from metrics.csv */
static double r_best_dice;

/* unet-train on the synthetic set with the R_ settings, 2 threads, line
 * progress, --precision prec, into dir. */
static void synthetic_run(const char *dir, const char *prec, int timeout_ms)
{
    char n[16], s[16], b[16], w[16], d[16], e[16], lr[32];
    snprintf(n, sizeof n, "%d", R_N);
    snprintf(s, sizeof s, "%d", R_SIZE);
    snprintf(w, sizeof w, "%d", R_BASE);
    snprintf(d, sizeof d, "%d", R_DEPTH);
    snprintf(b, sizeof b, "%d", R_BATCH);
    snprintf(e, sizeof e, "%d", R_EPOCHS);
    snprintf(lr, sizeof lr, "%g", R_LR);
    UT(timeout_ms, "--synthetic", n, "--img-size", s, "--base", w, "--depth", d, "--batch", b,
       "--epochs", e, "--lr", lr, "--threads", "2", "--progress", "lines", "--precision", prec,
       "--out", dir);
}

static void test_torch_available(void)
{
    const char *argv[] = {MG_PYTHON, "-c", "import torch, numpy; print(torch.__version__)", NULL};
    run_argv(argv, 60000);
    have_torch = P.status == 0;
    if (!have_torch)
        MG_FAIL_("torch is required: %s cannot import torch and numpy (Debian: apt-get install "
                 "python3-torch python3-numpy); exit %d:\n%s", MG_PYTHON, P.status, P.err);
    else
        printf("# torch %s", P.out);
    if (access(unet_train_path(), X_OK) != 0)
        MG_FAIL_("%s: %s (build the unet_train target)", unet_train_path(), strerror(errno));
}

static void test_train_synthetic_learns(void)
{
    int before = mg_test_failed_checks;
    snprintf(run_dir, sizeof run_dir, "%s/run", root);
    synthetic_run(run_dir, "fp32", R_TIMEOUT_MS);
    CHECK_INT(P.status, 0);
    if (P.status != 0) {
        printf("# stdout:\n%s\n# stderr:\n%s\n", P.out, P.err);
        return;
    }
    printf("# synthetic run: %.1f s\n", P.wall_ms / 1000);
#ifndef MG_SANITIZE
    CHECK(P.wall_ms < 60000);
#endif
    char want[2048];
    snprintf(want, sizeof want, "data: synthetic, %d samples at %dx%d: ", R_N, R_SIZE, R_SIZE);
    const char *h = strstr(P.out, want);
    CHECK(h != NULL);
    if (h) CHECK_INT(sscanf(h + strlen(want), "%d train, %d validation", &r_train, &r_val), 2);
    CHECK_INT(r_train + r_val, R_N);
    CHECK(r_val > 0);

    /* metrics.csv: the header and one row per epoch */
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    char *csv = slurp(path, NULL);
    CHECK(csv != NULL);
    if (!csv) return;
    int col_epoch = -1, col_dice = -1, ncol = 0, rows = 0;
    double last_dice = NAN;
    r_best_dice = -1;
    r_best_epoch = -1;
    char *save1 = NULL;
    for (char *line = strtok_r(csv, "\n", &save1); line; line = strtok_r(NULL, "\n", &save1)) {
        char *save2 = NULL;
        int c = 0;
        double v_epoch = NAN, v_dice = NAN;
        bool header = col_dice < 0 && rows == 0 && ncol == 0;
        for (char *f = strtok_r(line, ",", &save2); f; f = strtok_r(NULL, ",", &save2), c++) {
            if (header) {
                if (!strcmp(f, "epoch")) col_epoch = c;
                if (!strcmp(f, "val_dice")) col_dice = c;
                continue;
            }
            char *end;
            double v = strtod(f, &end);
            if (*end || !isfinite(v)) MG_FAIL_("metrics.csv row %d: field %d '%s'", rows + 1, c, f);
            if (c == col_epoch) v_epoch = v;
            if (c == col_dice) v_dice = v;
        }
        if (header) {
            ncol = c;
            CHECK(col_epoch >= 0 && col_dice >= 0);
            if (col_epoch < 0 || col_dice < 0) break;
            continue;
        }
        rows++;
        CHECK_INT(c, ncol);
        CHECK_NEAR(v_epoch, rows, 0);
        CHECK(v_dice >= 0 && v_dice <= 1);
        if (v_dice > r_best_dice) {
            r_best_dice = v_dice;
            r_best_epoch = rows;
        }
        last_dice = v_dice;
    }
    free(csv);
    CHECK_INT(rows, R_EPOCHS);
    printf("# last val_dice %.4f, best %.4f at epoch %d\n", last_dice, r_best_dice, r_best_epoch);
    CHECK(last_dice >= 0.8);
    /* The closing line names the same best epoch and Dice. */
    snprintf(want, sizeof want, "%s/best.pth (epoch %d, dice ", run_dir, r_best_epoch);
    const char *done = strstr(P.out, want);
    CHECK_CONTAINS(P.out, want);
    if (done) CHECK_NEAR(atof(done + strlen(want)), r_best_dice, 1e-4);

    snprintf(path, sizeof path, "%s/last.pth", run_dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 0);
    snprintf(path, sizeof path, "%s/best.pth", run_dir);
    CHECK(stat(path, &sb) == 0 && sb.st_size > 0);
    DIR *dd = opendir(run_dir);
    struct dirent *de;
    int files = 0;
    while (dd && (de = readdir(dd))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, ".."))) continue;
        files++;
        if (strstr(de->d_name, ".tmp.")) MG_FAIL_("temporary left behind: %s", de->d_name);
        if (de->d_name[0] == '.') MG_FAIL_("hidden file left behind: %s", de->d_name);
    }
    if (dd) closedir(dd);
    CHECK_INT(files, 4); /* last.pth, best.pth, metrics.csv, curves.svg */
    run_ok = mg_test_failed_checks == before;
}

static void check_one_ckpt(const char *dir, const char *name, int want_epoch)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int before = mg_test_failed_checks;
    cJSON *j = PY(60000, "ckpt", path);
    if (!j) return;
    CHECK(jtrue(j, "strict_load"));
    CHECK(jtrue(j, "config_matches_shapes"));
    CHECK(jtrue(j, "finite"));
    const cJSON *cfg = cJSON_GetObjectItem(j, "config");
    CHECK_NEAR(jnum(cfg, "in_ch"), 3, 0); /* the flag's default */
    CHECK_NEAR(jnum(cfg, "base"), R_BASE, 0);
    CHECK_NEAR(jnum(cfg, "depth"), R_DEPTH, 0);
    CHECK_NEAR(jnum(cfg, "img_size"), R_SIZE, 0);
    CHECK_NEAR(jnum(cfg, "batch"), R_BATCH, 0);
    CHECK_NEAR(jnum(cfg, "epochs"), R_EPOCHS, 0);
    CHECK_NEAR(jnum(cfg, "synthetic"), R_N, 0);
    CHECK_NEAR(jnum(cfg, "lr"), R_LR, 0);
    CHECK_NEAR(jnum(j, "epoch"), want_epoch, 0);
    /* Adam: a state per parameter, each stepped once per training batch. */
    CHECK(jtrue(j, "opt_load"));
    CHECK_NEAR(jnum(j, "opt_state_n"), jnum(j, "n_params"), 0);
    CHECK(jtrue(j, "opt_state_shapes_ok"));
    CHECK_NEAR(jnum(j, "opt_lr"), R_LR, 0);
    const cJSON *steps = cJSON_GetObjectItem(j, "opt_steps");
    int per_epoch = (r_train + R_BATCH - 1) / R_BATCH;
    CHECK_INT(cJSON_GetArraySize(steps), 1);
    CHECK_NEAR(cJSON_IsNumber(cJSON_GetArrayItem(steps, 0))
                   ? cJSON_GetArrayItem(steps, 0)->valuedouble : -1,
               (double)want_epoch * per_epoch, 0);
    CHECK(jtrue(j, "opt_step_ok"));
    /* weights_only: opcodes and globals of the 2.x whitelist, protocol 2 */
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "bad_opcodes")), 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "bad_globals")), 0);
    CHECK_NEAR(jnum(j, "proto"), 2, 0);
    double nf = jnum(j, "n_binfloat");
    const char *tv = jstr(j, "torch");
    if (tv[0] == '1' && tv[1] == '.') {
        /* 1.13: refuses BINFLOAT and nothing else */
        if (nf > 0) {
            CHECK(!jtrue(j, "wo_load"));
            CHECK(jtrue(j, "wo_refuses_binfloat"));
        } else {
            CHECK(jtrue(j, "wo_load"));
        }
    } else {
        CHECK(jtrue(j, "wo_load")); /* 2.x: BINFLOAT is whitelisted */
    }
    CHECK(jtrue(j, "wo_nofloat_load"));
    printf("# %s: torch %s, %g BINFLOATs; weights_only load: %s%s\n", name, tv, nf,
           jtrue(j, "wo_load") ? "yes" : "no: ", jstr(j, "wo_error"));
    dump_if_failed(j, before);
    cJSON_Delete(j);
}

static void test_checkpoint_loads_in_torch(void)
{
    if (!run_ok) {
        MG_FAIL_("needs the synthetic run");
        return;
    }
    check_one_ckpt(run_dir, "last.pth", R_EPOCHS);
    check_one_ckpt(run_dir, "best.pth", r_best_epoch);
}

/* The first run again with --precision bf16 where this CPU has AVX512_BF16:
 * the same data, seed and batches reach the same best validation Dice
 * (within 0.01, issue 17's bound; this run printed 0.9765 against 0.9759
 * on the AVX512_BF16 host of 2026-12), and its checkpoints are the same
 * float32 files torch loads. */
static void test_bf16_run_learns_the_same(void)
{
    char err[200];
    if (unet_bf16_check(err, sizeof err) < 0) {
        printf("# skipped: %s\n", err);
        return;
    }
    if (!run_ok) {
        MG_FAIL_("needs the synthetic run");
        return;
    }
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/run-bf16", root);
    synthetic_run(dir, "bf16", 4 * R_TIMEOUT_MS);
    CHECK_INT(P.status, 0);
    CHECK_CONTAINS(P.out, "cpu-avx512bf16");
    char want[1100];
    snprintf(want, sizeof want, "%s/best.pth (epoch ", dir);
    const char *done = strstr(P.out, want);
    int best_epoch = -1;
    double dice = NAN;
    if (!done || sscanf(done + strlen(want), "%d, dice %lf", &best_epoch, &dice) != 2) {
        MG_FAIL_("no closing line in:\n%s", P.out);
        return;
    }
    printf("# best val Dice: float32 %.4f (epoch %d), bf16 %.4f (epoch %d); %.1f s\n",
           r_best_dice, r_best_epoch, dice, best_epoch, P.wall_ms / 1000);
    CHECK(fabs(dice - r_best_dice) <= 0.01);
    check_one_ckpt(dir, "last.pth", R_EPOCHS);
}

/* The .npy predict writes: float32 (n, 1, h, w). Returns the values. */
static float *read_npy(const char *path, int *n, int *h, int *w)
{
    size_t len;
    char *b = slurp(path, &len);
    if (!b || len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        free(b);
        return NULL;
    }
    size_t hl = (size_t)(uint8_t)b[8] | (size_t)(uint8_t)b[9] << 8;
    int one = 0;
    const char *shp = strstr(b + 10, "'shape': (");
    if (!strstr(b + 10, "'<f4'") || !shp ||
        sscanf(shp, "'shape': (%d, %d, %d, %d)", n, &one, h, w) != 4 || one != 1 ||
        len != 10 + hl + (size_t)*n * (size_t)*h * (size_t)*w * 4) {
        free(b);
        return NULL;
    }
    float *v = malloc(len - 10 - hl);
    memcpy(v, b + 10 + hl, len - 10 - hl);
    free(b);
    return v;
}

/* masks/<stem>.png: w x h, only 0 and 255. */
static void check_mask(const char *path, int w, int h, const float *logits)
{
    unet_image im;
    char err[512];
    if (unet_image_load(path, &im, err, sizeof err) < 0) {
        MG_FAIL_("%s", err);
        return;
    }
    CHECK_INT(im.w, w);
    CHECK_INT(im.h, h);
    CHECK_INT(im.c, 1);
    int odd = 0, disagree = 0;
    for (int i = 0; i < w * h; i++) {
        float v = im.px[i];
        if (v != 0.0f && v != 1.0f) odd++;
        /* same size: the mask is logit > 0, except on the edge itself */
        if (logits && fabsf(logits[i]) > 1e-5f && (v > 0.5f) != (logits[i] > 0)) disagree++;
    }
    CHECK_INT(odd, 0);
    CHECK_INT(disagree, 0);
    unet_image_free(&im);
}

/* predict --precision bf16 on the same images where the CPU has it: the
 * logits of float32's (n images in f32) to within bfloat16's effect,
 * 5e-2 of the largest (measured: 0.020 at 64x64, base 8, depth 3). */
static void predict_bf16_close(const char *ckpt, const char *img, const float *f32, int n)
{
    char err[200], masks[1100], npy[1100];
    if (unet_bf16_check(err, sizeof err) < 0) {
        printf("# bf16 predict skipped: %s\n", err);
        return;
    }
    snprintf(masks, sizeof masks, "%s/pred/masks_bf16", root);
    snprintf(npy, sizeof npy, "%s/pred/logits_bf16.npy", root);
    UT(60000, "predict", "--checkpoint", ckpt, "--input", img, "--out", masks, "--logits", npy,
       "--threads", "2", "--precision", "bf16");
    CHECK_INT(P.status, 0);
    int ln = 0, lh = 0, lw = 0;
    float *lg = read_npy(npy, &ln, &lh, &lw);
    CHECK(lg != NULL && ln == n && lh == R_SIZE && lw == R_SIZE);
    if (lg && f32 && n > 0 && ln == n && lh == R_SIZE && lw == R_SIZE) {
        double d = 0, mx = 0;
        for (size_t i = 0; i < (size_t)n * (size_t)R_SIZE * (size_t)R_SIZE; i++) {
            d = fmax(d, fabs((double)lg[i] - f32[i]));
            mx = fmax(mx, fabs((double)f32[i]));
        }
        printf("# predict bf16 vs float32: max |diff| %.3g, max |logit| %.3g, rel %.3g\n", d, mx,
               d / mx);
        CHECK(d <= 5e-2 * mx);
    }
    free(lg);
}

static void test_predict_matches_torch(void)
{
    if (!run_ok) {
        MG_FAIL_("needs the synthetic run");
        return;
    }
    char img[1100], masks[1100], npy[1100], ckpt[1100], s[16];
    snprintf(img, sizeof img, "%s/pred/images", root);
    snprintf(masks, sizeof masks, "%s/pred/masks", root);
    snprintf(npy, sizeof npy, "%s/pred/logits.npy", root);
    snprintf(ckpt, sizeof ckpt, "%s/best.pth", run_dir);
    snprintf(s, sizeof s, "%d", R_SIZE);
    /* 5 RGB images at the model's size: batches of 4 and 1 */
    cJSON *wj = PY(30000, "write-images", img, "5", s, "3", "11");
    if (!wj) return;
    const cJSON *names = cJSON_GetObjectItem(wj, "written");
    int n = cJSON_GetArraySize(names);
    UT(30000, "predict", "--checkpoint", ckpt, "--input", img, "--out", masks, "--logits", npy,
       "--threads", "2");
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s\n", P.err);
    char want[64];
    snprintf(want, sizeof want, "predicted %d masks", n);
    CHECK_CONTAINS(P.out, want);
    int before = mg_test_failed_checks;
    cJSON *j = P.status == 0 ? PY(60000, "predict", ckpt, img, npy) : NULL;
    if (j) {
        CHECK_NEAR(jnum(j, "n"), n, 0);
        CHECK_STR(jstr(j, "dtype"), "float32");
        CHECK_NEAR(jnum(j, "size"), R_SIZE, 0);
        double rel = jnum(j, "rel");
        printf("# predict vs torch (ours): max |diff| %.3g, max |logit| %.3g, rel %.3g\n",
               jnum(j, "max_abs_diff"), jnum(j, "max_abs"), rel);
        CHECK(rel <= 1e-4);
        CHECK(jnum(j, "max_abs") > 0);
        dump_if_failed(j, before);
        cJSON_Delete(j);
    }
    int ln = 0, lh = 0, lw = 0;
    float *lg = read_npy(npy, &ln, &lh, &lw);
    CHECK(lg != NULL);
    CHECK_INT(ln, n);
    CHECK_INT(lh, R_SIZE);
    CHECK_INT(lw, R_SIZE);
    for (int i = 0; i < n; i++) {
        char stem[256], mp[1400];
        snprintf(stem, sizeof stem, "%s", cJSON_GetArrayItem(names, i)->valuestring);
        char *dot = strrchr(stem, '.');
        if (dot) *dot = '\0';
        snprintf(mp, sizeof mp, "%s/%s.png", masks, stem);
        CHECK(exists(mp));
        check_mask(mp, R_SIZE, R_SIZE,
                   lg && ln == n && lh == R_SIZE && lw == R_SIZE
                       ? lg + (size_t)i * (size_t)R_SIZE * (size_t)R_SIZE : NULL);
    }
    predict_bf16_close(ckpt, img, lg, ln == n && lh == R_SIZE && lw == R_SIZE ? n : 0);
    free(lg);
    cJSON_Delete(wj);

    /* Other sizes: the mask comes back at the image's own size. */
    snprintf(img, sizeof img, "%s/pred/odd", root);
    snprintf(masks, sizeof masks, "%s/pred/odd_masks", root);
    const int ow = 40, oh = 24;
    char sw[16], sh[16];
    snprintf(sw, sizeof sw, "%d", ow);
    snprintf(sh, sizeof sh, "%d", oh);
    wj = PY(30000, "write-images", img, "2", s, "3", "12", "--w", sw, "--h", sh);
    if (!wj) return;
    names = cJSON_GetObjectItem(wj, "written");
    UT(30000, "predict", "--checkpoint", ckpt, "--input", img, "--out", masks);
    CHECK_INT(P.status, 0);
    for (int i = 0; i < cJSON_GetArraySize(names); i++) {
        char stem[256], mp[1400];
        snprintf(stem, sizeof stem, "%s", cJSON_GetArrayItem(names, i)->valuestring);
        char *dot = strrchr(stem, '.');
        if (dot) *dot = '\0';
        snprintf(mp, sizeof mp, "%s/%s.png", masks, stem);
        check_mask(mp, ow, oh, NULL);
    }
    cJSON_Delete(wj);
}

/* A state_dict torch wrote (bare, and inside {"model", "optimizer",
 * "epoch"}) runs in C with torch's logits. Gray model, gray images written
 * by the C PNG writer (libpng's row filters), decoded by hand in python. */
static void test_torch_written_state_dict(void)
{
    char dir[1100], img[1100];
    const int C = 1, W = 8, D = 2, S = 32, N = 3;
    char c[8], w[8], d[8], s[8];
    snprintf(c, sizeof c, "%d", C);
    snprintf(w, sizeof w, "%d", W);
    snprintf(d, sizeof d, "%d", D);
    snprintf(s, sizeof s, "%d", S);
    snprintf(dir, sizeof dir, "%s/torch", root);
    snprintf(img, sizeof img, "%s/torch/images", root);
    cJSON *j = PY(60000, "torch-save", dir, "--in-ch", c, "--base", w, "--depth", d, "--size", s,
                  "--seed", "7");
    if (!j) return;
    cJSON_Delete(j);
    mkdirs(img);
    for (int i = 0; i < N; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/g%d.png", img, i);
        gray_png(p, S, S, i);
    }
    const char *kinds[] = {"bare", "full"};
    for (int k = 0; k < 2; k++) {
        char ck[1200], npy[1200], masks[1200];
        snprintf(ck, sizeof ck, "%s/%s.pth", dir, kinds[k]);
        snprintf(npy, sizeof npy, "%s/%s.npy", dir, kinds[k]);
        snprintf(masks, sizeof masks, "%s/%s_masks", dir, kinds[k]);
        UT(30000, "predict", "--checkpoint", ck, "--img-size", s, "--input", img, "--out", masks,
           "--logits", npy, "--threads", "2");
        CHECK_INT(P.status, 0);
        if (P.status) {
            printf("# %s.pth: stderr:\n%s\n", kinds[k], P.err);
            continue;
        }
        int before = mg_test_failed_checks;
        j = PY(60000, "predict", ck, img, npy, "--img-size", s);
        if (!j) continue;
        CHECK_NEAR(jnum(j, "n"), N, 0);
        CHECK_NEAR(jnum(j, "in_ch"), C, 0);
        CHECK_NEAR(jnum(j, "depth"), D, 0);
        double rel = jnum(j, "rel");
        printf("# predict vs torch (%s.pth from torch): rel %.3g\n", kinds[k], rel);
        CHECK(rel <= 1e-4);
        CHECK(jnum(j, "max_abs") > 0);
        dump_if_failed(j, before);
        cJSON_Delete(j);
        for (int i = 0; i < N; i++) {
            char mp[1400];
            snprintf(mp, sizeof mp, "%s/g%d.png", masks, i);
            CHECK(exists(mp));
        }
    }
}

/* ---- bad data and flags ----------------------------------------------------------------- */

/* Exit 2, and stderr is one "unet-train: " line containing `want` (plus,
 * for flag errors, the "Try 'unet-train --help'." hint). */
static void expect_usage_error(const char *what, const char *want)
{
    int before = mg_test_failed_checks;
    CHECK_INT(P.status, 2);
    int problems = 0, other = 0;
    const char *first = NULL;
    char buf[sizeof P.err];
    snprintf(buf, sizeof buf, "%s", P.err);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "unet-train: ", 12)) {
            problems++;
            if (!first) first = P.err + (line - buf);
        } else if (strcmp(line, "Try 'unet-train --help'.")) {
            other++;
        }
    }
    CHECK_INT(problems, 1);
    CHECK_INT(other, 0);
    CHECK_CONTAINS(P.err, want);
    if (mg_test_failed_checks != before)
        printf("# case '%s': exit %d, stderr:\n%s# stdout:\n%s\n", what, P.status, P.err, P.out);
}

static void make_pair(const char *dir, const char *stem, int w, int h, int mw, int mh)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/images/%s.png", dir, stem);
    gray_png(p, w, h, 1);
    if (mw > 0) {
        snprintf(p, sizeof p, "%s/masks/%s.png", dir, stem);
        gray_png(p, mw, mh, 2);
    }
}

static void data_case(const char *name, const char *data, const char *want)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/bad/out_%s", root, name);
    UT(30000, "--data", data, "--img-size", "32", "--depth", "2", "--base", "8", "--epochs", "1",
       "--threads", "2", "--progress", "lines", "--out", out);
    expect_usage_error(name, want);
    char p[1200];
    snprintf(p, sizeof p, "%s/last.pth", out);
    CHECK(!exists(p));
}

static void test_bad_data(void)
{
    char base[1000], d[1100], want[8192];
    snprintf(base, sizeof base, "%s/bad", root);

    snprintf(d, sizeof d, "%s/missing", base);
    snprintf(want, sizeof want, "unet-train: %s/images: folder not found", d);
    data_case("missing", d, want);

    snprintf(d, sizeof d, "%s/nomasks", base);
    mkdirs(d);
    snprintf(want, sizeof want, "%s/images", d);
    mkdirs(want);
    make_pair(d, "a", 32, 32, 0, 0);
    snprintf(want, sizeof want, "unet-train: %s/masks: folder not found (a data set needs %s/images/ "
             "and %s/masks/)", d, d, d);
    data_case("nomasks", d, want);

    snprintf(d, sizeof d, "%s/unpaired", base);
    snprintf(want, sizeof want, "%s/images", d);
    mkdirs(want);
    snprintf(want, sizeof want, "%s/masks", d);
    mkdirs(want);
    make_pair(d, "a", 32, 32, 32, 32);
    make_pair(d, "b", 32, 32, 0, 0);
    snprintf(want, sizeof want, "unet-train: %s/images/b.png: image has no mask (looked for "
             "masks/b.png, .jpg or .jpeg)", d);
    data_case("unpaired", d, want);

    /* random bytes named .png; PNG magic then garbage; a truncated PNG */
    const char *kinds[] = {"random", "magic", "truncated"};
    for (int k = 0; k < 3; k++) {
        snprintf(d, sizeof d, "%s/corrupt_%s", base, kinds[k]);
        snprintf(want, sizeof want, "%s/images", d);
        mkdirs(want);
        snprintf(want, sizeof want, "%s/masks", d);
        mkdirs(want);
        make_pair(d, "a", 32, 32, 32, 32);
        make_pair(d, "b", 32, 32, 32, 32);
        char p[1200];
        snprintf(p, sizeof p, "%s/images/a.png", d);
        uint8_t junk[600];
        uint32_t x = 12345u + (uint32_t)k;
        for (size_t i = 0; i < sizeof junk; i++) {
            x = x * 1664525u + 1013904223u;
            junk[i] = (uint8_t)(x >> 24);
        }
        if (k == 0) {
            junk[0] = 'J'; /* neither PNG nor JPEG magic */
            spit(p, junk, sizeof junk);
            snprintf(want, sizeof want, "unet-train: %s: not a PNG or JPEG file", p);
        } else if (k == 1) {
            memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
            spit(p, junk, sizeof junk);
            snprintf(want, sizeof want, "unet-train: %s: corrupt PNG: ", p);
        } else {
            size_t len;
            char *b = slurp(p, &len);
            if (b) spit(p, b, len / 2);
            free(b);
            snprintf(want, sizeof want, "unet-train: %s: corrupt PNG: ", p);
        }
        data_case(kinds[k], d, want);
    }

    snprintf(d, sizeof d, "%s/empty", base);
    snprintf(want, sizeof want, "%s/images", d);
    mkdirs(want);
    snprintf(want, sizeof want, "%s/masks", d);
    mkdirs(want);
    snprintf(want, sizeof want, "unet-train: %s: no images (%s/images/ has no .png, .jpg or .jpeg "
             "files)", d, d);
    data_case("empty", d, want);

    snprintf(d, sizeof d, "%s/size", base);
    snprintf(want, sizeof want, "%s/images", d);
    mkdirs(want);
    snprintf(want, sizeof want, "%s/masks", d);
    mkdirs(want);
    make_pair(d, "a", 32, 32, 32, 16);
    make_pair(d, "b", 32, 32, 32, 32);
    snprintf(want, sizeof want, "unet-train: %s/masks/a.png: mask is 32x16 but its image "
             "%s/images/a.png is 32x32", d, d);
    data_case("mask_size", d, want);
}

static void test_bad_flags(void)
{
    char out[1100], want[8192];
    snprintf(out, sizeof out, "%s/badflags/out", root);
    const int depth = 4, size = 100;
    char ds[8], ss[8];
    snprintf(ds, sizeof ds, "%d", depth);
    snprintf(ss, sizeof ss, "%d", size);
    UT(30000, "--synthetic", "8", "--depth", ds, "--img-size", ss, "--out", out);
    snprintf(want, sizeof want, "--img-size %d: expected a multiple of %d (2^depth, with "
             "--depth %d)", size, 1 << depth, depth);
    expect_usage_error("img-size", want);

    UT(30000, "--synthetic", "8", "--batch", "0", "--out", out);
    expect_usage_error("batch 0", "unet-train: --batch '0': expected an integer from 1 to");
    UT(30000, "--synthetic", "8", "--lr", "-1", "--out", out);
    expect_usage_error("lr -1", "unet-train: --lr '-1': expected a number in (0, ");
    UT(30000, "--synthetic", "8", "--in-ch", "2", "--out", out);
    expect_usage_error("in-ch 2", "unet-train: --in-ch '2': expected 1 (gray) or 3 (RGB)");
    UT(30000, "--data", root, "--synthetic", "8", "--out", out);
    expect_usage_error("data+synthetic",
                       "unet-train: --data and --synthetic exclude each other: give one");
    UT(30000, "--synthetic", "8", "--bogus", "--out", out);
    expect_usage_error("unknown option", "unet-train: unknown option '--bogus'");
    UT(30000, "predict", "--input", root, "--out", out);
    expect_usage_error("predict without checkpoint",
                       "unet-train: predict: --checkpoint FILE is required");
    CHECK(!exists(out)); /* flag errors come before anything is created */

    /* --out that is a regular file: it stays that file */
    char file[1100];
    snprintf(file, sizeof file, "%s/badflags/a_file", root);
    mkdirs(out);
    spit(file, "keep\n", 5);
    UT(30000, "--synthetic", "8", "--img-size", "32", "--depth", "2", "--base", "8", "--epochs",
       "1", "--out", file);
    snprintf(want, sizeof want, "unet-train: --out %s: ", file);
    expect_usage_error("out is a file", want);
    CHECK_CONTAINS(P.err, strerror(ENOTDIR));
    char *kept = slurp(file, NULL);
    CHECK_STR(kept, "keep\n");
    free(kept);
}

/* --resume of a missing, a truncated and a corrupted checkpoint, into the
 * synthetic run's folder with the run's own flags: exit 2, and every file
 * of --out keeps its bytes. */
static void test_bad_resume(void)
{
    if (!run_ok) {
        MG_FAIL_("needs the synthetic run");
        return;
    }
    char n[16], s[16], b[16], w[16], d[16], e[16];
    snprintf(n, sizeof n, "%d", R_N);
    snprintf(s, sizeof s, "%d", R_SIZE);
    snprintf(w, sizeof w, "%d", R_BASE);
    snprintf(d, sizeof d, "%d", R_DEPTH);
    snprintf(b, sizeof b, "%d", R_BATCH);
    snprintf(e, sizeof e, "%d", R_EPOCHS + 1);
    char last[1100], bad[3][1100], want[8192];
    snprintf(last, sizeof last, "%s/last.pth", run_dir);
    size_t len = 0;
    char *bytes = slurp(last, &len);
    CHECK(bytes != NULL && len > 1000);
    if (!bytes) return;
    mkdirs(root);
    snprintf(bad[0], sizeof bad[0], "%s/no_such.pth", root);
    snprintf(bad[1], sizeof bad[1], "%s/truncated.pth", root);
    spit(bad[1], bytes, len / 2);
    snprintf(bad[2], sizeof bad[2], "%s/flipped.pth", root);
    for (size_t i = len / 3; i < len / 3 + 64; i++) bytes[i] = (char)~bytes[i];
    spit(bad[2], bytes, len);
    free(bytes);
    static char fp_before[8192], fp_after[8192];
    fingerprint(run_dir, fp_before, sizeof fp_before);
    for (int k = 0; k < 3; k++) {
        UT(30000, "--synthetic", n, "--img-size", s, "--base", w, "--depth", d, "--batch", b,
           "--epochs", e, "--threads", "2", "--progress", "lines", "--resume", bad[k], "--out",
           run_dir);
        snprintf(want, sizeof want, "unet-train: --resume %s: ", bad[k]);
        expect_usage_error(k == 0 ? "resume missing" : k == 1 ? "resume truncated"
                                                               : "resume corrupted", want);
        if (k == 0) CHECK_CONTAINS(P.err, strerror(ENOENT));
        fingerprint(run_dir, fp_after, sizeof fp_after);
        CHECK_STR(fp_after, fp_before);
    }
    /* Into a new --out two levels deep: the failed start takes away the
     * folders it made, and only those. */
    char fresh[1300], parent[1200];
    snprintf(parent, sizeof parent, "%s/fresh_parent", root);
    snprintf(fresh, sizeof fresh, "%s/run", parent);
    UT(30000, "--synthetic", n, "--img-size", s, "--base", w, "--depth", d, "--batch", b,
       "--threads", "2", "--resume", bad[1], "--out", fresh);
    expect_usage_error("resume into a new folder", "unet-train: --resume ");
    struct stat st;
    CHECK(stat(parent, &st) != 0 && errno == ENOENT);
    CHECK(stat(root, &st) == 0);
}

/* ---- plan ------------------------------------------------------------------------------ */

static void test_plan_is_real(void)
{
    const int B = 8, S = 128, NS = PLAN_SAMPLES;
    char bs[8], ss[8], ns[8];
    snprintf(bs, sizeof bs, "%d", B);
    snprintf(ss, sizeof ss, "%d", S);
    snprintf(ns, sizeof ns, "%d", NS);
    UT(30000, "plan", "--batch", bs, "--img-size", ss);
    CHECK_INT(P.status, 0);
    unet_cfg cfg = {0, 0, 0};
    const char *l1 = strstr(P.out, "UNet depth ");
    CHECK(l1 && sscanf(l1, "UNet depth %d, base %d, %d input", &cfg.depth, &cfg.base,
                       &cfg.in_ch) == 3);
    const char *tl = strstr(P.out, "MiB  (");
    unsigned long long total = 0;
    CHECK(tl && sscanf(tl, "MiB  (%llu bytes)", &total) == 1);
    const char *pl = strstr(P.out, "parameters, gradients, Adam m and v");
    double param_mib = 0;
    CHECK(pl && sscanf(pl, "parameters, gradients, Adam m and v %lf MiB", &param_mib) == 1);
    if (!l1 || !tl || !pl || !total) {
        printf("# plan said:\n%s%s\n", P.out, P.err);
        return;
    }
    /* the printed plan is the library's plan for the printed model */
    unet_plan p = unet_plan_for(&cfg, B, S, S, unet_backend_cpu());
    CHECK_U64(total, p.total_bytes);
    CHECK_NEAR(param_mib, (double)p.param_bytes / 1048576.0, 0.05);

    char out[1100];
    snprintf(out, sizeof out, "%s/plan_run", root);
    UT(R_TIMEOUT_MS, "--synthetic", ns, "--epochs", "1", "--batch", bs, "--img-size", ss, "--threads",
       "2", "--progress", "lines", "--out", out);
    CHECK_INT(P.status, 0);
    if (P.status) {
        printf("# stderr:\n%s\n", P.err);
        return;
    }
    char want[64];
    snprintf(want, sizeof want, "memory plan: %.1f MiB", (double)total / 1048576.0);
    CHECK_CONTAINS(P.out, want);
    uint64_t data = unet_data_bytes(NS, S, cfg.in_ch);
    double rss = (double)P.maxrss_kb * 1024.0;
    double hi = (double)total + (double)data + 64.0 * 1048576.0;
    printf("# plan %.1f MiB (params %.1f MiB) + data %.1f MiB; run peak RSS %.1f MiB (bounds "
           "%.1f to %.1f MiB), %.1f s\n", (double)total / 1048576.0, param_mib,
           (double)data / 1048576.0, rss / 1048576.0, (double)p.param_bytes / 1048576.0,
           hi / 1048576.0, P.wall_ms / 1000);
#ifdef MG_SANITIZE
    printf("# ASan build: its shadow memory and quarantine inflate RSS; bounds not checked\n");
#else
    CHECK(rss < hi);
    CHECK(rss > (double)p.param_bytes);
#endif
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unet-train-e2e", MG_TMPDIR);
    mg_rm_rf(root);
    mkdirs(root);
    signal(SIGPIPE, SIG_IGN);
    double t0 = mg_mono_ms();
    MG_RUN(test_torch_available);
    MG_RUN(test_train_synthetic_learns);
    MG_RUN(test_checkpoint_loads_in_torch);
    MG_RUN(test_bf16_run_learns_the_same);
    MG_RUN(test_predict_matches_torch);
    MG_RUN(test_torch_written_state_dict);
    MG_RUN(test_bad_data);
    MG_RUN(test_bad_flags);
    MG_RUN(test_bad_resume);
    MG_RUN(test_plan_is_real);
    printf("# %.1f s\n", (mg_mono_ms() - t0) / 1000);
    return mg_test_exit();
}
