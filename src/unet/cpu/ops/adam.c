/* SPDX-License-Identifier: MIT */
/*
 * adam.c: torch 1.13 Adam over flat arrays (formulas and the reasons for
 * each rounding in adam.h). The update streams 4 arrays in and 3 out,
 * 28 bytes per parameter, so it is memory-bound; the AVX2+FMA build mostly
 * matters because the portable build would call fmaf() per element.
 */
#include "isa.h"
#include "adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
ADAM_AVX2 static void adam_chunk_fma(float *p, const float *g, float *m, float *v, size_t n,
                                     adam_scalars k)
{
    adam_body(p, g, m, v, n, k);
}

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
