/* SPDX-License-Identifier: MIT */
/*
 * bench_sample.c: nanoseconds per sample, medians over rounds, for
 *   bare    pread of /proc/meminfo through a kept descriptor, no parsing
 *           (the floor any RAM reading must pay: the syscall);
 *   ram     mg_sample() reading RAM only (MG_SKIP_CGROUP|TREE|PSI, no GPU);
 *   full    mg_sample() with RAM + cgroup + process tree + PSI (no GPU).
 * Usage: bench_sample [ITERATIONS [ROUNDS]]. Prints "name median_ns" lines
 * that bench/sample.sh puts next to psutil.virtual_memory().
 *
 * bench_sample tree NPROCS MIB [ROUNDS]: a parent touches MIB MiB and
 * forks NPROCS - 1 children that keep it shared copy-on-write (forked
 * DataLoader workers); then one mg_sample() of that tree on the RSS path
 * (no budget) and one on the PSS path (a budget the RSS sum does not prove
 * safe) per round, interleaved. Prints "tree_rss median_ns", "tree_pss
 * median_ns", the figures of the last sample and the interval
 * mg_next_poll_ms gives for a PSS sample of the median cost once the 100 ms
 * burst of sampling work is spent (10x that cost: where a tree that stays
 * above its budget's warn line settles).
 */
#include "memguard.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
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

/* The tree: returns the parent's pid once every member is up, or -1. The
 * parent's group is killed by the caller. */
static pid_t start_tree(int nprocs, size_t mib)
{
    int ready[2];
    if (pipe(ready) != 0) return -1;
    pid_t parent = fork();
    if (parent == 0) {
        setpgid(0, 0);
        alarm(600);
        close(ready[0]);
        size_t len = mib << 20;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) _exit(1);
        memset(m, 1, len);
        for (int i = 1; i < nprocs; i++) {
            pid_t k = fork();
            if (k < 0) _exit(1);
            if (k == 0) {
                close(ready[1]);
                for (;;) pause();
            }
        }
        char c = 'r';
        if (write(ready[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    close(ready[1]);
    char c;
    bool up = parent > 0 && read(ready[0], &c, 1) == 1;
    close(ready[0]);
    if (parent > 0 && !up) {
        kill(-parent, SIGKILL);
        waitpid(parent, NULL, 0);
    }
    return up ? parent : -1;
}

static int bench_tree(int nprocs, size_t mib, int rounds)
{
    pid_t parent = start_tree(nprocs, mib);
    if (parent < 0) {
        fprintf(stderr, "bench_sample: cannot start the tree\n");
        return 1;
    }
    /* Budget 0: the RSS path. A budget of 1 MiB: the RSS sum never proves
     * it safe, so every sample reads PSS. */
    mg_config rss_cfg = {.no_gpu = true, .skip_sources = MG_SKIP_CGROUP | MG_SKIP_PSI,
                         .pid = parent};
    mg_config pss_cfg = rss_cfg;
    pss_cfg.ram_budget_bytes = 1u << 20;
    int err;
    mg_ctx *rss = mg_create(&rss_cfg, &err), *pss = mg_create(&pss_cfg, &err);
    int rc = 1;
    if (!rss || !pss) {
        fprintf(stderr, "bench_sample: %s\n", mg_strerror(err));
        goto out;
    }
    double t_rss[100], t_pss[100];
    mg_snapshot a, b;
    mg_sample(rss, &a); /* discovery, outside the timing */
    mg_sample(pss, &b);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        mg_sample(rss, &a);
        double t1 = now_ns();
        mg_sample(pss, &b);
        double t2 = now_ns();
        t_rss[r] = t1 - t0;
        t_pss[r] = t2 - t1;
    }
    printf("tree_rss %.0f\ntree_pss %.0f\n", median(t_rss, rounds), median(t_pss, rounds));
    printf("tree_nprocs %u\ntree_rss_mib %.1f\ntree_pss_mib %.1f\n", b.tree.nprocs,
           (double)b.tree.rss_bytes / 1048576.0, (double)b.tree.pss_bytes / 1048576.0);
    b.sample_us = (uint64_t)(median(t_pss, rounds) / 1e3);
    b.sample_backlog_us = 100000; /* the burst spent (memguard.h, sample_backlog_us) */
    printf("tree_next_poll_ms %u\n", mg_next_poll_ms(mg_ctx_config(pss), &b));
    rc = b.tree.pss_known && !a.tree.pss_known ? 0 : 1;
out:
    mg_destroy(rss);
    mg_destroy(pss);
    kill(-parent, SIGKILL);
    waitpid(parent, NULL, 0);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "tree") == 0) {
        int nprocs = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
        long mib = argc > 3 ? strtol(argv[3], NULL, 10) : 1024;
        int rounds = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 15;
        if (nprocs < 1 || nprocs > 256 || mib < 1 || rounds < 1 || rounds > 100) {
            fprintf(stderr, "usage: bench_sample tree NPROCS<=256 MIB [ROUNDS<=100]\n");
            return 2;
        }
        return bench_tree(nprocs, (size_t)mib, rounds);
    }
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
