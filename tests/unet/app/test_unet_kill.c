/* SPDX-License-Identifier: MIT */
/*
 * test_unet_kill.c: kill -9 at random moments (issue 11's crash-safety
 * part). One small training run after another on the same --out, each
 * resuming from the last.pth the one before left (a fresh start while
 * there is none), each SIGKILLed at a random moment: half of them
 * anywhere from start-up on (lock, clean-up, metrics cut, data), half
 * within a few milliseconds after an epoch's summary line, when last.pth
 * and best.pth are being written. After every kill:
 *   - every *.pth in --out loads with the project's own reader (ckpt_open,
 *     then ckpt_apply into a model of its shape), best.pth is not ahead of
 *     last.pth;
 *   - at most one checkpoint temporary exists (the killed save's own; the
 *     next start removes it): none piles up;
 *   - metrics.csv holds rows 1, 2, ... in order, the last one the epoch of
 *     last.pth or the one before it (killed between the checkpoint and its
 *     row), never a repeated or a skipped epoch.
 * Every 10th folder is also copied and, at the end, loaded by torch
 * (tests/py/unet_guard_check.py loaddir, strict state_dict), when torch is
 * there. 60 kills unsanitized (about 30 s on 2 cores), 12 under the
 * sanitizers (their start-up alone takes a second).
 */
#include "mg_unet_run.h"

#include "backend_cpu.h"
#include "ckpt.h"
#include "model.h"
#include "outdir.h"

#include <signal.h>

#ifdef MG_SANITIZE
enum { KILLS = 12, SPREAD_MS = 3000, LATE_MS = 60 };
#else
enum { KILLS = 60, SPREAD_MS = 400, LATE_MS = 25 };
#endif

static char root[900], out[1000], deferred[1100];
static unet *model;   /* (3, 16, 3): what every checkpoint here holds */
static int temps_seen; /* kills that left a temporary: they hit a save */

/* ---- the kill -------------------------------------------------------------------- */

static double kill_at;        /* ms after the start; < 0: after an epoch line */
static double late_ms;        /* with kill_at < 0: this long after the line */
static double line_seen;

static void kill_tick(double el)
{
    if (kill_at < 0 && line_seen < 0 && strstr(P.out, "  train loss ")) line_seen = el;
    double when = kill_at >= 0 ? kill_at : line_seen >= 0 ? line_seen + late_ms : -1;
    if (when >= 0 && el >= when) kill(-P.pid, SIGKILL);
}

static void one_run(int i, bool resume)
{
    char last[1100];
    snprintf(last, sizeof last, "%s/last.pth", out);
    bool early = rand() % 2 == 0;
    kill_at = early ? rand() % SPREAD_MS : -1;
    late_ms = rand() % LATE_MS;
    line_seen = -1;
    P_tick = kill_tick;
    const char *args[] = {"--synthetic", "16", "--img-size", "32", "--base", "16", "--depth", "3",
                          "--batch", "4", "--epochs", "100000", "--val-split", "0.25", "--seed",
                          "1", "--progress", "lines", "--threads", "2", "--no-watcher", "--out",
                          out, resume ? "--resume" : NULL, last, NULL};
    run_ut_v(args, 60000);
    P_tick = NULL;
    if (P.status != 128 + SIGKILL) {
        MG_FAIL_("run %d: exit %d, not killed; stderr:\n%s", i, P.status, P.err);
        return;
    }
}

/* ---- what a kill may leave ------------------------------------------------------------ */

/* Loads path with the project's reader; its epoch, or -1 after a failure. */
static long load_epoch(const char *path)
{
    ckpt_file *f;
    ckpt_info info;
    char err[2048];
    if (ckpt_open(path, &f, &info, err, sizeof err) != 0) {
        MG_FAIL_("%s does not load: %s", path, err);
        return -1;
    }
    int rc = ckpt_apply(f, model, err, sizeof err);
    ckpt_close(f);
    if (rc != 0) {
        MG_FAIL_("%s does not fit the model: %s", path, err);
        return -1;
    }
    return info.has_run ? (long)info.st.epoch : -1;
}

/* The epochs of metrics.csv's complete rows; -1 when they are not 1, 2,
 * ... in order. */
static int csv_last_epoch(const char *path)
{
    char *s = slurp(path, NULL);
    if (!s) return 0;
    int last = 0;
    char *save = NULL;
    char *end_of_complete = strrchr(s, '\n');
    if (end_of_complete) end_of_complete[1] = '\0'; /* a torn last line is not a row */
    else s[0] = '\0';
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(l, "epoch,", 6)) continue;
        if (atoi(l) != last + 1) {
            MG_FAIL_("%s: epoch %d after epoch %d", path, atoi(l), last);
            last = -1;
            break;
        }
        last++;
    }
    free(s);
    return last;
}

/* Checks the folder after kill i; returns whether last.pth exists. */
static bool check_after(int i)
{
    int before = mg_test_failed_checks, temps = 0;
    long e_last = -2, e_best = -2;
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid;
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", out, e->d_name);
        if (outdir_temp_name(e->d_name, &pid)) temps++;
        else if (!strcmp(e->d_name, "last.pth")) e_last = load_epoch(p);
        else if (!strcmp(e->d_name, "best.pth")) e_best = load_epoch(p);
    }
    if (d) closedir(d);
    temps_seen += temps > 0;
    if (temps > 1) MG_FAIL_("kill %d: %d temporaries in %s", i, temps, out);
    if (e_best != -2 && e_best > e_last) MG_FAIL_("kill %d: best.pth (epoch %ld) ahead of last.pth (%ld)", i, e_best, e_last);
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    int rows = csv_last_epoch(csv);
    long want = e_last == -2 ? 0 : e_last;
    if (rows != want && rows != want - 1)
        MG_FAIL_("kill %d: metrics.csv ends at epoch %d, last.pth has %ld epochs", i, rows, want);
    if (mg_test_failed_checks != before) printf("# kill %d: stdout tail:\n%.2000s\n", i,
                                               P.out + (strlen(P.out) > 2000 ? strlen(P.out) - 2000 : 0));
    return e_last != -2;
}

/* Keeps a copy of the folder for torch, and notes the check. */
static void keep_for_torch(int i)
{
    char snap[1100], cmd[3600];
    snprintf(snap, sizeof snap, "%s/after_%d", root, i);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", snap, out, snap);
    if (system(cmd) != 0) MG_FAIL_("%s failed", cmd);
    FILE *f = fopen(deferred, "a");
    if (f) {
        fprintf(f, "kill_%d\tloaddir %s\n", i, snap);
        fclose(f);
    }
}

static void test_kills(void)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("# seed %u, %d kills\n", seed, KILLS);
    srand(seed);
    char err[512];
    unet_cfg cfg = {3, 16, 3};
    model = unet_create(&cfg, 1, 32, 32, 0, unet_backend_cpu(), err, sizeof err);
    if (!model) {
        MG_FAIL_("unet_create: %s", err);
        return;
    }
    double t0 = mg_mono_ms();
    bool have_last = false;
    int late = 0;
    for (int i = 0; i < KILLS; i++) {
        one_run(i, have_last);
        late += kill_at < 0 && line_seen >= 0;
        have_last = check_after(i);
        if (i % 10 == 9) keep_for_torch(i);
    }
    printf("# %d kills in %.1f s, %d within %d ms after an epoch line, %d during a save (a "
           "temporary left)\n", KILLS, (mg_mono_ms() - t0) / 1000, late, LATE_MS, temps_seen);
    CHECK(late > 0);
    unet_destroy(model);
}

/* A run that ends normally after all that: no temporary and no lock. */
static void test_clean_end(void)
{
    char last[1100];
    snprintf(last, sizeof last, "%s/last.pth", out);
    ckpt_file *f;
    ckpt_info info;
    char err[2048], epochs[32];
    if (ckpt_open(last, &f, &info, err, sizeof err) != 0) {
        MG_FAIL_("%s", err);
        return;
    }
    ckpt_close(f);
    snprintf(epochs, sizeof epochs, "%lld", (long long)info.st.epoch + 1);
    UT(60000, "--synthetic", "16", "--img-size", "32", "--base", "16", "--depth", "3", "--batch",
       "4", "--epochs", epochs, "--val-split", "0.25", "--seed", "1", "--progress", "lines",
       "--threads", "2", "--out", out, "--resume", last);
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s", P.err);
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid;
        if (outdir_temp_name(e->d_name, &pid) || !strcmp(e->d_name, ".lock"))
            MG_FAIL_("left behind: %s", e->d_name);
    }
    if (d) closedir(d);
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    CHECK_INT(csv_last_epoch(csv), info.st.epoch + 1);
}

static void test_torch_loads(void)
{
    const char *argv[] = {MG_PYTHON, "-c", "import torch", NULL};
    run_argv(argv, 60000);
    if (P.status != 0) {
        printf("# skip: %s cannot import torch\n", MG_PYTHON);
        return;
    }
    const char *check[] = {MG_PYTHON, MG_SOURCE_DIR "/tests/py/unet_guard_check.py", "batch",
                           deferred, NULL};
    run_argv(check, 110000);
    printf("%s", P.out);
    CHECK_INT(P.status, 0);
    if (P.status) printf("# stderr:\n%s", P.err);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unet-kill", MG_TMPDIR);
    mg_rm_rf(root);
    mkdirs(root);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(deferred, sizeof deferred, "%s/deferred.txt", root);
    signal(SIGPIPE, SIG_IGN);
    if (access(unet_train_path(), X_OK) != 0) {
        printf("not ok 1 - %s not built\n", unet_train_path());
        return 1;
    }
    double t0 = mg_mono_ms();
    MG_RUN(test_kills);
    MG_RUN(test_clean_end);
    MG_RUN(test_torch_loads);
    printf("# %.1f s\n", (mg_mono_ms() - t0) / 1000);
    return mg_test_exit();
}
