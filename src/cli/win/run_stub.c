/* SPDX-License-Identifier: MIT */
/*
 * run_stub.c (Windows): `memguard run` until its Windows supervisor exists
 * (a job object, the stop file and a named event instead of fork, process
 * groups and SIGUSR1; issue 13). It says so in one line and exits with the
 * usage status, so a script can tell "not here" from a run that failed. It
 * runs nothing. It also names signals for `memguard plot` (the one piece of
 * run's platform half that plot uses, run.h's signal_name).
 */
#include "run.h"

#include <signal.h>

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("memguard: run is not built on this platform yet (check, watch and plot are)\n",
          stderr);
    return MG_EXIT_USAGE;
}

/* The C runtime's signal names ("SIGBREAK"), else "signal N" (a Linux
 * log's SIGUSR1, 10, reads "signal 10" here). */
const char *signal_name(int sig, char *buf, size_t len)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGINT, "SIGINT"}, {SIGILL, "SIGILL"}, {SIGFPE, "SIGFPE"},
                 {SIGSEGV, "SIGSEGV"}, {SIGTERM, "SIGTERM"}, {SIGBREAK, "SIGBREAK"},
                 {SIGABRT, "SIGABRT"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig) {
            snprintf(buf, len, "%s", names[i].name);
            return buf;
        }
    snprintf(buf, len, "signal %d", sig);
    return buf;
}
