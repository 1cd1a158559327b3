/* SPDX-License-Identifier: MIT */
/*
 * dist_sum.c: what unet-train's collectives cost by themselves, with the
 * ranks in step: the gradient sum (dist_sum_grads: all-to-all, rank-order
 * add, all-gather) of N floats, and the per-batch agreement (dist_step:
 * the three loss sums and the stop, one small all-gather). Before each
 * timed call the ranks meet (dist_agree_rc), so what is timed is the
 * transfer and the adds, not one rank waiting for another to be
 * scheduled; that is the most that overlapping the sum with the backward
 * pass could hide. bench/dist.sh runs it beside the training runs.
 *
 * Usage: mpirun -np K bench_dist_sum [FLOATS [REPS]] (defaults: 482k, the
 * gradients of bench/dist.sh's model, and 200). Rank 0 prints the medians.
 * It does not train, and it measures one machine's transport only.
 */
#include "bench_time.h"
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

/* The median of v[0..n) (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 482000;
    int reps = argc > 2 ? atoi(argv[2]) : 200;
    char err[256];
    dist *d = dist_open(err, sizeof err);
    if (!d) {
        fprintf(stderr, "bench_dist_sum: %s\n", err);
        return 2;
    }
    float *g = calloc(n ? n : 1, sizeof *g);
    double *ts = calloc((size_t)(reps > 0 ? reps : 1), sizeof *ts);
    double *tb = calloc((size_t)(reps > 0 ? reps : 1), sizeof *tb);
    if (n == 0 || reps < 1 || !g || !ts || !tb || dist_prepare(d, n, 9) < 0) {
        fprintf(stderr, "bench_dist_sum: expected FLOATS > 0 and REPS > 0 (or out of memory)\n");
        dist_close(d);
        return 2;
    }
    for (size_t i = 0; i < n; i++) g[i] = 1e-3f * (float)(i % 1000);
    char reason[DIST_REASON_MAX] = "";
    for (int r = 0; r < reps; r++) {
        dist_agree_rc(d, 0);
        double t0 = now_s();
        dist_sum_grads(d, g, n);
        ts[r] = now_s() - t0;
        double v[3] = {1.0, 2.0, 3.0};
        int kind;
        dist_agree_rc(d, 0);
        t0 = now_s();
        dist_step(d, v, 3, 0, reason, &kind);
        tb[r] = now_s() - t0;
    }
    if (dist_rank(d) == 0)
        printf("%d ranks (%s), %zu floats, %d reps: gradient sum %.3f ms, per-batch agreement "
               "%.1f us (medians, ranks in step)\n", dist_size(d), dist_library(), n, reps,
               1e3 * median(ts, reps), 1e6 * median(tb, reps));
    free(g);
    free(ts);
    free(tb);
    dist_close(d);
    return 0;
}
