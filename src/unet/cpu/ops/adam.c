/* SPDX-License-Identifier: MIT */
/*
 * adam.c: torch 1.13 Adam over flat arrays (formulas and the reasons for
 * each rounding in adam.h). The update streams 4 arrays in and 3 out,
 * 28 bytes per parameter; the AVX2+FMA build runs 8 at a time in
 * intrinsics (adam_chunk_fma), the portable build the scalar loop.
 */
#include "isa.h"
#include "adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define ADAM_AVX2 __attribute__((target("avx2,fma")))
#else
#define ADAM_AVX2
#endif

/* The kernels Adam has besides its reference (isa.h): the chunk loop
 * below built for the baseline ISA and for AVX2+FMA. */
#define ADAM_HAS (UNET_KERNEL_BIT(UNET_KERNEL_BASE) | UNET_KERNEL_BIT(UNET_KERNEL_AVX2))

const char *adam_kernels_name(void)
{
    return unet_kernel_name(unet_kernel_pick(ADAM_HAS));
}

/* The per-element update; the loop is the same in both builds. */
static inline __attribute__((always_inline)) void
adam_body(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
          size_t n, adam_scalars k)
{
    for (size_t i = 0; i < n; i++) {
        float gi = k.use_wd ? fmaf(p[i], k.weight_decay, g[i]) : g[i];
        float mi = fmaf(gi, k.one_minus_beta1, m[i] * k.beta1);
        float vi = fmaf(k.one_minus_beta2 * gi, gi, v[i] * k.beta2);
        float d = sqrtf(vi) / k.bc2_sqrt + k.eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] + (k.neg_step_size * mi) / d;
    }
}

static void adam_chunk_base(float *p, const float *g, float *m, float *v, size_t n,
                            adam_scalars k)
{
    adam_body(p, g, m, v, n, k);
}
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* adam_body 8 lanes at a time, in intrinsics: GCC keeps the sqrtf of
 * adam_body scalar (sqrtf may set errno), and the scalar loop took 3.1 ns
 * a parameter on one thread, 3.5 ms of a 128 px b4 training step on two
 * (bench/omp_regions.c). Each lane's operations are adam_body's, each
 * rounded once in the same order (FMA, IEEE sqrt and division), so the
 * results are bitwise the same. */
ADAM_AVX2 static void adam_chunk_fma(float *p, const float *g, float *m, float *v, size_t n,
                                     adam_scalars k)
{
    const __m256 wd = _mm256_set1_ps(k.weight_decay), b1 = _mm256_set1_ps(k.beta1);
    const __m256 omb1 = _mm256_set1_ps(k.one_minus_beta1), b2 = _mm256_set1_ps(k.beta2);
    const __m256 omb2 = _mm256_set1_ps(k.one_minus_beta2), bc2 = _mm256_set1_ps(k.bc2_sqrt);
    const __m256 eps = _mm256_set1_ps(k.eps), nss = _mm256_set1_ps(k.neg_step_size);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 pi = _mm256_loadu_ps(p + i);
        __m256 gi = _mm256_loadu_ps(g + i);
        if (k.use_wd)
            gi = _mm256_fmadd_ps(pi, wd, gi);
        const __m256 mi = _mm256_fmadd_ps(gi, omb1, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
        const __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(omb2, gi), gi,
                                          _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
        const __m256 d = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(nss, mi), d)));
    }
    adam_body(p + i, g + i, m + i, v + i, n - i, k);
}
#else
static void adam_chunk_fma(float *p, const float *g, float *m, float *v, size_t n,
                           adam_scalars k)
{
    adam_body(p, g, m, v, n, k);
}
#endif

#define ADAM_CHUNK 16384 /* 64 KB per array per task */

void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                 float *restrict v, size_t n, const adam_scalars *k)
{
    unet_kernel kern = unet_kernel_pick(ADAM_HAS);
    if (kern == UNET_KERNEL_REF) {
        adam_update_ref(p, g, m, v, n, k);
        return;
    }
    adam_scalars kk = *k;
    int fma = kern == UNET_KERNEL_AVX2;
    long chunks = (long)((n + ADAM_CHUNK - 1) / ADAM_CHUNK);
    /* One chunk (a short run of tensors: the output layer's, a small
     * conv with its BN) runs here: a parallel region would cost more than
     * the update. */
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long c = 0; c < chunks; c++) {
        size_t lo = (size_t)c * ADAM_CHUNK, len = n - lo < ADAM_CHUNK ? n - lo : ADAM_CHUNK;
        if (fma)
            adam_chunk_fma(p + lo, g + lo, m + lo, v + lo, len, kk);
        else
            adam_chunk_base(p + lo, g + lo, m + lo, v + lo, len, kk);
    }
}

void adam_update_ref(float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, size_t n, const adam_scalars *k)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (k->use_wd)
            gi = fmaf(p[i], k->weight_decay, gi);
        m[i] = fmaf(gi, k->one_minus_beta1, m[i] * k->beta1);
        v[i] = fmaf(k->one_minus_beta2 * gi, gi, v[i] * k->beta2);
        float denom = sqrtf(v[i]) / k->bc2_sqrt + k->eps;
        p[i] += k->neg_step_size * m[i] / denom;
    }
}

void adam_step(const adam_hparams *h, int64_t *step, float *restrict p,
               const float *restrict g, float *restrict m, float *restrict v, size_t n)
{
    ++*step;
    adam_scalars k = adam_scalars_for(h, *step);
    adam_update(p, g, m, v, n, &k);
}
