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

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_S 110 /* under ctest's 120 s */

static char lib_path[4096];

static int run_suite(void)
{
    char tests_dir[4096];
    snprintf(tests_dir, sizeof tests_dir, "%s/tests/python", MG_SOURCE_DIR);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);
        setenv("MEMGUARD_LIBRARY", lib_path, 1);
        setenv("MEMGUARD_CLI", MG_CLI, 1);
        setenv("TMPDIR", MG_TMPDIR, 1);
        unsetenv("MEMGUARD_STOP_FILE");
        unsetenv("MEMGUARD_STOP_SIGNAL");
        execl(MG_PYTHON, MG_PYTHON, "-m", "unittest", "discover", "-s", tests_dir, "-v",
              (char *)NULL);
        perror("exec " MG_PYTHON);
        _exit(127);
    }
    setpgid(pid, pid); /* both sides: no race with the kill below */
    time_t end = time(NULL) + DEADLINE_S;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return -1;
        if (time(NULL) >= end) {
            fprintf(stderr, "  python tests still running after %d s: killing them\n",
                    DEADLINE_S);
            kill(-pid, SIGTERM);
            sleep(2);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(100 * 1000);
    }
    kill(-pid, SIGKILL); /* any straggler of the group; ESRCH when none */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
