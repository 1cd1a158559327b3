/* SPDX-License-Identifier: MIT */
/*
 * test_kernels.c: one meaning of UNET_KERNELS for every op of the CPU
 * backend (cpu/isa.c; the table in unet-train(1), ENVIRONMENT):
 *   - for unset, empty, avx512, avx2 and ref, the kernel each op family
 *     reports (convolutions, BatchNorm, pooling, Adam) is the table's for
 *     this CPU, whose features are read here from CPUID with GCC's
 *     builtins, not through isa.c;
 *   - under ref the convolution and BN calls give their *_ref function's
 *     bits, so the dispatch follows the value, not only the names;
 *   - any other value: unet_kernels_check says so in one line naming it
 *     (cut and made printable), the ops keep the default kernels, and
 *     unet-train (plan, predict, train) exits 2 with that one line on
 *     stderr, nothing on stdout, nothing created; --help still works.
 */
#include "mg_ops_test.h"
#include "mg_unet_run.h"

#include "adam.h"
#include "bn.h"
#include "conv.h"
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

/* unet-train(1)'s table: value -> (convolutions, BN / pooling / Adam). */
static const char *want_conv(const char *v)
{
    if (strcmp(v, "ref") == 0) return "ref";
    if (strcmp(v, "avx2") != 0 && cpu_avx512()) return "avx512";
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
        {NULL, "unset", "avx512"}, {"", "empty", "avx512"}, {"avx512", "avx512", "avx512"},
        {"avx2", "avx2", "avx2"},  {"ref", "ref", "ref"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        set_kernels(rows[i].value);
        check_families(rows[i].label, rows[i].as);
        CHECK_INT(unet_kernels_check(NULL, 0), 0);
    }
    set_kernels(NULL);
    printf("# this CPU: avx2+fma %s, avx512 %s; default: conv %s, BN %s, pool %s, Adam %s\n",
           cpu_avx2_fma() ? "yes" : "no", cpu_avx512() ? "yes" : "no", conv_kernels_name(),
           bn_kernels_name(), pool_kernels_name(), adam_kernels_name());
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
    CHECK_STR(err, "UNET_KERNELS 'fast': expected ref, avx2 or avx512 (or unset: the best "
                   "this CPU has)");
    check_families("fast", "avx512"); /* library callers keep the default */
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

static char work[900];

/* unet-train with UNET_KERNELS=fast: exit 2, the one line, nothing else. */
static void refused(const char *const *args)
{
    char before[4096], after[4096];
    tree_list(work, before, sizeof before);
    set_kernels("fast");
    run_ut_v(args, 30000);
    set_kernels(NULL);
    tree_list(work, after, sizeof after);
    CHECK_INT(P.status, 2);
    CHECK_STR(P.err, "unet-train: UNET_KERNELS 'fast': expected ref, avx2 or avx512 (or unset: "
                     "the best this CPU has)\n");
    CHECK_STR(P.out, "");
    CHECK_STR(after, before);
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
    P_cwd = NULL;
    mg_rm_rf(work);
}

int main(void)
{
    MG_RUN(test_table);
    MG_RUN(test_ref_is_reference);
    MG_RUN(test_bad_value_check);
    MG_RUN(test_bad_value_cli);
    return mg_test_exit();
}
