/* SPDX-License-Identifier: MIT */
/*
 * posix/members.c: the processes `memguard run` may signal: every descendant of
 * memguard (the command, its workers, ranks, and processes that left the
 * command's group with setsid() or setpgid(), which the kernel hands back
 * to memguard as their child subreaper), as the library's tree discovery
 * lists them (mg_tree_pids).
 *
 * A PID read from /proc can be reused by an unrelated process before it is
 * signalled. So each member is pinned first with a pidfd (pidfd_open), then
 * checked to still be our descendant, and the reads are trusted only if the
 * pidfd says the process is still alive after them: from then on a signal
 * through the pidfd can only reach that very process. Kernels without
 * pidfds (before 5.3) fall back to kill() after the same checks.
 *
 * It reads and signals; what to send when is supervise.c's decision.
 */
#define _GNU_SOURCE
#include "members.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static int pidfd_open(int pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static ssize_t read_proc(int pid, const char *file, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n >= 0) buf[n] = '\0';
    return n;
}

/* ppid (field 4) and start time (field 22) from /proc/PID/stat, read after
 * the LAST ')' since the command name may hold ") ". False for a zombie
 * (state Z or X): it holds no memory and cannot be signalled any more. */
static bool read_stat(int pid, int *ppid, unsigned long long *start)
{
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) <= 0) return false;
    const char *p = strrchr(buf, ')');
    if (!p) return false;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') p++;
        if (!*p) return false;
        if (field == 3 && (*p == 'Z' || *p == 'X')) return false;
        if (field == 4) *ppid = atoi(p);
        if (field == 22) *start = strtoull(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    return true;
}

/* Whether pid descends from this process (a bounded walk up the ppids). */
static bool descends_from_us(int pid)
{
    int self = (int)getpid();
    for (int depth = 0; depth < 256 && pid > 1; depth++) {
        int ppid = 0;
        unsigned long long start;
        if (!read_stat(pid, &ppid, &start)) return false;
        if (ppid == self) return true;
        pid = ppid;
    }
    return false;
}

/* What sig does to pid now: caught (SigCgt), ignored (SigIgn), or its
 * default action, which for the checkpoint signals ends the process. */
typedef enum { DISP_DEFAULT, DISP_CAUGHT, DISP_IGNORED } disposition;

static bool in_mask(const char *status, const char *field, int sig)
{
    const char *p = strstr(status, field);
    if (!p || sig < 1 || sig > 64) return false;
    unsigned long long mask = strtoull(p + strlen(field), NULL, 16);
    return (mask >> (sig - 1)) & 1u;
}

static disposition member_disposition(int pid, int sig)
{
    char buf[4096];
    if (read_proc(pid, "status", buf, sizeof buf) <= 0) return DISP_DEFAULT;
    if (in_mask(buf, "\nSigCgt:", sig)) return DISP_CAUGHT;
    return in_mask(buf, "\nSigIgn:", sig) ? DISP_IGNORED : DISP_DEFAULT;
}

/* A member that would die of sig makes every ancestor in out[0..n) unsafe
 * to signal: a launcher that catches it may forward it (mpirun and srun
 * forward SIGUSR1 to their ranks, which before their guard exists still
 * have the default action: the rehearsal of session 5 lost both ranks so).
 * They hear of the request from the stop file, and get the signal once
 * nothing below them would die of it. */
static void spare_forwarders(member *out, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (!out[j].dies) continue;
        /* Up the parents that are members: at most n steps. */
        int pid = out[j].ppid;
        for (size_t step = 0; step < n; step++) {
            size_t i = 0;
            while (i < n && out[i].pid != pid) i++;
            if (i == n) break; /* memguard itself, or not ours */
            out[i].catches = false;
            pid = out[i].ppid;
        }
    }
}

/* Whether pid is an MPI or SLURM launcher, which catches SIGUSR1 to
 * forward it to its ranks: a rank it forks inherits the handler until its
 * exec, so the rule above cannot see a rank that would die of it in time
 * (test_unet_dist's memguard run around mpirun lost both ranks so). Its
 * ranks are signalled directly once they catch it; meanwhile the stop
 * file tells them. */
static bool forwarding_launcher(int pid)
{
    static const char *const names[] = {"mpirun", "mpiexec", "orterun", "prterun", "prte",
                                        "orted", "prted", "mpiexec.hydra", "hydra_pmi_proxy",
                                        "srun", "slurmstepd"};
    char comm[64];
    if (read_proc(pid, "comm", comm, sizeof comm) <= 0) return false;
    comm[strcspn(comm, "\n")] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(comm, names[i]) == 0) return true;
    return false;
}

static bool alive(const member *m)
{
    return m->pidfd >= 0 ? pidfd_signal(m->pidfd, 0) == 0 : kill(m->pid, 0) == 0;
}

size_t members_list(mg_ctx *ctx, int sig, int exclude, member *out, size_t cap)
{
    int pids[MEMBERS_MAX];
    int n = mg_tree_pids(ctx, pids, MEMBERS_MAX);
    size_t k = 0;
    for (int i = 0; i < n && i < MEMBERS_MAX && k < cap; i++) {
        if (pids[i] == exclude || pids[i] == (int)getpid()) continue;
        member m = {pids[i], pidfd_open(pids[i]), 0, 0, false, false};
        if (m.pidfd < 0 && errno != ENOSYS) continue; /* gone already */
        bool ok = read_stat(m.pid, &m.ppid, &m.start) && descends_from_us(m.pid);
        disposition d = ok && sig > 0 ? member_disposition(m.pid, sig) : DISP_IGNORED;
        m.catches = d == DISP_CAUGHT && !forwarding_launcher(m.pid);
        m.dies = d == DISP_DEFAULT;
        if (ok && alive(&m)) {
            out[k++] = m;
        } else if (m.pidfd >= 0) {
            close(m.pidfd);
        }
    }
    if (sig > 0) spare_forwarders(out, k);
    return k;
}

int member_signal(const member *m, int sig)
{
    int rc = m->pidfd >= 0 ? pidfd_signal(m->pidfd, sig) : kill(m->pid, sig);
    return rc == 0 ? 0 : -errno;
}

void members_release(member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].pidfd >= 0) close(m[i].pidfd);
}
