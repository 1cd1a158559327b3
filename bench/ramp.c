/* SPDX-License-Identifier: MIT */
/*
 * ramp.c: the trainer of the reaction benchmark. It allocates (and
 * touches) memory at a steady rate in MiB/s, chunk by chunk, checks the
 * memguard stop request between chunks like a trainer between batches, and
 * on the request "saves" for SAVE_MS (default 0) while its memory goes on
 * growing at the same rate (the DataLoader workers of a real run do not
 * pause for the save), then writes what it had reached (allocated MiB,
 * peak RSS) to RESULT and exits 75. It gives up after 30 s.
 *   ramp RATE_MIB_S CHUNK_MIB RESULT [SAVE_MS]
 */
#include "memguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0) v = strtol(line + k + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: ramp RATE_MIB_S CHUNK_MIB RESULT [SAVE_MS]\n");
        return 2;
    }
    double rate = atof(argv[1]);
    long chunk = atol(argv[2]);
    double save_s = argc == 5 ? atof(argv[4]) / 1000.0 : 0.0;
    if (rate <= 0 || chunk <= 0 || save_s < 0) return 2;
    mg_stop *stop = mg_stop_open(0, NULL);
    if (!stop) return 2;
    alarm(30);
    double t0 = now_s();
    long allocated = 0;
    double saved_at = -1; /* when the save ends, once requested */
    for (;;) {
        if (saved_at < 0 && mg_stop_requested(stop)) saved_at = now_s() + save_s;
        if (saved_at >= 0 && now_s() >= saved_at) break;
        double due = rate * (now_s() - t0);
        if ((double)allocated >= due) {
            struct timespec ts = {0, 200000}; /* 0.2 ms */
            nanosleep(&ts, NULL);
            continue;
        }
        size_t n = (size_t)chunk << 20;
        volatile char *p = malloc(n);
        if (!p) return 3;
        for (size_t i = 0; i < n; i += 4096) p[i] = 1;
        allocated += chunk;
    }
    double secs = now_s() - t0;
    FILE *f = fopen(argv[3], "w");
    if (!f) return 4;
    fprintf(f, "allocated_mib=%ld hwm_kib=%ld rss_kib=%ld seconds=%.3f achieved_mib_s=%.0f\n",
            allocated, status_kb("VmHWM:"), status_kb("VmRSS:"), secs,
            (double)allocated / secs);
    fclose(f);
    return MG_EXIT_MEMSTOP;
}
