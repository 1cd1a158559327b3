/* SPDX-License-Identifier: MIT */
/*
 * posix/run_os.c: what `memguard run` does differently on POSIX (run.h,
 * run_os_*): the checkpoint signal's names and the ones refused, the
 * self-protection (mlockall, oom_score_adj), and the file operations of
 * the log and the protocol's files: nothing is opened through a symlink or
 * blocks on a FIFO, the private folder is mkdtemp's (mode 0700), new files
 * come from mkostemp (O_EXCL) and are renamed into place. It decides
 * nothing about a run.
 */
#define _GNU_SOURCE /* sigabbrev_np, mkostemp */
#include "../run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t run_os_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the checkpoint signal ------------------------------------------------- */

int run_os_default_signal(void) { return SIGUSR1; }

/* Signals that cannot mean "checkpoint": the uncatchable ones, job
 * control, the child's status, the synchronous faults (a handler for them
 * belongs to the runtime, not to a checkpoint), SIGPIPE, and the real-time
 * signals glibc keeps for itself (32 and 33, below SIGRTMIN). */
static bool refused_signal(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGCONT: case SIGTSTP: case SIGTTIN:
    case SIGTTOU: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP:
    case SIGSYS: case SIGABRT: case SIGPIPE:
        return true;
    default:
        return sig < 1 || sig > SIGRTMAX || (sig > 31 && sig < SIGRTMIN);
    }
}

/* A whole number lo..hi in the library's strict grammar. */
static bool parse_int_strict(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (mg_parse_uint(s, (uint64_t)hi, &v) < 0 || v < (uint64_t)lo) return false;
    *out = (int)v;
    return true;
}

/* "USR1", "SIGUSR1", "usr1", "RTMIN+2" or a number. */
static int signal_number(const char *arg)
{
    const char *n = strncasecmp(arg, "SIG", 3) == 0 ? arg + 3 : arg;
    for (int sig = 1; sig < 32; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcasecmp(n, abbrev) == 0) return sig;
    }
    if (strncasecmp(n, "RTMIN+", 6) == 0) {
        int off;
        return parse_int_strict(n + 6, 0, SIGRTMAX - SIGRTMIN, &off) ? SIGRTMIN + off : -1;
    }
    int v;
    return parse_int_strict(arg, 1, SIGRTMAX, &v) ? v : -1;
}

int run_os_signal_arg(const char *arg, int *out)
{
    int sig = signal_number(arg);
    if (sig > 0 && !refused_signal(sig)) {
        *out = sig;
        return 0;
    }
    char name[32];
    if (sig > 0)
        return cli_usage_error("--signal '%s': %s cannot mean \"checkpoint\" (not KILL, STOP, "
                               "CHLD, CONT, TSTP, TTIN, TTOU, PIPE, the faults or 32-33); "
                               "use USR1 (default), USR2, TERM, INT, HUP, ALRM or RTMIN+N",
                               arg, signal_name(sig, name, sizeof name));
    return cli_usage_error("--signal '%s': expected a signal name such as USR1, USR2, TERM, "
                           "RTMIN+2, or its number", arg);
}

const char *signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
    if (abbrev)
        snprintf(buf, len, "SIG%s", abbrev);
    else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* ---- paths and the hook ------------------------------------------------------ */

int run_os_setenv(const char *name, const char *value)
{
    return setenv(name, value, 1) == 0 ? 0 : -errno;
}

bool run_os_path_absolute(const char *path) { return path[0] == '/'; }

bool run_os_is_sep(char c) { return c == '/'; }

char run_os_sep(void) { return '/'; }

bool run_os_hook_ok(const char *path)
{
    struct stat st;
    return path[0] == '/' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* mlockall so memguard itself is never paged out while memory runs out,
 * and oom_score_adj -100 (earlyoom's value, not -1000: a leak in memguard
 * must not make the kernel kill everything else first). Both are
 * best-effort: an unprivileged user still gets a working supervisor. */
void run_os_protect_self(int verbose)
{
    struct rlimit rl;
    /* MCL_FUTURE under a small RLIMIT_MEMLOCK would make later mmaps fail;
     * ONFAULT locks only pages we touch, so RSS does not grow by the size
     * of every mapped library. */
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (64u << 20))) {
        if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 && verbose)
            fprintf(stderr, "memguard: info: mlockall: %s\n", strerror(errno));
    } else if (verbose) {
        fprintf(stderr, "memguard: info: not locking memory: RLIMIT_MEMLOCK too small\n");
    }
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "-100", 4) != 4 && verbose)
            fprintf(stderr, "memguard: info: oom_score_adj: %s\n", strerror(errno));
        close(fd);
    }
}

void run_os_unprotect_memory(void)
{
    munlockall(); /* reading a long log must not count against RLIMIT_MEMLOCK */
}

/* ---- the log ------------------------------------------------------------------- */

int run_os_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                            O_NOCTTY, 0644);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0222)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int run_os_temp_beside(const char *name)
{
    char tmp[RUN_PATH_MAX];
    const char *slash = strrchr(name, '/');
    int n = snprintf(tmp, sizeof tmp, "%.*s.memguard-log-XXXXXX",
                     slash ? (int)(slash - name + 1) : 0, name);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd >= 0) unlink(tmp);
    return fd;
}

int run_os_dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

int run_os_open_read(const char *path)
{
    return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
}

long long run_os_regular_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
}

/* ---- the protocol's files ------------------------------------------------------ */

long run_os_read_small(const char *path, char *buf, size_t len, bool own)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return -1;
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (!own || st.st_uid == geteuid()) &&
        (!own || st.st_size < 8192))
        n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = '\0';
    return (long)n;
}

bool run_os_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

int run_os_unlink(const char *path) { return unlink(path) == 0 ? 0 : -errno; }

/* The first usable base folder: $XDG_RUNTIME_DIR, $TMPDIR, /tmp. */
static const char *base_dir(void)
{
    const char *cand[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        struct stat st;
        if (cand[i] && cand[i][0] == '/' && stat(cand[i], &st) == 0 && S_ISDIR(st.st_mode) &&
            access(cand[i], W_OK | X_OK) == 0 && strlen(cand[i]) < RUN_PATH_MAX - 64)
            return cand[i];
    }
    return NULL;
}

int run_os_private_dir(char *dir, size_t len)
{
    const char *base = base_dir();
    if (!base) {
        fprintf(stderr, "memguard: no folder for the stop file: $XDG_RUNTIME_DIR, $TMPDIR "
                        "and /tmp are not writable folders (use --stop-file PATH)\n");
        return MG_EXIT_ERROR;
    }
    /* base_dir() keeps the folder's name 64 bytes short of RUN_PATH_MAX. */
    snprintf(dir, len, "%s/memguard-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "memguard: cannot create a private folder in %s: %s\n", base,
                strerror(errno));
        return MG_EXIT_ERROR;
    }
    return 0;
}

void run_os_private_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strncmp(e->d_name, "ack.tmp.", 8) == 0 ||
                strncmp(e->d_name, "continue.tmp.", 13) == 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(dir) != 0 && errno != ENOENT)
        fprintf(stderr, "memguard: leaving %s: %s\n", dir, strerror(errno));
}

int run_os_write_replace(const char *path, const char *text, size_t n)
{
    char tmp[RUN_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -errno;
    int e = 0;
    if (fchmod(fd, 0644) != 0 || write(fd, text, n) != (ssize_t)n) e = errno ? errno : EIO;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return -e;
    }
    return 0;
}
