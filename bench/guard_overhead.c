/* SPDX-License-Identifier: MIT */
/*
 * guard_overhead.c: what unet-train's memory guard (app/guard.c) costs,
 * measured on its own, for bench/guard_overhead.py to set beside the
 * interleaved training runs with the guard on and off. Three numbers, on
 * the guard unet-train opens (the seed's table row for batch 8, the
 * default cadence, this machine's RAM, cgroup, process tree and PSI):
 *   poll_ns           guard_check at a batch that is not due: the stop
 *                     request poll every batch pays (median)
 *   check_us          guard_check at a due batch: one full sample and
 *                     its classification (median)
 *   watcher_cpu_ms_per_s  CPU the watcher thread burns per second of wall
 *                     time while the loop sleeps (process CPU time with
 *                     the watcher minus without, over the same wall time)
 * Output: "name value" lines. Usage: bench_guard_overhead [SECONDS (2)].
 * It does not train, print the guard's banners or touch any file.
 */
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_time.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static guard *open_guard(bool watcher)
{
    guard_opts o = {0};
    o.batch = 8;
    o.no_watcher = !watcher;
    char err[256];
    guard *g = guard_open(&o, err, sizeof err);
    if (!g) {
        fprintf(stderr, "bench_guard_overhead: %s\n", err);
        exit(1);
    }
    return g;
}

/* Median seconds of one guard_check at batch numbers start, start+step, ... */
static double median_check(guard *g, long start, long step, int n)
{
    double *t = malloc((size_t)n * sizeof *t);
    if (!t)
        exit(1);
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        if (guard_check(g, GP_TRAIN, start + step * i)) {
            fprintf(stderr, "bench_guard_overhead: the guard says stop (memory critical here?)\n");
            exit(1);
        }
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double m = t[n / 2];
    free(t);
    return m;
}

/* Process CPU seconds over `secs` of wall time spent asleep. */
static double idle_cpu(bool watcher, double secs)
{
    guard *g = open_guard(watcher);
    double c0 = cpu_s();
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    double c = cpu_s() - c0;
    guard_close(g);
    return c;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (!(secs > 0.0 && secs <= 60.0)) {
        fprintf(stderr, "usage: bench_guard_overhead [SECONDS in (0, 60]]\n");
        return 2;
    }
    guard *g = open_guard(false);
    /* Not due: batches 1, 11, 21, ... (the cadence is every 10th). */
    printf("poll_ns %.1f\n", 1e9 * median_check(g, 1, 10, 20001));
    printf("check_us %.2f\n", 1e6 * median_check(g, 10, 10, 2001));
    guard_close(g);
    double with = idle_cpu(true, secs), without = idle_cpu(false, secs);
    printf("watcher_cpu_ms_per_s %.4f\n", 1e3 * (with - without) / secs);
    return 0;
}
