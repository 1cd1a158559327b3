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
    char *cont;               /* MEMGUARD_CONTINUE_FILE or NULL */
    uint64_t answered;        /* the request mg_stop_continue answered, 0: none */
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
    if (!env_copy(MG_ENV_STOP_FILE, &s->file) || !env_copy(MG_ENV_ACK_FILE, &s->ack) ||
        !env_copy(MG_ENV_CONTINUE_FILE, &s->cont)) {
        free(s->file);
        free(s->ack);
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
            free(s->cont);
            free(s);
            return NULL;
        }
        s->signo = signo;
    }
    *err = 0;
    return s;
}

/* The text of the stop file at `file` (at most len - 1 bytes,
 * NUL-terminated): its length, or 0 when there is none to read. */
static size_t stop_read(const char *file, char *text, size_t len)
{
    if (!file) return 0;
    /* O_NONBLOCK: a FIFO planted at the path must not hang the trainer. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return 0;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, text, len - 1) : -1;
    close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    return (size_t)n;
}

/* The stop file's request line (mg__stop_request_id), *memory (may be
 * NULL) whether it is a memory request; 0 when there is none. */
static uint64_t request_in_file(const mg_stop *s, bool *memory)
{
    char text[4096] = "";
    bool m;
    stop_read(s->file, text, sizeof text);
    uint64_t id = mg__stop_request_id(text, &m);
    if (memory) *memory = m;
    return id;
}

bool mg_stop_requested(mg_stop *s)
{
    if (!s) return false;
    if (s->signo > 0 && signalled[s->signo]) return true;
    struct stat st;
    if (!s->file || stat(s->file, &st) != 0) return false;
    /* The request answered stays until memguard run takes the answer. */
    return !s->answered || request_in_file(s, NULL) != s->answered;
}

const char *mg_stop_file(const mg_stop *s)
{
    return s ? s->file : NULL;
}

int mg_stop_reason(const mg_stop *s, char *buf, size_t buf_len)
{
    if (!s || !buf || buf_len == 0) return MG_EINVAL;
    buf[0] = '\0';
    char text[4096];
    if (stop_read(s->file, text, sizeof text) == 0) return 0;
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

bool mg_stop_may_continue(mg_stop *s)
{
    bool memory = false;
    return s && s->cont && request_in_file(s, &memory) != 0 && memory;
}

int mg_stop_continue(mg_stop *s, const char *checkpoint_path, const char *note)
{
    if (!s || !checkpoint_path || !*checkpoint_path) return MG_EINVAL;
    char text[4096] = "";
    char abs[PATH_MAX];
    const char *shown = realpath(checkpoint_path, abs) ? abs : checkpoint_path;
    stop_read(s->file, text, sizeof text);
    int rc = mg__stop_continue(s->cont, text, shown, note, &s->answered);
    /* A request answered: a signal from now on is a new one's. */
    if (rc == 0 && s->signo > 0) signalled[s->signo] = 0;
    return rc;
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
    free(s->cont);
    free(s);
}
