/* SPDX-License-Identifier: MIT */
/*
 * posix/members.h: the processes `memguard run` may signal on Linux
 * (members.c): every descendant of memguard, each pinned by a pidfd. Used
 * by posix/supervise_os.c only. It declares; it decides nothing.
 */
#ifndef MG_POSIX_MEMBERS_H
#define MG_POSIX_MEMBERS_H

#include "../run.h"

#define MEMBERS_MAX 4096

/* One process of the watched tree, pinned by a pidfd. */
typedef struct member {
    int pid;
    int pidfd;                /* -1 on kernels without pidfds */
    int ppid;
    unsigned long long start; /* start time (clock ticks after boot) */
    bool catches;             /* the signal asked about is in its SigCgt, and no
                                 member below it would die of it (it may forward it) */
    bool dies;                /* the signal asked about has its default action here */
} member;

/* The live descendants of memguard now, `exclude` left out (the --on-warn
 * hook), each pinned and checked to be ours; `catches` is about sig (0:
 * not asked). Returns how many were put in out[0..cap). */
size_t members_list(mg_ctx *ctx, int sig, int exclude, member *out, size_t cap);
/* Sends sig through the pin. 0 or -errno (-ESRCH: it is gone). */
int member_signal(const member *m, int sig);
void members_release(member *m, size_t n);

#endif /* MG_POSIX_MEMBERS_H */
