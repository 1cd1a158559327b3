/* SPDX-License-Identifier: MIT */
/*
 * helper_child.c: the trainers that the `memguard run` tests supervise.
 * Real processes that really allocate (every page touched, so RSS grows),
 * using the library's stop API exactly as a trainer would. Each one kills
 * itself with SIGALRM after 30 s, so a broken test never leaves it behind.
 *
 *   helper_child alloc STEP_MB EVERY_MS CKPT [CAP_MB]
 *       allocate STEP_MB every EVERY_MS; on a stop request write CKPT
 *       atomically ("allocated_mb=N") and exit 75; at CAP_MB exit 0.
 *   helper_child filestop STEP_MB EVERY_MS CKPT
 *       as alloc, but ignores the checkpoint signal: only the stop file
 *       can ask it to stop.
 *   helper_child ignore STEP_MB EVERY_MS CAP_MB
 *       ignores SIGUSR1 and SIGTERM; allocates up to CAP_MB, then sleeps.
 *   helper_child late DELAY_MS STEP_MB CKPT
 *       allocates STEP_MB at once, and only after DELAY_MS installs the
 *       checkpoint signal's handler (a trainer still importing its
 *       libraries); it does not look at the stop file, so only the signal
 *       can stop it: then it writes CKPT and exits 75.
 *   helper_child workers N STEP_MB EVERY_MS CKPT
 *       forks N workers that allocate; the parent allocates nothing, and on
 *       a stop request kills its workers, writes CKPT and exits 75.
 *   helper_child sleep
 *       sleeps; on SIGINT prints "got SIGINT" and exits 130.
 *   helper_child exit CODE
 */
#include "memguard.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Allocates and touches `mb` MiB. The blocks are leaked on purpose: the
 * process exists to hold memory. */
static void grab(long mb)
{
    size_t n = (size_t)mb << 20;
    /* volatile: stores into memory nobody reads are otherwise removed by
     * the optimiser, and RSS would never grow. */
    volatile char *p = malloc(n);
    if (!p) _exit(3);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
}

static void checkpoint(const char *path, long allocated_mb)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) _exit(4);
    fprintf(f, "allocated_mb=%ld\n", allocated_mb);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) _exit(4);
    fclose(f);
    if (rename(tmp, path) != 0) _exit(4);
}

static volatile sig_atomic_t got_int;
static void on_int(int sig) { (void)sig; got_int = 1; }

int main(int argc, char **argv)
{
    alarm(30);
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "exit") == 0 && argc == 3) return atoi(argv[2]);
    if (strcmp(mode, "sleep") == 0) {
        signal(SIGINT, on_int);
        while (!got_int) pause();
        printf("got SIGINT\n");
        return 130;
    }
    if ((strcmp(mode, "alloc") == 0 || strcmp(mode, "filestop") == 0) && argc >= 5) {
        long step = atol(argv[2]), every = atol(argv[3]);
        long cap = argc > 5 ? atol(argv[5]) : 100000;
        if (strcmp(mode, "filestop") == 0) signal(SIGUSR1, SIG_IGN);
        mg_stop *stop = mg_stop_open(strcmp(mode, "filestop") == 0 ? -1 : 0, NULL);
        if (!stop) return 5;
        long total = 0;
        for (;;) {
            if (mg_stop_requested(stop)) {
                checkpoint(argv[4], total);
                return MG_EXIT_MEMSTOP;
            }
            if (total + step > cap) return 0;
            grab(step);
            total += step;
            sleep_ms(every);
        }
    }
    if (strcmp(mode, "late") == 0 && argc == 5) {
        grab(atol(argv[3]));
        sleep_ms(atol(argv[2]));
        unsetenv("MEMGUARD_STOP_FILE");
        mg_stop *stop = mg_stop_open(0, NULL);
        if (!stop) return 5;
        for (int i = 0; i < 5000 && !mg_stop_requested(stop); i++) sleep_ms(2);
        if (!mg_stop_requested(stop)) return 0;
        checkpoint(argv[4], atol(argv[3]));
        return MG_EXIT_MEMSTOP;
    }
    if (strcmp(mode, "ignore") == 0 && argc == 5) {
        long step = atol(argv[2]), every = atol(argv[3]), cap = atol(argv[4]);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        for (long total = 0; total + step <= cap; total += step) {
            grab(step);
            sleep_ms(every);
        }
        for (;;) pause();
    }
    if (strcmp(mode, "workers") == 0 && argc == 6) {
        int n = atoi(argv[2]);
        long step = atol(argv[3]), every = atol(argv[4]);
        mg_stop *stop = mg_stop_open(0, NULL);
        if (!stop || n < 1 || n > 16) return 5;
        pid_t kids[16];
        for (int i = 0; i < n; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                /* Workers leave the checkpoint to the parent, like
                 * DataLoader workers. */
                signal(SIGUSR1, SIG_IGN);
                for (;;) {
                    grab(step);
                    sleep_ms(every);
                }
            }
        }
        while (!mg_stop_requested(stop)) sleep_ms(2);
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
        checkpoint(argv[5], 0);
        return MG_EXIT_MEMSTOP;
    }
    fprintf(stderr, "helper_child: bad arguments\n");
    return 2;
}
