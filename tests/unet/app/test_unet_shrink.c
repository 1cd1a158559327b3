/* SPDX-License-Identifier: MIT */
/*
 * test_unet_shrink.c: unet-train --on-memory shrink end to end, with real
 * memory pressure from a real process:
 *   - under one `memguard run --ram-budget`, a helper (helper_child
 *     ballast) grows its memory beside the trainer mid-run until memguard
 *     run asks, and gives it back once answered (a spike): the trainer
 *     saves emergency_epochN.pth, goes on at a smaller batch in the same
 *     process, answers memguard run (which logs "continue" and never
 *     sends SIGTERM), and the run ends with 0;
 *   - the same with the trainer's own --ram-budget (the helper is its
 *     child, so its tree), logged in OUT/shrinks.csv (an earlier run's
 *     row there gone: a fresh run starts it anew) and marked where it
 *     happened in OUT/curves.svg;
 *   - in both, every image of every epoch was trained on exactly once
 *     (the UNET_TRAIN_TRACE hook), and the result is bitwise the run
 *     `--resume emergency_epochN.pth --batch B` gives (weights, Adam
 *     state, losses; same thread count), judged by torch;
 *   - the trainer's side of the protocol alone, with the test playing
 *     memguard run (its stop file, then removing it once answered): the
 *     answer is the documented text, no acknowledgement, and again every
 *     image once and bitwise the resumed run;
 *   - where it must stop, it stops as before, with 75 and the checkpoint:
 *     when not even batch 1 fits, under a memguard run that does not take
 *     the answer (no MEMGUARD_CONTINUE_FILE, an older memguard), and at a
 *     manual request (SIGUSR1 to memguard).
 * The budgets come from the trainer's own peak RSS, measured first. The
 * sanitizer build skips the runs that judge RSS (ASan's shadow memory and
 * quarantine keep freed arenas resident) and trains a smaller problem.
 * Every child runs in its own process group with a deadline; the group is
 * killed afterwards, so nothing outlives a check.
 */
#include "mg_unet_run.h"

#include "memguard.h"

#include <signal.h>
#include <stdlib.h>

#define PY_GUARD MG_SOURCE_DIR "/tests/py/unet_guard_check.py"
#define EPOCHS 3
#ifdef MG_SANITIZE
#define JUDGE_RSS 0
/* ASan runs the kernels some 30x slower: 40 samples at 32x32. */
#define CFG_DATA "--synthetic", "40", "--img-size", "32", "--base", "8", "--depth", "1", \
                 "--seed", "3", "--threads", "2", "--progress", "lines"
#else
#define JUDGE_RSS 1
/* 72 samples at 64x64: 58 training images, 8 batches of 8 per epoch. */
#define CFG_DATA "--synthetic", "72", "--img-size", "64", "--base", "8", "--depth", "1", \
                 "--seed", "3", "--threads", "2", "--progress", "lines"
#endif
#define CFG CFG_DATA, "--epochs", "3"

static char root[900];      /* everything this test writes */
static long peak_kb;        /* the trainer's peak RSS at batch 8, alone */

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
}

/* ---- what a run printed --------------------------------------------------------- */

/* One "[memguard] batch F -> T: continuing from epoch E, sample S (NAME
 * saved)" line of out, from `from` on; false when there is none. */
typedef struct shrink_line {
    int from, to, epoch, sample;
    char name[64];
} shrink_line;

static const char *next_shrink(const char *from, shrink_line *l)
{
    const char *p = strstr(from, "[memguard] batch ");
    if (!p) return NULL;
    const char *open = strstr(p, "(");
    if (sscanf(p, "[memguard] batch %d -> %d: continuing from epoch %d, sample %d", &l->from,
               &l->to, &l->epoch, &l->sample) != 4 ||
        !open || sscanf(open, "(%63s saved)", l->name) != 1)
        return NULL;
    return p + 1;
}

/* The shrinks in out: how many, and the last one. */
static int shrinks_in(const char *out, shrink_line *last)
{
    int n = 0;
    for (const char *p = out; (p = next_shrink(p, last)) != NULL;) n++;
    return n;
}

/* "N train" of the data line. */
static int train_count(const char *out)
{
    const char *p = strstr(out, " train, ");
    while (p && p > out && p[-1] >= '0' && p[-1] <= '9') p--;
    return p ? atoi(p) : -1;
}

/* ---- the trace: every image of every epoch exactly once --------------------------- */

/* Checks UNET_TRAIN_TRACE's lines "EPOCH POSITION COUNT SAMPLE...": per
 * epoch, positions 0..n-1 each once, each sample once; the first batch
 * has `first` images, none more, and the last full one `last`. */
static void check_trace(const char *path, int n, int first, int last)
{
    char *t = slurp(path, NULL);
    CHECK(t != NULL);
    if (!t || n <= 0 || n > 1000) { free(t); return; }
    static int pos_seen[EPOCHS + 1][1000], sample_seen[EPOCHS + 1][1000];
    memset(pos_seen, 0, sizeof pos_seen);
    memset(sample_seen, 0, sizeof sample_seen);
    int lines = 0, first_count = 0, max_count = 0, last_full = 0, bad = 0;
    for (char *save = NULL, *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int e, p, c, used;
        if (sscanf(l, "%d %d %d%n", &e, &p, &c, &used) != 3 || e < 1 || e > EPOCHS || p < 0 ||
            c < 1 || p + c > n) {
            MG_FAIL_("bad trace line: %s", l);
            continue;
        }
        if (!lines) first_count = c;
        if (c > max_count) max_count = c;
        if (p + c < n) last_full = c; /* not an epoch's short last batch */
        const char *s = l + used;
        for (int k = 0; k < c; k++) {
            int idx, u;
            if (sscanf(s, "%d%n", &idx, &u) != 1 || idx < 0 || idx >= 1000) { bad++; break; }
            s += u;
            pos_seen[e][p + k]++;
            sample_seen[e][idx]++;
        }
        lines++;
    }
    CHECK_INT(bad, 0);
    for (int e = 1; e <= EPOCHS; e++) {
        int pos_once = 0, samples_once = 0, samples = 0;
        for (int i = 0; i < 1000; i++) {
            pos_once += i < n && pos_seen[e][i] == 1;
            samples_once += sample_seen[e][i] == 1;
            samples += sample_seen[e][i];
        }
        if (pos_once != n || samples_once != n || samples != n)
            MG_FAIL_("epoch %d: %d of %d positions once, %d samples once, %d samples in all",
                     e, pos_once, n, samples_once, samples);
    }
    CHECK_INT(first_count, first);
    CHECK_INT(max_count, first);
    CHECK_INT(last_full, last);
    printf("# trace: %d batches, every one of %d images once in each of %d epochs\n", lines, n,
           EPOCHS);
    free(t);
}

/* ---- curves.svg ----------------------------------------------------------------------- */

/* OUT/curves.svg marks the shrink l, and only it, in both panels. */
static void check_curves_mark(const char *out, const shrink_line *l, int samples)
{
    char path[1200], want[200];
    snprintf(path, sizeof path, "%s/curves.svg", out);
    char *svg = slurp(path, NULL);
    CHECK(svg != NULL);
    if (!svg) return;
    snprintf(want, sizeof want,
             "data-kind=\"shrink\" data-epoch=\"%d\" data-at=\"%.6g\" data-from=\"%d\" "
             "data-to=\"%d\"", l->epoch, (double)l->sample / samples, l->from, l->to);
    int marks = 0, same = 0;
    for (const char *p = svg; (p = strstr(p, "data-kind=\"shrink\"")) != NULL; p++) {
        marks++;
        same += strncmp(p, want, strlen(want)) == 0;
    }
    CHECK_INT(marks, 2);
    CHECK_INT(same, 2);
    if (same != 2) MG_FAIL_("wanted %s in:\n%s", want, svg);
    free(svg);
}

/* ---- the run a shrink must equal ----------------------------------------------------- */

/* metrics.csv's rows without the timing columns, from `from_epoch` on. */
static void rows_untimed(const char *path, int from_epoch, char *out, size_t len)
{
    char *s = slurp(path, NULL);
    size_t u = 0;
    out[0] = '\0';
    if (!s) { MG_FAIL_("cannot read %s", path); return; }
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int e = atoi(l), commas = 0;
        if (e < from_epoch) continue;
        char *p = l;
        for (; *p && commas < 7; p++) commas += *p == ',';
        if (commas == 7) p[-1] = '\0';
        u += (size_t)snprintf(out + u, u < len ? len - u : 0, "%s\n", l);
    }
    free(s);
}

/* `--resume OUT/NAME --batch TO` in a fresh folder gives bitwise the
 * shrunk run's last.pth and its metrics from that epoch on. */
static void check_equals_resume(const char *out, const shrink_line *l, const char *name)
{
    char ckpt[1200], again[1000], bs[16], a[1200], b[1200];
    snprintf(ckpt, sizeof ckpt, "%s/%s", out, l->name);
    char dir[64];
    snprintf(dir, sizeof dir, "%s-resumed", name);
    path_in(again, sizeof again, dir);
    mg_rm_rf(again);
    snprintf(bs, sizeof bs, "%d", l->to);
    P_env_more = NULL;
    CHECK_INT(UT(240000, CFG, "--batch", bs, "--resume", ckpt, "--out", again), 0);
    if (strstr(P.out, "[memguard] batch")) /* it did not shrink itself */
        MG_FAIL_("%s: the resumed run shrank:\n%s", name, P.out);
    snprintf(a, sizeof a, "%s/last.pth", out);
    snprintf(b, sizeof b, "%s/last.pth", again);
    const char *py[] = {MG_PYTHON, PY_GUARD, "equal", a, b, NULL};
    if (run_argv(py, 120000) != 0) MG_FAIL_("%s: not bitwise the resumed run:\n%s%s", name, P.out, P.err);
    else printf("# %s: %s", name, P.out);
    static char ra[8192], rb[8192];
    snprintf(a, sizeof a, "%s/metrics.csv", out);
    snprintf(b, sizeof b, "%s/metrics.csv", again);
    rows_untimed(a, l->epoch, ra, sizeof ra);
    rows_untimed(b, l->epoch, rb, sizeof rb);
    CHECK_STR(ra, rb);
    CHECK_INT(count_lines(ra), EPOCHS - l->epoch + 1);
}

/* ---- the runs --------------------------------------------------------------------------- */

static void test_baseline(void)
{
    char out[1000];
    path_in(out, sizeof out, "base");
    mg_rm_rf(out);
    CHECK_INT(UT(240000, CFG_DATA, "--batch", "8", "--epochs", "1", "--out", out), 0);
    peak_kb = P.maxrss_kb;
    printf("# trainer alone at batch 8: peak RSS %ld kB\n", peak_kb);
    CHECK(peak_kb > 1024);
}

/* A bash wrapper: the ballast beside the trainer, both in one tree. $1
 * helper, $2 trace, $3 rounds, $4 cap MiB, then the trainer's command. The
 * ballast grows fast (4 MiB every 2 ms, up to the cap, which stays below
 * the hard limit), so even a fast machine's trainer meets it mid-run. */
static void write_wrapper(char *path, size_t len)
{
    path_in(path, len, "wrap.sh");
    const char *text =
        "#!/bin/bash\n"
        "h=$1 trace=$2 rounds=$3 cap=$4; shift 4\n"
        ": > \"$trace\"\n"
        "\"$h\" ballast \"$trace\" 3 4 2 \"$rounds\" \"$cap\" &\n"
        "b=$!\n"
        "UNET_TRAIN_TRACE=$trace \"$@\"\n"
        "rc=$?\n"
        "kill $b 2>/dev/null; wait $b 2>/dev/null\n"
        "exit $rc\n";
    spit(path, text, strlen(text));
}

/* memguard run's budget: the trainer's peak plus room for bash and the
 * helper at 45 %, so the helper must add about 25 % to reach stop (70 %).
 * It may add up to 45 % (run_guarded's cap): the trainer is not always at
 * its peak when the ballast comes (with UNET_KERNELS=avx2 under ctest -j2
 * a cap of 35 % left the tree below 70 %: 0 shrinks), and at its peak
 * 45 + 45 stays under the hard line (99 %). */
static unsigned long long run_budget(void)
{
    return ((unsigned long long)peak_kb + 8192) * 1024 * 100 / 45;
}

/* False when there is no baseline to size the budget from (said). */
static bool run_guarded(const char *name, bool old_supervisor, char *out, size_t olen,
                        char *log, size_t llen, char *trace, size_t tlen)
{
    CHECK(peak_kb > 0);
    if (peak_kb <= 0) return false;
    char wrap[1000], budget[32], cap[32];
    write_wrapper(wrap, sizeof wrap);
    char f[64];
    snprintf(f, sizeof f, "%s-out", name);
    path_in(out, olen, f);
    snprintf(f, sizeof f, "%s.jsonl", name);
    path_in(log, llen, f);
    snprintf(f, sizeof f, "%s.trace", name);
    path_in(trace, tlen, f);
    mg_rm_rf(out);
    unlink(log);
    unsigned long long b = run_budget();
    snprintf(budget, sizeof budget, "%llu", b);
    snprintf(cap, sizeof cap, "%llu", b * 45 / 100 >> 20);
    /* --max-interval 20: a sample at least every 20 ms, so memguard run
     * sees the spike while a fast machine's trainer is still mid-run. */
    const char *argv[64] = {MG_CLI, "run", "--no-gpu", "--ram-budget", budget, "--warn-ram",
                            "0.6", "--stop-ram", "0.7", "--hard-ram", "0.99", "--max-interval",
                            "20", "--log", log, "--"};
    int i = 16;
    if (old_supervisor) {
        argv[i++] = "env";
        argv[i++] = "-u";
        argv[i++] = "MEMGUARD_CONTINUE_FILE";
    }
    const char *rest[] = {"bash", wrap, MG_HELPER, trace, "2", cap, unet_train_path(), CFG,
                          "--batch", "8", "--on-memory", "shrink", "--out", out, NULL};
    for (const char *const *r = rest; *r; r++) argv[i++] = *r;
    argv[i] = NULL;
    P_env_more = NULL;
    run_argv(argv, 300000);
    return true;
}

/* The log's events named `ev`. */
static int count_events(const char *log, const char *ev)
{
    char *t = slurp(log, NULL), needle[64];
    snprintf(needle, sizeof needle, "{\"event\":\"%s\"", ev);
    int n = 0;
    for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p++) n++;
    free(t);
    return n;
}

static void test_under_memguard_run(void)
{
    char out[1000], log[1000], trace[1000];
    if (!run_guarded("guarded", false, out, sizeof out, log, sizeof log, trace, sizeof trace))
        return;
    CHECK_INT(P.status, 0);
    shrink_line l = {0};
    int n = shrinks_in(P.out, &l);
    printf("# under memguard run: %d shrink%s, the last %d -> %d at epoch %d sample %d\n", n,
           n == 1 ? "" : "s", l.from, l.to, l.epoch, l.sample);
    CHECK(n >= 1);
    CHECK(l.to >= 1 && l.to < 8);
    CHECK_CONTAINS(P.out, "[memguard] memguard run asked: ");
    CHECK_CONTAINS(P.out, "done: ");
    CHECK_CONTAINS(P.err, "and continues (batch 8 -> 6)");
    CHECK_INT(count_events(log, "continue"), n);
    CHECK_INT(count_events(log, "request"), n);
    CHECK_INT(count_events(log, "term"), 0);
    CHECK_INT(count_events(log, "ack"), 0);
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/shrinks.csv", out);
    char *rows = slurp(csv, NULL);
    CHECK_INT(rows ? count_lines(rows) : -1, n + 1);
    free(rows);
    check_trace(trace, train_count(P.out), 8, l.to);
    if (n >= 1) check_equals_resume(out, &l, "guarded");
}

static void test_own_budget(void)
{
    char out[1000], trace[1000], wrap[1000], budget[32], cap[32], csv[1200];
    CHECK(peak_kb > 0);
    if (peak_kb <= 0) return;
    path_in(out, sizeof out, "own-out");
    path_in(trace, sizeof trace, "own.trace");
    mg_rm_rf(out);
    mkdirs(out);
    snprintf(csv, sizeof csv, "%s/shrinks.csv", out);
    /* An earlier run's row: this fresh run starts the file anew. */
    const char *stale = "epoch,sample,samples,from_batch,to_batch,checkpoint,reason\n"
                        "2,16,58,8,2,\"old.pth\",\"RAM usage high: earlier\"\n";
    spit(csv, stale, strlen(stale));
    /* The trainer's tree is itself and the helper (exec keeps the child):
     * at 45 % alone, the helper adds 50 % of the budget at once after the
     * third batch (in one step: grown slowly, a fast machine's trainer
     * finished its 24 batches first and never shrank): past the batch-8
     * row's stop (84 %), and batch 4 or less then fits below warn. */
    unsigned long long b = ((unsigned long long)peak_kb + 4096) * 1024 * 100 / 45;
    snprintf(budget, sizeof budget, "%llu", b);
    snprintf(cap, sizeof cap, "%llu", b / 2 >> 20);
    path_in(wrap, sizeof wrap, "own.sh");
    const char *text =
        "#!/bin/bash\n"
        "h=$1 trace=$2 cap=$3 csv=$4; shift 4\n"
        ": > \"$trace\"\n"
        "\"$h\" ballast \"$trace\" 3 \"$cap\" 1 1 \"$cap\" \"$csv\" &\n"
        "UNET_TRAIN_TRACE=$trace exec \"$@\"\n";
    spit(wrap, text, strlen(text));
    const char *argv[] = {"/bin/bash", wrap, MG_HELPER, trace, cap, csv, unet_train_path(), CFG,
                          "--batch", "8", "--on-memory", "shrink", "--ram-budget", budget,
                          "--check-train", "1", "--out", out, NULL};
    P_env_more = NULL;
    run_argv(argv, 300000);
    CHECK_INT(P.status, 0);
    shrink_line l = {0};
    int n = shrinks_in(P.out, &l);
    printf("# own --ram-budget: %d shrink%s, the last %d -> %d at epoch %d sample %d\n", n,
           n == 1 ? "" : "s", l.from, l.to, l.epoch, l.sample);
    CHECK_INT(n, 1);
    /* The reading, at the threshold or ahead of it by the trend. */
    CHECK(strstr(P.out, "[memguard] RAM usage high: ") ||
          strstr(P.out, "[memguard] RAM filling fast: "));
    char *rows = slurp(csv, NULL), want[400];
    snprintf(want, sizeof want,
             "epoch,sample,samples,from_batch,to_batch,checkpoint,reason\n%d,%d,%d,8,%d,\"%s\","
             "\"RAM ", l.epoch, l.sample, train_count(P.out), l.to, l.name);
    CHECK(rows && strncmp(rows, want, strlen(want)) == 0);
    if (rows && strncmp(rows, want, strlen(want)) != 0) MG_FAIL_("shrinks.csv:\n%s", rows);
    free(rows);
    check_curves_mark(out, &l, train_count(P.out));
    check_trace(trace, train_count(P.out), 8, l.to);
    if (n == 1) check_equals_resume(out, &l, "own");
}

/* The test as memguard run: a memory request in the stop file once three
 * batches are done; when the answer comes, it is kept and the stop file
 * removed, as memguard does. */
static char fake_stop[1000], fake_cont[1000], fake_trace[1000], answer[5000];
static int fake_state;

static void fake_supervisor(double el)
{
    (void)el;
    if (fake_state == 0) {
        char *t = slurp(fake_trace, NULL);
        int lines = t ? count_lines(t) : 0;
        free(t);
        if (lines < 3) return;
        const char *req = MG_STOP_FILE_HEADER "\nRAM usage high: test\nrequest 1 memory\n";
        spit(fake_stop, req, strlen(req));
        fake_state = 1;
    } else if (fake_state == 1 && exists(fake_cont)) {
        char *a = slurp(fake_cont, NULL);
        snprintf(answer, sizeof answer, "%s", a ? a : "");
        free(a);
        unlink(fake_cont);
        unlink(fake_stop);
        fake_state = 2;
    }
}

static void test_answer_protocol(void)
{
    char out[1000], ack[1000], envs[4][1100], want[6000], real[4096];
    path_in(out, sizeof out, "fake-out");
    path_in(fake_stop, sizeof fake_stop, "fake.stop");
    path_in(fake_cont, sizeof fake_cont, "fake.continue");
    path_in(fake_trace, sizeof fake_trace, "fake.trace");
    path_in(ack, sizeof ack, "fake.ack");
    mg_rm_rf(out);
    unlink(fake_stop);
    unlink(fake_cont);
    unlink(ack);
    spit(fake_trace, "", 0);
    snprintf(envs[0], sizeof envs[0], "MEMGUARD_STOP_FILE=%s", fake_stop);
    snprintf(envs[1], sizeof envs[1], "MEMGUARD_CONTINUE_FILE=%s", fake_cont);
    snprintf(envs[2], sizeof envs[2], "MEMGUARD_ACK_FILE=%s", ack);
    snprintf(envs[3], sizeof envs[3], "UNET_TRAIN_TRACE=%s", fake_trace);
    const char *env[] = {envs[0], envs[1], envs[2], envs[3], NULL};
    P_env_more = env;
    P_tick = fake_supervisor;
    fake_state = 0;
    answer[0] = '\0';
    int rc = UT(300000, CFG, "--batch", "8", "--on-memory", "shrink", "--out", out);
    P_tick = NULL;
    P_env_more = NULL;
    CHECK_INT(rc, 0);
    CHECK_INT(fake_state, 2);
    shrink_line l = {0};
    CHECK_INT(shrinks_in(P.out, &l), 1);
    CHECK_INT(l.to, 6);
    CHECK_CONTAINS(P.out, "[memguard] memguard run asked: RAM usage high: test");
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", out, l.name);
    CHECK(realpath(path, real) != NULL);
    snprintf(want, sizeof want, "%s\nrequest 1\ncheckpoint %s\nnote batch 8 -> 6\n",
             MG_CONTINUE_FILE_HEADER, real);
    CHECK_STR(answer, want);
    CHECK(!exists(ack)); /* it went on: nothing acknowledged */
    check_trace(fake_trace, train_count(P.out), 8, 6);
    check_equals_resume(out, &l, "fake");
}

/* Not even batch 1 fits (a budget below what the trainer holds without
 * its arena): saved, 75, as without --on-memory shrink. */
static void test_nothing_fits(void)
{
    char out[1000];
    path_in(out, sizeof out, "tiny-out");
    const char *cases[][3] = {{"2", "no batch from 1 to 1 fits below the RAM warn threshold now"},
                              {"1", "already at batch 1"}};
    for (int i = 0; i < 2; i++) {
        mg_rm_rf(out);
        P_env_more = NULL;
        CHECK_INT(UT(240000, CFG, "--batch", cases[i][0], "--on-memory", "shrink",
                     "--ram-budget", "4M", "--out", out), 75);
        char want[300], path[1200];
        snprintf(want, sizeof want, "[memguard] batch %s: cannot go on smaller (%s): stopping",
                 cases[i][0], cases[i][1]);
        CHECK_CONTAINS(P.out, want);
        CHECK_CONTAINS(P.out, "Emergency stop");
        snprintf(path, sizeof path, "%s/emergency_epoch1.pth", out);
        CHECK(exists(path));
        snprintf(path, sizeof path, "%s/shrinks.csv", out);
        CHECK(!exists(path));
    }
}

/* An older memguard run (no MEMGUARD_CONTINUE_FILE) cannot take the
 * answer: the trainer stops, acknowledges, and memguard exits 75. */
static void test_old_supervisor(void)
{
    char out[1000], log[1000], trace[1000];
    if (!run_guarded("oldsup", true, out, sizeof out, log, sizeof log, trace, sizeof trace))
        return;
    CHECK_INT(P.status, 75);
    CHECK(!strstr(P.out, "[memguard] batch "));
    CHECK_CONTAINS(P.out, "Emergency stop");
    CHECK_CONTAINS(P.err, " and stopped (exit 75)");
    CHECK_INT(count_events(log, "ack"), 1);
    CHECK_INT(count_events(log, "continue"), 0);
}

/* SIGUSR1 to memguard asks to stop, not to shrink. */
static bool usr1_sent;
static void usr1_tick(double el)
{
    (void)el;
    if (!usr1_sent && strstr(P.out, "train epoch 1/3 batch ")) {
        kill(P.pid, SIGUSR1);
        usr1_sent = true;
    }
}

static void test_manual_request(void)
{
    char out[1000], log[1000];
    path_in(out, sizeof out, "manual-out");
    path_in(log, sizeof log, "manual.jsonl");
    mg_rm_rf(out);
    unlink(log);
    usr1_sent = false;
    P_tick = usr1_tick;
    P_env_more = NULL;
    const char *argv[] = {MG_CLI, "run", "--no-gpu", "--ram-budget", "4G", "--log", log, "--",
                          unet_train_path(), CFG,
                          "--batch", "8", "--on-memory", "shrink", "--out", out, NULL};
    run_argv(argv, 300000);
    P_tick = NULL;
    CHECK(usr1_sent);
    CHECK_INT(P.status, 75);
    CHECK(!strstr(P.out, "[memguard] batch "));
    CHECK_CONTAINS(P.out, "(stop requested by memguard run)");
    CHECK_INT(count_events(log, "ack"), 1);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unet-shrink", MG_TMPDIR);
    mg_rm_rf(root);
    mkdirs(root);
    MG_RUN(test_answer_protocol);
    MG_RUN(test_nothing_fits);
    MG_RUN(test_manual_request);
    if (!JUDGE_RSS) {
        printf("# skip: the runs that judge RSS (ASan keeps freed memory resident)\n");
        return mg_test_exit();
    }
    MG_RUN(test_baseline);
    MG_RUN(test_under_memguard_run);
    MG_RUN(test_own_budget);
    MG_RUN(test_old_supervisor);
    return mg_test_exit();
}
