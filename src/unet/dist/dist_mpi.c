/* SPDX-License-Identifier: MIT */
/*
 * dist_mpi.c: dist.h over MPI (built when CMake finds MPI and MG_MPI is
 * ON; dist_none.c otherwise). MPI is initialised only when a launcher
 * started this process (its environment says so); a plain run is a group
 * of one that never calls MPI.
 *
 * The fixed-order sums: dist_sum_grads is a reduce-scatter and an
 * all-gather done by hand: rank j owns the j-th of K equal chunks of the
 * vector; MPI_Alltoallv brings it every rank's copy of that chunk
 * unchanged, it adds them in rank order, and MPI_Allgatherv gives every
 * rank every owner's sums. The traffic is that of a ring all-reduce (each
 * rank sends and receives (K-1)/K of the vector twice) and the result
 * does not depend on the algorithm the library picks for a collective.
 * Short vectors (SyncBatchNorm's statistics, the loss) are all-gathered
 * and added in rank order by every rank.
 *
 * Errors inside MPI keep MPI's default handler (MPI_ERRORS_ARE_FATAL):
 * the job ends, which is what a half-done collective leaves anyway.
 * Not here: the no-MPI build (dist_none.c), what the trainer sums.
 */
#include "dist.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOST_MAX 256 /* MPI_MAX_PROCESSOR_NAME is 256 in Open MPI and MPICH */

struct dist {
    int rank, size, local_size;
    bool mpi;              /* MPI_Init_thread was called here */
    char *hosts;           /* size * HOST_MAX: every rank's node name */
    float *recv;           /* dist_sum_grads: size chunks */
    size_t grad_n;         /* the vector dist_prepare sized recv for */
    int *counts, *displs, *rcounts, *rdispls; /* size each */
    double *gather;        /* size * small_cap doubles */
    int small_cap;
    unet_sum_hook hook;
    double comm_s, grads_s, step_s; /* dist_comm_seconds */
};

const char *dist_library(void)
{
    static char name[MPI_MAX_LIBRARY_VERSION_STRING + 8];
    if (!name[0]) {
        char v[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(v, &len);
        v[len > 0 && len < (int)sizeof v ? len : 0] = '\0';
        char *nl = strpbrk(v, ",\n");
        if (nl) *nl = '\0';
        snprintf(name, sizeof name, "MPI (%s)", v);
    }
    return name;
}

/* The environment of the launchers that start MPI processes: Open MPI's
 * mpirun, PMIx (Open MPI 5, srun --mpi=pmix), PMI (MPICH's hydra, srun
 * --mpi=pmi2). */
static bool launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", NULL};
    for (const char *const *v = vars; *v; v++)
        if (getenv(*v)) return true;
    return false;
}

static void sum_hook(void *ctx, double *v, int n) { dist_sum_small(ctx, v, n); }

/* Every rank's node name, and how many ranks share this node. */
static int learn_nodes(dist *d)
{
    char me[HOST_MAX] = "";
    int len = 0;
    MPI_Get_processor_name(me, &len);
    me[len > 0 && len < HOST_MAX ? len : HOST_MAX - 1] = '\0';
    d->hosts = calloc((size_t)d->size, HOST_MAX);
    if (!d->hosts) return -1;
    MPI_Allgather(me, HOST_MAX, MPI_CHAR, d->hosts, HOST_MAX, MPI_CHAR, MPI_COMM_WORLD);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &d->local_size);
    MPI_Comm_free(&node);
    return 0;
}

dist *dist_open(char *err, size_t err_len)
{
    dist *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    d->size = d->local_size = 1;
    d->hook = (unet_sum_hook){sum_hook, d};
    if (!launched_by_mpi()) {
        d->hosts = calloc(1, HOST_MAX);
        if (d->hosts && gethostname(d->hosts, HOST_MAX - 1) != 0) d->hosts[0] = '\0';
        if (d->hosts) return d;
        free(d);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, err_len, "MPI could not start (MPI_Init_thread failed)");
        free(d);
        return NULL;
    }
    d->mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    if (provided < MPI_THREAD_FUNNELED || learn_nodes(d) < 0) {
        snprintf(err, err_len, provided < MPI_THREAD_FUNNELED
                                   ? "MPI: the library does not support MPI_THREAD_FUNNELED"
                                   : "out of memory");
        dist_close(d);
        return NULL;
    }
    return d;
}

static void free_buffers(dist *d)
{
    free(d->recv);
    free(d->counts);
    free(d->gather);
    d->recv = NULL;
    d->counts = NULL;
    d->gather = NULL;
}

void dist_close(dist *d)
{
    if (!d) return;
    free_buffers(d);
    free(d->hosts);
    if (d->mpi) MPI_Finalize();
    free(d);
}

int dist_rank(const dist *d) { return d->rank; }
int dist_size(const dist *d) { return d->size; }
int dist_local_size(const dist *d) { return d->local_size; }
const char *dist_host(const dist *d) { return d->hosts + (size_t)d->rank * HOST_MAX; }
double dist_comm_seconds(const dist *d, dist_comm what)
{
    return what == DIST_COMM_GRADS ? d->grads_s : what == DIST_COMM_STEP ? d->step_s : d->comm_s;
}
const unet_sum_hook *dist_sum_hook(dist *d) { return &d->hook; }

int dist_prepare(dist *d, size_t grad_floats, int small_max)
{
    free_buffers(d);
    if (d->size == 1) return 0;
    size_t k = (size_t)d->size, chunk = (grad_floats + k - 1) / k;
    d->small_cap = (small_max > 9 ? small_max : 9);
    d->recv = malloc((chunk ? chunk : 1) * k * sizeof(float));
    d->counts = malloc(4 * k * sizeof(int));
    d->gather = malloc(k * (size_t)d->small_cap * sizeof(double));
    if (!d->recv || !d->counts || !d->gather || chunk > INT32_MAX) {
        free_buffers(d);
        return -1;
    }
    d->displs = d->counts + k;
    d->rcounts = d->counts + 2 * k;
    d->rdispls = d->counts + 3 * k;
    for (size_t j = 0; j < k; j++) {
        size_t lo = j * chunk < grad_floats ? j * chunk : grad_floats;
        size_t hi = lo + chunk < grad_floats ? lo + chunk : grad_floats;
        d->counts[j] = (int)(hi - lo);
        d->displs[j] = (int)lo;
    }
    for (size_t i = 0; i < k; i++) {
        d->rcounts[i] = d->counts[d->rank];
        d->rdispls[i] = (int)(i * chunk);
    }
    d->grad_n = grad_floats;
    return 0;
}

void dist_sum_grads(dist *d, float *g, size_t n)
{
    if (d->size == 1 || n != d->grad_n) return;
    double t0 = MPI_Wtime();
    MPI_Alltoallv(g, d->counts, d->displs, MPI_FLOAT, d->recv, d->rcounts, d->rdispls,
                  MPI_FLOAT, MPI_COMM_WORLD);
    int mine = d->counts[d->rank];
    float *out = g + d->displs[d->rank];
    for (int k = 0; k < mine; k++) {
        float s = d->recv[k];
        for (int i = 1; i < d->size; i++) s += d->recv[(size_t)d->rdispls[i] + (size_t)k];
        out[k] = s;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g, d->counts, d->displs, MPI_FLOAT,
                   MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    d->comm_s += dt;
    d->grads_s += dt;
}

void dist_sum_small(dist *d, double *v, int n)
{
    if (d->size == 1 || n > d->small_cap || n <= 0) return;
    double t0 = MPI_Wtime();
    MPI_Allgather(v, n, MPI_DOUBLE, d->gather, n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int k = 0; k < n; k++) {
        double s = d->gather[k];
        for (int i = 1; i < d->size; i++) s += d->gather[(size_t)i * (size_t)n + (size_t)k];
        v[k] = s;
    }
    d->comm_s += MPI_Wtime() - t0;
}

void dist_bcast(dist *d, void *p, size_t bytes)
{
    if (d->size == 1) return;
    double t0 = MPI_Wtime();
    for (size_t at = 0; at < bytes;) {
        size_t n = bytes - at < (1u << 30) ? bytes - at : (1u << 30);
        MPI_Bcast((char *)p + at, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
        at += n;
    }
    d->comm_s += MPI_Wtime() - t0;
}

/* Blocking on purpose: it comes right after the gradient sum has brought
 * the ranks together, and costs 2-3 us with the ranks in step at 2 ranks
 * on one machine (bench_dist_sum, run by bench/dist.sh). Posted
 * non-blocking and completed a batch later, it would act on a stop one
 * batch later to save those microseconds. */
int dist_step(dist *d, double *v, int n, int want, char reason[DIST_REASON_MAX], int *kind)
{
    *kind = want;
    if (d->size == 1) return want ? 0 : -1;
    double t0 = MPI_Wtime();
    double mine[9];
    for (int k = 0; k < n; k++) mine[k] = v[k];
    mine[n] = (double)want;
    MPI_Allgather(mine, n + 1, MPI_DOUBLE, d->gather, n + 1, MPI_DOUBLE, MPI_COMM_WORLD);
    int src = -1;
    for (int k = 0; k <= n; k++) {
        double s = 0.0;
        for (int i = 0; i < d->size; i++) {
            double x = d->gather[(size_t)i * (size_t)(n + 1) + (size_t)k];
            if (k < n) s += x;
            else if (x > 0 && src < 0) src = i, *kind = (int)x;
        }
        if (k < n) v[k] = s;
    }
    if (src >= 0) MPI_Bcast(reason, DIST_REASON_MAX, MPI_CHAR, src, MPI_COMM_WORLD);
    reason[DIST_REASON_MAX - 1] = '\0';
    double dt = MPI_Wtime() - t0;
    d->comm_s += dt;
    d->step_s += dt;
    return src;
}

const char *dist_host_of(const dist *d, int rank)
{
    return d->hosts + (size_t)(rank >= 0 && rank < d->size ? rank : 0) * HOST_MAX;
}

int dist_first(dist *d, bool mine)
{
    if (d->size == 1) return mine ? 0 : -1;
    int me = mine ? d->rank : d->size, first = me;
    double t0 = MPI_Wtime();
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    d->comm_s += MPI_Wtime() - t0;
    return first < d->size ? first : -1;
}

int dist_agree_rc(dist *d, int rc)
{
    if (d->size == 1) return rc;
    int all = rc;
    double t0 = MPI_Wtime();
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    d->comm_s += MPI_Wtime() - t0;
    return all;
}
