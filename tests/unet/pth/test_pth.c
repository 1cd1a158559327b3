/* SPDX-License-Identifier: MIT */
/*
 * test_pth.c: the .pth writer and reader (src/unet/pth_*.c, pyval.c)
 * against real torch 1.13 (/usr/bin/python3 + tests/py/pth_check.py):
 * our files load in torch (weights_only too) with exact values, torch's
 * files (state_dict, Adam checkpoint, views) read back equal to torch's own
 * dump, C -> C round trips, the golden file byte for byte, a table of
 * malformed files plus truncation/bit-flip fuzzing (run it under ASan), and
 * that a failed save never tears the previous file. A missing python3 or
 * torch fails the test loudly.
 */
#include "mg_test.h"

#include "memguard.h"
#include "pth.h"
#include "pyval.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#ifndef MG_PYTHON
#define MG_PYTHON "/usr/bin/python3"
#endif

static char g_dir[1024];      /* scratch folder for this run */
static int g_torch_ok = -1;   /* torch-made files exist */

static const char *tpath(const char *name)
{
    static char buf[8][1200];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
    return buf[i];
}

/* Runs the helper script; returns its exit status, output in out. */
static int run_py(const char *args, char *out, size_t outlen)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/py/pth_check.py' %s 2>&1", MG_PYTHON,
             MG_SOURCE_DIR, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

/* ---- the tree (mirrors expected() in tests/py/pth_check.py) ---------- */

static float g_w0[108], g_bnw[4], g_bnv[4], g_up[24], g_ea[2][4], g_eas[2][4];
static float g_step = 7.0f, g_b1 = 0.9f, g_b2 = 0.999f;
static int64_t g_nbt = 12345678901LL;
static int64_t g_i64[5] = {-1, 0, 1, 1LL << 40, INT64_MIN};
static uint8_t g_rng[25];

static void ramp(float *x, int n, double scale, double bias)
{
    for (int i = 0; i < n; i++) x[i] = (float)(i * scale + bias);
}

static void fill_data(void)
{
    ramp(g_w0, 108, 0.25, -13.0);
    ramp(g_bnw, 4, 1.0, 1.0);
    ramp(g_bnv, 4, 0.5, 0.125);
    ramp(g_up, 24, -1.0, 7.0);
    ramp(g_ea[0], 4, 0.1, 0.0);
    ramp(g_eas[0], 4, 0.01, 0.0);
    ramp(g_ea[1], 4, -0.1, 0.0);
    ramp(g_eas[1], 4, 0.02, 0.0);
    for (int i = 0; i < 25; i++) g_rng[i] = (uint8_t)(i * 10);
}

#define T(a, dt, nd, data, ...) pv_tensor_new(a, dt, nd, (const int64_t[]){__VA_ARGS__}, data)

static pv *make_tree(pv_arena *a, int with_floats)
{
    int rc = 0;
    pv *root = pv_dict(a);
    rc |= pv_set_s(a, root, "epoch", pv_int(a, 42));
    pv *m = pv_odict(a);
    rc |= pv_set_s(a, m, "enc.0.0.weight", T(a, PV_F32, 4, g_w0, 4, 3, 3, 3));
    rc |= pv_set_s(a, m, "enc.0.1.weight", T(a, PV_F32, 1, g_bnw, 4));
    rc |= pv_set_s(a, m, "enc.0.1.running_var", T(a, PV_F32, 1, g_bnv, 4));
    rc |= pv_set_s(a, m, "enc.0.1.num_batches_tracked", pv_tensor_new(a, PV_I64, 0, NULL, &g_nbt));
    rc |= pv_set_s(a, m, "up.0.weight", T(a, PV_F32, 4, g_up, 2, 3, 2, 2));
    rc |= pv_set_s(a, m, "empty", T(a, PV_F32, 2, NULL, 0, 3));
    rc |= pv_set_s(a, m, "i64", T(a, PV_I64, 1, g_i64, 5));
    rc |= pv_set_s(a, root, "model", m);
    pv *opt = pv_dict(a), *state = pv_dict(a);
    for (int i = 0; i < 2; i++) {
        pv *s = pv_dict(a);
        rc |= pv_set_s(a, s, "step", pv_tensor_new(a, PV_F32, 0, NULL, &g_step));
        rc |= pv_set_s(a, s, "exp_avg", T(a, PV_F32, 1, g_ea[i], 4));
        rc |= pv_set_s(a, s, "exp_avg_sq", T(a, PV_F32, 1, g_eas[i], 4));
        rc |= pv_set_i(a, state, i, s);
    }
    rc |= pv_set_s(a, opt, "state", state);
    pv *pgs = pv_list(a), *pg = pv_dict(a), *betas = pv_tuple(a), *params = pv_list(a);
    if (with_floats) {
        rc |= pv_append(betas, pv_float(a, 0.9));
        rc |= pv_append(betas, pv_float(a, 0.999));
    } else {
        rc |= pv_append(betas, pv_tensor_new(a, PV_F32, 0, NULL, &g_b1));
        rc |= pv_append(betas, pv_tensor_new(a, PV_F32, 0, NULL, &g_b2));
    }
    rc |= pv_set_s(a, pg, "betas", betas);
    rc |= pv_set_s(a, pg, "amsgrad", pv_bool(a, 0));
    rc |= pv_set_s(a, pg, "foreach", pv_none(a));
    rc |= pv_append(params, pv_int(a, 0));
    rc |= pv_append(params, pv_int(a, 1));
    rc |= pv_set_s(a, pg, "params", params);
    if (with_floats) rc |= pv_set_s(a, pg, "lr", pv_float(a, 0.001));
    rc |= pv_append(pgs, pg);
    rc |= pv_set_s(a, opt, "param_groups", pgs);
    rc |= pv_set_s(a, root, "optimizer", opt);
    pv *cfg = pv_dict(a);
    rc |= pv_set_s(a, cfg, "name", pv_str(a, "unet-\xce\xb5"));
    rc |= pv_set_s(a, cfg, "batch", pv_int(a, 4));
    rc |= pv_set_s(a, cfg, "neg", pv_int(a, -70000));
    rc |= pv_set_s(a, cfg, "big", pv_int(a, 3000000000LL));
    rc |= pv_set_s(a, cfg, "flag", pv_bool(a, 1));
    rc |= pv_set_s(a, root, "config", cfg);
    rc |= pv_set_s(a, root, "rng", T(a, PV_U8, 1, g_rng, 25));
    pv *nested = pv_list(a);
    for (int n = 0; n <= 4; n++) {
        pv *t = pv_tuple(a);
        for (int i = 1; i <= n; i++) rc |= pv_append(t, pv_int(a, i));
        rc |= pv_append(nested, t);
    }
    rc |= pv_append(nested, pv_list(a));
    rc |= pv_append(nested, pv_dict(a));
    rc |= pv_append(nested, pv_odict(a));
    rc |= pv_set_s(a, root, "nested", nested);
    if (with_floats) {
        pv *h = pv_list(a);
        rc |= pv_append(h, pv_float(a, 0.5));
        rc |= pv_append(h, pv_float(a, -1.25));
        rc |= pv_append(h, pv_float(a, 1e-300));
        rc |= pv_append(h, pv_float(a, INFINITY));
        rc |= pv_set_s(a, root, "loss_hist", h);
    }
    CHECK_INT(rc, 0);
    return root;
}

/* ---- dump format shared with pth_check.py --------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)n + 1 > b->cap) {
        b->cap = (b->n + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

static void dump(const pv *v, const char *path, sbuf *b)
{
    char sub[1024];
    switch (v->kind) {
    case PV_TENSOR: {
        const pv_tensor *t = &v->u.t;
        size_t nb = (size_t)pv_numel(t) * pv_dtype_size(t->dtype);
        uLong crc = crc32(0L, Z_NULL, 0);
        if (nb) crc = crc32(crc, t->data, (uInt)nb);
        sb_printf(b, "%s tensor %s [", path, pv_dtype_name(t->dtype));
        for (int i = 0; i < t->ndim; i++) sb_printf(b, i ? ",%lld" : "%lld", (long long)t->shape[i]);
        sb_printf(b, "] crc=%08lx\n", (unsigned long)crc);
        break;
    }
    case PV_BOOL: sb_printf(b, "%s bool %d\n", path, v->u.b); break;
    case PV_INT: sb_printf(b, "%s int %lld\n", path, (long long)v->u.i); break;
    case PV_FLOAT: {
        uint64_t u;
        memcpy(&u, &v->u.f, 8);
        sb_printf(b, "%s float %016llx\n", path, (unsigned long long)u);
        break;
    }
    case PV_STR: sb_printf(b, "%s str %s\n", path, v->u.str.s); break;
    case PV_NONE: sb_printf(b, "%s none\n", path); break;
    case PV_LIST: case PV_TUPLE:
        sb_printf(b, "%s %s %zu\n", path, v->kind == PV_LIST ? "list" : "tuple", pv_len(v));
        for (size_t i = 0; i < pv_len(v); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            dump(pv_at(v, i), sub, b);
        }
        break;
    case PV_DICT: case PV_ODICT:
        sb_printf(b, "%s %s %zu\n", path, v->kind == PV_DICT ? "dict" : "odict", pv_len(v));
        for (size_t i = 0; i < pv_len(v); i++) {
            const pv *k = pv_key_at(v, i);
            if (k->kind == PV_STR) snprintf(sub, sizeof sub, "%s/%s", path, k->u.str.s);
            else snprintf(sub, sizeof sub, "%s/#%lld", path, (long long)k->u.i);
            dump(pv_val_at(v, i), sub, b);
        }
        break;
    default: sb_printf(b, "%s ???\n", path); break;
    }
}

/* ---- tests ------------------------------------------------------------ */

static void test_python_present(void)
{
    char out[4096];
    int st = run_py("make-torch", out, sizeof out); /* usage error: torch imports */
    if (st == 3 || st < 0) {
        MG_FAIL_("python3/torch missing (%s): install python3-torch (scripts/setup.sh)\n%s",
                 MG_PYTHON, out);
        return;
    }
    char args[1200];
    snprintf(args, sizeof args, "make-torch '%s'", g_dir);
    st = run_py(args, out, sizeof out);
    CHECK_INT(st, 0);
    CHECK_CONTAINS(out, "OK");
    g_torch_ok = st == 0;
}

static void test_write_torch_loads(void)
{
    pv_arena *a = pv_arena_new();
    char err[PTH_ERR_LEN];
    pv *full = make_tree(a, 1), *nof = make_tree(a, 0);
    int rc = pth_save(tpath("c_full.pth"), full, NULL, 0, NULL, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc) fprintf(stderr, "  %s\n", err);
    pth_save_opts o = {.archive = "emergency_epoch42"};
    CHECK_INT(pth_save(tpath("c_nofloat.pth"), nof, NULL, 0, &o, err, sizeof err), 0);
    char out[8192], args[3000];
    snprintf(args, sizeof args, "check-written '%s' '%s'", tpath("c_full.pth"),
             tpath("c_nofloat.pth"));
    int st = run_py(args, out, sizeof out);
    CHECK_INT(st, 0);
    CHECK_CONTAINS(out, "OK");
    /* zip64 records (forced) load in torch and in our reader too */
    pth_save_opts z = {.force_zip64 = 1};
    CHECK_INT(pth_save(tpath("c_zip64.pth"), full, NULL, 0, &z, err, sizeof err), 0);
    snprintf(args, sizeof args, "check-written '%s' '%s'", tpath("c_zip64.pth"),
             tpath("c_nofloat.pth"));
    st = run_py(args, out, sizeof out);
    CHECK_INT(st, 0);
    CHECK_CONTAINS(out, "OK");
    pv_arena *ra;
    pv *r;
    CHECK_INT(pth_load(tpath("c_zip64.pth"), &ra, &r, err, sizeof err), 0);
    CHECK(r && pv_equal(r, full));
    pv_arena_free(ra);
    pv_arena_free(a);
}

static void test_golden(void)
{
    pv_arena *a = pv_arena_new();
    static const float w[6] = {0, 1, 2, 3, 4, 5};
    pv *root = pv_dict(a), *m = pv_odict(a);
    CHECK_INT(pv_set_s(a, root, "epoch", pv_int(a, 42)), 0);
    CHECK_INT(pv_set_s(a, m, "w", T(a, PV_F32, 2, w, 2, 3)), 0);
    CHECK_INT(pv_set_s(a, root, "model", m), 0);
    CHECK_INT(pv_set_s(a, root, "loss", pv_float(a, 0.5)), 0);
    char err[PTH_ERR_LEN];
    CHECK_INT(pth_save(tpath("golden.pth"), root, NULL, 0, NULL, err, sizeof err), 0);
    char out[4096], args[1300];
    snprintf(args, sizeof args, "golden '%s'", tpath("golden.pth"));
    CHECK_INT(run_py(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "OK");
    pv_arena_free(a);
}

static void test_round_trip(void)
{
    pv_arena *a = pv_arena_new();
    pv *t = make_tree(a, 1);
    char err[PTH_ERR_LEN];
    /* caller scratch: exactly the advertised size works, one less does not */
    size_t need = pth_save_scratch(t, NULL);
    CHECK(need > 0);
    uint64_t *scratch = malloc(need + 8);
    CHECK_INT(pth_save(tpath("rt.pth"), t, scratch, need - 1, NULL, err, sizeof err), MG_ENOBUFS);
    CHECK_CONTAINS(err, "scratch");
    CHECK_INT(pth_save(tpath("rt.pth"), t, scratch, need, NULL, err, sizeof err), 0);
    free(scratch);
    pv_arena *ra = NULL;
    pv *r = NULL;
    CHECK_INT(pth_load(tpath("rt.pth"), &ra, &r, err, sizeof err), 0);
    CHECK(r && pv_equal(r, t));
    /* the look-ups the trainer uses */
    const pv *m = pv_get(r, "model");
    CHECK(m && m->kind == PV_ODICT);
    const pv_tensor *w = pv_get_tensor(m, "enc.0.0.weight", PV_F32, 4, (const int64_t[]){4, 3, 3, 3});
    CHECK(w && ((const float *)w->data)[107] == g_w0[107]);
    CHECK(!pv_get_tensor(m, "enc.0.0.weight", PV_F32, 4, (const int64_t[]){4, 3, 3, 2}));
    int64_t i = 0;
    double d = 0;
    CHECK_INT(pv_as_int(pv_get(m, "enc.0.1.num_batches_tracked"), &i), 0);
    CHECK_INT(i, 12345678901LL);
    CHECK_INT(pv_as_float(pv_get(pv_get_i(pv_get(pv_get(r, "optimizer"), "state"), 1), "step"), &d), 0);
    CHECK_NEAR(d, 7.0, 0);
    CHECK_INT(pv_as_int(pv_get(r, "epoch"), &i), 0);
    CHECK_INT(i, 42);
    CHECK_STR(pv_as_str(pv_get(pv_get(r, "config"), "name")), "unet-\xce\xb5");
    CHECK_INT(pv_len(pv_get(r, "nested")), 8);
    pv_arena_free(ra);
    pv_arena_free(a);
}

static void check_torch_file(const char *name)
{
    if (g_torch_ok != 1) {
        MG_FAIL_("torch-made files missing (see test_python_present)");
        return;
    }
    char fn[256], err[PTH_ERR_LEN];
    snprintf(fn, sizeof fn, "%s.pth", name);
    pv_arena *a;
    pv *r;
    int rc = pth_load(tpath(fn), &a, &r, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    sbuf b = {0};
    dump(r, "root", &b);
    snprintf(fn, sizeof fn, "%s.txt", name);
    unsigned char *want;
    size_t wlen;
    CHECK_INT(read_file(tpath(fn), &want, &wlen), 0);
    want[wlen] = '\0';
    CHECK_STR(b.s, (char *)want);
    /* and the C writer re-saves it losslessly */
    snprintf(fn, sizeof fn, "%s_resaved.pth", name);
    CHECK_INT(pth_save(tpath(fn), r, NULL, 0, NULL, err, sizeof err), 0);
    pv_arena *a2;
    pv *r2;
    CHECK_INT(pth_load(tpath(fn), &a2, &r2, err, sizeof err), 0);
    CHECK(r2 && pv_equal(r, r2));
    pv_arena_free(a2);
    free(want);
    free(b.s);
    pv_arena_free(a);
}

static void test_read_torch_state_dict(void) { check_torch_file("torch_sd"); }
static void test_read_torch_checkpoint(void)
{
    check_torch_file("torch_ckpt");
    if (g_torch_ok != 1) return;
    /* what a resume reads: Adam state per parameter index, step a 0-d tensor */
    pv_arena *a;
    pv *r;
    char err[PTH_ERR_LEN];
    if (pth_load(tpath("torch_ckpt.pth"), &a, &r, err, sizeof err)) return;
    const pv *opt = pv_get(r, "optimizer");
    const pv *s0 = pv_get_i(pv_get(opt, "state"), 0);
    double step = 0;
    CHECK_INT(pv_as_float(pv_get(s0, "step"), &step), 0);
    CHECK_NEAR(step, 3.0, 0);
    const pv *pg = pv_at(pv_get(opt, "param_groups"), 0);
    double lr = 0;
    CHECK_INT(pv_as_float(pv_get(pg, "lr"), &lr), 0);
    CHECK_NEAR(lr, 1e-3, 0);
    CHECK(pv_get_tensor(pv_get(r, "model"), "1.num_batches_tracked", PV_I64, 0, NULL) != NULL);
    pv_arena_free(a);
}
static void test_read_torch_views(void) { check_torch_file("torch_views"); }

static void test_malformed_table(void)
{
    static const struct {
        const char *file, *msg;
    } cases[] = {
        {"bad_global.pth", "global os.system is not allowed"},
        {"bad_opcode.pth", "unsupported opcode 0x93 at offset 3"},
        {"bad_memo.pth", "memo index 5 out of range"},
        {"bad_cycle.pth", "cyclic"},
        {"bad_deep.pth", "nested deeper than 64"},
        {"bad_nostop.pth", "truncated (no STOP)"},
        {"bad_reduce.pth", "REDUCE of torch.FloatStorage is not allowed"},
        {"bad_storage_size.pth", "holds 12 bytes, expected 4 x 4"},
        {"bad_overrun.pth", "overruns its storage"},
        {"bad_long.pth", "does not fit int64"},
        {"bad_noversion.pth", "no 'archive/version' record"},
        {"bad_folder.pth", "is not under 'archive/'"},
        {"bad_noncontig.pth", "non-contiguous tensor"},
        {"bad_proto4.pth", "pickle protocol 4"},
        {"bad_compressed.pth", "is compressed (method 8)"},
        {"does_not_exist.pth", "No such file"},
    };
    if (g_torch_ok != 1) {
        MG_FAIL_("torch-made files missing");
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[PTH_ERR_LEN] = "";
        pv_arena *a = (pv_arena *)1;
        pv *r = (pv *)1;
        int rc = pth_load(tpath(cases[i].file), &a, &r, err, sizeof err);
        if (rc >= 0) MG_FAIL_("%s: loaded, expected \"%s\"", cases[i].file, cases[i].msg);
        CHECK(a == NULL && r == NULL);
        CHECK_CONTAINS(err, cases[i].msg);
        CHECK(strchr(err, '\n') == NULL);
    }
}

/* Every truncation and many random bit flips of a valid file: an error with
 * a one-line message or (for bytes nobody reads) success, never a crash. */
static void test_fuzz(void)
{
    unsigned char *good;
    size_t len;
    if (read_file(tpath("rt.pth"), &good, &len) != 0) {
        MG_FAIL_("rt.pth missing (test_round_trip)");
        return;
    }
    unsigned char *buf = malloc(len);
    int bad_msg = 0, ok_trunc = 0, loaded = 0;
    for (size_t n = 0; n < len; n++) {
        /* a fresh copy of exactly n bytes, so ASan sees any over-read */
        unsigned char *t = malloc(n ? n : 1);
        memcpy(t, good, n);
        pv_arena *a;
        pv *r;
        char err[PTH_ERR_LEN] = "";
        int rc = pth_load_mem(t, n, &a, &r, err, sizeof err);
        if (rc == 0) {
            ok_trunc++;
            pv_arena_free(a);
        } else if (!err[0] || strchr(err, '\n')) {
            bad_msg++;
        }
        free(t);
    }
    CHECK_INT(ok_trunc, 0);
    srand(1234);
    for (int it = 0; it < 4000; it++) {
        memcpy(buf, good, len);
        int flips = 1 + rand() % 3;
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)rand() % len;
            /* half the flips aim at data.pkl (at 64): the pickle machine */
            if (it % 2 && len > 64 + 1200) at = 64 + (size_t)rand() % 1200;
            buf[at] ^= (unsigned char)(1u << (rand() % 8));
        }
        pv_arena *a;
        pv *r;
        char err[PTH_ERR_LEN] = "";
        int rc = pth_load_mem(buf, len, &a, &r, err, sizeof err);
        if (rc == 0) {
            loaded++;
            sbuf b = {0};
            dump(r, "root", &b); /* walk the whole tree */
            free(b.s);
            pv_arena_free(a);
        } else if (!err[0] || strchr(err, '\n')) {
            bad_msg++;
        }
    }
    CHECK_INT(bad_msg, 0);
    printf("# fuzz: %zu truncations refused, %d/4000 flipped files still loaded\n", len, loaded);
    /* the pickle machine alone, with the CRC out of the way: patch data.pkl
     * in place and fix its CRC in both headers so the opcodes get parsed */
    uint32_t plen, crc_off_l = 14, n_pk;
    memcpy(&plen, good + 18, 4);
    n_pk = plen;
    unsigned cd_off;
    memcpy(&cd_off, good + len - 6, 4);
    for (int it = 0; it < 6000; it++) {
        memcpy(buf, good, len);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++) {
            size_t at = 64 + (size_t)rand() % n_pk;
            if (rand() % 2) buf[at] = (unsigned char)rand();
            else buf[at] ^= (unsigned char)(1u << (rand() % 8));
        }
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf + 64, n_pk);
        memcpy(buf + crc_off_l, &crc, 4);
        memcpy(buf + cd_off + 16, &crc, 4); /* first CD record = data.pkl */
        pv_arena *a;
        pv *r;
        char err[PTH_ERR_LEN] = "";
        int rc = pth_load_mem(buf, len, &a, &r, err, sizeof err);
        if (rc == 0) {
            sbuf b = {0};
            dump(r, "root", &b);
            free(b.s);
            pv_arena_free(a);
        } else if (!err[0] || strchr(err, '\n')) {
            bad_msg++;
        }
    }
    CHECK_INT(bad_msg, 0);
    free(buf);
    free(good);
}

/* A save that fails midway leaves the previous file as it was and no
 * temporary behind: by the injected failure and by a real write error
 * (RLIMIT_FSIZE in a child). */
static void test_never_torn(void)
{
    pv_arena *a = pv_arena_new();
    pv *old = make_tree(a, 1);
    const char *p = tpath("torn.pth");
    char err[PTH_ERR_LEN];
    CHECK_INT(pth_save(p, old, NULL, 0, NULL, err, sizeof err), 0);
    /* the new content differs: a bigger model */
    static float big[20000];
    pv *neu = make_tree(a, 1);
    CHECK_INT(pv_set_s(a, pv_get(neu, "model"), "big", T(a, PV_F32, 1, big, 20000)), 0);
    for (uint64_t at = 1; at < 80000; at = at * 3 + 7) {
        pth_save_opts o = {.fail_after = at};
        int rc = pth_save(p, neu, NULL, 0, &o, err, sizeof err);
        CHECK_INT(rc, MG_EIO);
        CHECK_CONTAINS(err, "failed after");
    }
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 40000;
        setrlimit(RLIMIT_FSIZE, &rl);
        int rc = pth_save(p, neu, NULL, 0, NULL, err, sizeof err);
        _exit(rc < 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pv_arena *ra;
    pv *r;
    CHECK_INT(pth_load(p, &ra, &r, err, sizeof err), 0);
    CHECK(r && pv_equal(r, old));
    pv_arena_free(ra);
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)pid);
    CHECK(access(tmp, F_OK) != 0);
    /* a successful save replaces it */
    CHECK_INT(pth_save(p, neu, NULL, 0, NULL, err, sizeof err), 0);
    CHECK_INT(pth_load(p, &ra, &r, err, sizeof err), 0);
    CHECK(r && pv_equal(r, neu));
    pv_arena_free(ra);
    pv_arena_free(a);
}

/* The tree rules: no cycles, no second parent, bounded depth, bad trees
 * refused by the writer. */
static void test_tree_rules(void)
{
    pv_arena *a = pv_arena_new();
    pv *l1 = pv_list(a), *l2 = pv_list(a), *d = pv_dict(a);
    CHECK_INT(pv_append(l1, l2), 0);
    CHECK_INT(pv_append(l2, l1), MG_EINVAL);     /* cycle */
    CHECK_INT(pv_append(l1, l1), MG_EINVAL);
    CHECK_INT(pv_set_s(a, d, "x", l2), MG_EINVAL); /* second parent */
    CHECK_INT(pv_set(d, pv_float(a, 1.0), pv_none(a)), MG_EINVAL); /* key kind */
    pv *t = pv_tuple(a);
    CHECK_INT(pv_append(t, pv_int(a, 1)), 0);
    CHECK_INT(pv_append(l1, t), 0);
    CHECK_INT(pv_set_s(a, d, "t", t), 0);        /* small leaf tuples may be shared */
    CHECK_INT(pv_append(t, pv_int(a, 2)), MG_EINVAL); /* frozen once used */
    pv *top = pv_list(a), *cur = top;
    int rc = 0, depth = 1;
    while (rc == 0 && depth < 100) {
        pv *n = pv_list(a);
        rc = pv_append(cur, n);
        cur = n;
        depth++;
    }
    CHECK_INT(rc, MG_EINVAL);
    CHECK(depth <= PV_MAX_DEPTH + 1);
    CHECK_INT(pv_set_s(a, d, "k", pv_int(a, 1)), 0);
    CHECK_INT(pv_set_s(a, d, "k", pv_int(a, 2)), 0); /* replaces */
    CHECK_INT(pv_len(d), 2);
    int64_t v = 0;
    CHECK_INT(pv_as_int(pv_get(d, "k"), &v), 0);
    CHECK_INT(v, 2);
    char err[PTH_ERR_LEN];
    pv *bad = pv_dict(a);
    CHECK_INT(pv_set_s(a, bad, "t", T(a, PV_F32, 1, NULL, 3)), 0); /* NULL data */
    CHECK_INT(pth_save_scratch(bad, NULL), 0);
    CHECK_INT(pth_save(tpath("bad.pth"), bad, NULL, 0, NULL, err, sizeof err), MG_EINVAL);
    CHECK_CONTAINS(err, "invalid tree");
    pth_save_opts o = {.archive = "a/b"};
    CHECK_INT(pth_save(tpath("bad.pth"), d, NULL, 0, &o, err, sizeof err), MG_EINVAL);
    CHECK(access(tpath("bad.pth"), F_OK) != 0);
    pv_arena_free(a);
}

/* The trainer's real shape: a 118-entry UNet state_dict + Adam state for
 * its 64 parameters; report the scratch it must reserve. */
static void test_unet_scratch(void)
{
    pv_arena *a = pv_arena_new();
    static float dummy[1];
    static int64_t nbt;
    pv *root = pv_dict(a), *m = pv_odict(a), *state = pv_dict(a);
    int rc = 0, nparam = 0;
    const char *blocks[9] = {"enc.0", "enc.1", "enc.2", "enc.3", "bottleneck",
                             "dec.0", "dec.1", "dec.2", "dec.3"};
    int cin[9] = {3, 16, 32, 64, 128, 256, 128, 64, 32};
    int cout[9] = {16, 32, 64, 128, 256, 128, 64, 32, 16};
    char name[64];
#define PARAM(nd, ...)                                                          \
    do {                                                                        \
        rc |= pv_set_s(a, m, name, T(a, PV_F32, nd, dummy, __VA_ARGS__));       \
        pv *s = pv_dict(a);                                                     \
        rc |= pv_set_s(a, s, "step", pv_tensor_new(a, PV_F32, 0, NULL, dummy)); \
        rc |= pv_set_s(a, s, "exp_avg", T(a, PV_F32, nd, dummy, __VA_ARGS__));  \
        rc |= pv_set_s(a, s, "exp_avg_sq", T(a, PV_F32, nd, dummy, __VA_ARGS__)); \
        rc |= pv_set_i(a, state, nparam++, s);                                  \
    } while (0)
    for (int b = 0; b < 9; b++) {
        for (int c = 0; c < 2; c++) {
            int ci = c ? cout[b] : cin[b], co = cout[b];
            snprintf(name, sizeof name, "%s.%d.weight", blocks[b], c * 3);
            PARAM(4, co, ci, 3, 3);
            const char *bn[2] = {"weight", "bias"};
            for (int j = 0; j < 2; j++) {
                snprintf(name, sizeof name, "%s.%d.%s", blocks[b], c * 3 + 1, bn[j]);
                PARAM(1, co);
            }
            snprintf(name, sizeof name, "%s.%d.running_mean", blocks[b], c * 3 + 1);
            rc |= pv_set_s(a, m, name, T(a, PV_F32, 1, dummy, co));
            snprintf(name, sizeof name, "%s.%d.running_var", blocks[b], c * 3 + 1);
            rc |= pv_set_s(a, m, name, T(a, PV_F32, 1, dummy, co));
            snprintf(name, sizeof name, "%s.%d.num_batches_tracked", blocks[b], c * 3 + 1);
            rc |= pv_set_s(a, m, name, pv_tensor_new(a, PV_I64, 0, NULL, &nbt));
        }
    }
    for (int u = 0; u < 4; u++) {
        int ci = 256 >> u, co = 128 >> u;
        snprintf(name, sizeof name, "up.%d.weight", u);
        PARAM(4, ci, co, 2, 2);
        snprintf(name, sizeof name, "up.%d.bias", u);
        PARAM(1, co);
    }
    snprintf(name, sizeof name, "out.weight");
    PARAM(4, 1, 16, 1, 1);
    snprintf(name, sizeof name, "out.bias");
    PARAM(1, 1);
#undef PARAM
    CHECK_INT(rc, 0);
    CHECK_INT(pv_len(m), 118);
    CHECK_INT(nparam, 64);
    pv *opt = pv_dict(a), *pgs = pv_list(a), *pg = pv_dict(a), *params = pv_list(a),
       *betas = pv_tuple(a);
    rc |= pv_append(betas, pv_float(a, 0.9));
    rc |= pv_append(betas, pv_float(a, 0.999));
    rc |= pv_set_s(a, pg, "lr", pv_float(a, 1e-3));
    rc |= pv_set_s(a, pg, "betas", betas);
    rc |= pv_set_s(a, pg, "eps", pv_float(a, 1e-8));
    rc |= pv_set_s(a, pg, "weight_decay", pv_int(a, 0));
    const char *flags[] = {"amsgrad", "maximize", "capturable", "differentiable", "fused"};
    for (int i = 0; i < 5; i++) rc |= pv_set_s(a, pg, flags[i], pv_bool(a, 0));
    rc |= pv_set_s(a, pg, "foreach", pv_none(a));
    for (int i = 0; i < 64; i++) rc |= pv_append(params, pv_int(a, i));
    rc |= pv_set_s(a, pg, "params", params);
    rc |= pv_append(pgs, pg);
    rc |= pv_set_s(a, opt, "state", state);
    rc |= pv_set_s(a, opt, "param_groups", pgs);
    rc |= pv_set_s(a, root, "model", m);
    rc |= pv_set_s(a, root, "optimizer", opt);
    rc |= pv_set_s(a, root, "epoch", pv_int(a, 42));
    CHECK_INT(rc, 0);
    size_t need = pth_save_scratch(root, NULL);
    size_t sd_only = pth_save_scratch(m, NULL);
    printf("# scratch: UNet state_dict (118) + Adam (64 params) = %zu bytes; "
           "state_dict alone = %zu bytes\n", need, sd_only);
    CHECK(need > 0 && need < 128 * 1024);
    pv_arena_free(a);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/test_pth.%ld", MG_TMPDIR, (long)getpid());
    if (mkdir(g_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s\n", g_dir);
        return 1;
    }
    fill_data();
    MG_RUN(test_python_present);
    MG_RUN(test_tree_rules);
    MG_RUN(test_write_torch_loads);
    MG_RUN(test_golden);
    MG_RUN(test_round_trip);
    MG_RUN(test_read_torch_state_dict);
    MG_RUN(test_read_torch_checkpoint);
    MG_RUN(test_read_torch_views);
    MG_RUN(test_malformed_table);
    MG_RUN(test_fuzz);
    MG_RUN(test_never_torn);
    MG_RUN(test_unet_scratch);
    int rc = mg_test_exit();
    if (rc == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return rc;
}
