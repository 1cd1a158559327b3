/* SPDX-License-Identifier: MIT */
/*
 * dist_none.c: dist.h without MPI (a build with MG_MPI=OFF, or where
 * CMake found no MPI): always a group of one, every sum and broadcast a
 * no-op. Started by an MPI launcher for more than one rank, it refuses
 * to run, because K copies each training alone on the same --out is not
 * what `mpirun -np K` asks for.
 * Not here: the MPI build (dist_mpi.c).
 */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

struct dist {
    unet_sum_hook hook;
};

const char *dist_library(void) { return "none"; }

/* The number of ranks a launcher's environment announces, 1 if none. */
static long launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    for (const char *const *v = vars; *v; v++) {
        const char *s = getenv(*v);
        long k = s ? strtol(s, NULL, 10) : 1;
        if (k > 1) return k;
    }
    return 1;
}

static void sum_none(void *ctx, double *v, int n)
{
    (void)ctx;
    (void)v;
    (void)n;
}

dist *dist_open(char *err, size_t err_len)
{
    long k = launcher_size();
    if (k > 1) {
        snprintf(err, err_len, "started as one of %ld MPI ranks, but this unet-train was built "
                 "without MPI: rebuild with libopenmpi-dev installed (cmake -DMG_MPI=ON)", k);
        return NULL;
    }
    dist *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    d->hook = (unet_sum_hook){sum_none, NULL};
    return d;
}

void dist_close(dist *d) { free(d); }

int dist_rank(const dist *d) { (void)d; return 0; }
int dist_size(const dist *d) { (void)d; return 1; }
int dist_local_size(const dist *d) { (void)d; return 1; }
/* A group of one never names its node (only a rank of several does). */
const char *dist_host(const dist *d) { (void)d; return ""; }
const char *dist_host_of(const dist *d, int rank) { (void)d; (void)rank; return ""; }
double dist_comm_seconds(const dist *d, dist_comm what)
{
    (void)d;
    (void)what;
    return 0.0;
}
const unet_sum_hook *dist_sum_hook(dist *d) { return &d->hook; }

int dist_prepare(dist *d, size_t grad_floats, int small_max)
{
    (void)d;
    (void)grad_floats;
    (void)small_max;
    return 0;
}

void dist_sum_grads(dist *d, float *g, size_t n)
{
    (void)d;
    (void)g;
    (void)n;
}

void dist_sum_small(dist *d, double *v, int n)
{
    (void)d;
    (void)v;
    (void)n;
}

void dist_bcast(dist *d, void *p, size_t bytes)
{
    (void)d;
    (void)p;
    (void)bytes;
}

int dist_step(dist *d, double *v, int n, int want, char reason[DIST_REASON_MAX], int *kind)
{
    (void)d;
    (void)v;
    (void)n;
    (void)reason;
    *kind = want;
    return want ? 0 : -1;
}

int dist_first(dist *d, bool mine)
{
    (void)d;
    return mine ? 0 : -1;
}

int dist_agree_rc(dist *d, int rc)
{
    (void)d;
    return rc;
}
