/* SPDX-License-Identifier: MIT */
/*
 * stop.c: the trainer's side of the memguard run protocol: a checkpoint
 * signal whose handler only sets a flag, the stop file and its reason, and
 * the acknowledgement of a good save. It never saves, prints or exits: the
 * trainer does that at its next batch boundary. The file formats are
 * memguard.h's (MG_STOP_FILE_HEADER); the supervisor's side is
 * src/cli/supervise.c.
 *
 * The flags are the library's only process-wide state. A signal handler
 * receives nothing but the signal number, so whatever it writes must be
 * reachable without a context; dispositions are process-wide anyway.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIG 65

static volatile sig_atomic_t signalled[MAX_SIG];

struct mg_stop {
    int signo;                /* 0 when no handler was installed */
    struct sigaction old;
    char *file;               /* MEMGUARD_STOP_FILE or NULL */
    char *ack;                /* MEMGUARD_ACK_FILE or NULL */
};

/* A copy of a non-empty environment variable in *out (NULL when unset or
 * empty). False only when out of memory. */
static bool env_copy(const char *name, char **out)
{
    const char *v = getenv(name);
    *out = v && *v ? strdup(v) : NULL;
    return !(v && *v) || *out;
}

static void on_stop_signal(int sig)
{
    if (sig > 0 && sig < MAX_SIG) signalled[sig] = 1;
}

mg_stop *mg_stop_open(int signo, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    if (signo == 0) {
        const char *e = getenv(MG_ENV_STOP_SIGNAL);
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
    if (!env_copy(MG_ENV_STOP_FILE, &s->file) || !env_copy(MG_ENV_ACK_FILE, &s->ack)) {
        free(s->file);
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
            free(s->ack);
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

int mg_stop_reason(const mg_stop *s, char *buf, size_t buf_len)
{
    if (!s || !buf || buf_len == 0) return MG_EINVAL;
    buf[0] = '\0';
    if (!s->file) return 0;
    /* O_NONBLOCK: a FIFO planted at the path must not hang the trainer. */
    int fd = open(s->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return 0;
    char text[4096];
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, text, sizeof text - 1) : -1;
    close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    return mg__stop_reason_text(text, buf, buf_len);
}

int mg_stop_acknowledge(const mg_stop *s, const char *checkpoint_path)
{
    if (!s || !checkpoint_path || !*checkpoint_path) return MG_EINVAL;
    if (!s->ack) return 0;
    char abs[PATH_MAX];
    const char *shown = realpath(checkpoint_path, abs) ? abs : checkpoint_path;
    return mg__stop_ack_write(s->ack, shown);
}

void mg_stop_close(mg_stop *s)
{
    if (!s) return;
    if (s->signo > 0) {
        sigaction(s->signo, &s->old, NULL);
        signalled[s->signo] = 0;
    }
    free(s->file);
    free(s->ack);
    free(s);
}
