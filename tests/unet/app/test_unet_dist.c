/* SPDX-License-Identifier: MIT */
/*
 * test_unet_dist.c: unet-train's data parallel mode under Open MPI's
 * mpirun, as a user runs it, on this one machine (the ranks talk through
 * shared memory: --mca btl self,vader, no network needed):
 *   - a plain run is reproducible, and `mpirun -np 1` is bitwise the
 *     plain run; with --sync-bn, 2 and 3 ranks (shards of 3+2 and 2+2+1
 *     images of a global batch of 5) match one process at the same
 *     global batch after 3 steps: losses in metrics.csv, every weight and
 *     Adam's first moment within float rounding;
 *   - batches smaller than the ranks (an epoch's last batch of 1 at 3
 *     ranks, --batch 1 at 2): the empty shards add nothing, and with
 *     --sync-bn the runs still match one process;
 *   - reruns are bitwise identical (2 ranks, --sync-bn and per-rank BN),
 *     and per-rank BN is not SyncBatchNorm in disguise;
 *   - the guard agrees: only rank 1 is over its budget (MPMD: its own
 *     --ram-budget), both ranks stop, rank 0 writes the one emergency
 *     checkpoint, mpirun exits 75, the banner names "[rank 1 @ host]";
 *   - only the watcher thread sees it: rank 1's memory (a ballast in its
 *     process tree) goes over its budget between check points; both
 *     ranks stop within one batch of that, one checkpoint, exit 75;
 *   - per-node supervisors (`memguard run` around each rank): rank 1's
 *     request stops both; each memguard run exits 75 with the checkpoint
 *     acknowledged; one memguard run around mpirun does the same;
 *   - one checkpoint, any rank count: stopped mid-epoch at 2 ranks,
 *     resumed at 1 and at 3, each ends where the uninterrupted 2-rank run
 *     ends (SyncBatchNorm; float rounding);
 *   - bad input under mpirun: a bad flag, a bad --resume file, a bad flag
 *     of rank 1 alone, an --out another run holds, --on-memory shrink,
 *     --batch auto: one line (not one per rank), exit 2 at once, no
 *     --out, the file untouched; ranks whose training settings differ
 *     (--epochs, --lr, the --resume point) are refused naming the setting,
 *     before rank 0 touches --out; predict, plan and --help are rank 0's
 *     alone.
 * A build without MPI runs the plain runs only, and shows that its
 * unet-train refuses to be one of K ranks.
 *
 * Every mpirun runs in its own process group with mpirun's --timeout and a
 * deadline of ours; ranks get process groups of their own, so after each
 * run every process whose command line names this test's folder is
 * reported and SIGKILLed: nothing is left running.
 */
#include "mg_unet_run.h"

#include "backend_cpu.h"
#include "ckpt.h"
#include "model.h"

#include <dirent.h>
#include <signal.h>
#include <sys/file.h>

static char root[600]; /* everything this test writes */

/* An exit status, with the run's output when it is not the one expected. */
#define CHECK_RC(rc, want)                                                                   \
    do {                                                                                     \
        int r_ = (rc);                                                                       \
        if (r_ != (want))                                                                    \
            MG_FAIL_("exit %d, expected %d\n  stdout:\n%s\n  stderr:\n%s", r_, (want), P.out,   \
                     P.err);                                                                 \
    } while (0)

/* A tiny run: 20 synthetic samples, 15 for training (3 steps of a global
 * batch of 5 per epoch), 16x16, depth 2, base 8. */
#define SMALL "--synthetic", "20", "--val-split", "0.25", "--img-size", "16", "--depth", "2", \
              "--base", "8", "--in-ch", "1", "--batch", "5", "--progress", "lines",            \
              "--seed", "3"
/* Resume runs: 48 training samples, 12 batches of 4 per epoch at 32x32
 * (a stop after "batch 10/" lands inside the epoch, most of the time). */
#define LONGER "--synthetic", "60", "--val-split", "0.2", "--img-size", "32", "--depth", "2", \
               "--base", "8", "--in-ch", "1", "--batch", "4", "--progress", "lines",           \
               "--seed", "5", "--sync-bn", "--check-train", "1"

static void out_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
    mg_rm_rf(buf);
}

/* The next process of the /proc listing d other than this one: its pid,
 * and its command line (arguments joined by spaces) in cmd[4096]; 0 at
 * the end. */
static long next_process(DIR *d, char cmd[4096])
{
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end, path[64];
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(cmd, 1, 4095, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!cmd[i]) cmd[i] = ' ';
        cmd[n] = '\0';
        return pid;
    }
    return 0;
}

/* Every process whose command line names `root` (ranks left behind):
 * reported as a failure and SIGKILLed. */
static void reap_leftovers(const char *what)
{
    DIR *d = opendir("/proc");
    char cmd[4096];
    for (long pid; (pid = next_process(d, cmd)) != 0;) {
        if (!strstr(cmd, root)) continue;
        MG_FAIL_("%s: left running: pid %ld: %s", what, pid, cmd);
        kill((pid_t)pid, SIGKILL);
    }
    if (d) closedir(d);
}

#ifdef MG_MPIEXEC
/* mpirun's options for one machine in a container, as root: shared
 * memory only, no binding, more ranks than cores allowed, one OpenMP
 * thread per rank, ranks that yield the core while they wait in a
 * collective (mpirun spins by default: 2 ranks of 2 threads each spinning
 * on this shared 2-core machine took 9 s for 3 steps that take 0.02 s),
 * and its own deadline. */
#define MPIRUN MG_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",    \
               "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism",     \
               "none", "--mca", "mpi_yield_when_idle", "1", "-x", "OMP_NUM_THREADS=1",        \
               NO_LEAK_CHECK "--timeout", "100"
/* Under ASan, the ranks run without LeakSanitizer: Open MPI leaves its
 * components' allocations (dlclose'd modules, so no suppression can name
 * them) at MPI_Finalize. Memory errors and UBSan stay on, and the plain
 * runs of this test keep the leak check. */
#ifdef MG_SANITIZE
#define NO_LEAK_CHECK "-x", "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0",
#else
#define NO_LEAK_CHECK
#endif

static int run_mpi(const char *what, const char *const *argv)
{
    int rc = run_argv(argv, 120000);
    printf("# %s: exit %d in %.1f s\n", what, rc, P.wall_ms / 1000.0);
    reap_leftovers(what);
    return rc;
}
#define MPI(what, ...) run_mpi(what, (const char *const[]){MPIRUN, __VA_ARGS__, NULL})
#endif

/* ---- checkpoints -------------------------------------------------------------------- */

/* The model, Adam's moments and run state of a checkpoint. */
typedef struct loaded {
    unet *m;
    ckpt_info info;
} loaded;

static bool load(const char *path, loaded *l)
{
    char msg[2048];
    ckpt_file *f = NULL;
    l->m = NULL;
    if (ckpt_open(path, &f, &l->info, msg, sizeof msg) < 0) {
        MG_FAIL_("%s: %s", path, msg);
        return false;
    }
    l->m = unet_create(&l->info.model, 1, 16, 16, 0, unet_backend_cpu(), msg, sizeof msg);
    if (!l->m || ckpt_apply(f, l->m, msg, sizeof msg) < 0) MG_FAIL_("%s: %s", path, msg);
    ckpt_close(f);
    return l->m != NULL;
}

/* Max |a - b| over the parameters (BN buffers included) of two
 * checkpoints, -1 when one cannot be read; *moments gets the largest
 * difference of Adam's first moment (the gradients' running mean) relative
 * to its largest value; *bitwise: parameters and both moments equal bit
 * for bit. */
static double ckpt_diff(const char *a, const char *b, bool *bitwise, double *moments)
{
    loaded x, y;
    *bitwise = false;
    bool ok = load(a, &x) & load(b, &y);
    double md = -1;
    if (ok) {
        size_t n = x.m->plan.params_floats;
        const float *arr[3][2] = {{x.m->params, y.m->params},
                                  {x.m->adam_m, y.m->adam_m},
                                  {x.m->adam_v, y.m->adam_v}};
        double dm = 0, top = 0;
        md = 0;
        *bitwise = x.m->adam_step == y.m->adam_step;
        for (int k = 0; k < 3; k++) {
            *bitwise = *bitwise && memcmp(arr[k][0], arr[k][1], n * sizeof(float)) == 0;
            for (size_t i = 0; i < n; i++) {
                double d = fabs((double)arr[k][0][i] - (double)arr[k][1][i]);
                if (k == 0 && (d > md || d != d)) md = d;
                if (k == 1 && (d > dm || d != d)) dm = d;
                if (k == 1 && fabs(arr[k][0][i]) > top) top = fabs(arr[k][0][i]);
            }
        }
        *moments = top > 0 ? dm / top : dm;
        CHECK_INT(x.m->adam_step, y.m->adam_step);
    }
    unet_destroy(x.m);
    unet_destroy(y.m);
    return md;
}

/* The numbers of metrics.csv's rows (epoch, 3 train losses, val loss,
 * dice, iou; the timings left out) into v[row][7]; returns the rows. */
static int metrics(const char *dir, double v[][7], int max)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *s = slurp(path, NULL);
    int rows = 0;
    for (char *line = s ? strchr(s, '\n') : NULL; line && rows < max; line = strchr(line, '\n')) {
        line++;
        double *r = v[rows];
        if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf", r, r + 1, r + 2, r + 3, r + 4, r + 5,
                   r + 6) == 7)
            rows++;
    }
    if (!s) MG_FAIL_("%s: cannot read", path);
    free(s);
    return rows;
}

/* metrics.csv of two runs agree within tol (both have `rows` rows). */
static void same_metrics(const char *a, const char *b, int rows, double tol)
{
    double x[8][7], y[8][7];
    CHECK_INT(metrics(a, x, 8), rows);
    CHECK_INT(metrics(b, y, 8), rows);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < 7; k++) CHECK_NEAR(x[r][k], y[r][k], tol);
}

/* Two checkpoints agree: weights within tol, Adam's first moment within
 * mtol of its largest value, or bit for bit. */
static void check_ckpt(const char *a, const char *b, double tol, double mtol, bool want_bitwise)
{
    bool bitwise;
    double m = -1, d = ckpt_diff(a, b, &bitwise, &m);
    printf("# %s vs %s: weights max |diff| %.3g, Adam's m %.3g of its max%s\n", a, b, d, m,
           bitwise ? " (bitwise)" : "");
    CHECK(d >= 0 && d <= tol);
    CHECK(m >= 0 && m <= mtol);
    if (want_bitwise) CHECK(bitwise);
}

/* K ranks against one process: a sum in another order differs in the last
 * bits, and Adam's step, m / (sqrt(v) + eps), turns a rounding difference
 * of a gradient near 0 into up to lr per step (measured after the 3 steps
 * of SMALL: weights 4e-6 at 2 ranks, 5e-5 at 3; Adam's first moment, the
 * gradients' running mean, within 6e-8 and 2e-7 of its largest value). A
 * wrong gradient moves them far more: per-rank BN instead of --sync-bn
 * differs by 5e-2 in the weights and 2e-2 in the moment. */
#define W_TOL 3e-4
#define M_TOL 1e-5

/* ---- 1. one process ---------------------------------------------------------------- */

static char ref1[1200]; /* the single process's --out for SMALL --epochs 1 */

static void test_single(void)
{
    char again[1200], a[1300], b[1300];
    out_dir(ref1, sizeof ref1, "single");
    CHECK_RC(UT(60000, SMALL, "--epochs", "1", "--out", ref1), 0);
    CHECK(!strstr(P.out, "data parallel"));
    /* The reference of the checks below is itself reproducible. */
    out_dir(again, sizeof again, "single-again");
    CHECK_RC(UT(60000, SMALL, "--epochs", "1", "--out", again), 0);
    snprintf(a, sizeof a, "%s/last.pth", ref1);
    snprintf(b, sizeof b, "%s/last.pth", again);
    check_ckpt(a, b, 0, 0, true);
    same_metrics(ref1, again, 1, 0);
#ifndef MG_MPIEXEC
    /* No MPI in this build: one of K ranks is refused, with one line. */
    char out[1200];
    out_dir(out, sizeof out, "fake-rank");
    const char *argv[] = {"/usr/bin/env", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=0",
                          unet_train_path(), SMALL, "--epochs", "1", "--out", out, NULL};
    CHECK_RC(run_argv(argv, 60000), 2);
    CHECK_CONTAINS(P.err, "built without MPI");
    CHECK(!exists(out));
    printf("# no MPI in this build: the mpirun checks are skipped\n");
#endif
}

#ifdef MG_MPIEXEC
/* ---- 2. K ranks are one process ------------------------------------------------------ */

static void test_sync_bn_matches(void)
{
    char out[1200], a[1300], b[1300];
    snprintf(a, sizeof a, "%s/last.pth", ref1);
    /* One rank: bitwise the plain run (nothing is summed, nothing scaled). */
    out_dir(out, sizeof out, "np1");
    CHECK_RC(MPI("np1", "-np", "1", unet_train_path(), SMALL, "--epochs", "1", "--sync-bn",
                 "--out", out), 0);
    snprintf(b, sizeof b, "%s/last.pth", out);
    check_ckpt(a, b, 0, 0, true);
    same_metrics(ref1, out, 1, 0);
    for (int k = 2; k <= 3; k++) {
        char np[8], name[16];
        snprintf(np, sizeof np, "%d", k);
        snprintf(name, sizeof name, "sync%d", k);
        out_dir(out, sizeof out, name);
        CHECK_RC(MPI(name, "-np", np, unet_train_path(), SMALL, "--epochs", "1", "--sync-bn",
                     "--out", out), 0);
        CHECK_CONTAINS(P.out, "data parallel: ");
        CHECK_CONTAINS(P.out, "BatchNorm synchronised");
        snprintf(b, sizeof b, "%s/last.pth", out);
        check_ckpt(a, b, W_TOL, M_TOL, false);
        same_metrics(ref1, out, 1, 1e-5);
    }
}

static void test_rerun_bitwise(void)
{
    char o[2][1200], p[2][2500];
    for (int bn = 0; bn < 2; bn++) {
        for (int i = 0; i < 2; i++) {
            char name[32];
            snprintf(name, sizeof name, "rerun-%s-%d", bn ? "sync" : "local", i);
            out_dir(o[i], sizeof o[i], name);
            CHECK_RC(MPI(name, "-np", "2", unet_train_path(), SMALL, "--epochs", "2",
                         bn ? "--sync-bn" : "--flip", "--out", o[i]), 0);
            snprintf(p[i], sizeof p[i], "%s/last.pth", o[i]);
        }
        check_ckpt(p[0], p[1], 0, 0, true);
        if (!bn) {
            CHECK_CONTAINS(P.out, "BatchNorm per rank");
            /* Per-rank statistics are not the whole batch's: the weights differ
             * from SyncBatchNorm's (same flags but --flip: compare to a
             * --sync-bn --flip run). */
            char s[1200], sp[1300];
            out_dir(s, sizeof s, "rerun-local-vs-sync");
            CHECK_RC(MPI("local-vs-sync", "-np", "2", unet_train_path(), SMALL, "--epochs", "2",
                         "--flip", "--sync-bn", "--out", s), 0);
            snprintf(sp, sizeof sp, "%s/last.pth", s);
            bool bitwise;
            double m, d = ckpt_diff(p[0], sp, &bitwise, &m);
            printf("# per-rank BN vs --sync-bn: weights max |diff| %.3g, Adam's m %.3g\n", d, m);
            CHECK(d > 10 * W_TOL);
        }
    }
}

/* Batches smaller than the ranks: 21 samples leave 16 for training, so
 * at a global batch of 5 the epoch's last batch has 1 image and at 3
 * ranks two of them have none; at --batch 1 over 2 ranks every step has
 * an empty shard. An empty shard adds a zero gradient and, with
 * --sync-bn, no samples to BatchNorm's sums: the runs match one process
 * at the same global batch. With per-rank BN the empty ranks skip the
 * model: the run ends with finite numbers. */
#define SHORT "--synthetic", "21", "--val-split", "0.25", "--img-size", "16", "--depth", "2", \
              "--base", "8", "--in-ch", "1", "--progress", "lines", "--seed", "3",            \
              "--epochs", "1"

static void test_short_batches(void)
{
    static const char *const batch[2] = {"5", "1"}, *const np[2] = {"3", "2"};
    for (int i = 0; i < 2; i++) {
        char one[1200], many[1200], a[1300], b[1300], name[32];
        snprintf(name, sizeof name, "short-%s-single", batch[i]);
        out_dir(one, sizeof one, name);
        CHECK_RC(UT(60000, SHORT, "--batch", batch[i], "--out", one), 0);
        CHECK_CONTAINS(P.out, "16 train");
        snprintf(name, sizeof name, "short-%s-np%s", batch[i], np[i]);
        out_dir(many, sizeof many, name);
        CHECK_RC(MPI(name, "-np", np[i], unet_train_path(), SHORT, "--batch", batch[i],
                     "--sync-bn", "--out", many), 0);
        snprintf(a, sizeof a, "%s/last.pth", one);
        snprintf(b, sizeof b, "%s/last.pth", many);
        check_ckpt(a, b, W_TOL, M_TOL, false);
        same_metrics(one, many, 1, 1e-5);
    }
    char local[1200];
    double v[1][7];
    out_dir(local, sizeof local, "short-local");
    CHECK_RC(MPI("short-local", "-np", "3", unet_train_path(), SHORT, "--batch", "5", "--out",
                 local), 0);
    CHECK_INT(metrics(local, v, 1), 1);
    for (int k = 0; k < 7; k++) CHECK(isfinite(v[0][k]));
}

/* ---- 3. the guard agrees ------------------------------------------------------------------ */

/* How many times needle occurs in s. */
static int occurrences(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* The .pth files in dir whose names start with prefix; the first found
 * into first. */
static int count_pth(const char *dir, const char *prefix, char *first, size_t len)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".pth") == 0 &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            if (!n++) snprintf(first, len, "%s", e->d_name);
        }
    }
    if (d) closedir(d);
    return n;
}

static void test_guard_agrees(void)
{
    char out[1200], pth[256] = "", host[256] = "", want[1800];
    gethostname(host, sizeof host - 1);
    out_dir(out, sizeof out, "guard");
    /* MPMD: rank 0 as usual, rank 1 with a 1 MiB budget it is far over. */
    int rc = MPI("guard", "-np", "1", unet_train_path(), SMALL, "--epochs", "2", "--out", out,
                 ":", "-np", "1", unet_train_path(), SMALL, "--epochs", "2", "--out", out,
                 "--ram-budget", "1M");
    CHECK_RC(rc, 75);
    snprintf(want, sizeof want, "Reason: [rank 1 @ %s] [!] RAM usage high: ", host);
    CHECK_CONTAINS(P.out, want);
    CHECK_CONTAINS(P.out, "Emergency stop");
    CHECK_INT(count_pth(out, "", pth, sizeof pth), 1);
    CHECK_STR(pth, "emergency_epoch1.pth");
    /* Rank 0 printed the banner once; rank 1 printed none. */
    const char *b = strstr(P.out, "Emergency stop");
    CHECK(b && !strstr(b + 1, "Emergency stop"));
    CHECK(P.wall_ms < 60000);
}

static void test_request_any_node(void)
{
    char out[1200], pth[256] = "", host[256] = "", want[1800];
    gethostname(host, sizeof host - 1);
    out_dir(out, sizeof out, "request");
    /* A memguard run per rank; rank 1's has a budget its trainer is over
     * at once (1% of 1 GiB), far below its hard limit. */
    int rc = MPI("request", "-np", "1", MG_CLI, "run", "--", unet_train_path(), SMALL,
                 "--epochs", "2", "--out", out, ":", "-np", "1", MG_CLI, "run", "--ram-budget",
                 "1G", "--warn-ram", "0.005", "--stop-ram", "0.01", "--hard-ram", "0.99",
                 "--grace", "30s", "--", unet_train_path(), SMALL, "--epochs", "2", "--out",
                 out);
    CHECK_RC(rc, 75);
    snprintf(want, sizeof want, "(stop requested by memguard run on rank 1 @ %s)", host);
    CHECK_CONTAINS(P.out, want);
    snprintf(want, sizeof want, "Reason: [rank 1 @ %s] [!] ", host);
    CHECK_CONTAINS(P.out, want);
    CHECK_INT(count_pth(out, "", pth, sizeof pth), 1);
    CHECK(strncmp(pth, "emergency_epoch", 15) == 0);
    /* Both supervisors heard of the checkpoint, each from its own trainer:
     * "memguard: pid N saved PATH and stopped (exit 75)". */
    snprintf(want, sizeof want, " saved %s/%s and stopped (exit 75)", out, pth);
    const char *ack = strstr(P.err, want);
    CHECK(ack && strstr(ack + 1, want));
}

/* One memguard run around mpirun as a whole (memguard(1): put it
 * outermost): its tree is mpirun and both ranks, over its budget at once;
 * the request (its stop file in the environment mpirun passes on, its
 * signal forwarded by mpirun) reaches both ranks, rank 0 saves once, and
 * memguard exits 75 with that checkpoint acknowledged. */
static void test_request_around_mpirun(void)
{
    char out[1200], pth[256] = "", want[1600];
    out_dir(out, sizeof out, "around");
    const char *argv[] = {MG_CLI, "run", "--ram-budget", "1G", "--warn-ram", "0.005",
                          "--stop-ram", "0.01", "--hard-ram", "0.99", "--grace", "30s", "--",
                          MPIRUN, "-np", "2", unet_train_path(), SMALL, "--epochs", "20", "--out",
                          out, NULL};
    CHECK_RC(run_mpi("around", argv), 75);
    CHECK_CONTAINS(P.out, "(stop requested by memguard run on rank ");
    CHECK_INT(count_pth(out, "", pth, sizeof pth), 1);
    CHECK(strncmp(pth, "emergency_epoch", 15) == 0);
    CHECK_INT(occurrences(P.out, "Emergency stop"), 1);
    snprintf(want, sizeof want, " saved %s/%s and stopped (exit 75)", out, pth);
    CHECK_CONTAINS(P.err, want);
}

/* Between check points only the watcher thread sees memory: rank 1 runs
 * under a shell that starts a ballast (helper_child, in rank 1's own
 * process tree: the shell then execs the trainer) and it grabs more than
 * rank 1's --ram-budget at once when rank 1 starts its 4th batch
 * (UNET_TRAIN_TRACE's 4th line); --check-train and --check-eval are far
 * beyond the epoch, so no check point of the loop falls inside it. The
 * tick follows rank 1's batches (its trace) and the ballast's RSS: the
 * ranks must stop at the end of the batch in which the ballast filled, or
 * of the next one (it can fill just as a batch ends). */
#define WATCH "--synthetic", "80", "--val-split", "0.2", "--img-size", "128", "--depth", "2", \
              "--base", "16", "--in-ch", "1", "--batch", "4", "--progress", "lines",           \
              "--seed", "3", "--epochs", "2", "--check-train", "1000", "--check-eval", "1000"
#define WATCH_BUDGET_MB 512  /* rank 1's --ram-budget: room for a sanitized rank's own RSS */
#define WATCH_BALLAST_MB 640 /* one grab, more than the whole budget */

static char watch_trace[1300];
static pid_t watch_ballast;
static long watch_lines_at_full; /* rank 1's batches started when the ballast was full */

/* Lines in a file (0 when it cannot be read). */
static long file_lines(const char *path)
{
    char *s = slurp(path, NULL);
    long n = s ? count_lines(s) : 0;
    free(s);
    return n;
}

/* The pid of the process whose command line starts with a and has b, 0
 * if none. */
static pid_t find_process(const char *a, const char *b)
{
    DIR *d = opendir("/proc");
    char cmd[4096];
    long pid;
    do
        pid = next_process(d, cmd);
    while (pid && !(strncmp(cmd, a, strlen(a)) == 0 && strstr(cmd, b)));
    if (d) closedir(d);
    return (pid_t)pid;
}

/* VmRSS of pid in MiB, -1 when it cannot be read. */
static long rss_mb(pid_t pid)
{
    char path[64], *s;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    s = slurp(path, NULL);
    const char *v = s ? strstr(s, "VmRSS:") : NULL;
    long kb = v ? strtol(v + 6, NULL, 10) : -1;
    free(s);
    return kb < 0 ? -1 : kb / 1024;
}

static void watch_tick(double ms)
{
    (void)ms;
    if (watch_lines_at_full) return;
    if (!watch_ballast) watch_ballast = find_process(MG_HELPER " ballast ", watch_trace);
    if (watch_ballast && rss_mb(watch_ballast) > WATCH_BUDGET_MB)
        watch_lines_at_full = file_lines(watch_trace);
}

static void test_watcher_only(void)
{
    char out[1200], pth[256] = "", host[256] = "", want[1800], budget[32], ballast[64];
    gethostname(host, sizeof host - 1);
    out_dir(out, sizeof out, "watcher");
    snprintf(watch_trace, sizeof watch_trace, "%s/watcher-rank1.trace", root);
    unlink(watch_trace);
    snprintf(budget, sizeof budget, "%dM", WATCH_BUDGET_MB);
    snprintf(ballast, sizeof ballast, "%d", WATCH_BALLAST_MB);
    watch_ballast = 0;
    watch_lines_at_full = 0;
    P_tick = watch_tick;
    /* $1 helper, $2 trace, $3 MiB; the ballast waits for 4 trace lines,
     * grabs $3 MiB in one step and holds it (no "shrinks" file ever has 2
     * lines: /dev/null), and ends when its parent, the trainer, does. */
    int rc = MPI("watcher", "-np", "1", unet_train_path(), WATCH, "--out", out, ":", "-np", "1",
                 "/bin/bash", "-c",
                 "\"$1\" ballast \"$2\" 4 \"$3\" 1 1 \"$3\" /dev/null & t=$2; shift 3; "
                 "exec /usr/bin/env UNET_TRAIN_TRACE=\"$t\" \"$@\"",
                 "bash", MG_HELPER, watch_trace, ballast, unet_train_path(), WATCH, "--out", out,
                 "--ram-budget", budget);
    P_tick = NULL;
    CHECK_RC(rc, 75);
    snprintf(want, sizeof want, "Reason: [rank 1 @ %s] [!] RAM usage high: ", host);
    CHECK_CONTAINS(P.out, want);
    CHECK_INT(count_pth(out, "", pth, sizeof pth), 1);
    CHECK_STR(pth, "emergency_epoch1.pth");
    const char *b = strstr(P.out, "Emergency stop");
    CHECK(b && !strstr(b + 1, "Emergency stop"));
    CHECK(P.wall_ms < 60000);
    /* Where it stopped: the checkpoint's batch is rank 1's last one. */
    long started = file_lines(watch_trace);
    char path[1600];
    snprintf(path, sizeof path, "%s/%s", out, pth);
    loaded l;
    if (load(path, &l)) {
        printf("# watcher: ballast over the budget during rank 1's batch %ld; stopped after "
               "batch %lld of 16 (rank 1 started %ld)\n", watch_lines_at_full,
               (long long)l.info.st.batch, started);
        CHECK_INT(l.info.st.epoch, 0);
        CHECK_INT(l.info.st.batch, started);
        CHECK(watch_lines_at_full >= 4);
        CHECK(l.info.st.batch >= watch_lines_at_full && l.info.st.batch <= watch_lines_at_full + 1);
        CHECK(l.info.st.batch < 16); /* inside the epoch: no check point saw it */
        unet_destroy(l.m);
    }
    /* The ballast ends with its parent (it looks every millisecond): give
     * it a moment before the leftovers check. */
    for (int i = 0; i < 200 && find_process(MG_HELPER " ballast ", watch_trace); i++)
        usleep(10000);
    reap_leftovers("watcher: the ballast");
}

/* ---- 4. bad input under mpirun -------------------------------------------------------- */

/* A refused start under mpirun: exit 2, well before mpirun's deadline (no
 * rank left waiting in a collective), the line `want` said once (not once
 * per rank), and no --out made. */
static void check_refused(const char *out, const char *want)
{
    CHECK_INT(P.status, 2);
    CHECK(P.wall_ms < 30000);
    CHECK_INT(occurrences(P.err, want), 1);
    CHECK(!exists(out));
}

static void test_bad_input(void)
{
    char out[1200], junk[1300];
    out_dir(out, sizeof out, "bad");
    MPI("bad flag", "-np", "3", unet_train_path(), SMALL, "--epochs", "1", "--bogus", "--out",
        out);
    check_refused(out, "unet-train: unknown option '--bogus'\n");
    /* A bad --resume file: refused once, left as it was. */
    size_t sz;
    snprintf(junk, sizeof junk, "%s/junk.pth", root);
    spit(junk, "not a checkpoint\n", 17);
    uint64_t h = fnv1a_file(junk, &sz);
    MPI("bad resume", "-np", "2", unet_train_path(), SMALL, "--epochs", "1", "--resume", junk,
        "--out", out);
    check_refused(out, "unet-train: --resume ");
    CHECK(fnv1a_file(junk, &sz) == h && sz == 17);
    /* Only rank 1's own flags (mpirun's colon syntax) are bad: its line is
     * the one said, and rank 0, which started, ends too. */
    MPI("rank 1's flag", "-np", "1", unet_train_path(), SMALL, "--epochs", "1", "--out", out,
        ":", "-np", "1", unet_train_path(), SMALL, "--epochs", "1", "--out", out,
        "--ram-budget", "lots");
    check_refused(out, "--ram-budget 'lots': expected a size");
    /* An --out another run holds (this test takes its lock, as a
     * unet-train does): refused once, the folder as it was. */
    char held[1200], lock[1300], tag[64], before[4096], after[4096];
    out_dir(held, sizeof held, "held");
    mkdirs(held);
    snprintf(lock, sizeof lock, "%s/.lock", held);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int tl = snprintf(tag, sizeof tag, "unet-train %ld\n", (long)getpid());
    CHECK(fd >= 0 && write(fd, tag, (size_t)tl) == tl && flock(fd, LOCK_EX | LOCK_NB) == 0);
    tree_list(held, before, sizeof before);
    MPI("held out", "-np", "2", unet_train_path(), SMALL, "--epochs", "1", "--out", held);
    CHECK_INT(P.status, 2);
    snprintf(tag, sizeof tag, ": in use by another unet-train (pid %ld)", (long)getpid());
    CHECK_INT(occurrences(P.err, tag), 1);
    tree_list(held, after, sizeof after);
    CHECK_STR(after, before);
    if (fd >= 0) close(fd);
    /* What picks a batch on each rank's own node is refused, once. */
    char ini[1300];
    snprintf(ini, sizeof ini, "%s/shrink.ini", root);
    spit(ini, "on_memory = shrink\n", 19);
    MPI("shrink", "-np", "2", unet_train_path(), SMALL, "--epochs", "1", "--config", ini,
        "--out", out);
    check_refused(out, "--on-memory shrink: not with 2 MPI ranks (the ranks would each pick "
                       "their own batch); give --on-memory stop (the default)\n");
    MPI("batch auto", "-np", "2", unet_train_path(), "--synthetic", "20", "--img-size", "16",
        "--depth", "2", "--batch", "auto", "--epochs", "1", "--out", out);
    check_refused(out, "--batch auto: not with 2 MPI ranks (the ranks would each pick their "
                       "own batch); give --batch N\n");
}

/* Ranks whose training settings differ are refused at start-up, naming
 * the setting: another --epochs left rank 1 waiting forever in a
 * collective rank 0 never joined (until mpirun's --timeout), another
 * --seed would train on overlapping shards without a word. Refused before
 * rank 0 touches --out's files: a resume into a run's folder leaves its
 * metrics.csv as it was. */
static void test_settings_differ(void)
{
    char out[1200], before[8192], after[8192], last[1300];
    out_dir(out, sizeof out, "differ");
    MPI("other epochs", "-np", "1", unet_train_path(), SMALL, "--epochs", "1", "--out", out, ":",
        "-np", "1", unet_train_path(), SMALL, "--epochs", "2", "--out", out);
    check_refused(out, "--epochs: rank 1 has 2, rank 0 1; every rank must train with the same "
                       "settings");
    MPI("other lr", "-np", "2", unet_train_path(), SMALL, "--epochs", "1", "--out", out, ":",
        "-np", "1", unet_train_path(), SMALL, "--epochs", "1", "--out", out, "--lr", "0.01");
    check_refused(out, "--lr: rank 2 has 0.01, rank 0 0.001;");
    /* The guard's settings may differ (test_guard_agrees runs one). A
     * resume from another point on rank 1: refused, metrics.csv intact. */
    CHECK_RC(UT(60000, SMALL, "--epochs", "2", "--out", out), 0);
    tree_list(out, before, sizeof before);
    snprintf(last, sizeof last, "%s/last.pth", out);
    MPI("other resume", "-np", "1", unet_train_path(), SMALL, "--epochs", "3", "--out", out,
        "--resume", last, ":", "-np", "1", unet_train_path(), SMALL, "--epochs", "3", "--out",
        out);
    CHECK_INT(P.status, 2);
    CHECK_INT(occurrences(P.err, "(--resume): rank 1 has 0, rank 0 2;"), 1);
    tree_list(out, after, sizeof after);
    CHECK_STR(after, before);
}

/* predict, plan and --help under mpirun are rank 0's alone: one refusal
 * said, one plan printed, one usage. */
static void test_predict_once(void)
{
    char masks[1200], ckpt[1300], imgs[1300];
    snprintf(ckpt, sizeof ckpt, "%s/last.pth", ref1);
    out_dir(masks, sizeof masks, "predict");
    snprintf(imgs, sizeof imgs, "%s/predict-in", root);
    mg_rm_rf(imgs);
    mkdirs(imgs);
    CHECK_RC(UT(60000, "predict", "--checkpoint", ckpt, "--input", imgs, "--out", masks), 2);
    CHECK_RC(MPI("predict", "-np", "2", unet_train_path(), "predict", "--checkpoint", ckpt,
                 "--input", imgs, "--out", masks), 2);
    CHECK_INT(occurrences(P.err, "unet-train: "), 1);
    CHECK_RC(MPI("plan", "-np", "3", unet_train_path(), "plan", "--batch", "4", "--img-size",
                 "32"), 0);
    CHECK_INT(occurrences(P.out, "total (one arena)"), 1);
    CHECK_RC(MPI("help", "-np", "2", unet_train_path(), "--help"), 0);
    CHECK_INT(occurrences(P.out, "Usage: unet-train"), 1);
}

/* ---- 5. one checkpoint, any rank count ------------------------------------------------- */

/* The stop file of rank 1, created once rank 0 shows batch 10 (of 12): the
 * ranks stop at the next batch boundary that sees it, whichever it is. */
static char stop_file[1300];
static bool stop_made;

static void stop_tick(double ms)
{
    (void)ms;
    if (stop_made || !strstr(P.out, "train epoch 1/2 batch 10/")) return;
    stop_made = true;
    spit(stop_file, "memguard stop request\ntest: stop rank 1\n", 40);
}

static void test_resume_other_k(void)
{
    char ref[1200], stop[1200], envs[1400], rp[1300], path[1600], out[1200], lp[1300];
    out_dir(ref, sizeof ref, "resume-ref");
    CHECK_RC(MPI("resume-ref", "-np", "2", unet_train_path(), LONGER, "--epochs", "2", "--out",
                 ref), 0);
    snprintf(rp, sizeof rp, "%s/last.pth", ref);

    out_dir(stop, sizeof stop, "resume-stop");
    snprintf(stop_file, sizeof stop_file, "%s/rank1.stop", root);
    unlink(stop_file);
    snprintf(envs, sizeof envs, "MEMGUARD_STOP_FILE=%s", stop_file);
    stop_made = false;
    P_tick = stop_tick;
    int rc = MPI("resume-stop", "-np", "1", unet_train_path(), LONGER, "--epochs", "2", "--out",
                 stop, ":", "-np", "1", "/usr/bin/env", envs, unet_train_path(), LONGER,
                 "--epochs", "2", "--out", stop);
    P_tick = NULL;
    unlink(stop_file);
    CHECK(stop_made);
    CHECK_RC(rc, 75);
    CHECK_CONTAINS(P.out, "test: stop rank 1");
    char name[256] = "";
    CHECK_INT(count_pth(stop, "emergency_", name, sizeof name), 1);
    snprintf(path, sizeof path, "%s/%s", stop, name);
    loaded l;
    if (load(path, &l)) {
        long long at = l.info.st.epoch * 12 + l.info.st.batch; /* global batches done */
        printf("# %s: stopped at epoch %lld, batch %lld\n", name, (long long)l.info.st.epoch,
               (long long)l.info.st.batch);
        CHECK(at >= 10 && at < 24);
        unet_destroy(l.m);
    }
    /* Resume the same file at 1 rank (plain) and at 3: both end where
     * the uninterrupted 2-rank run ends. */
    for (int k = 1; k <= 3; k += 2) {
        char run[32];
        snprintf(run, sizeof run, "resume-%d", k);
        out_dir(out, sizeof out, run);
        /* A resume continues in its own --out: the stopped run's rows come along. */
        char cmd[4000];
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", stop, out);
        CHECK_INT(system(cmd), 0);
        if (k == 1) rc = UT(60000, LONGER, "--epochs", "2", "--out", out, "--resume", path);
        else rc = MPI(run, "-np", "3", unet_train_path(), LONGER, "--epochs", "2", "--out", out,
                      "--resume", path);
        CHECK_RC(rc, 0);
        CHECK_CONTAINS(P.out, "resumed from ");
        snprintf(lp, sizeof lp, "%s/last.pth", out);
        check_ckpt(rp, lp, W_TOL, M_TOL, false);
        same_metrics(ref, out, 2, 1e-5);
    }
}
#endif

int main(void)
{
    snprintf(root, sizeof root, "%s/unet_dist", MG_TMPDIR);
    mg_rm_rf(root);
    mkdirs(root);
    MG_RUN(test_single);
#ifdef MG_MPIEXEC
    MG_RUN(test_sync_bn_matches);
    MG_RUN(test_rerun_bitwise);
    MG_RUN(test_short_batches);
    MG_RUN(test_guard_agrees);
    MG_RUN(test_request_any_node);
    MG_RUN(test_request_around_mpirun);
    MG_RUN(test_watcher_only);
    MG_RUN(test_resume_other_k);
    MG_RUN(test_bad_input);
    MG_RUN(test_settings_differ);
    MG_RUN(test_predict_once);
#endif
    reap_leftovers("the end");
    return mg_test_exit();
}
