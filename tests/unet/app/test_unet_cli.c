/* SPDX-License-Identifier: MIT */
/*
 * test_unet_cli.c: unet-train attacked through its inputs, as real
 * processes on real files (issue 11):
 *   - a table of every flag of every job with empty, garbage, out-of-range,
 *     huge, negative, NaN/inf, duplicate and missing values, options of
 *     another job, and the same through --config: each is exit 2, exactly
 *     one "unet-train: " line on stderr naming the input, nothing on
 *     stdout, and nothing in the working folder created or changed
 *     (listed before and after, recursively, with content hashes);
 *   - predict never destroys: --out equal to --input, two images with one
 *     stem, --out naming a file, a --logits in a missing folder, and paths
 *     given in --config (which pointed into a dead stack frame);
 *   - FIFOs and folders as --config, --checkpoint, --resume and as an
 *     image never hang the program;
 *   - --out is locked: a second live run is refused, a dead run's lock and
 *     temporaries are cleared, a live process's temporary is kept;
 *   - metrics.csv after a crash: no repeated epoch, no missing epoch;
 *   - every checkpoint value is checked (epoch -5, 2^62, "x", -2^31, past
 *     --epochs; resume and config entries; Adam's step), a model-size
 *     mismatch names the flags that fix it;
 *   - INI lines longer than 2047 characters, paths over 1023 bytes, and a
 *     memory plan no machine holds are refused before any work.
 * Every child runs in its own process group with a deadline (see
 * mg_unet_run.h), so a hang fails the check instead of the suite.
 */
#include "mg_unet_run.h"

#include "image.h"
#include "pth.h"
#include "pyval.h"

#include <limits.h>
#include <sys/file.h>

static char root[900];       /* everything this test writes */
static char work[1100];      /* the children's working folder */
static char ckpt[1200];      /* work/fix/last.pth, a real checkpoint (1 epoch done) */
static bool have_ckpt;

#define NEED_CKPT()                                                                         \
    do {                                                                                    \
        if (!have_ckpt) {                                                                   \
            MG_FAIL_("needs the set-up's checkpoint");                                      \
            return;                                                                         \
        }                                                                                   \
    } while (0)

/* ---- set-up ------------------------------------------------------------------------- */

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

static void at(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", work, rel);
}

static void make_inputs(void)
{
    char p[1300];
    const char *dirs[] = {"data/images", "data/masks", "in"};
    for (int i = 0; i < 3; i++) {
        at(p, sizeof p, dirs[i]);
        mkdirs(p);
    }
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "data/images/s%d.png", i);
        at(p, sizeof p, rel);
        gray_png(p, 16, 16, i);
        snprintf(rel, sizeof rel, "data/masks/s%d.png", i);
        at(p, sizeof p, rel);
        gray_png(p, 16, 16, i + 7);
        snprintf(rel, sizeof rel, "in/p%d.png", i);
        at(p, sizeof p, rel);
        gray_png(p, 20, 12, i + 3);
    }
    at(p, sizeof p, "fifo.ini");
    if (mkfifo(p, 0644) != 0) MG_FAIL_("mkfifo %s: %s", p, strerror(errno));
    at(p, sizeof p, "a_file.txt");
    spit(p, "keep\n", 5);
    at(p, sizeof p, "ok.ini");
    spit(p, "# empty\n", 8);
}

static void test_setup(void)
{
    snprintf(work, sizeof work, "%s/work", root);
    mkdirs(work);
    make_inputs();
    P_cwd = work;
    UT(60000, "--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8", "--batch",
       "4", "--epochs", "1", "--threads", "1", "--progress", "lines", "--out", "fix");
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s\n", P.err);
    at(ckpt, sizeof ckpt, "fix/last.pth");
    have_ckpt = P.status == 0 && exists(ckpt);
}

/* ---- one refusal ---------------------------------------------------------------------- */

typedef struct argl {
    const char *v[64];
    int n;
} argl;

static void push(argl *a, const char *s)
{
    if (a->n < 62) a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static int cases_run, cases_bad;
static char listing_before[1 << 16], listing_after[1 << 16];

/* Exit 2, one "unet-train: " line on stderr containing want, nothing on
 * stdout, and (when `same_tree`) the working folder unchanged. */
static void refusal(const char *label, const argl *a, const char *want, bool same_tree)
{
    int before = mg_test_failed_checks;
    tree_list(work, listing_before, sizeof listing_before);
    run_ut_v(a->v, 30000);
    cases_run++;
    CHECK_INT(P.status, 2);
    CHECK_INT(count_lines(P.err), 1);
    CHECK(strncmp(P.err, "unet-train: ", 12) == 0);
    CHECK_CONTAINS(P.err, want);
    CHECK_STR(P.out, "");
    tree_list(work, listing_after, sizeof listing_after);
    if (same_tree && strcmp(listing_before, listing_after) != 0) {
        size_t k = 0, line = 0;
        for (; listing_before[k] == listing_after[k]; k++)
            if (listing_before[k] == '\n') line = k + 1;
        MG_FAIL_("the working folder changed; first difference:\n  before: %.*s\n  after:  %.*s",
                 (int)strcspn(listing_before + line, "\n"), listing_before + line,
                 (int)strcspn(listing_after + line, "\n"), listing_after + line);
    }
    if (mg_test_failed_checks != before) {
        cases_bad++;
        printf("# case %s: unet-train", label);
        for (int i = 0; i < a->n; i++) printf(" '%s'", a->v[i]);
        printf("\n# exit %d, stderr:\n%s", P.status, P.err);
    }
}

static void expect_refusal(const char *label, const argl *a, const char *want)
{
    refusal(label, a, want, true);
}

/* ---- the table --------------------------------------------------------------------------- */

enum { TR = 1, PR = 2, PL = 4 };

typedef struct flagspec {
    const char *flag;      /* without "--" */
    unsigned jobs;
    const char *good;      /* a valid value; NULL for a flag without one */
    const char *bad[20];   /* refused values */
} flagspec;

#define NUMERIC "", "abc", "nan", "inf", "-1", "99999999999999999999999", " 4", "+4", "4 ", \
                "0x10", "1e999"
#define FRAC "", "abc", "nan", "inf", "0", "1.5", "-0.5", "200%", "0x1p-1", "1e999"
#define PATHS "", "-x", "--img-size"

static const flagspec flags[] = {
    {"data", TR, "data", {PATHS, "nope"}},
    {"synthetic", TR, "4", {NUMERIC, "1", "1000001", "0"}},
    {"img-size", TR | PR | PL, "16", {NUMERIC, "7", "8193", "9"}},
    {"base", TR | PL, "8", {NUMERIC, "7", "257", "12"}},
    {"in-ch", TR | PL, "3", {NUMERIC, "2", "0"}},
    {"val-split", TR, "0.5", {NUMERIC, "0.96", "1"}},
    {"seed", TR, "3", {"", "abc", "nan", "-1", " 1", "+1", "18446744073709551616", "1e3", "0x10",
                       "-0"}},
    {"depth", TR | PL, "1", {NUMERIC, "0", "7"}},
    {"epochs", TR, "1", {NUMERIC, "0", "1000001"}},
    {"batch", TR | PR | PL, "2", {NUMERIC, "0", "4097", "auto "}},
    {"lr", TR, "0.001", {NUMERIC, "0", "10.5", "0x1p-3", ".", "1e", "1e-3x"}},
    {"beta1", TR, "0.9", {NUMERIC, "1"}},
    {"beta2", TR, "0.999", {NUMERIC, "1"}},
    {"eps", TR, "1e-8", {NUMERIC, "0", "2"}},
    {"weight-decay", TR, "0", {NUMERIC, "1.5"}},
    {"out", TR | PR, "o", {PATHS}},
    {"resume", TR, "fix/last.pth", {PATHS, "nope.pth", "data", "fifo.ini"}},
    {"threads", TR | PR, "1", {NUMERIC, "0", "1025"}},
    {"progress", TR, "lines", {"", "abc", "BAR", "bar ", "nan"}},
    {"warn-gpu", TR, "0.5", {FRAC}},
    {"stop-gpu", TR, "0.99", {FRAC}},
    {"warn-ram", TR, "0.5", {FRAC}},
    {"stop-ram", TR, "0.99", {FRAC}},
    {"check-train", TR, "5", {NUMERIC, "0", "1000001"}},
    {"check-eval", TR, "5", {NUMERIC, "0", "1000001"}},
    {"ram-budget", TR, "8G", {"", "abc", "nan", "inf", "0", "-1", "1X", "99999999999999T"}},
    {"config", TR | PR | PL, "ok.ini", {PATHS, "nope.ini", "data", "fifo.ini"}},
    {"checkpoint", PR, "fix/last.pth", {PATHS, "nope.pth", "data", "fifo.ini"}},
    {"input", PR, "in", {PATHS, "nope"}},
    {"logits", PR, "l.npy", {PATHS, "l.txt", "nodir/l.npy"}},
    {"flip", TR, NULL, {NULL}},
    {"no-watcher", TR, NULL, {NULL}},
    {"no-predict", TR, NULL, {NULL}},
    {"on-memory", TR, "shrink", {"", "abc", "Shrink", "shrink ", "stop,shrink", "-x"}},
};
#define NFLAGS (sizeof flags / sizeof flags[0])

/* A short, complete command of the job (so that a value wrongly accepted
 * runs it and creates its --out, which the listing catches), without
 * `skip`. */
static void base_args(argl *a, unsigned job, const char *skip)
{
    static const char *const train[] = {"synthetic", "4", "img-size", "16", "depth", "1", "base",
                                        "8", "epochs", "1", "batch", "2", "threads", "1",
                                        "progress", "lines", "out", "o", NULL};
    static const char *const pred[] = {"checkpoint", "fix/last.pth", "input", "in", "out",
                                       "pout", "threads", "1", NULL};
    static const char *const plan[] = {"img-size", "16", "batch", "2", NULL};
    static char dashed[64][40];
    a->n = 0;
    if (job == PR) push(a, "predict");
    if (job == PL) push(a, "plan");
    const char *const *l = job == TR ? train : job == PR ? pred : plan;
    for (int i = 0; l[i]; i += 2) {
        if (skip && strcmp(l[i], skip) == 0) continue;
        snprintf(dashed[i], sizeof dashed[i], "--%s", l[i]);
        push(a, dashed[i]);
        push(a, l[i + 1]);
    }
}

static const char *job_word(unsigned job)
{
    return job == PR ? "predict" : job == PL ? "plan" : "train";
}

static void flag_cases(const flagspec *f, unsigned job)
{
    char dflag[48], label[160], want[64];
    snprintf(dflag, sizeof dflag, "--%s", f->flag);
    snprintf(want, sizeof want, "--%s", f->flag);
    argl a;
    /* --data excludes --synthetic */
    const char *skip = strcmp(f->flag, "data") ? f->flag : "synthetic";
    for (int i = 0; i < 20 && f->bad[i]; i++) {
        base_args(&a, job, skip);
        push(&a, dflag);
        push(&a, f->bad[i]);
        snprintf(label, sizeof label, "%s %s '%s'", job_word(job), dflag, f->bad[i]);
        /* data errors name the folder, not the flag */
        bool data = !strcmp(f->flag, "data") && !strcmp(f->bad[i], "nope");
        expect_refusal(label, &a, data ? "nope/images: folder not found" : want);
    }
    /* duplicate, missing value, and (flags without one) a value */
    base_args(&a, job, skip);
    push(&a, dflag);
    if (f->good) push(&a, f->good);
    push(&a, dflag);
    if (f->good) push(&a, f->good);
    snprintf(label, sizeof label, "%s %s twice", job_word(job), dflag);
    expect_refusal(label, &a, want);
    base_args(&a, job, skip);
    push(&a, dflag);
    if (f->good) {
        snprintf(label, sizeof label, "%s %s without a value", job_word(job), dflag);
        expect_refusal(label, &a, want);
    } else {
        char eq[64];
        snprintf(eq, sizeof eq, "%s=1", dflag);
        a.v[a.n - 1] = eq;
        snprintf(label, sizeof label, "%s %s with a value", job_word(job), dflag);
        expect_refusal(label, &a, want);
    }
}

/* An option of another job: refused by name. */
static void foreign_case(const flagspec *f, unsigned job)
{
    char dflag[48], label[160];
    snprintf(dflag, sizeof dflag, "--%s", f->flag);
    argl a;
    base_args(&a, job, NULL);
    push(&a, dflag);
    if (f->good) push(&a, f->good);
    snprintf(label, sizeof label, "%s %s (not its option)", job_word(job), dflag);
    char want[96];
    snprintf(want, sizeof want, "%s is not an option of %s", dflag, job_word(job));
    expect_refusal(label, &a, want);
}

static void test_flag_table(void)
{
    if (!have_ckpt) {
        MG_FAIL_("needs the set-up's checkpoint");
        return;
    }
    double t0 = mg_mono_ms();
    const unsigned jobs[] = {TR, PR, PL};
    for (size_t i = 0; i < NFLAGS; i++)
        for (int j = 0; j < 3; j++) {
            if (flags[i].jobs & jobs[j]) flag_cases(&flags[i], jobs[j]);
            else foreign_case(&flags[i], jobs[j]);
        }
    argl a = {{NULL}, 0};
    push(&a, "--synthetic");
    push(&a, "4");
    push(&a, "stray");
    expect_refusal("a stray argument", &a, "unexpected argument 'stray'");
    a.n = 0;
    push(&a, "trian");
    expect_refusal("unknown command", &a, "unknown command 'trian'");
    a.n = 0;
    push(&a, "--img");
    push(&a, "16");
    push(&a, "--bogus");
    expect_refusal("unknown option", &a, "unknown option '--bogus'");
    printf("# %d refusals checked (%d wrong) in %.1f s\n", cases_run, cases_bad,
           (mg_mono_ms() - t0) / 1000);
}

/* ---- --config ----------------------------------------------------------------------------- */

/* Writes work/c.ini with `text`, runs `job` with --config c.ini, expects a
 * refusal containing want, and removes the file. */
static void config_case(unsigned job, const char *text, size_t len, const char *want)
{
    char p[1300];
    at(p, sizeof p, "c.ini");
    spit(p, text, len);
    argl a;
    base_args(&a, job, NULL);
    push(&a, "--config");
    push(&a, "c.ini");
    char label[96];
    snprintf(label, sizeof label, "%s --config '%.40s'", job_word(job), text);
    expect_refusal(label, &a, want);
    unlink(p);
}

static void test_config_file(void)
{
    if (!have_ckpt) {
        MG_FAIL_("needs the set-up's checkpoint");
        return;
    }
    config_case(TR, "img_size = 16\nimg_size = 32\n", 29, "line 2: key 'img_size' given twice");
    config_case(TR, "bogus = 1\n", 10, "line 1: unknown key 'bogus'");
    config_case(TR, "lr = nan\n", 9, "line 1: --lr 'nan'");
    config_case(TR, "seed = -1\n", 10, "line 1: --seed '-1'");
    config_case(TR, "flip = maybe\n", 13, "line 1: flip 'maybe': expected true or false");
    config_case(TR, "out = \n", 7, "line 1: --out '': expected a path");
    config_case(TR, "just text\n", 10, "line 1: expected 'key = value'");
    config_case(TR, "lr = 0.1\0x\n", 11, "line 1: holds a NUL byte");
    config_case(PR, "lr = 0.1\n", 9, "line 1: key 'lr' is not a setting of predict");
    config_case(PL, "out = x\n", 8, "line 1: key 'out' is not a setting of plan");
    config_case(PL, "batch = auto\n", 13, "line 1: --batch 'auto': plan takes a number");
    /* A comment longer than fgets' 2047 characters: its tail must not be
     * read as a setting (before: plan ran at 64x64). */
    char *big = malloc(4200);
    memset(big, 'x', 4200);
    big[0] = '#';
    const char *tail = "img_size = 64\n";
    memcpy(big + 2047, tail, strlen(tail));
    config_case(PL, big, 2047 + strlen(tail), "line 1: longer than 2047 characters");
    free(big);
}

/* ---- predict never destroys --------------------------------------------------------- */

/* A --config whose paths are the only place they are given: they must be
 * copied, not pointed at (they were read into a stack buffer that was
 * gone when predict ran). */
static void test_predict_config_paths(void)
{
    NEED_CKPT();
    char ini[1300], text[2048], masks[1300];
    at(ini, sizeof ini, "pred.ini");
    at(masks, sizeof masks, "cfg_masks");
    snprintf(text, sizeof text, "[predict]\ncheckpoint = fix/last.pth\ninput = in\nout = %s\n"
             "logits = cfg.npy\nthreads = 1\n", masks);
    spit(ini, text, strlen(text));
    UT(30000, "predict", "--config", "pred.ini");
    CHECK_INT(P.status, 0);
    CHECK_CONTAINS(P.out, "predicted 2 masks into ");
    if (P.status) printf("# stderr:\n%s", P.err);
    char p[1400];
    snprintf(p, sizeof p, "%s/p0.png", masks);
    CHECK(exists(p));
    at(p, sizeof p, "cfg.npy");
    CHECK(exists(p));
    mg_rm_rf(masks);
    unlink(p);
    unlink(ini);
}

static void test_predict_out_is_input(void)
{
    NEED_CKPT();
    argl a = {{NULL}, 0};
    const char *v[] = {"predict", "--checkpoint", "fix/last.pth", "--input", "in", "--out",
                       "./in/", "--threads", "1"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
    expect_refusal("predict --out = --input", &a, "is the --input folder");
    /* a --out that is a file (the issue's /etc/passwd): exit 2, not 1 */
    a.v[6] = "a_file.txt";
    expect_refusal("predict --out FILE", &a, "--out a_file.txt: Not a directory");
    a.v[6] = "/etc/passwd";
    expect_refusal("predict --out /etc/passwd", &a, "--out /etc/passwd: Not a directory");
    /* --logits where it cannot be created: refused before --out exists */
    a.v[6] = "newmasks";
    push(&a, "--logits");
    push(&a, "/nonexistent/l.npy");
    expect_refusal("predict --logits /nonexistent", &a, "--logits /nonexistent/l.npy: cannot");
}

static void test_predict_same_stem(void)
{
    NEED_CKPT();
    char d[1300], p[1400], q[1400];
    at(d, sizeof d, "stems");
    mkdirs(d);
    snprintf(p, sizeof p, "%s/a.png", d);
    gray_png(p, 16, 16, 1);
    size_t n;
    char *bytes = slurp(p, &n);
    snprintf(q, sizeof q, "%s/a.jpg", d); /* the format is told by the bytes, not the name */
    spit(q, bytes, n);
    free(bytes);
    snprintf(q, sizeof q, "%s/b.png", d);
    gray_png(q, 16, 16, 2);
    argl a = {{NULL}, 0};
    const char *v[] = {"predict", "--checkpoint", "fix/last.pth", "--input", "stems", "--out",
                       "stem_masks", "--threads", "1"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
    expect_refusal("predict a.png + a.jpg", &a, "stems/a.png: same stem as stems/a.jpg");
    mg_rm_rf(d);
}

/* A FIFO named like an image is skipped, not waited on. */
static void test_predict_fifo_image(void)
{
    NEED_CKPT();
    char d[1300], p[1400];
    at(d, sizeof d, "fifo_in");
    mkdirs(d);
    snprintf(p, sizeof p, "%s/x.png", d);
    CHECK(mkfifo(p, 0644) == 0);
    snprintf(p, sizeof p, "%s/y.png", d);
    gray_png(p, 16, 16, 5);
    UT(20000, "predict", "--checkpoint", "fix/last.pth", "--input", "fifo_in", "--out",
       "fifo_masks", "--threads", "1");
    CHECK_INT(P.status, 0);
    CHECK_CONTAINS(P.out, "predicted 1 masks");
    at(p, sizeof p, "fifo_masks");
    mg_rm_rf(p);
    mg_rm_rf(d);
}

/* ---- the --out lock -------------------------------------------------------------------- */

/* Starts unet-train in the background (own process group, output to
 * /dev/null); returns its pid. */
static pid_t spawn_ut(const char *const *args)
{
    const char *argv[64] = {unet_train_path()};
    int i = 1;
    for (; args[i - 1] && i < 63; i++) argv[i] = args[i - 1];
    argv[i] = NULL;
    mg_proc_opts o = {.argv = argv, .env_base = P_env, .cwd = P_cwd, .new_pgrp = 1,
                      .discard_output = 1};
    return mg_proc_spawn(&o);
}

/* Waits until path holds `text` (up to ms). */
static bool wait_for_text(const char *path, const char *text, int ms)
{
    for (double t0 = mg_mono_ms(); mg_mono_ms() - t0 < ms;) {
        char *s = slurp(path, NULL);
        bool ok = s && strstr(s, text);
        free(s);
        if (ok) return true;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_out_lock(void)
{
    char out[1300], lock[1400], live_tmp[1400], dead_tmp[1400], want[128];
    at(out, sizeof out, "locked");
    snprintf(lock, sizeof lock, "%s/.lock", out);
    const char *first[] = {"--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8",
                           "--batch", "4", "--epochs", "100000", "--threads", "1", "--progress",
                           "lines", "--out", "locked", NULL};
    pid_t pid = spawn_ut(first);
    snprintf(want, sizeof want, "unet-train %ld\n", (long)pid);
    CHECK(wait_for_text(lock, want, 20000));
    /* A temporary of a live process (this test) must survive the second
     * start, as the first run's in-flight saves used to die. */
    snprintf(live_tmp, sizeof live_tmp, "%s/last.pth.tmp.%ld", out, (long)getpid());
    spit(live_tmp, "x", 1);
    argl a = {{NULL}, 0};
    for (int i = 0; first[i]; i++) push(&a, first[i]);
    a.v[11] = "1";
    snprintf(want, sizeof want, "--out locked: in use by another unet-train (pid %ld)", (long)pid);
    /* (the first run writes on meanwhile: the folder is not compared) */
    refusal("second run on one --out", &a, want, false);
    CHECK(exists(live_tmp));
    CHECK(kill(pid, 0) == 0); /* the first run goes on */
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* Its lock died with it; a dead pid's temporary goes, a live one stays. */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(dead_tmp, sizeof dead_tmp, "%s/best.pth.tmp.%ld", out, (long)dead);
    spit(dead_tmp, "x", 1);
    run_ut_v(a.v, 30000);
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s", P.err);
    CHECK(!exists(dead_tmp));
    CHECK(exists(live_tmp));
    CHECK(!exists(lock)); /* a run that ends takes its lock file away */
    /* A .lock that is not ours is neither used nor changed. */
    unlink(live_tmp);
    spit(lock, "my notes\n", 9);
    expect_refusal("foreign .lock", &a, "its .lock holds something other");
    char *kept = slurp(lock, NULL);
    CHECK_STR(kept, "my notes\n");
    free(kept);
    unlink(lock);
    CHECK(symlink("a_file.txt", lock) == 0);
    expect_refusal(".lock a symbolic link", &a, "its .lock is a symbolic link");
    mg_rm_rf(out);
}

/* ---- metrics.csv ----------------------------------------------------------------------- */

static int csv_rows(const char *path, int *epochs, int max)
{
    char *s = slurp(path, NULL);
    int n = 0;
    for (char *save = NULL, *l = s ? strtok_r(s, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save))
        if (l[0] != 'e' && n < max) epochs[n++] = atoi(l);
    free(s);
    return n;
}

static void check_rows(const char *csv, int want)
{
    int e[64], n = csv_rows(csv, e, 64);
    CHECK_INT(n, want);
    for (int i = 0; i < n; i++)
        if (e[i] != i + 1) MG_FAIL_("%s: row %d is epoch %d", csv, i + 1, e[i]);
}

static void run_small(const char *out, const char *epochs, const char *resume)
{
    if (resume)
        UT(30000, "--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8",
           "--batch", "4", "--epochs", epochs, "--threads", "1", "--progress", "lines", "--out",
           out, "--resume", resume);
    else
        UT(30000, "--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8",
           "--batch", "4", "--epochs", epochs, "--threads", "1", "--progress", "lines", "--out",
           out);
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s", P.err);
}

static void test_metrics_resume(void)
{
    char out[1300], csv[1400], last[1400];
    at(out, sizeof out, "metrics");
    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    snprintf(last, sizeof last, "%s/last.pth", out);
    run_small("metrics", "2", NULL);
    check_rows(csv, 2);
    /* A crash after a row was written but before its checkpoint (the old
     * order): a row 3 without a checkpoint. The resume must not repeat it. */
    FILE *f = fopen(csv, "a");
    if (f) { fputs("3,9,9,9,9,9,9,9,9\n4,9,9", f); fclose(f); } /* and a torn line */
    run_small("metrics", "3", last);
    check_rows(csv, 3);
    char *s = slurp(csv, NULL);
    CHECK(s && !strstr(s, "3,9,9"));
    free(s);
    /* A crash between the checkpoint and its row: the row comes back from
     * the checkpoint. */
    s = slurp(csv, NULL);
    char *row3 = s ? strstr(s, "\n3,") : NULL;
    if (row3) {
        spit(csv, s, (size_t)(row3 - s) + 1);
        check_rows(csv, 2);
    }
    free(s);
    run_small("metrics", "4", last);
    check_rows(csv, 4);
    /* A fresh run in the folder starts the file anew. */
    run_small("metrics", "1", NULL);
    check_rows(csv, 1);
    /* A metrics.csv that is not ours is not touched. */
    spit(csv, "my,own\n1,2\n", 11);
    argl a = {{NULL}, 0};
    const char *v[] = {"--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8",
                       "--batch", "4", "--epochs", "2", "--threads", "1", "--out", "metrics",
                       "--resume", last};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
    expect_refusal("foreign metrics.csv", &a, "metrics.csv: its first line is not");
    mg_rm_rf(out);
}

/* ---- checkpoint values ------------------------------------------------------------------ */

typedef enum { V_INT, V_STR, V_FLOAT, V_DROP_LOADER_WORD } vkind;

/* A copy of the set-up's checkpoint with d[key] (d: the root, "resume",
 * "config", or the first optimizer state entry) set to a value. */
static bool forged(const char *path, const char *dict, const char *key, vkind k, int64_t i,
                   double x)
{
    pv_arena *a;
    pv *r;
    char err[512];
    if (pth_load(ckpt, &a, &r, err, sizeof err) != 0) {
        MG_FAIL_("%s", err);
        return false;
    }
    pv *d = r;
    if (!strcmp(dict, "state")) d = pv_val_at(pv_get(pv_get(r, "optimizer"), "state"), 0);
    else if (dict[0]) d = pv_get(r, dict);
    pv *v = k == V_INT ? pv_int(a, i) : k == V_STR ? pv_str(a, "x") : pv_float(a, x);
    if (k == V_DROP_LOADER_WORD) {
        pv *l = pv_get(d, "loader"), *nl = pv_list(a);
        for (size_t j = 0; j + 1 < pv_len(l); j++) pv_append(nl, pv_int(a, pv_at(l, j)->u.i));
        v = nl;
    }
    /* the kept metrics row names its epoch: cleared so that the forged
     * value is what is judged */
    bool ok = d && v && pv_set_s(a, d, key, v) == 0 &&
              (!strcmp(key, "metrics_row") ||
               pv_set_s(a, pv_get(r, "resume"), "metrics_row", pv_str(a, "")) == 0) &&
              pth_save(path, r, NULL, 0, NULL, err, sizeof err) == 0;
    if (!ok) MG_FAIL_("cannot forge %s.%s: %s", dict, key, err);
    pv_arena_free(a);
    return ok;
}

typedef struct forgery {
    const char *dict, *key;
    vkind k;
    int64_t i;
    double x;
    const char *want;
} forgery;

static void test_checkpoint_values(void)
{
    NEED_CKPT();
    const forgery cases[] = {
        {"", "epoch", V_INT, -5, 0, "epoch is -5, expected an integer from 0 to 1000000"},
        {"", "epoch", V_INT, (int64_t)1 << 62, 0, "epoch is 4611686018427387904, expected"},
        {"", "epoch", V_STR, 0, 0, "epoch is 'x', expected an integer"},
        {"", "epoch", V_INT, INT32_MIN, 0, "epoch is -2147483648, expected"},
        {"", "epoch", V_INT, 7, 0, "it has 7 epochs done, more than --epochs 2: pass --epochs 7"},
        {"resume", "batch", V_INT, -1, 0, "resume.batch is -1, expected"},
        {"resume", "best_epoch", V_INT, 99, 0, "resume.best_epoch is 99, expected"},
        {"resume", "epoch_images", V_STR, 0, 0, "resume.epoch_images is 'x'"},
        {"resume", "best_dice", V_FLOAT, 0, NAN, "resume.best_dice is nan"},
        {"resume", "epoch_seconds", V_FLOAT, 0, -1, "resume.epoch_seconds is -1"},
        {"resume", "loader", V_DROP_LOADER_WORD, 0, 0, "resume.loader is a list, expected a list of 8"},
        {"resume", "metrics_row", V_STR, 0, 0, "resume.metrics_row is not the row of epoch 1"},
        {"config", "base", V_STR, 0, 0, "config.base is 'x', expected a multiple of 8 from 8 to 256"},
        {"config", "img_size", V_INT, (int64_t)1 << 40, 0, "config.img_size is 1099511627776"},
        {"config", "lr", V_FLOAT, 0, INFINITY, "config.lr is inf"},
        {"config", "depth", V_INT, 3, 0, "config.depth is 3 but the weights have depth 1"},
        {"state", "step", V_FLOAT, 0, 1e30, "optimizer.state entry 0 has no step count"},
    };
    char bad[1300];
    at(bad, sizeof bad, "forged.pth");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const forgery *f = &cases[c];
        if (!forged(bad, f->dict, f->key, f->k, f->i, f->x)) continue;
        argl a = {{NULL}, 0};
        const char *v[] = {"--synthetic", "8", "--img-size", "16", "--depth", "1", "--base", "8",
                           "--batch", "4", "--epochs", "2", "--threads", "1", "--out", "resumed",
                           "--resume", "forged.pth"};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
        char label[96];
        snprintf(label, sizeof label, "--resume with %s%s%s forged", f->dict, f->dict[0] ? "." : "",
                 f->key);
        expect_refusal(label, &a, f->want);
    }
    unlink(bad);
}

static void test_model_mismatch(void)
{
    NEED_CKPT();
    argl a = {{NULL}, 0};
    const char *v[] = {"--synthetic", "8", "--img-size", "16", "--depth", "2", "--base", "16",
                       "--batch", "4", "--epochs", "2", "--threads", "1", "--out", "resumed",
                       "--resume", "fix/last.pth"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
    expect_refusal("model mismatch", &a,
                   "the checkpoint is in_ch 3, base 8, depth 1: pass --base 8 --depth 1");
}

/* ---- limits before work ------------------------------------------------------------------ */

static void test_long_paths(void)
{
    char longp[1200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const char *flagsl[] = {"--out", "--data", "--resume"};
    for (int i = 0; i < 3; i++) {
        argl a;
        base_args(&a, TR, !strcmp(flagsl[i], "--out") ? "out" : NULL);
        if (!strcmp(flagsl[i], "--data")) base_args(&a, TR, "synthetic");
        push(&a, flagsl[i]);
        push(&a, longp);
        char want[64];
        snprintf(want, sizeof want, "%s '", flagsl[i]);
        expect_refusal(flagsl[i], &a, "path too long (1199 bytes, at most 1023)");
        CHECK_CONTAINS(P.err, want);
    }
}

/* The case: 2.1 GB and 10-17 s of data before "cannot allocate"
 * (exit 1); now refused at once, before the data set exists. */
static void test_plan_first(void)
{
    argl a = {{NULL}, 0};
    const char *v[] = {"--synthetic", "8", "--img-size", "8192", "--batch", "4096", "--epochs",
                       "1", "--out", "huge"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) push(&a, v[i]);
    expect_refusal("a plan no machine holds", &a, "--batch 4096 at --img-size 8192 plans ");
    CHECK(P.wall_ms < 5000);
    printf("# refused in %.0f ms\n", P.wall_ms);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unet-cli", MG_TMPDIR);
    mg_rm_rf(root);
    mkdirs(root);
    signal(SIGPIPE, SIG_IGN);
    if (access(unet_train_path(), X_OK) != 0) {
        printf("not ok 1 - %s not built\n", unet_train_path());
        return 1;
    }
    double t0 = mg_mono_ms();
    MG_RUN(test_setup);
    MG_RUN(test_predict_config_paths);
    MG_RUN(test_predict_out_is_input);
    MG_RUN(test_predict_same_stem);
    MG_RUN(test_predict_fifo_image);
    MG_RUN(test_out_lock);
    MG_RUN(test_metrics_resume);
    MG_RUN(test_checkpoint_values);
    MG_RUN(test_model_mismatch);
    MG_RUN(test_long_paths);
    MG_RUN(test_plan_first);
    MG_RUN(test_config_file);
    MG_RUN(test_flag_table);
    printf("# %.1f s\n", (mg_mono_ms() - t0) / 1000);
    return mg_test_exit();
}
