/* SPDX-License-Identifier: MIT */
/*
 * helper_trainer.c: the trainer that the Windows `memguard run` tests
 * (test_win_run.c) start: a real Windows process that allocates real
 * memory (every page touched, so its working set grows) and uses the
 * library's stop API exactly as a trainer would. Every mode ends by itself
 * after 30 s, so a broken test never leaves it behind.
 *
 *   helper_trainer poll MB CKPT [nohandler]
 *       allocate MB, then check mg_stop_requested every 10 ms; on a request
 *       print "reason: <the stop file's reason>", write CKPT atomically
 *       ("allocated_mb=MB"), acknowledge it and exit 75. With "nohandler"
 *       the stop API is opened without the break handler (signal -1).
 *   helper_trainer hog MB
 *       allocate MB and sleep, looking at nothing (a trainer without the
 *       protocol: only the kill ends it).
 *   helper_trainer tree
 *       start `helper_trainer hog 1` as a child, print "pids PID CHILDPID",
 *       and sleep.
 *   helper_trainer exit CODE
 *   helper_trainer env
 *       print the protocol's variables as NAME=VALUE lines and exit 0.
 */
#include "memguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#define LIFETIME_MS 30000u

static void grab(long mb)
{
    size_t n = (size_t)mb << 20;
    volatile char *p = malloc(n); /* leaked on purpose: the process holds memory */
    if (!p) exit(3);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
}

static int poll_mode(long mb, const char *ckpt, bool handler)
{
    int err = 0;
    mg_stop *stop = mg_stop_open(handler ? 0 : -1, &err);
    if (!stop) {
        fprintf(stderr, "helper: mg_stop_open: %s\n", mg_strerror(err));
        return 4;
    }
    grab(mb);
    printf("ready\n");
    fflush(stdout);
    for (ULONGLONG t0 = GetTickCount64(); GetTickCount64() - t0 < LIFETIME_MS; Sleep(10)) {
        if (!mg_stop_requested(stop)) continue;
        char reason[512], text[64];
        mg_stop_reason(stop, reason, sizeof reason);
        printf("reason: %s\n", reason);
        snprintf(text, sizeof text, "allocated_mb=%ld\n", mb);
        mg_atomic a;
        int rc = mg_atomic_open(&a, ckpt);
        if (rc == 0 && (rc = mg_atomic_write(&a, text, strlen(text))) == 0)
            rc = mg_atomic_commit(&a);
        if (rc == 0) rc = mg_stop_acknowledge(stop, ckpt);
        fflush(stdout);
        mg_stop_close(stop);
        return rc == 0 ? MG_EXIT_MEMSTOP : 5;
    }
    mg_stop_close(stop);
    return 6; /* nobody asked */
}

static int tree_mode(const char *self)
{
    char cmd[MAX_PATH + 16];
    snprintf(cmd, sizeof cmd, "\"%s\" hog 1", self);
    STARTUPINFOA si = {.cb = sizeof si};
    PROCESS_INFORMATION pi;
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) return 7;
    printf("pids %lu %lu\n", GetCurrentProcessId(), pi.dwProcessId);
    fflush(stdout);
    Sleep(LIFETIME_MS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "poll") == 0)
        return poll_mode(atol(argv[2]), argv[3], !(argc > 4 && strcmp(argv[4], "nohandler") == 0));
    if (argc == 3 && strcmp(argv[1], "hog") == 0) {
        grab(atol(argv[2]));
        Sleep(LIFETIME_MS);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "tree") == 0) return tree_mode(argv[0]);
    if (argc == 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
    if (argc == 2 && strcmp(argv[1], "env") == 0) {
        const char *names[] = {MG_ENV_STOP_FILE, MG_ENV_ACK_FILE, MG_ENV_STOP_SIGNAL,
                               MG_ENV_STOP_EVENT, MG_ENV_ARMED_EVENT, MG_ENV_SUPERVISOR_PID};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *v = getenv(names[i]);
            printf("%s=%s\n", names[i], v ? v : "");
        }
        return 0;
    }
    fprintf(stderr, "helper_trainer: bad arguments\n");
    return 2;
}
