/* SPDX-License-Identifier: MIT */
/*
 * bench_time.h: the two helpers every timing program in bench/ needs, in
 * one copy: a monotonic clock in seconds and a comparison for qsort of
 * doubles (medians). Header-only, no state. Not for the library or the
 * trainer: they keep their own clocks.
 */
#ifndef BENCH_TIME_H
#define BENCH_TIME_H

#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparison of doubles, ascending. */
static inline int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif /* BENCH_TIME_H */
