/* SPDX-License-Identifier: MIT */
/*
 * bf16.h: the one rounding rule of --precision bf16 (the *_bf16
 * convolutions of conv/conv.h): float32 to bfloat16 (the upper 16 bits
 * of a float32) as VCVTNE2PS2BF16 does it: round to nearest, ties to
 * even; a subnormal input becomes a zero of its sign (the instruction
 * treats subnormals as zero and ignores MXCSR); NaN stays a quiet NaN;
 * a value that rounds past the largest finite bfloat16 becomes infinity.
 * The weight packing of the bf16 kernel and the bf16 reference use it,
 * so they round every operand exactly as the kernel's own conversion of
 * activations does.
 *
 * Not here: the kernels (conv/avx512bf16.c), and any bf16 storage: the
 * trainer keeps every tensor in float32 and rounds only what it feeds a
 * product.
 */
#ifndef UNET_BF16_H
#define UNET_BF16_H

#include <stdint.h>
#include <string.h>

/* The bfloat16 bits of f. */
static inline uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) /* zero or subnormal: a signed zero */
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* f rounded to bfloat16, as a float32 (exact: bfloat16 is its top half). */
static inline float bf16_round(float f)
{
    uint32_t u = (uint32_t)bf16_bits(f) << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

#endif /* UNET_BF16_H */
