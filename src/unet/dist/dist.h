/* SPDX-License-Identifier: MIT */
/*
 * dist.h: data-parallel training over MPI, as unet-train uses it: which
 * process this is among how many (its rank, the node it runs on), the
 * sums that make K processes train as one (gradients, SyncBatchNorm's
 * statistics, the loss), broadcasts from rank 0, and the agreement on a
 * stop. The split of a batch into the ranks' shards is the loader's
 * (unet_loader_next_shard).
 *
 * Two builds of one interface: dist_mpi.c (Open MPI, or any MPI-3 library,
 * found by CMake's find_package(MPI) with MG_MPI=ON) and dist_none.c (no
 * MPI: always one process). MPI is used only when the process was started
 * by an MPI launcher (mpirun, mpiexec, srun; dist_open looks at the
 * launchers' environment variables), so a plain `unet-train` never
 * initialises MPI, even in a build that has it.
 *
 * Every sum here has a FIXED order, so reruns with the same number of
 * ranks give the same bits, whatever algorithm the MPI library picks:
 * each rank's values travel unchanged (all-to-all, all-gather) and are
 * added up in rank order 0, 1, ..., K-1 by the rank that owns them; every
 * rank ends with the same bits. A sum over K ranks is not the same
 * floating-point sum as one process's over the whole batch: results agree
 * with a single process within float rounding, not bitwise (K = 1 is
 * bitwise the single process: nothing is added).
 *
 * Collectives: every rank calls dist_sum_grads, dist_sum_small,
 * dist_bcast, dist_step, dist_first and dist_agree_rc at the same points
 * with the same sizes, from the thread that called dist_open (MPI_THREAD_FUNNELED; the
 * guard's watcher thread never calls them). A rank that dies makes the
 * launcher end the others (mpirun's default), so nothing waits forever.
 *
 * Not here: what is summed or when (app/train.c), the model's layout of
 * the gradients (model/), the memory guard (app/guard.c), the output
 * files (only rank 0 writes them; train.c decides).
 */
#ifndef UNET_DIST_H
#define UNET_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h" /* unet_sum_hook */

typedef struct dist dist;

/* The longest stop reason dist_step carries between ranks, NUL included. */
#define DIST_REASON_MAX 512

/* Starts the data-parallel group: MPI_Init_thread when an MPI launcher
 * started this process, else a group of one. Returns NULL with one line
 * in err (MPI could not start, or the launcher asks for MPI and this build
 * has none). */
dist *dist_open(char *err, size_t err_len);
/* MPI_Finalize when dist_open initialised MPI. NULL is a no-op. */
void dist_close(dist *d);

int dist_rank(const dist *d);        /* 0 .. size-1 */
int dist_size(const dist *d);        /* K */
int dist_local_size(const dist *d);  /* ranks on this node */
const char *dist_host(const dist *d);/* this node's name */
/* What this build can do: "MPI (Open MPI v4.1.4, ...)" or "none". */
const char *dist_library(void);

/* Reserves the buffers of the sums for `grad_floats` gradients and
 * SyncBatchNorm's vectors of up to `small_max` doubles, so a step
 * allocates nothing; the other calls need it first. 0, or -1 when there
 * is not enough memory. */
int dist_prepare(dist *d, size_t grad_floats, int small_max);

/* g[0..n) becomes the sum over the ranks of their g, in rank order (host
 * memory; n the grad_floats of dist_prepare). */
void dist_sum_grads(dist *d, float *g, size_t n);
/* The same for a short vector of doubles (n <= small_max). */
void dist_sum_small(dist *d, double *v, int n);
/* The hook SyncBatchNorm calls (tensor.h): dist_sum_small. */
const unet_sum_hook *dist_sum_hook(dist *d);

/* Copies rank 0's `bytes` at p to every rank. */
void dist_bcast(dist *d, void *p, size_t bytes);

/* The end of a batch: v[0..n) (n <= 8) becomes the sum over the ranks
 * (rank order), and the ranks agree whether to stop. want: what this
 * rank's guard says, 0 go on, 1 critical memory here, 2 memguard run asked
 * (reason: its text, no marker). Returns -1 when no rank wants to stop,
 * else the lowest rank that does; then *kind is its want and reason holds
 * its reason (copied from it). A group of one returns 0 or -1 and leaves
 * reason as it is. */
int dist_step(dist *d, double *v, int n, int want, char reason[DIST_REASON_MAX], int *kind);
/* The node name of `rank` (this rank's: dist_host). */
const char *dist_host_of(const dist *d, int rank);

/* The lowest rank for which `mine` is true, -1 when it is true on none
 * (a group of one: 0 or -1); for saying a failed start once. */
int dist_first(dist *d, bool mine);

/* The exit status the ranks agree on: the largest of their rc (0 when all
 * are 0); for start-up and the end of an emergency save. */
int dist_agree_rc(dist *d, int rc);

/* Which collectives dist_comm_seconds adds up. */
typedef enum dist_comm {
    DIST_COMM_ALL,   /* every collective */
    DIST_COMM_GRADS, /* dist_sum_grads */
    DIST_COMM_STEP   /* dist_step: the per-batch sums and stop agreement */
} dist_comm;

/* Seconds this rank has spent inside collectives of kind `what` so far
 * (waiting for slower ranks included), for the report of a run. */
double dist_comm_seconds(const dist *d, dist_comm what);

#endif /* UNET_DIST_H */
