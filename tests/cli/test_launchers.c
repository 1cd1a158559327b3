/* SPDX-License-Identifier: MIT */
/*
 * test_launchers.c: `memguard run` in front of the launchers PyTorch users
 * actually have, end to end. tests/launchers/trainer.py (a small CPU
 * trainer on the Python binding) runs under the real memguard program
 * (MG_CLI, with the libmemguard.so beside it) through plain python with
 * forked or spawned DataLoader workers, torchrun, torch.multiprocessing.spawn,
 * a bash wrapper (tests/launchers/train.sh) and a `| tee` pipeline. Each
 * scenario is one bash script run in a fresh folder; the driver checks the
 * exit status (memguard run's, or the pipeline's first command's), that
 * exactly one emergency_epochN.pth was written (or none, when the run fits)
 * with no temporary left, and lines of the output. It does not judge the
 * trainer's numbers.
 *
 * Every scenario has a deadline and the file one more. The driver is a
 * child subreaper: whatever a scenario leaves behind (ranks of a killed
 * launcher, workers in other process groups or sessions) becomes its child
 * and is killed and reaped before the next scenario starts, so nothing is
 * left running; the folders are removed. Skipped (passes) when
 * /usr/bin/python3 cannot import torch, and under the sanitizers: an
 * ASan-built libmemguard.so cannot be loaded into python (the memguard
 * program itself is tested under ASan by test_run and test_cli).
 */
#define _GNU_SOURCE
#include "mg_test.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOTAL_DEADLINE_S 390 /* under ctest's TIMEOUT of 420 s */
#define LAUNCHERS MG_SOURCE_DIR "/tests/launchers"
#define MIB (1024.0 * 1024.0)

/* The options every scenario gives memguard run: no NVML, and a grace short
 * enough that a trainer that never stops fails within the deadline. */
#define RUN "\"$MG\" run --no-gpu --grace 20 --kill-after 5"
#define TRAIN "\"$PY\" \"$T\" --out-dir \"$OUT\""

static char lib_path[4096];
static double t_start;

typedef struct scenario {
    const char *name;
    const char *script;       /* bash -c; $MG $PY $T $L $D $OUT are set */
    int status;               /* expected exit status of the script */
    int checkpoints;          /* expected emergency_epoch*.pth files in $OUT */
    int deadline_s;
    const char *must[4];      /* lines the output must contain */
    const char *must_not[4];  /* ... and must not */
    const char *first, *then; /* when set: both in the output, in this order */
} scenario;

/* Seconds of the monotonic clock. */
static double now_s(void)
{
    return mg_mono_ms() / 1000;
}

/* ---- processes ------------------------------------------------------------ */

/* The parent pid of `pid` from /proc/PID/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1) return -1;
    return ppid;
}

/* True when `pid` descends from this process. */
static bool is_descendant(pid_t pid)
{
    pid_t me = getpid();
    for (int depth = 0; pid > 1 && depth < 64; depth++) {
        pid = parent_of(pid);
        if (pid == me) return true;
    }
    return false;
}

/* SIGKILLs every descendant of this process and reaps its children, until
 * none is left (a subreaper inherits the orphans, so that is everything a
 * scenario started). */
static void kill_descendants(void)
{
    for (int round = 0; round < 100; round++) {
        int found = 0;
        DIR *d = opendir("/proc");
        if (!d) return;
        struct dirent *e;
        while ((e = readdir(d))) {
            pid_t pid = (pid_t)atoi(e->d_name);
            if (pid > 1 && pid != getpid() && is_descendant(pid)) {
                kill(pid, SIGKILL);
                found++;
            }
        }
        closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        if (!found) return;
        usleep(20 * 1000);
    }
    fprintf(stderr, "  descendants still alive after 100 rounds of SIGKILL\n");
}

/* Starts `script` under bash in `dir`, in its own process group, with its
 * stdout and stderr in dir/log. */
static pid_t start_script(const char *dir, const char *script)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0) setpgid(pid, pid); /* both sides: no race with kill(-pid) */
        return pid;
    }
    setpgid(0, 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || chdir(dir) != 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    snprintf(path, sizeof path, "%s/out", dir);
    setenv("OUT", path, 1);
    setenv("D", dir, 1);
    setenv("MG", MG_CLI, 1);
    setenv("PY", MG_PYTHON, 1);
    setenv("PYTHON", MG_PYTHON, 1);
    setenv("T", LAUNCHERS "/trainer.py", 1);
    setenv("L", LAUNCHERS, 1);
    setenv("MEMGUARD_LIBRARY", lib_path, 1);
    setenv("PYTHONPATH", MG_SOURCE_DIR "/python", 1);
    setenv("LC_ALL", "C.UTF-8", 1);
    setenv("TMPDIR", dir, 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    /* This test may itself run under memguard run. */
    unsetenv("MEMGUARD_STOP_FILE");
    unsetenv("MEMGUARD_ACK_FILE");
    unsetenv("MEMGUARD_STOP_SIGNAL");
    unsetenv("MEMGUARD_SUPERVISOR_PID");
    execl("/bin/bash", "bash", "-c", script, (char *)NULL);
    _exit(127);
}

/* Waits for `pid` at most `deadline_s`; past it, SIGTERM to its group (the
 * memguard run in it forwards it), 3 s, then SIGKILL to everything. Returns
 * the exit status, 128 + N for signal N, or -1 on the deadline. Either way
 * every descendant is gone afterwards. */
static int wait_script(pid_t pid, int deadline_s)
{
    double end = now_s() + deadline_s;
    int status = 0, rc = -1;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (r < 0 && errno != EINTR) break;
        if (now_s() >= end) {
            fprintf(stderr, "  still running after %d s: stopping it\n", deadline_s);
            kill(-pid, SIGTERM);
            for (int i = 0; i < 30 && waitpid(pid, &status, WNOHANG) == 0; i++)
                usleep(100 * 1000);
            break;
        }
        usleep(20 * 1000);
    }
    kill_descendants();
    return rc;
}

/* ---- files ------------------------------------------------------------------- */

/* The file at `path` (at most 1 MiB), NUL-terminated; "" when unreadable.
 * The caller frees it. */
static char *read_text(const char *path)
{
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    while (fd >= 0 && used < cap && (n = read(fd, buf + used, cap - used)) > 0)
        used += (size_t)n;
    if (fd >= 0) close(fd);
    buf[used] = '\0';
    return buf;
}

/* Counts emergency_epoch*.pth files in `dir`, and temporaries (".tmp.") in
 * *tmps. */
static int count_checkpoints(const char *dir, int *tmps)
{
    int n = 0;
    *tmps = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strstr(e->d_name, ".tmp.")) (*tmps)++;
        else if (strncmp(e->d_name, "emergency_epoch", 15) == 0 && len > 4 &&
                 strcmp(e->d_name + len - 4, ".pth") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type, (void)f;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- scenarios ---------------------------------------------------------------- */

/* Forked workers share the preloaded tensor: the sum of the processes' RSS
 * counts it five times, their PSS once. The scenario only shows what it
 * claims if its budget (1200 MiB) truly fits (>= 1.5x the PSS sum the
 * trainer measured mid-epoch) while the RSS sum is over it. */
static void check_fit_figures(const char *log)
{
    const char *p = strstr(log, "tree: rss_sum=");
    double rss = 0, pss = 0;
    int nprocs = 0;
    CHECK(p && sscanf(p, "tree: rss_sum=%lf pss_sum=%lf nprocs=%d", &rss, &pss, &nprocs) == 3);
    printf("# tree mid-epoch: %d processes, RSS sum %.0f MiB, PSS sum %.0f MiB\n", nprocs,
           rss / MIB, pss / MIB);
    CHECK_INT(nprocs, 5);
    CHECK(pss > 0 && pss * 1.5 <= 1200 * MIB);
    CHECK(rss > 1200 * MIB);
}

static void run_scenario(const scenario *s, void (*extra)(const char *log))
{
    double left = TOTAL_DEADLINE_S - (now_s() - t_start);
    if (left < 10) {
        MG_FAIL_("%s: not run, the file's %d s are spent", s->name, TOTAL_DEADLINE_S);
        return;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/launchers-XXXXXX", MG_TMPDIR);
    if (!mkdtemp(dir)) {
        MG_FAIL_("mkdtemp %s: %s", dir, strerror(errno));
        return;
    }
    snprintf(path, sizeof path, "%s/out", dir);
    mkdir(path, 0700);
    double t0 = now_s();
    int deadline = s->deadline_s < left ? s->deadline_s : (int)left;
    int rc = wait_script(start_script(dir, s->script), deadline);
    double took = now_s() - t0;
    int tmps = 0, n = count_checkpoints(path, &tmps);
    snprintf(path, sizeof path, "%s/log", dir);
    char *log = read_text(path);
    printf("# %s: exit %d, %d checkpoint(s), %.1f s\n", s->name, rc, n, took);
    int before = mg_test_failed_checks;
    CHECK_INT(rc, s->status);
    CHECK_INT(n, s->checkpoints);
    CHECK_INT(tmps, 0);
    for (int i = 0; i < 4 && s->must[i]; i++) CHECK_CONTAINS(log, s->must[i]);
    for (int i = 0; i < 4 && s->must_not[i]; i++)
        if (log && strstr(log, s->must_not[i])) MG_FAIL_("\"%s\" in the output", s->must_not[i]);
    if (s->first && log) {
        const char *a = strstr(log, s->first), *b = strstr(log, s->then);
        if (!a || !b || b < a) MG_FAIL_("\"%s\" is not before \"%s\"", s->first, s->then);
    }
    if (extra && log) extra(log);
    if (mg_test_failed_checks != before && log) {
        size_t len = strlen(log);
        fprintf(stderr, "  --- %s: script\n%s\n  --- last of the output\n%s\n  ---\n", s->name,
                s->script, log + (len > 12000 ? len - 12000 : 0));
    }
    free(log);
    remove_tree(dir);
}

/* a) Four forked workers share a preloaded 300 MiB tensor: the tree's PSS
 * is about half the budget, its RSS sum about twice it. Must train to the
 * end untouched. */
static void test_forked_workers_fit(void)
{
    static const scenario s = {
        .name = "forked workers, budget fits",
        .script = "exec " RUN " --ram-budget 1200M -- " TRAIN
                  " --workers 4 --preload-mib 300 --report-tree --epochs 3 --batch-sleep 0.05",
        .status = 0, .checkpoints = 0, .deadline_s = 90,
        .must = {"Training finished", "epoch 2 done"},
        .must_not = {"stop at epoch", "Emergency save"},
    };
    run_scenario(&s, check_fit_figures);
}

/* b) The same, with the trainer keeping 32 MiB more per batch (of at least
 * 50 ms) from epoch 1: the budget is truly exceeded partway; one
 * checkpoint, exit 75. The stop threshold (60 %, 720 MiB) lies 14 batches
 * of growth below the hard limit (97 %): a PSS reading of this tree costs
 * 20-140 ms, and memguard run must follow the growth between two of them
 * (before cb25d84 it sampled every 1-1.7 s on a loaded machine and killed
 * this run without a checkpoint). */
static void test_forked_workers_exceed(void)
{
    static const scenario s = {
        .name = "forked workers, budget exceeded",
        .script = "exec " RUN " --ram-budget 1200M --warn-ram 0.55 --stop-ram 0.6 -- " TRAIN
                  " --workers 4 --preload-mib 300 --epochs 6 --batch-sleep 0.05"
                  " --grow-mib 32 --grow-from-epoch 1",
        .status = 75, .checkpoints = 1, .deadline_s = 90,
        .must = {"stop at epoch ", "Reason: ", "Emergency save complete: "},
        .must_not = {"Training finished", "exited unexpectedly"},
    };
    run_scenario(&s, NULL);
}

/* c) Two spawned workers (they start with the default disposition of the
 * checkpoint signal, which kills): a request mid-run must not kill them. */
static void test_spawned_workers(void)
{
    static const scenario s = {
        .name = "spawned workers, request mid-run",
        .script = "exec " RUN " --ram-budget 1200M --warn-ram 0.4 --stop-ram 0.5 -- " TRAIN
                  " --workers 2 --mp-context spawn --epochs 6 --batch-sleep 0.05"
                  " --grow-mib 32 --grow-from-epoch 1",
        .status = 75, .checkpoints = 1, .deadline_s = 120,
        .must = {"stop at epoch ", "Emergency save complete: "},
        .must_not = {"Training finished", "exited unexpectedly", "killed by signal"},
    };
    run_scenario(&s, NULL);
}

/* d) torchrun, two gloo ranks; only rank 1's own Guard goes critical (its
 * budget, not memguard run's). Rank 0 saves and acknowledges; torchrun
 * turns the ranks' 75 into 1 (ChildFailedError), memguard run gives 75
 * through the ack. --redirects/--tee work around torch 1.13 on Python 3.11. */
static void test_torchrun(void)
{
    static const scenario s = {
        .name = "torchrun, rank 1 critical",
        .script = "exec " RUN " -- \"$PY\" -m torch.distributed.run --standalone"
                  " --nproc_per_node=2 --redirects 1 --tee 1 --log_dir \"$D/torchrun\""
                  " \"$T\" --out-dir \"$OUT\" --epochs 4 --batch-sleep 0.05"
                  " --guard-headroom-mib 400 --grow-rank 1 --grow-mib 64 --grow-from-epoch 1",
        .status = 75, .checkpoints = 1, .deadline_s = 120,
        .must = {"stop at epoch 1 batch 10: [rank 1] RAM usage high: ", "Reason: [rank 1] ",
                 "[rank 1] stop at epoch 1 batch 10: RAM usage high: ", "ChildFailedError"},
        .must_not = {"Training finished"},
    };
    run_scenario(&s, NULL);
}

/* d') torchrun again, now with memguard run asking (rank 1 keeps memory
 * until the budget's stop threshold): the agent, which catches SIGTERM,
 * SIGINT, SIGHUP and SIGQUIT but not the checkpoint signal, must not be
 * sent it; the ranks must stop together and rank 0 save. */
static void test_torchrun_request(void)
{
    static const scenario s = {
        .name = "torchrun, request",
        .script = "exec " RUN " --ram-budget 1400M --warn-ram 0.4 --stop-ram 0.5 --"
                  " \"$PY\" -m torch.distributed.run --standalone --nproc_per_node=2"
                  " --redirects 1 --tee 1 --log_dir \"$D/torchrun\" \"$T\" --out-dir \"$OUT\""
                  " --epochs 6 --batch-sleep 0.05 --grow-rank 1 --grow-mib 32"
                  " --grow-from-epoch 1",
        .status = 75, .checkpoints = 1, .deadline_s = 120,
        .must = {"[default0]:stop at epoch ", "[default1]:[rank 1] stop at epoch ",
                 "Emergency save complete: ", "ChildFailedError"},
        .must_not = {"Training finished", "(SIGUSR1)"},
    };
    run_scenario(&s, NULL);
}

/* e) torch.multiprocessing.spawn, two gloo ranks; rank 1 keeps memory until
 * memguard run's budget asks. mp.spawn's parent catches nothing and exits 1
 * (ProcessExitedException) when a rank exits 75; memguard run gives 75
 * through the ack. */
static void test_mp_spawn(void)
{
    static const scenario s = {
        .name = "torch.multiprocessing.spawn, request",
        .script = "exec " RUN " --ram-budget 1400M --warn-ram 0.4 --stop-ram 0.5 -- " TRAIN
                  " --mp-spawn 2 --epochs 6 --batch-sleep 0.05 --grow-rank 1 --grow-mib 32"
                  " --grow-from-epoch 1",
        .status = 75, .checkpoints = 1, .deadline_s = 120,
        .must = {"stop at epoch ", "Reason: ", "Emergency save complete: ",
                 "ProcessExitedException"},
        .must_not = {"Training finished"},
    };
    run_scenario(&s, NULL);
}

/* f) A bash wrapper that runs python without exec: bash is the command and
 * does not catch the signal; it must survive and pass the trainer's 75 on.
 * The memory grows from epoch 3 (past 4 s: 1 s of imports, epochs of at
 * least 20 x 50 ms), after the first 3 s in which memguard run holds back
 * the signal from a command that does not catch it yet. */
static void test_bash_wrapper(void)
{
    static const scenario s = {
        .name = "bash wrapper",
        .script = "exec " RUN " --ram-budget 800M --warn-ram 0.4 --stop-ram 0.5 --"
                  " \"$L/train.sh\" --out-dir \"$OUT\" --epochs 8 --batch-sleep 0.05"
                  " --grow-mib 32 --grow-from-epoch 3",
        .status = 75, .checkpoints = 1, .deadline_s = 90,
        .must = {"stop at epoch ", "train.sh: trainer exited with 75"},
        .must_not = {"Training finished"},
    };
    run_scenario(&s, NULL);
}

/* g) The request arrives while the trainer is still loading its data (4 s,
 * 400 MiB) and has no Guard, hence no handler (memguard run's "asking pid"
 * line comes before the Guard's banner): it must not die of the signal, and
 * must stop at its first batch. */
static void test_request_while_loading(void)
{
    static const scenario s = {
        .name = "request before the Guard exists",
        .script = "exec " RUN " --ram-budget 1000M --warn-ram 0.4 --stop-ram 0.5 -- " TRAIN
                  " --load-mib 400 --load-seconds 4 --epochs 2",
        .status = 75, .checkpoints = 1, .deadline_s = 90,
        .must = {"loading data", "stop at epoch 0 batch 0: ", "Emergency save complete: "},
        .must_not = {"Training finished"},
        .first = "asking pid", .then = "Automatic memory monitor enabled",
    };
    run_scenario(&s, NULL);
}

/* h) memguard run ... 2>&1 | tee LOG: the status through PIPESTATUS, the
 * banner in tee's copy. The request comes past the first 3 s, as in f). */
static void test_tee_pipeline(void)
{
    static const scenario s = {
        .name = "tee pipeline",
        .script = RUN " --ram-budget 800M --warn-ram 0.4 --stop-ram 0.5 -- " TRAIN
                  " --epochs 8 --batch-sleep 0.05 --grow-mib 32 --grow-from-epoch 3"
                  " 2>&1 | tee \"$D/tee.log\"; rc=${PIPESTATUS[0]};"
                  " grep -c 'Emergency save complete' \"$D/tee.log\""
                  " | sed 's/^/tee.log banners: /'; exit $rc",
        .status = 75, .checkpoints = 1, .deadline_s = 90,
        .must = {"stop at epoch ", "tee.log banners: 1\n"},
        .must_not = {"Training finished"},
    };
    run_scenario(&s, NULL);
}

/* ---- main ------------------------------------------------------------------------ */

/* True when the python interpreter can import torch (within 60 s). */
static bool have_torch(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/launchers-XXXXXX", MG_TMPDIR);
    if (!mkdtemp(dir)) return false;
    int rc = wait_script(start_script(dir, "exec \"$PY\" -c 'import torch'"), 60);
    remove_tree(dir);
    return rc == 0;
}

int main(void)
{
#ifdef MG_SANITIZE
    printf("ok 1 - test_launchers # SKIP libmemguard is built with sanitizers\n1..1\n");
    return 0;
#endif
    t_start = now_s();
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(lib_path, sizeof lib_path, "%s", MG_CLI);
    char *slash = strrchr(lib_path, '/');
    size_t dir_len = slash ? (size_t)(slash - lib_path) : 0;
    snprintf(lib_path + dir_len, sizeof lib_path - dir_len, "%slibmemguard.so",
             dir_len ? "/" : "");
    if (access(MG_PYTHON, X_OK) != 0 || !have_torch()) {
        printf("ok 1 - test_launchers # SKIP %s cannot import torch\n1..1\n", MG_PYTHON);
        return 0;
    }
    MG_RUN(test_forked_workers_fit);
    MG_RUN(test_forked_workers_exceed);
    MG_RUN(test_spawned_workers);
    MG_RUN(test_torchrun);
    MG_RUN(test_torchrun_request);
    MG_RUN(test_mp_spawn);
    MG_RUN(test_bash_wrapper);
    MG_RUN(test_request_while_loading);
    MG_RUN(test_tee_pipeline);
    printf("# all scenarios: %.1f s\n", now_s() - t_start);
    kill_descendants();
    return mg_test_exit();
}
