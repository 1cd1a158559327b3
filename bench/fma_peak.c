/* SPDX-License-Identifier: MIT */
/*
 * fma_peak.c: the arithmetic peak this CPU reaches from plain C, the
 * denominator of bench/train_vs_torch.py's "fraction of the FMA peak".
 * Independent multiply-add chains that never touch memory, timed on one
 * thread and on every OpenMP thread at once (each thread runs the same
 * loop; the region's wall time counts), best of a few tries, for:
 *   avx512  24 zmm chains of vfmadd231ps        (32 flop per instruction)
 *   avx2    12 ymm chains of vfmadd231ps        (16 flop per instruction)
 *   bf16    24 zmm chains of vdpbf16ps          (64 flop per instruction:
 *           16 lanes x 2 bf16 products, added in fp32)
 * A flavour the CPU lacks prints "unsupported". Output, one line each:
 *   peak <avx512|avx2|bf16> <threads> <GFLOPS>
 * Usage: fma_peak [SECONDS_PER_TRY (0.2)] [TRIES (5)]; OMP_NUM_THREADS sets
 * the all-thread count. It measures registers only: no memory, no
 * frequency control (whatever clock the load and the CPU give it; on a
 * shared machine the best try is the least disturbed one).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_time.h"

/* Flop of one call of a loop below: iterations x chains x flop each. */
#define ITERS 4096L

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define CHAINS512 24
#define CHAINS256 12

/* Each function runs ITERS rounds over its chains and returns a value that
 * depends on all of them, so nothing is optimised away. */
__attribute__((target("avx512f,fma"), noinline)) static float loop512(float seed)
{
    __m512 acc[CHAINS512];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 24
    for (int c = 0; c < CHAINS512; c++)
        acc[c] = _mm512_set1_ps(seed + (float)c);
    for (long i = 0; i < ITERS; i++)
#pragma GCC unroll 24
        for (int c = 0; c < CHAINS512; c++)
            acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __m512 s = acc[0];
#pragma GCC unroll 24
    for (int c = 1; c < CHAINS512; c++)
        s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float loop256(float seed)
{
    __m256 acc[CHAINS256];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 24
    for (int c = 0; c < CHAINS256; c++)
        acc[c] = _mm256_set1_ps(seed + (float)c);
    for (long i = 0; i < ITERS; i++)
#pragma GCC unroll 24
        for (int c = 0; c < CHAINS256; c++)
            acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    __m256 s = acc[0];
#pragma GCC unroll 24
    for (int c = 1; c < CHAINS256; c++)
        s = _mm256_add_ps(s, acc[c]);
    float l[8];
    _mm256_storeu_ps(l, s);
    return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

__attribute__((target("avx512f,avx512bf16"), noinline)) static float loopbf16(float seed)
{
    __m512 acc[CHAINS512];
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
#pragma GCC unroll 24
    for (int c = 0; c < CHAINS512; c++)
        acc[c] = _mm512_set1_ps(seed + (float)c);
    for (long i = 0; i < ITERS; i++)
#pragma GCC unroll 24
        for (int c = 0; c < CHAINS512; c++)
            acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    __m512 s = acc[0];
#pragma GCC unroll 24
    for (int c = 1; c < CHAINS512; c++)
        s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

static int cpu_has(const char *what)
{
    __builtin_cpu_init();
    if (what[0] == 'a' && what[3] == '5') /* avx512 */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    if (what[0] == 'a') /* avx2 */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}
#endif

typedef struct flavour {
    const char *name;
    float (*loop)(float);
    double flop_per_call;
} flavour;

static volatile float sink;

/* Best GFLOPS over `tries` tries of about `secs` each on `threads` threads. */
static double measure(const flavour *f, int threads, double secs, int tries)
{
    /* Calls per try, from one timed call. */
    double t0 = now_s();
    sink = f->loop(1.0f);
    double one = now_s() - t0;
    long calls = (long)(secs / (one > 1e-7 ? one : 1e-7));
    if (calls < 1)
        calls = 1;
    double best = 0.0;
    for (int k = 0; k < tries; k++) {
        double t = now_s();
#pragma omp parallel num_threads(threads)
        {
            float s = 0.0f;
            for (long c = 0; c < calls; c++)
                s += f->loop((float)c);
            if (s == 12345.0f)
                sink = s;
        }
        double g = f->flop_per_call * (double)calls * threads / (now_s() - t) * 1e-9;
        if (g > best)
            best = g;
    }
    return best;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.2;
    int tries = argc > 2 ? atoi(argv[2]) : 5;
    if (secs <= 0.0 || secs > 10.0 || tries < 1 || tries > 100) {
        fprintf(stderr, "usage: fma_peak [SECONDS_PER_TRY 0..10] [TRIES 1..100]\n");
        return 2;
    }
    const int all = omp_get_max_threads();
#if defined(__x86_64__) || defined(__i386__)
    const flavour fl[] = {
        {"avx512", loop512, (double)ITERS * CHAINS512 * 32.0},
        {"avx2", loop256, (double)ITERS * CHAINS256 * 16.0},
        {"bf16", loopbf16, (double)ITERS * CHAINS512 * 64.0},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        if (!cpu_has(fl[i].name)) {
            printf("peak %s unsupported\n", fl[i].name);
            continue;
        }
        printf("peak %s 1 %.1f\n", fl[i].name, measure(&fl[i], 1, secs, tries));
        if (all > 1)
            printf("peak %s %d %.1f\n", fl[i].name, all, measure(&fl[i], all, secs, tries));
        fflush(stdout);
    }
#else
    (void)all;
    (void)measure;
    printf("peak avx512 unsupported\npeak avx2 unsupported\npeak bf16 unsupported\n");
#endif
    return 0;
}
