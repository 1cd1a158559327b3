/* SPDX-License-Identifier: MIT */
/*
 * stop.c: the trainer's side of the memguard run protocol: a checkpoint
 * signal whose handler only sets a flag, and the stop file. It never saves,
 * prints or exits: the trainer does that at its next batch boundary.
 *
 * The flags are the library's only process-wide state. A signal handler
 * receives nothing but the signal number, so whatever it writes must be
 * reachable without a context; dispositions are process-wide anyway.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SIG 65

static volatile sig_atomic_t signalled[MAX_SIG];

struct mg_stop {
    int signo;                /* 0 when no handler was installed */
    struct sigaction old;
    char *file;               /* MEMGUARD_STOP_FILE or NULL */
};

static void on_stop_signal(int sig)
{
    if (sig > 0 && sig < MAX_SIG) signalled[sig] = 1;
}

mg_stop *mg_stop_open(int signo, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    if (signo == 0) {
        const char *e = getenv("MEMGUARD_STOP_SIGNAL");
        char *end;
        long v = e && *e ? strtol(e, &end, 10) : SIGUSR1;
        signo = (e && *e && (*end || v <= 0 || v >= MAX_SIG)) ? -2 : (int)v;
    }
    if (signo == -2 || signo >= MAX_SIG || signo == SIGKILL || signo == SIGSTOP) {
        *err = MG_EINVAL;
        return NULL;
    }
    mg_stop *s = calloc(1, sizeof *s);
    if (!s) {
        *err = MG_ENOMEM;
        return NULL;
    }
    const char *f = getenv("MEMGUARD_STOP_FILE");
    if (f && *f && !(s->file = strdup(f))) {
        free(s);
        *err = MG_ENOMEM;
        return NULL;
    }
    if (signo > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART; /* a read() in the data loader must not fail */
        /* The flag is not cleared here: a request that arrived while an
         * earlier mg_stop was open (a program's start-up) still counts. */
        if (sigaction(signo, &sa, &s->old) != 0) {
            *err = MG_EINVAL;
            free(s->file);
            free(s);
            return NULL;
        }
        s->signo = signo;
    }
    *err = 0;
    return s;
}

bool mg_stop_requested(mg_stop *s)
{
    if (!s) return false;
    if (s->signo > 0 && signalled[s->signo]) return true;
    struct stat st;
    return s->file && stat(s->file, &st) == 0;
}

const char *mg_stop_file(const mg_stop *s)
{
    return s ? s->file : NULL;
}

void mg_stop_close(mg_stop *s)
{
    if (!s) return;
    if (s->signo > 0) {
        sigaction(s->signo, &s->old, NULL);
        signalled[s->signo] = 0;
    }
    free(s->file);
    free(s);
}
