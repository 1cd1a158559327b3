/* SPDX-License-Identifier: MIT */
/*
 * run_stub.c (Windows): `memguard run` until its Windows supervisor exists
 * (a job object, the stop file and a named event instead of fork, process
 * groups and SIGUSR1; issue 13). It says so in one line and exits with the
 * usage status, so a script can tell "not here" from a run that failed. It
 * runs nothing.
 */
#include "cli.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("memguard: run is not built on this platform yet (check, watch and plot are)\n",
          stderr);
    return MG_EXIT_USAGE;
}
