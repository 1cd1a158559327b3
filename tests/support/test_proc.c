/* SPDX-License-Identifier: MIT */
/*
 * test_proc.c: the tests' process runner (support/proc.c) against real
 * programs (/bin/sh and its commands): a child that writes far more than
 * the buffers and the pipes hold still finishes at once with the first
 * bytes kept; the timeout kills, or terms with a grace; the process group
 * is gone afterwards; the environment, working folder, RLIMIT_AS, merged
 * output, hooks, exec failures and background starts do what proc.h says.
 * Every child is bounded by a timeout of its own.
 */
#define _GNU_SOURCE
#include "mg_test.h"
#include "proc.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char OUT[4096], ERR[4096];

static int run_sh(const char *script, mg_proc_opts o, mg_proc_res *r)
{
    const char *const argv[] = {"/bin/sh", "-c", script, NULL};
    o.argv = argv;
    if (!o.timeout_ms) o.timeout_ms = 20000;
    if (!o.out && !o.discard_output) {
        o.out = OUT;
        o.out_cap = sizeof OUT;
        if (!o.merge_err) {
            o.err = ERR;
            o.err_cap = sizeof ERR;
        }
    }
    return mg_proc_run(&o, r);
}

/* 4 MiB on each pipe against 4 KiB buffers: drained, so no timeout. */
static void test_chatty_child_is_drained(void)
{
    mg_proc_res r;
    int st = run_sh("head -c 4194304 /dev/zero | tr '\\0' a; head -c 4194304 /dev/zero | "
                    "tr '\\0' b >&2; exit 3", (mg_proc_opts){0}, &r);
    CHECK_INT(st, 3);
    CHECK_INT(r.timed_out, 0);
    CHECK(r.wall_ms < 15000);
    CHECK_U64(r.nout, sizeof OUT - 1);
    CHECK_U64(r.nerr, sizeof ERR - 1);
    CHECK_U64(strlen(OUT), sizeof OUT - 1);
    CHECK(strspn(OUT, "a") == sizeof OUT - 1 && strspn(ERR, "b") == sizeof ERR - 1);
}

static void test_timeout_kills(void)
{
    mg_proc_res r;
    int st = run_sh("echo started; exec sleep 30", (mg_proc_opts){.timeout_ms = 300}, &r);
    CHECK_INT(st, 128 + SIGKILL);
    CHECK_INT(r.timed_out, 1);
    CHECK(r.wall_ms >= 300 && r.wall_ms < 10000);
    CHECK_STR(OUT, "started\n");
}

/* With a grace, SIGTERM first: a child that handles it exits its way. */
static void test_timeout_grace(void)
{
    mg_proc_res r;
    int st = run_sh("trap 'echo term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
                    (mg_proc_opts){.timeout_ms = 300, .term_grace_ms = 5000}, &r);
    CHECK_INT(st, 7);
    CHECK_INT(r.timed_out, 1);
    CHECK_STR(OUT, "ready\nterm\n");
}

/* With new_pgrp, what the child left behind in its group dies with it. */
static void test_group_is_killed(void)
{
    mg_proc_res r;
    int st = run_sh("sleep 30 & echo $!", (mg_proc_opts){.new_pgrp = 1}, &r);
    CHECK_INT(st, 0);
    pid_t left = (pid_t)atoi(OUT);
    CHECK(left > 0);
    /* SIGKILLed at once; whoever inherits it reaps it within moments */
    char state = mg_proc_state(left);
    for (int i = 0; i < 200 && state && state != 'Z' && state != 'X'; i++) {
        usleep(10000);
        state = mg_proc_state(left);
    }
    CHECK(!state || state == 'Z' || state == 'X');
}

static void test_env_and_folder(void)
{
    const char *const base[] = {"MG_A=1", "MG_B=2", NULL};
    const char *const over[] = {"MG_B", "MG_C=3=x", NULL};
    mg_proc_res r;
    run_sh("echo \"$MG_A|${MG_B-unset}|$MG_C|$(pwd)\"",
           (mg_proc_opts){.env_base = base, .env = over, .cwd = "/"}, &r);
    CHECK_INT(r.status, 0);
    CHECK_STR(OUT, "1|unset|3=x|/\n");
    CHECK_INT(run_sh("true", (mg_proc_opts){.cwd = "/no/such/folder"}, &r), 126);
}

static void test_as_limit(void)
{
    mg_proc_res r;
    run_sh("ulimit -v", (mg_proc_opts){.as_limit = 512ull << 20}, &r);
    CHECK_STR(OUT, "524288\n"); /* KiB */
}

static void test_merged_output(void)
{
    mg_proc_res r;
    run_sh("echo one; echo two >&2; echo three", (mg_proc_opts){.merge_err = 1}, &r);
    CHECK_STR(OUT, "one\ntwo\nthree\n");
}

static void test_exec_failure(void)
{
    const char *const argv[] = {"/no/such/program", NULL};
    mg_proc_res r;
    mg_proc_opts o = {.argv = argv, .timeout_ms = 5000, .out = OUT, .out_cap = sizeof OUT,
                      .err = ERR, .err_cap = sizeof ERR};
    CHECK_INT(mg_proc_run(&o, &r), 127);
    CHECK_CONTAINS(ERR, "/no/such/program: No such file or directory");
}

/* The hooks: sample sees the live child, tick may signal it (the pid is
 * known before the first tick). */
static pid_t tick_pid, sampled;
static int ticks;

static void sample(pid_t pid)
{
    sampled = pid;
}

static void tick(double elapsed_ms)
{
    ticks++;
    if (elapsed_ms >= 100 && tick_pid > 0) kill(tick_pid, SIGTERM);
}

static void test_hooks(void)
{
    mg_proc_res r;
    tick_pid = 0;
    int st = run_sh("exec sleep 30", (mg_proc_opts){.pid_at = &tick_pid, .sample = sample,
                                                    .tick = tick, .poll_ms = 2}, &r);
    CHECK_INT(st, 128 + SIGTERM);
    CHECK_INT(r.timed_out, 0);
    CHECK(ticks >= 10);
    CHECK(tick_pid == r.pid && sampled == r.pid);
    CHECK(r.maxrss_kb > 0);
}

static void test_spawn(void)
{
    const char *const argv[] = {"/bin/sleep", "30", NULL};
    mg_proc_opts o = {.argv = argv, .new_pgrp = 1, .discard_output = 1};
    pid_t pid = mg_proc_spawn(&o);
    CHECK(pid > 0);
    CHECK_INT(getpgid(pid), pid);
    CHECK_INT(kill(-pid, SIGKILL), 0);
    int st = 0;
    CHECK_INT(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void test_clock(void)
{
    double a = mg_mono_ms();
    usleep(20000);
    double b = mg_mono_ms();
    CHECK(b - a >= 20 && b - a < 5000);
}

int main(void)
{
    MG_RUN(test_chatty_child_is_drained);
    MG_RUN(test_timeout_kills);
    MG_RUN(test_timeout_grace);
    MG_RUN(test_group_is_killed);
    MG_RUN(test_env_and_folder);
    MG_RUN(test_as_limit);
    MG_RUN(test_merged_output);
    MG_RUN(test_exec_failure);
    MG_RUN(test_hooks);
    MG_RUN(test_spawn);
    MG_RUN(test_clock);
    return mg_test_exit();
}
