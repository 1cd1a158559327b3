/* SPDX-License-Identifier: MIT */
/*
 * test_supervise.c: `memguard run` must never be what loses a run. Real
 * processes (helper_child.c, bash, sh) under the real supervisor:
 *   - every catchable signal sent to memguard leaves it guarding (never an
 *     orphaned trainer), SIGPIPE from a closed pipe included, and SIGUSR1
 *     is a manual request; a SIGKILLed memguard still makes the trainer
 *     save (its parent-death signal);
 *   - the checkpoint signal reaches only processes that catch it: a bash
 *     wrapper and a launcher survive it, a trainer that installs its handler
 *     4 s late still gets it;
 *   - an acknowledged save is exit 75 whatever the launcher returned, and a
 *     rank still saving after its launcher quit gets the rest of --grace;
 *   - processes that left the group with setsid() are counted and stopped;
 *   - the stop file lives in a private folder, and --stop-file / --signal
 *     refuse what could destroy a file or kill the trainer.
 * Each test ends by checking that no helper process is left.
 */
#include "mg_run.h"
#include "memguard.h"

#include <sys/stat.h>

/* ---- signals to the supervisor ------------------------------------------------ */

static int tick_sig;
static double tick_sent_ms;

/* Whether memguard (R.pid) has started its command yet. */
static bool has_child(void)
{
    char path[128], buf[64] = "";
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)R.pid, (int)R.pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool any = fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9';
    fclose(f);
    return any;
}

/* Sends tick_sig once the command runs, and SIGINT 300 ms later. */
static void signal_tick(double el)
{
    (void)el;
    if (tick_sent_ms == 0 && has_child()) {
        struct timespec ts = {0, 100 * 1000000L}; /* the helper's handler */
        nanosleep(&ts, NULL);
        kill(R.pid, tick_sig);
        tick_sent_ms = mg_mono_ms();
    } else if (tick_sent_ms > 0 && mg_mono_ms() - tick_sent_ms > 300) {
        kill(R.pid, SIGINT);
        tick_sent_ms = -1;
    }
}

static void one_signal(int sig)
{
    char log[600], name[32];
    snprintf(name, sizeof name, "sig%d.jsonl", sig);
    path_in_tmp(log, sizeof log, name);
    unlink(log);
    tick_sig = sig;
    tick_sent_ms = 0;
    const char *args[] = {"run", "--no-gpu", "--log", log, "--grace", "20", "--",
                          MG_HELPER, "sleep", NULL};
    int st = run_cli_tick(NULL, args, 10000, signal_tick);
    if (sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
        /* Forwarded: the helper dies of it, memguard reports it. */
        CHECK_INT(st, 128 + sig);
        load_log(log);
        int fw = ev_find("forward", 0);
        CHECK(fw > 0);
        if (fw > 0) CHECK_NEAR(ev_num(fw, "signal", NULL, NULL), sig, 0);
        CHECK(ev_find("exit", 0) > fw);
    } else {
        /* memguard lived on and forwarded the SIGINT that followed. */
        if (st != 130) MG_FAIL_("signal %d: exit %d, stderr:\n%s", sig, st, R.err);
        CHECK_CONTAINS(R.out, "got SIGINT");
    }
    if (sig == SIGUSR1) CHECK_CONTAINS(R.err, "checkpoint requested with SIGUSR1 to memguard");
    if (sig == SIGUSR2 || sig == SIGALRM || sig == SIGSEGV)
        CHECK_CONTAINS(R.err, "ignoring SIG");
    no_helper_left();
}

static void test_every_signal_to_supervisor(void)
{
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) one_signal(sig);
    one_signal(SIGRTMIN);
    one_signal(SIGRTMAX);
}

/* `memguard run ... 2>&1 | head -c 1`: the pipe closes after one byte;
 * memguard's next messages get EPIPE, and it still guards the run. */
static void test_closed_pipe(void)
{
    char ck[600], stf[600], cmd[3000];
    path_in_tmp(ck, sizeof ck, "pipe.ckpt");
    path_in_tmp(stf, sizeof stf, "pipe.status");
    unlink(ck);
    unlink(stf);
    snprintf(cmd, sizeof cmd,
             "'%s' run --no-gpu --ram-budget 300M --min-interval 5 -- '%s' alloc 5 10 '%s' "
             "2>&1 | head -c 1 >/dev/null; echo ${PIPESTATUS[0]} > '%s'",
             MG_CLI, MG_HELPER, ck, stf);
    const char *args[] = {"/bin/bash", "-c", cmd, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    int st = -1;
    for (int i = 0; i < 2000 && waitpid(pid, &st, WNOHANG) == 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (waitpid(pid, &st, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        MG_FAIL_("the pipeline ran past 20 s");
    }
    FILE *f = fopen(stf, "r");
    int code = -1;
    if (f) {
        if (fscanf(f, "%d", &code) != 1) code = -2;
        fclose(f);
    }
    CHECK_INT(code, 75);
    CHECK(ckpt_mb(ck) >= 200);
    no_helper_left();
}

static void kill9_tick(double el)
{
    (void)el;
    if (tick_sent_ms == 0 && has_child()) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        kill(R.pid, SIGKILL);
        tick_sent_ms = mg_mono_ms();
    }
}

/* memguard SIGKILLed: the trainer gets the checkpoint signal as its
 * parent-death signal, saves and stops instead of running on unguarded. */
static void test_supervisor_killed(void)
{
    char ck[600];
    path_in_tmp(ck, sizeof ck, "pdeath.ckpt");
    unlink(ck);
    tick_sent_ms = 0;
    /* A SIGKILLed memguard cannot remove its private folder: keep it in
     * the test's own folder, not in /tmp. */
    char tmpenv[600];
    snprintf(tmpenv, sizeof tmpenv, "TMPDIR=%s", tmpdir);
    const char *env[] = {tmpenv, "XDG_RUNTIME_DIR", NULL};
    const char *args[] = {"run", "--no-gpu", "--", MG_HELPER, "alloc", "1", "20", ck, NULL};
    CHECK_INT(run_cli_tick(env, args, 10000, kill9_tick), 128 + SIGKILL);
    for (int i = 0; i < 300 && ckpt_mb(ck) < 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK(ckpt_mb(ck) >= 0);
    no_helper_left();
}

/* ---- who gets the checkpoint signal -------------------------------------------- */

/* A bash wrapper (no exec): bash has no handler, so it is not sent the
 * signal (its default action would kill it); the trainer under it is. */
static void test_bash_wrapper(void)
{
    char ck[600], sh[600];
    path_in_tmp(ck, sizeof ck, "wrap.ckpt");
    path_in_tmp(sh, sizeof sh, "train.sh");
    unlink(ck);
    write_file(sh, "#!/bin/bash\n'%s' alloc 5 10 '%s'\nrc=$?\necho \"wrapped rc=$rc\"\n"
                   "exit $rc\n", MG_HELPER, ck);
    chmod(sh, 0755);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "300M", "--min-interval", "5", "--",
                  sh), 75);
    CHECK_CONTAINS(R.out, "wrapped rc=75");
    CHECK(ckpt_mb(ck) >= 200);
    no_helper_left();
}

/* A launcher that catches the checkpoint signal only to forward it (as
 * mpirun and srun do with SIGUSR1) is not signalled while its child would
 * die of it: the child, installing its handler 1.5 s after the request,
 * gets the signal then (directly, and through the launcher) and saves; it
 * is not killed by a forwarded signal before (exit 138 until session 5:
 * a memguard run around mpirun lost both ranks so). */
static void test_forwarding_launcher(void)
{
    char ck[600];
    path_in_tmp(ck, sizeof ck, "forward.ckpt");
    unlink(ck);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "100M", "--min-interval", "5", "--",
                  MG_HELPER, "forward", "late", "1500", "95", ck), 75);
    CHECK_INT((int)ckpt_mb(ck), 95);
    CHECK(R.wall_ms >= 1500);
    CHECK_CONTAINS(R.err, "now handles SIGUSR1: sent it");
    no_helper_left();
}

/* A trainer that installs its handler 4 s after the request (loading its
 * data first) and never reads the stop file still gets the signal. */
static void test_handler_after_4s(void)
{
    char ck[600];
    path_in_tmp(ck, sizeof ck, "late4.ckpt");
    unlink(ck);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "100M", "--min-interval", "5", "--",
                  MG_HELPER, "late", "4000", "95", ck), 75);
    CHECK_INT((int)ckpt_mb(ck), 95);
    CHECK(R.wall_ms >= 4000);
    CHECK_CONTAINS(R.err, "now handles SIGUSR1: sent it");
    no_helper_left();
}

/* A launcher (no handler) whose rank saves and acknowledges, then turns
 * the rank's 75 into 1 as torchrun and mp.spawn do: memguard says 75 and
 * names the checkpoint. The launcher itself is not killed. */
static void test_ack_wins_over_launcher(void)
{
    char ck[600], log[600], real[4096];
    path_in_tmp(ck, sizeof ck, "ack.ckpt");
    path_in_tmp(log, sizeof log, "ack.jsonl");
    unlink(ck);
    unlink(log);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "300M", "--min-interval", "5",
                  "--log", log, "--", MG_HELPER, "launcher", "wait", "1", "5", "10", ck, "0"),
              75);
    CHECK(ckpt_mb(ck) >= 200);
    load_log(log);
    int ack = ev_find("ack", 0), ex = ev_find("exit", 0);
    CHECK(ack > 0 && ex > ack);
    if (ack > 0 && realpath(ck, real)) {
        const cJSON *c = cJSON_GetObjectItem(EV.items[ack], "checkpoint");
        CHECK(cJSON_IsString(c) && strcmp(c->valuestring, real) == 0);
    }
    if (ex > 0) {
        CHECK_NEAR(ev_num(ex, "code", NULL, NULL), 1, 0);   /* exited, not killed */
        CHECK_NEAR(ev_num(ex, "exit_status", NULL, NULL), 75, 0);
    }
    no_helper_left();
}

/* The launcher quits as soon as the request comes while its rank needs
 * 1.5 s to save: the rank gets the rest of --grace, not a SIGTERM. */
static void test_rank_saves_after_launcher_quits(void)
{
    char ck[600];
    path_in_tmp(ck, sizeof ck, "quit.ckpt");
    unlink(ck);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "300M", "--min-interval", "5",
                  "--grace", "10", "--", MG_HELPER, "launcher", "quit", "1", "5", "10", ck,
                  "1500"),
              75);
    CHECK(ckpt_mb(ck) >= 200);
    CHECK_CONTAINS(R.err, "rest of the grace time");
    no_helper_left();
}

/* A trainer whose first reading is already past the budget's hard limit
 * (one big allocation) is asked first and saves: the budget's hard limit
 * kills only 2 s after a request, never before one. */
static void test_budget_hard_asks_first(void)
{
    char ck[600], log[600];
    path_in_tmp(ck, sizeof ck, "hardfirst.ckpt");
    path_in_tmp(log, sizeof log, "hardfirst.jsonl");
    unlink(ck);
    unlink(log);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "100M", "--min-interval", "5",
                  "--log", log, "--", MG_HELPER, "alloc", "150", "10", ck), 75);
    CHECK_INT((int)ckpt_mb(ck), 150);
    load_log(log);
    CHECK(ev_find("request", 0) > 0);
    CHECK(ev_find("kill", 0) < 0);
    no_helper_left();
}

/* ---- processes that leave the group ------------------------------------------- */

static void test_setsid_leftover_stopped(void)
{
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--kill-after", "2", "--", MG_HELPER, "setsid",
                  "exit", "20"), 0);
    CHECK_CONTAINS(R.err, "outlived it");
    no_helper_left();
}

static void test_setsid_counted_and_killed(void)
{
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "100M", "--min-interval", "5", "--",
                  MG_HELPER, "setsid", "stay", "150"), 76);
    CHECK_CONTAINS(R.err, "hard limit");
    no_helper_left();
}

/* ---- the stop file ---------------------------------------------------------------- */

static void test_private_folder(void)
{
    char env_tmp[700];
    snprintf(env_tmp, sizeof env_tmp, "TMPDIR=%s", tmpdir);
    const char *env[] = {"XDG_RUNTIME_DIR", env_tmp, NULL};
    const char *script = "printf '%s\\n%s\\n' \"$MEMGUARD_STOP_FILE\" \"$MEMGUARD_ACK_FILE\"; "
                         "stat -c '%a' \"$(dirname \"$MEMGUARD_STOP_FILE\")\"";
    const char *args[] = {"run", "--no-gpu", "--", "/bin/sh", "-c", script, NULL};
    CHECK_INT(run_cli(env, args, 10000), 0);
    char stop[4096] = "", ack[4096] = "", mode[16] = "";
    CHECK(sscanf(R.out, "%4095s %4095s %15s", stop, ack, mode) == 3);
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/memguard-", tmpdir);
    CHECK(strncmp(stop, prefix, strlen(prefix)) == 0);
    CHECK(strstr(stop, "/stop") != NULL);
    CHECK(strstr(ack, "/ack") != NULL);
    CHECK_STR(mode, "700");
    char *slash = strrchr(stop, '/');
    if (slash) {
        *slash = '\0';
        CHECK(access(stop, F_OK) != 0); /* removed at the end */
    }
}

/* A symlink planted next to --stop-file is never followed. */
static void test_planted_symlinks(void)
{
    char stop[600], victim[600], link1[700], ck[600];
    path_in_tmp(stop, sizeof stop, "plant.stop");
    path_in_tmp(victim, sizeof victim, "victim.txt");
    path_in_tmp(ck, sizeof ck, "plant.ckpt");
    snprintf(link1, sizeof link1, "%s.tmp", stop);
    unlink(stop);
    unlink(link1);
    unlink(ck);
    write_file(victim, "precious\n");
    CHECK(symlink(victim, link1) == 0);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "300M", "--min-interval", "5",
                  "--stop-file", stop, "--", MG_HELPER, "alloc", "5", "10", ck), 75);
    char buf[64] = "";
    FILE *f = fopen(victim, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    CHECK_STR(buf, "precious\n");
    struct stat st;
    CHECK(lstat(link1, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(access(stop, F_OK) != 0);
    unlink(link1);
    no_helper_left();
}

/* --stop-file on something that is not a leftover of ours: exit 2, one
 * line naming it, the thing untouched, the command never started. */
static void refuse_stop_file(const char *path, const char *what)
{
    char marker[600];
    path_in_tmp(marker, sizeof marker, "started.marker");
    unlink(marker);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--stop-file", path, "--", "/bin/touch", marker), 2);
    CHECK_CONTAINS(R.err, path);
    CHECK_CONTAINS(R.err, what);
    CHECK_INT(mg_count_lines(R.err), 1);
    CHECK(access(marker, F_OK) != 0);
}

static void test_stop_file_refusals(void)
{
    char script[600], dir[600], link2[600], fifo[600], foreign[600], ackpath[700], stale[600];
    path_in_tmp(script, sizeof script, "train.py");
    write_file(script, "print('my training script')\n");
    refuse_stop_file(script, "is not a stop file");
    FILE *f = fopen(script, "r");
    char buf[64] = "";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    CHECK_STR(buf, "print('my training script')\n");

    path_in_tmp(dir, sizeof dir, "stopdir");
    mkdirs(dir);
    refuse_stop_file(dir, "is not a stop file");
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));

    /* A symlink to a stop file of ours is still not ours. */
    path_in_tmp(stale, sizeof stale, "stale.stop");
    write_file(stale, "%s\nold reason\n", MG_STOP_FILE_HEADER);
    path_in_tmp(link2, sizeof link2, "link.stop");
    unlink(link2);
    CHECK(symlink(stale, link2) == 0);
    refuse_stop_file(link2, "is not a stop file");
    CHECK(lstat(link2, &st) == 0 && S_ISLNK(st.st_mode));

    path_in_tmp(fifo, sizeof fifo, "fifo.stop");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    refuse_stop_file(fifo, "is not a stop file");
    CHECK(R.wall_ms < 5000);

    if (geteuid() == 0) {
        path_in_tmp(foreign, sizeof foreign, "foreign.stop");
        write_file(foreign, "%s\nsomeone else's\n", MG_STOP_FILE_HEADER);
        CHECK(chown(foreign, 65534, 65534) == 0);
        refuse_stop_file(foreign, "is not a stop file");
        CHECK(access(foreign, F_OK) == 0);
    }

    /* An acknowledgement path holding something else. */
    char base[600];
    path_in_tmp(base, sizeof base, "acked.stop");
    unlink(base);
    snprintf(ackpath, sizeof ackpath, "%s.ack", base);
    write_file(ackpath, "not an ack\n");
    refuse_stop_file(base, "is not an acknowledgement");
    CHECK(access(ackpath, F_OK) == 0);

    /* A continuing-answer path holding something else. */
    char contpath[700];
    path_in_tmp(base, sizeof base, "cont.stop");
    unlink(base);
    snprintf(contpath, sizeof contpath, "%s.continue", base);
    write_file(contpath, "my notes\n");
    refuse_stop_file(base, "is not a continuing answer");
    CHECK(access(contpath, F_OK) == 0);

    /* Leftovers of ours are removed and the run goes on. */
    char stale_cont[700];
    snprintf(stale_cont, sizeof stale_cont, "%s.continue", stale);
    write_file(stale_cont, "%s\nrequest 1\ncheckpoint /x.pth\nnote\n", MG_CONTINUE_FILE_HEADER);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--stop-file", stale, "--", MG_HELPER, "exit", "0"),
              0);
    CHECK(access(stale, F_OK) != 0);
    CHECK(access(stale_cont, F_OK) != 0);
    unlink(link2);
    unlink(fifo);
    unlink(ackpath);
    unlink(contpath);
}

/* ---- --signal ---------------------------------------------------------------------- */

static void test_signal_option(void)
{
    const char *refused[] = {"CHLD", "TSTP", "TTIN", "TTOU", "STOP", "KILL", "SIGCONT",
                             "PIPE", "SEGV", "32", "33", "0", "65", " 10", "+10", "0x0a",
                             "10x", "", "RTMIN+99", "NOPE"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK_INT(RUN(NULL, "run", "--no-gpu", "--signal", refused[i], "--", MG_HELPER, "exit",
                      "0"), 2);
        CHECK_CONTAINS(R.err, "--signal");
        CHECK_INT(mg_count_lines(R.err), 1);
    }
    const char *accepted[] = {"usr2", "SIGUSR2", "12", "RTMIN+1", "28", "TERM"};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        CHECK_INT(RUN(NULL, "run", "--no-gpu", "--signal", accepted[i], "--", MG_HELPER, "exit",
                      "0"), 0);
    /* A number is printed by name, and the trainer learns it. */
    char ck[600];
    path_in_tmp(ck, sizeof ck, "usr2.ckpt");
    unlink(ck);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--ram-budget", "300M", "--min-interval", "5",
                  "--signal", "12", "--", MG_HELPER, "alloc", "5", "10", ck), 75);
    CHECK_CONTAINS(R.err, "SIGUSR2 to 1 process that handles it");
    no_helper_left();
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/supervise-tests", MG_TMPDIR);
    mkdirs(tmpdir);
    tag_our_helpers();
    MG_RUN(test_every_signal_to_supervisor);
    MG_RUN(test_closed_pipe);
    MG_RUN(test_supervisor_killed);
    MG_RUN(test_bash_wrapper);
    MG_RUN(test_forwarding_launcher);
    MG_RUN(test_handler_after_4s);
    MG_RUN(test_ack_wins_over_launcher);
    MG_RUN(test_rank_saves_after_launcher_quits);
    MG_RUN(test_budget_hard_asks_first);
    MG_RUN(test_setsid_leftover_stopped);
    MG_RUN(test_setsid_counted_and_killed);
    MG_RUN(test_private_folder);
    MG_RUN(test_planted_symlinks);
    MG_RUN(test_stop_file_refusals);
    MG_RUN(test_signal_option);
    for (int i = 0; i < EV.n; i++) cJSON_Delete(EV.items[i]);
    return mg_test_exit();
}
