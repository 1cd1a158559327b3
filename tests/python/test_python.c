/* SPDX-License-Identifier: MIT */
/*
 * test_python.c: runs the Python binding's tests (tests/python/test_*.py,
 * unittest, Debian's /usr/bin/python3 with python3-torch) against this
 * build: MEMGUARD_LIBRARY is the libmemguard.so next to the memguard
 * program, MEMGUARD_CLI the program. The suite runs in its own process
 * group with a deadline; past it the whole group is killed, so nothing is
 * left behind. Skipped (passes) when the Python interpreter is missing, and
 * under the sanitizers: an ASan-built libmemguard.so cannot be loaded into
 * an interpreter that was not started with the ASan runtime.
 */
#define _GNU_SOURCE
#include "mg_test.h"
#include "proc.h"

#include <unistd.h>

#define DEADLINE_S 110 /* under ctest's 120 s */

static char lib_path[4096];

/* The unittest run (its output is ours), in its own process group; past
 * the deadline: SIGTERM to the group, 2 s, SIGKILL (support/proc.h).
 * Returns its exit status, or -1. */
static int run_suite(void)
{
    char tests_dir[4096], lib_env[4200], tmp_env[4200];
    snprintf(tests_dir, sizeof tests_dir, "%s/tests/python", MG_SOURCE_DIR);
    snprintf(lib_env, sizeof lib_env, "MEMGUARD_LIBRARY=%s", lib_path);
    snprintf(tmp_env, sizeof tmp_env, "TMPDIR=%s", MG_TMPDIR);
    const char *const env[] = {lib_env, "MEMGUARD_CLI=" MG_CLI, tmp_env, "MEMGUARD_STOP_FILE",
                               "MEMGUARD_STOP_SIGNAL", NULL};
    const char *const argv[] = {MG_PYTHON, "-m", "unittest", "discover", "-s", tests_dir, "-v",
                                NULL};
    mg_proc_opts o = {.argv = argv, .env = env, .new_pgrp = 1, .timeout_ms = DEADLINE_S * 1000,
                      .term_grace_ms = 2000, .poll_ms = 100};
    mg_proc_res r;
    mg_proc_run(&o, &r);
    if (r.timed_out) {
        fprintf(stderr, "  python tests still running after %d s: killed them\n", DEADLINE_S);
        return -1;
    }
    return r.status;
}

static void test_python_suite(void)
{
    int rc = run_suite();
    CHECK_INT(rc, 0);
}

int main(void)
{
#ifdef MG_SANITIZE
    printf("ok 1 - test_python_suite # SKIP libmemguard is built with sanitizers\n1..1\n");
    return 0;
#endif
    if (access(MG_PYTHON, X_OK) != 0) {
        printf("ok 1 - test_python_suite # SKIP %s not found\n1..1\n", MG_PYTHON);
        return 0;
    }
    /* The library sits next to the program in the build folder. */
    snprintf(lib_path, sizeof lib_path, "%s", MG_CLI);
    char *slash = strrchr(lib_path, '/');
    size_t dir_len = slash ? (size_t)(slash - lib_path) : 0;
    snprintf(lib_path + dir_len, sizeof lib_path - dir_len, "%slibmemguard.so",
             dir_len ? "/" : "");
    MG_RUN(test_python_suite);
    return mg_test_exit();
}
