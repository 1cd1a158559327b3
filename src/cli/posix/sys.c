/* SPDX-License-Identifier: MIT */
/*
 * sys.c (POSIX): what `memguard watch` needs of the system: Ctrl-C (SIGINT)
 * and SIGTERM turned into a flag, and a sleep that they cut short
 * (nanosleep returns early with EINTR). The handler only sets the flag. It
 * does not restore the old dispositions: the program ends after the loop.
 */
#include "cli.h"

#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void cli_catch_interrupt(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void)
{
    return stop_flag != 0;
}

void cli_sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL); /* EINTR on Ctrl-C ends it early: that is wanted */
}
