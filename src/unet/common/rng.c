/* SPDX-License-Identifier: MIT */
/*
 * rng.c: xoshiro256** and splitmix64 (see rng.h). Straight from the public
 * domain reference code at prng.di.unimi.it; derived draws (bounded
 * integers, floats, normals, shuffles) are defined here once so every part
 * of the trainer turns the same bits into the same numbers.
 */
#include "rng.h"

#include <math.h>

uint64_t unet_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void unet_rng_seed(unet_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = unet_splitmix64(&x);
    /* splitmix64 is a bijection of its counter, so four zero outputs in a
     * row cannot happen; keep the guard anyway for the invariant's sake. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

void unet_rng_get_state(const unet_rng *r, uint64_t out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = r->s[i];
}

int unet_rng_set_state(unet_rng *r, const uint64_t in[4])
{
    if (!(in[0] | in[1] | in[2] | in[3]))
        return -1;
    for (int i = 0; i < 4; i++)
        r->s[i] = in[i];
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t unet_rng_u64(unet_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t unet_rng_below(unet_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the lowest (2^64 mod n) values so every residue is equally
     * likely; at most half the draws are rejected, usually none. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = unet_rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

double unet_rng_uniform(unet_rng *r)
{
    return (double)(unet_rng_u64(r) >> 11) * 0x1.0p-53;
}

float unet_rng_uniformf(unet_rng *r)
{
    return (float)(unet_rng_u64(r) >> 40) * 0x1.0p-24f;
}

double unet_rng_normal(unet_rng *r)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    double u1 = 1.0 - unet_rng_uniform(r);
    double u2 = unet_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void unet_rng_shuffle_int(unet_rng *r, int *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)unet_rng_below(r, (uint64_t)i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
