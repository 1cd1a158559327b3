/* SPDX-License-Identifier: MIT */
/*
 * omp_regions.c: where a program's OpenMP time goes, region by region. An
 * LD_PRELOAD library that wraps libgomp's GOMP_parallel (the entry of
 * every `#pragma omp parallel` GCC compiles) and, at exit, prints to
 * stderr one line per outlined region function: its address relative to
 * the object it lives in, the object, calls, total and mean wall time
 * (the region as the calling thread sees it: waking the team, the work,
 * the closing barrier). Static functions have no dynamic symbol: pass
 * the address to `addr2line -f -e OBJECT`.
 *
 *   LD_PRELOAD=build/bench/libomp_regions.so build/unet-train ... 2> regions.txt
 *
 * It counts only GOMP_parallel (not GOMP_parallel_loop_* or tasks, which
 * the project does not use) and at most 512 distinct regions. It changes
 * nothing the program computes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

#include "bench_time.h"

#define MAX_REGIONS 512

typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

static void *fns[MAX_REGIONS];
static long calls[MAX_REGIONS];
static double secs[MAX_REGIONS];

/* The wrapper libgomp's callers reach first. Regions are entered by one
 * thread at a time here (no nesting in the project), so the tables need
 * no lock. */
void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags)
{
    static parallel_fn real;
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "GOMP_parallel");
        *(void **)&real = sym;
    }
    double t0 = now_s();
    real(fn, data, nthreads, flags);
    double t = now_s() - t0;
    int i = 0;
    while (i < MAX_REGIONS && fns[i] && fns[i] != *(void **)&fn)
        i++;
    if (i < MAX_REGIONS) {
        fns[i] = *(void **)&fn;
        calls[i]++;
        secs[i] += t;
    }
}

__attribute__((destructor)) static void report(void)
{
    for (int i = 0; i < MAX_REGIONS && fns[i]; i++) {
        Dl_info d;
        if (!dladdr(fns[i], &d))
            d.dli_fbase = NULL, d.dli_fname = "?";
        fprintf(stderr, "0x%lx %s %ld %.3f ms %.1f us/call\n",
                (unsigned long)((char *)fns[i] - (char *)d.dli_fbase), d.dli_fname, calls[i],
                secs[i] * 1e3, secs[i] / (double)calls[i] * 1e6);
    }
}
