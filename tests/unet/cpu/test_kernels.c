/* SPDX-License-Identifier: MIT */
/*
 * test_kernels.c: one meaning of UNET_KERNELS for every op of the CPU
 * backend (cpu/isa.c; the table in unet-train(1), ENVIRONMENT):
 *   - for unset, empty, avx512bf16, avx512, avx2 and ref, the kernel each
 *     op family reports (convolutions, bf16 convolutions, BatchNorm,
 *     pooling, Adam) is the table's for this CPU, whose features are read
 *     here from CPUID with GCC's builtins, not through isa.c, and
 *     unet_bf16_check refuses bf16 where the table says so, naming the
 *     reason;
 *   - under ref the convolution and BN calls give their *_ref function's
 *     bits, so the dispatch follows the value, not only the names;
 *   - any other value: unet_kernels_check says so in one line naming it
 *     (cut and made printable), the ops keep the default kernels, and
 *     unet-train (plan, predict, train) exits 2 with that one line on
 *     stderr, nothing on stdout, nothing created; --help still works;
 *   - --precision bf16 where the table has no bf16 kernel (UNET_KERNELS
 *     capping below avx512bf16 plays a CPU without AVX512_BF16): train
 *     and predict exit 2 with unet_bf16_check's line, nothing created;
 *     --precision with another value likewise;
 *   - UNET_WINOGRAD: on, off, empty and unset accepted (off alone turns
 *     Winograd off), anything else one line naming it, and unet-train
 *     exits 2 with it, nothing created.
 */
#include "mg_ops_test.h"
#include "mg_unet_run.h"

#include "adam.h"
#include "bn.h"
#include "kernel.h"
#include "isa.h"
#include "model.h" /* BN_EPS, BN_MOMENTUM */
#include "pool.h"

/* ---- the table, from this CPU's features ---------------------------------------- */

static bool cpu_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static bool cpu_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
}

static bool cpu_bf16(void)
{
    __builtin_cpu_init();
    return cpu_avx512() && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

/* unet-train(1)'s table: value -> (convolutions, bf16 convolutions, BN /
 * pooling / Adam); NULL: bf16 refused. */
static const char *want_bf16(const char *v)
{
    if (strcmp(v, "ref") == 0) return "ref";
    if (strcmp(v, "avx512") == 0 || strcmp(v, "avx2") == 0 || !cpu_bf16()) return NULL;
    return "avx512bf16";
}

static const char *want_conv(const char *v)
{
    if (strcmp(v, "ref") == 0) return "ref";
    if (strcmp(v, "avx2") != 0 && cpu_avx512()) return "avx512"; /* also avx512bf16 */
    return cpu_avx2_fma() ? "avx2" : "ref";
}

static const char *want_vec(const char *v)
{
    if (strcmp(v, "ref") == 0) return "ref";
    return cpu_avx2_fma() ? "avx2" : "base";
}

/* UNET_KERNELS=v, or unset for NULL. */
static void set_kernels(const char *v)
{
    if (v) setenv("UNET_KERNELS", v, 1);
    else unsetenv("UNET_KERNELS");
}

static void check_families(const char *label, const char *as)
{
    const char *wb = want_bf16(as);
    char err[200];
    int bf = unet_bf16_check(err, sizeof err);
    if (wb ? bf != 0 || strcmp(conv_kernels_name_bf16(), wb) != 0 : bf != -1)
        MG_FAIL_("UNET_KERNELS %s: bf16 convolutions %s (check %d), the table says %s", label,
                 conv_kernels_name_bf16(), bf, wb ? wb : "refused");
    if (!wb && !cpu_bf16())
        CHECK_STR(err, "--precision bf16: this CPU has no AVX512_BF16 (bf16 dot products); use "
                       "--precision fp32 here");
    else if (!wb)
        CHECK_CONTAINS(err, "caps the kernels below avx512bf16");
    const char *got[] = {conv_kernels_name(), bn_kernels_name(), pool_kernels_name(),
                         adam_kernels_name()};
    const char *want[] = {want_conv(as), want_vec(as), want_vec(as), want_vec(as)};
    const char *fam[] = {"convolutions", "BN", "pooling", "Adam"};
    for (int i = 0; i < 4; i++)
        if (strcmp(got[i], want[i]) != 0)
            MG_FAIL_("UNET_KERNELS %s: %s run %s, the table says %s", label, fam[i], got[i],
                     want[i]);
}

static void test_table(void)
{
    struct { const char *value, *label, *as; } rows[] = {
        {NULL, "unset", "avx512bf16"}, {"", "empty", "avx512bf16"},
        {"avx512bf16", "avx512bf16", "avx512bf16"}, {"avx512", "avx512", "avx512"},
        {"avx2", "avx2", "avx2"},  {"ref", "ref", "ref"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        set_kernels(rows[i].value);
        check_families(rows[i].label, rows[i].as);
        CHECK_INT(unet_kernels_check(NULL, 0), 0);
    }
    set_kernels(NULL);
    printf("# this CPU: avx2+fma %s, avx512 %s, avx512_bf16 %s; default: conv %s, bf16 conv %s, "
           "BN %s, pool %s, Adam %s\n",
           cpu_avx2_fma() ? "yes" : "no", cpu_avx512() ? "yes" : "no", cpu_bf16() ? "yes" : "no",
           conv_kernels_name(), conv_kernels_name_bf16(), bn_kernels_name(), pool_kernels_name(),
           adam_kernels_name());
}

/* ---- under ref, the calls are the references --------------------------------------- */

static void test_ref_is_reference(void)
{
    shape s = {16, 2, 9, 7};
    size_t n = shape_floats(s);
    float *xn = fill_nchw(s, 1.5f, 0.2f), *x = blocked(s, xn);
    float *w = malloc(16 * 16 * 9 * sizeof(float));
    for (int i = 0; i < 16 * 16 * 9; i++) w[i] = 0.1f * urand();
    float *a = sentinel(s), *b = sentinel(s);
    float *scr = malloc((conv3x3_scratch_floats(s, 16) + bn_scratch_floats(s)) * sizeof(float));
    set_kernels("ref");
    conv3x3_forward(a, x, s, w, 16, scr);
    conv3x3_forward_ref(b, x, s, w, 16);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    float g[16], bt[16], m1[16], r1[16], m2[16], r2[16], rm1[16] = {0}, rv1[16], rm2[16] = {0},
          rv2[16];
    for (int c = 0; c < 16; c++) {
        g[c] = 1.0f + 0.3f * urand();
        bt[c] = 0.2f * urand();
        rv1[c] = rv2[c] = 1.0f;
    }
    int64_t t1 = 0, t2 = 0;
    bn_relu_forward(a, x, s, g, bt, m1, r1, rm1, rv1, &t1, BN_MOMENTUM, BN_EPS, scr);
    bn_relu_forward_ref(b, x, s, g, bt, m2, r2, rm2, rv2, &t2, BN_MOMENTUM, BN_EPS);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    CHECK(memcmp(m1, m2, sizeof m1) == 0 && memcmp(r1, r2, sizeof r1) == 0);
    set_kernels(NULL);
    free(xn), free(x), free(w), free(a), free(b), free(scr);
}

/* ---- a value the table does not name ----------------------------------------------- */

static void test_bad_value_check(void)
{
    char err[160];
    set_kernels("fast");
    CHECK_INT(unet_kernels_check(err, sizeof err), -1);
    CHECK_STR(err, "UNET_KERNELS 'fast': expected ref, avx2, avx512 or avx512bf16 (or unset: "
                   "the best this CPU has)");
    check_families("fast", "avx512bf16"); /* library callers keep the default */
    set_kernels("AVX2"); /* case matters */
    CHECK_INT(unet_kernels_check(err, sizeof err), -1);
    set_kernels("ref\x1b[31m");
    CHECK_INT(unet_kernels_check(err, sizeof err), -1);
    CHECK_CONTAINS(err, "'ref?[31m'");
    char longv[100];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    set_kernels(longv);
    CHECK_INT(unet_kernels_check(err, sizeof err), -1);
    CHECK_CONTAINS(err, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'");
    set_kernels(NULL);
}

/* UNET_WINOGRAD takes on, off, empty or unset; anything else is one line. */
static void test_winograd_value_check(void)
{
    char err[160];
    static const char *ok[] = {"on", "off", ""};
    for (int i = 0; i < 3; i++) {
        setenv("UNET_WINOGRAD", ok[i], 1);
        CHECK_INT(unet_winograd_check(err, sizeof err), 0);
        CHECK_INT(unet_winograd_off(), i == 1);
    }
    setenv("UNET_WINOGRAD", "OFF", 1); /* case matters; counts as on */
    CHECK_INT(unet_winograd_check(err, sizeof err), -1);
    CHECK_STR(err, "UNET_WINOGRAD 'OFF': expected on or off (or unset: Winograd where it is "
                   "faster)");
    CHECK_INT(unet_winograd_off(), 0);
    unsetenv("UNET_WINOGRAD");
    CHECK_INT(unet_winograd_check(err, sizeof err), 0);
    CHECK_INT(unet_winograd_off(), 0);
}

static char work[900];

/* unet-train `args` with UNET_KERNELS=v (NULL: unset): exit 2, the one
 * line `want` on stderr, nothing else, nothing created. */
static void refused_with(const char *v, const char *const *args, const char *want)
{
    char before[4096], after[4096];
    tree_list(work, before, sizeof before);
    set_kernels(v);
    run_ut_v(args, 30000);
    set_kernels(NULL);
    tree_list(work, after, sizeof after);
    CHECK_INT(P.status, 2);
    CHECK_STR(P.err, want);
    CHECK_STR(P.out, "");
    CHECK_STR(after, before);
}

/* unet-train with UNET_KERNELS=fast. */
static void refused(const char *const *args)
{
    refused_with("fast", args, "unet-train: UNET_KERNELS 'fast': expected ref, avx2, avx512 or "
                               "avx512bf16 (or unset: the best this CPU has)\n");
}

static void test_bad_value_cli(void)
{
    snprintf(work, sizeof work, "%s/kernels-cli", MG_TMPDIR);
    mg_rm_rf(work);
    mkdirs(work);
    P_cwd = work;
    refused((const char *const[]){"plan", "--batch", "2", "--img-size", "32", NULL});
    refused((const char *const[]){"--synthetic", "8", "--img-size", "16", "--depth", "2",
                                  "--epochs", "1", "--out", "run", NULL});
    refused((const char *const[]){"predict", "--checkpoint", "none.pth", "--input", "in",
                                  "--out", "masks", NULL});
    /* The same plan runs with a value the table names, and --help works
     * whatever the value. */
    set_kernels("ref");
    UT(30000, "plan", "--batch", "2", "--img-size", "32");
    CHECK_INT(P.status, 0);
    set_kernels("fast");
    UT(30000, "--help");
    CHECK_INT(P.status, 0);
    CHECK_CONTAINS(P.out, "Usage: unet-train");
    set_kernels(NULL);
    /* A bad UNET_WINOGRAD the same way. */
    setenv("UNET_WINOGRAD", "0", 1);
    refused_with(NULL, (const char *const[]){"--synthetic", "8", "--img-size", "16", "--depth",
                                             "2", "--epochs", "1", "--out", "run", NULL},
                 "unet-train: UNET_WINOGRAD '0': expected on or off (or unset: Winograd where "
                 "it is faster)\n");
    unsetenv("UNET_WINOGRAD");
    P_cwd = NULL;
    mg_rm_rf(work);
}

/* unet-train --precision bf16 (train and predict) with UNET_KERNELS=v:
 * exit 2, the one line `want`, nothing else. */
static void bf16_refused(const char *v, const char *want)
{
    const char *const train[] = {"--precision", "bf16", "--synthetic", "8", "--img-size", "16",
                                 "--depth", "2", "--epochs", "1", "--out", "run", NULL};
    const char *const pred[] = {"predict", "--precision", "bf16", "--checkpoint", "none.pth",
                                "--input", "in", "--out", "masks", NULL};
    refused_with(v, train, want);
    refused_with(v, pred, want);
}

static void test_bf16_cli(void)
{
    snprintf(work, sizeof work, "%s/kernels-bf16", MG_TMPDIR);
    mg_rm_rf(work);
    mkdirs(work);
    P_cwd = work;
    /* UNET_KERNELS=avx512 plays a CPU without AVX512_BF16. */
    bf16_refused("avx512", "unet-train: --precision bf16: UNET_KERNELS=avx512 caps the kernels "
                           "below avx512bf16; unset it (or set ref, for the slow reference)\n");
    bf16_refused("avx2", "unet-train: --precision bf16: UNET_KERNELS=avx2 caps the kernels "
                         "below avx512bf16; unset it (or set ref, for the slow reference)\n");
    if (!cpu_bf16())
        bf16_refused(NULL, "unet-train: --precision bf16: this CPU has no AVX512_BF16 (bf16 dot "
                           "products); use --precision fp32 here\n");
    UT(30000, "--precision", "fp16", "--synthetic", "8", "--out", "run");
    CHECK_INT(P.status, 2);
    CHECK_STR(P.err, "unet-train: --precision 'fp16': expected fp32 or bf16\n");
    UT(30000, "plan", "--precision", "bf16", "--batch", "2", "--img-size", "32");
    CHECK_INT(P.status, 2);
    CHECK_CONTAINS(P.err, "--precision is not an option of plan");
    P_cwd = NULL;
    mg_rm_rf(work);
}

int main(void)
{
    MG_RUN(test_table);
    MG_RUN(test_ref_is_reference);
    MG_RUN(test_bad_value_check);
    MG_RUN(test_winograd_value_check);
    MG_RUN(test_bad_value_cli);
    MG_RUN(test_bf16_cli);
    return mg_test_exit();
}
