/* SPDX-License-Identifier: MIT */
/*
 * test_stop.c: the trainer's side of the memguard run protocol: the
 * checkpoint signal only sets a flag, the stop file is seen, the
 * environment is read as documented, bad values are refused, and closing
 * restores the handler that was there before.
 */
#include "mg_proc.h"

#include "memguard.h"

static volatile sig_atomic_t previous_ran;
static void previous_handler(int sig) { (void)sig; previous_ran = 1; }

static void test_signal_sets_flag_and_close_restores(void)
{
    signal(SIGUSR2, previous_handler);
    unsetenv("MEMGUARD_STOP_FILE");
    int err = 1;
    mg_stop *s = mg_stop_open(SIGUSR2, &err);
    CHECK(s != NULL);
    CHECK_INT(err, 0);
    if (!s) return;
    CHECK(!mg_stop_requested(s));
    CHECK(mg_stop_file(s) == NULL);
    raise(SIGUSR2);
    CHECK(mg_stop_requested(s));
    CHECK(!previous_ran); /* our handler replaced it */
    mg_stop_close(s);
    previous_ran = 0;
    raise(SIGUSR2);
    CHECK(previous_ran); /* and close put it back */
    signal(SIGUSR2, SIG_DFL);
}

static void test_stop_file(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stop-test.request", MG_TMPDIR);
    unlink(path);
    setenv("MEMGUARD_STOP_FILE", path, 1);
    mg_stop *s = mg_stop_open(-1, NULL); /* file only, no handler */
    CHECK(s != NULL);
    if (!s) return;
    CHECK_STR(mg_stop_file(s), path);
    CHECK(!mg_stop_requested(s));
    write_file(path, "RAM usage high\n");
    CHECK(mg_stop_requested(s));
    unlink(path);
    CHECK(!mg_stop_requested(s));
    mg_stop_close(s);
    unsetenv("MEMGUARD_STOP_FILE");
}

static void test_signal_from_environment(void)
{
    setenv("MEMGUARD_STOP_SIGNAL", "12", 1); /* SIGUSR2 on Linux */
    mg_stop *s = mg_stop_open(0, NULL);
    CHECK(s != NULL);
    if (s) {
        CHECK(!mg_stop_requested(s));
        raise(12);
        CHECK(mg_stop_requested(s));
        mg_stop_close(s);
    }
    signal(12, SIG_DFL);
    static const char *bad[] = {"usr1", "0", "-3", "9x", "999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int err = 0;
        setenv("MEMGUARD_STOP_SIGNAL", bad[i], 1);
        CHECK(mg_stop_open(0, &err) == NULL);
        CHECK_INT(err, MG_EINVAL);
    }
    unsetenv("MEMGUARD_STOP_SIGNAL");
    int err = 0;
    CHECK(mg_stop_open(SIGKILL, &err) == NULL);
    CHECK_INT(err, MG_EINVAL);
    CHECK(!mg_stop_requested(NULL));
    mg_stop_close(NULL);
}

int main(void)
{
    MG_RUN(test_signal_sets_flag_and_close_restores);
    MG_RUN(test_stop_file);
    MG_RUN(test_signal_from_environment);
    return mg_test_exit();
}
