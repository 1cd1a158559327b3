/* SPDX-License-Identifier: MIT */
/*
 * test_stop.c: the trainer's side of the memguard run protocol: the
 * checkpoint signal only sets a flag, the stop file is seen, the
 * environment is read as documented, bad values are refused, closing
 * restores the handler that was there before, the stop file's reason is
 * read, and a save is acknowledged atomically without following links.
 */
#include "mg_proc.h"

#include "memguard.h"

#include <sys/stat.h>

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

/* The loaded library says its version, the header's. */
static void test_version(void)
{
    CHECK_STR(mg_version(), MG_VERSION_STRING);
}

static void test_reason(void)
{
    char path[600], big[6000];
    snprintf(path, sizeof path, "%s/stop-reason.request", MG_TMPDIR);
    unlink(path);
    setenv("MEMGUARD_STOP_FILE", path, 1);
    mg_stop *s = mg_stop_open(-1, NULL);
    unsetenv("MEMGUARD_STOP_FILE");
    CHECK(s != NULL);
    if (!s) return;
    char r[64];
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 0); /* no file */
    CHECK_STR(r, "");
    write_file(path, "%s\nRAM usage high: 88.5%% (1.77GB/2.0GB)\n", MG_STOP_FILE_HEADER);
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 36);
    CHECK_STR(r, "RAM usage high: 88.5% (1.77GB/2.0GB)");
    CHECK_INT(mg_stop_reason(s, r, 5), 4); /* truncated to fit */
    CHECK_STR(r, "RAM ");
    write_file(path, "%s\n", MG_STOP_FILE_HEADER); /* no reason line */
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 0);
    write_file(path, "something else\nreason\n"); /* not memguard's format */
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 0);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    write_file(path, "%s\n%s\n", MG_STOP_FILE_HEADER, big);
    CHECK(mg_stop_reason(s, r, sizeof r) == 63);
    unlink(path);
    CHECK(mkdir(path, 0700) == 0); /* a folder: no reason, no hang */
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 0);
    rmdir(path);
    CHECK(mkfifo(path, 0600) == 0); /* a FIFO: no reason, no hang */
    CHECK_INT(mg_stop_reason(s, r, sizeof r), 0);
    unlink(path);
    CHECK_INT(mg_stop_reason(NULL, r, sizeof r), MG_EINVAL);
    CHECK_INT(mg_stop_reason(s, NULL, 0), MG_EINVAL);
    mg_stop_close(s);
}

static void test_acknowledge(void)
{
    char ack[600], ckpt[600], tmp[700], victim[600], real[4096];
    snprintf(ack, sizeof ack, "%s/stop-test.ack", MG_TMPDIR);
    snprintf(ckpt, sizeof ckpt, "%s/stop-test.pth", MG_TMPDIR);
    snprintf(victim, sizeof victim, "%s/stop-test.victim", MG_TMPDIR);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ack, (long)getpid());
    unlink(ack);
    unlink(tmp);
    write_file(ckpt, "weights");
    /* Not under memguard run: nothing to do, nothing written. */
    unsetenv("MEMGUARD_ACK_FILE");
    mg_stop *s = mg_stop_open(-1, NULL);
    CHECK_INT(mg_stop_acknowledge(s, ckpt), 0);
    CHECK(access(ack, F_OK) != 0);
    mg_stop_close(s);

    setenv("MEMGUARD_ACK_FILE", ack, 1);
    s = mg_stop_open(-1, NULL);
    unsetenv("MEMGUARD_ACK_FILE");
    /* A link planted at the temporary's name is not written through. */
    write_file(victim, "precious\n");
    CHECK(symlink(victim, tmp) == 0);
    CHECK_INT(mg_stop_acknowledge(s, ckpt), 0);
    char buf[4200] = "";
    FILE *f = fopen(ack, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    char want[4200];
    CHECK(realpath(ckpt, real) != NULL);
    snprintf(want, sizeof want, "%s\n", real);
    CHECK_STR(buf, want);
    f = fopen(victim, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    CHECK_STR(buf, "precious\n");
    CHECK(access(tmp, F_OK) != 0);
    CHECK_INT(mg_stop_acknowledge(s, ""), MG_EINVAL);
    CHECK_INT(mg_stop_acknowledge(NULL, ckpt), MG_EINVAL);
    mg_stop_close(s);
    unlink(ack);
    unlink(ckpt);
    unlink(victim);
}

/* The "continuing" answer (memguard.h, mg_stop_continue): allowed only
 * for a memory request of a memguard run that takes it; written as
 * documented; the answered request no longer counts, a new one does. */
static void test_continue(void)
{
    char stop[600], cont[600], ckpt[600], real[4096], want[5000];
    snprintf(stop, sizeof stop, "%s/stop-test.cont-stop", MG_TMPDIR);
    snprintf(cont, sizeof cont, "%s/stop-test.continue", MG_TMPDIR);
    snprintf(ckpt, sizeof ckpt, "%s/stop-test.cont.pth", MG_TMPDIR);
    unlink(stop);
    unlink(cont);
    write_file(ckpt, "weights");
    CHECK(realpath(ckpt, real) != NULL);
    setenv("MEMGUARD_STOP_FILE", stop, 1);
    unsetenv("MEMGUARD_CONTINUE_FILE");

    /* An old memguard run (no MEMGUARD_CONTINUE_FILE): stop as before. */
    mg_stop *s = mg_stop_open(SIGUSR2, NULL);
    write_file(stop, "%s\nRAM usage high\nrequest 1 memory\n", MG_STOP_FILE_HEADER);
    CHECK(mg_stop_requested(s));
    CHECK(!mg_stop_may_continue(s));
    CHECK_INT(mg_stop_continue(s, ckpt, "batch 8 -> 6"), MG_EINVAL);
    CHECK(access(cont, F_OK) != 0);
    mg_stop_close(s);

    setenv("MEMGUARD_CONTINUE_FILE", cont, 1);
    s = mg_stop_open(SIGUSR2, NULL);
    CHECK(s != NULL);
    if (!s) return;
    /* No request line (an old stop file), a manual request, none at all. */
    write_file(stop, "%s\nRAM usage high\n", MG_STOP_FILE_HEADER);
    CHECK(!mg_stop_may_continue(s));
    write_file(stop, "%s\nasked by hand\nrequest 1 stop\n", MG_STOP_FILE_HEADER);
    CHECK(!mg_stop_may_continue(s));
    CHECK_INT(mg_stop_continue(s, ckpt, NULL), MG_EINVAL);
    write_file(stop, "%s\nRAM usage high\nrequest 0 memory\n", MG_STOP_FILE_HEADER);
    CHECK(!mg_stop_may_continue(s));
    unlink(stop);
    CHECK(!mg_stop_may_continue(s));
    CHECK(!mg_stop_may_continue(NULL));

    /* A memory request, also announced by the signal. */
    write_file(stop, "%s\nRAM usage high\nrequest 3 memory\n", MG_STOP_FILE_HEADER);
    raise(SIGUSR2);
    CHECK(mg_stop_requested(s));
    CHECK(mg_stop_may_continue(s));
    CHECK_INT(mg_stop_continue(s, ckpt, "two\nlines"), MG_EINVAL);
    CHECK_INT(mg_stop_continue(s, "", "x"), MG_EINVAL);
    CHECK(access(cont, F_OK) != 0);
    CHECK_INT(mg_stop_continue(s, ckpt, "batch 8 -> 6"), 0);
    char got[5000] = "";
    FILE *f = fopen(cont, "r");
    if (f) {
        size_t n = fread(got, 1, sizeof got - 1, f);
        got[n] = '\0';
        fclose(f);
    }
    snprintf(want, sizeof want, "%s\nrequest 3\ncheckpoint %s\nnote batch 8 -> 6\n",
             MG_CONTINUE_FILE_HEADER, real);
    CHECK_STR(got, want);
    /* Answered: the signal is forgotten, the file's request 3 ignored. */
    CHECK(!mg_stop_requested(s));
    /* The signal again is a new request. */
    raise(SIGUSR2);
    CHECK(mg_stop_requested(s));
    mg_stop_close(s);
    s = mg_stop_open(SIGUSR2, NULL);
    write_file(stop, "%s\nRAM usage high\nrequest 3 memory\n", MG_STOP_FILE_HEADER);
    CHECK_INT(mg_stop_continue(s, ckpt, NULL), 0);
    CHECK(!mg_stop_requested(s));
    /* memguard run took the answer (the file is gone), then asks again. */
    unlink(stop);
    CHECK(!mg_stop_requested(s));
    write_file(stop, "%s\nRAM usage high\nrequest 4 memory\n", MG_STOP_FILE_HEADER);
    CHECK(mg_stop_requested(s));
    /* A file without a request line after an answer counts (be safe). */
    write_file(stop, "%s\nRAM usage high\n", MG_STOP_FILE_HEADER);
    CHECK(mg_stop_requested(s));
    mg_stop_close(s);
    signal(SIGUSR2, SIG_DFL);
    unsetenv("MEMGUARD_STOP_FILE");
    unsetenv("MEMGUARD_CONTINUE_FILE");
    unlink(stop);
    unlink(cont);
    unlink(ckpt);
}

int main(void)
{
    MG_RUN(test_signal_sets_flag_and_close_restores);
    MG_RUN(test_stop_file);
    MG_RUN(test_signal_from_environment);
    MG_RUN(test_version);
    MG_RUN(test_reason);
    MG_RUN(test_acknowledge);
    MG_RUN(test_continue);
    return mg_test_exit();
}
