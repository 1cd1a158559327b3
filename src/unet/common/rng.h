/* SPDX-License-Identifier: MIT */
/*
 * rng.h: the trainer's one pseudo-random generator, xoshiro256** 1.0
 * (Blackman and Vigna, 2018), seeded through splitmix64. Its whole state is
 * four uint64 in a public struct, so a checkpoint can store it as plain
 * integers and a resumed run continues the exact same stream.
 *
 * It does not draw from the OS, keep any global state or lock: every caller
 * owns its own unet_rng. It is not for cryptography.
 *
 * Why xoshiro256**: 2^256-1 period, passes BigCrush, ~1 ns per draw, and the
 * reference implementation is 20 lines (no chance of a silent divergence
 * from a library version). splitmix64 turns a 64-bit seed into a well-mixed
 * state that is never all zero in practice (the one state xoshiro must avoid;
 * unet_rng_set_state() refuses it).
 */
#ifndef UNET_RNG_H
#define UNET_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct unet_rng {
    uint64_t s[4]; /* the full state; never all zero */
} unet_rng;

/* One splitmix64 step: advances *x by the golden-ratio increment and returns
 * the mixed value. Also a good stateless hash of a counter. */
uint64_t unet_splitmix64(uint64_t *x);

/* Seeds the state from one 64-bit seed (four splitmix64 outputs). Any seed,
 * 0 included, is fine. */
void unet_rng_seed(unet_rng *r, uint64_t seed);

/* Copies the four state words out / in. set_state returns 0, or -1 (state
 * left unchanged) when all four words are zero. */
void unet_rng_get_state(const unet_rng *r, uint64_t out[4]);
int unet_rng_set_state(unet_rng *r, const uint64_t in[4]);

/* The next 64 random bits. */
uint64_t unet_rng_u64(unet_rng *r);

/* Uniform integer in [0, n), without modulo bias (rejection); 0 when n is 0. */
uint64_t unet_rng_below(unet_rng *r, uint64_t n);

/* Uniform double in [0, 1) from the top 53 bits; float in [0, 1) from the
 * top 24 bits. */
double unet_rng_uniform(unet_rng *r);
float unet_rng_uniformf(unet_rng *r);

/* Standard normal N(0, 1) by Box-Muller. It draws two uniforms per call and
 * keeps no spare value, so the state stays exactly the four words. */
double unet_rng_normal(unet_rng *r);

/* Fisher-Yates shuffle of a[0..n) (uniform over all permutations). */
void unet_rng_shuffle_int(unet_rng *r, int *a, size_t n);

#endif /* UNET_RNG_H */
