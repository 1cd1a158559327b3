/* SPDX-License-Identifier: MIT */
/*
 * bench_sample.c: nanoseconds per sample, medians over rounds, for
 *   bare    pread of /proc/meminfo through a kept descriptor, no parsing
 *           (the floor any RAM reading must pay: the syscall);
 *   ram     mg_sample() reading RAM only (MG_SKIP_CGROUP|TREE|PSI, no GPU);
 *   full    mg_sample() with RAM + cgroup + process tree + PSI (no GPU).
 * Usage: bench_sample [ITERATIONS [ROUNDS]]. Prints "name median_ns" lines
 * that bench/sample.sh puts next to psutil.virtual_memory().
 */
#include "memguard.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 7;
    if (iters < 1 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: bench_sample [ITERATIONS [ROUNDS<=100]]\n");
        return 2;
    }
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
    mg_config ram_cfg = {.no_gpu = true,
                         .skip_sources = MG_SKIP_CGROUP | MG_SKIP_TREE | MG_SKIP_PSI};
    mg_config full_cfg = {.no_gpu = true};
    int err;
    mg_ctx *ram = mg_create(&ram_cfg, &err), *full = mg_create(&full_cfg, &err);
    if (fd < 0 || !ram || !full) {
        fprintf(stderr, "bench_sample: cannot open the sources: %s\n", mg_strerror(err));
        return 1;
    }
    double t_bare[100], t_ram[100], t_full[100];
    char buf[8192];
    mg_snapshot snap;
    volatile long sink = 0;
    for (int r = 0; r < rounds; r++) {
        /* Interleaved so drift on a shared machine hits all three alike. */
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) sink += pread(fd, buf, sizeof buf, 0);
        double t1 = now_ns();
        for (long i = 0; i < iters; i++) sink += mg_sample(ram, &snap);
        double t2 = now_ns();
        for (long i = 0; i < iters; i++) sink += mg_sample(full, &snap);
        double t3 = now_ns();
        t_bare[r] = (t1 - t0) / (double)iters;
        t_ram[r] = (t2 - t1) / (double)iters;
        t_full[r] = (t3 - t2) / (double)iters;
    }
    (void)sink;
    printf("bare %.0f\nram %.0f\nfull %.0f\n", median(t_bare, rounds), median(t_ram, rounds),
           median(t_full, rounds));
    printf("full_nprocs %u\n", snap.tree.nprocs);
    mg_destroy(ram);
    mg_destroy(full);
    close(fd);
    return 0;
}
