/* SPDX-License-Identifier: MIT */
/*
 * isa.h: which kernel each op of the CPU backend runs, decided in one
 * place (cpu/isa.c) with one meaning of UNET_KERNELS for every op: the
 * x86 vector extensions this CPU has (asked once per process) against the
 * kernels an op has and the cap the environment sets.
 *
 * The kernels, from the plainest up (an op has REF and some of the rest):
 *   ref     the naive reference, written from the definition (every op)
 *   base    the op's vector C compiled for the baseline ISA (SSE2 on
 *           x86-64): BN, pooling, Adam
 *   avx2    needs AVX2 and FMA: the convolutions, BN, pooling, Adam
 *   avx512  needs AVX-512 F and VL, and FMA: the convolutions
 *   avx512bf16  needs AVX-512 F, VL and BW, FMA and AVX512_BF16: the
 *           convolutions of --precision bf16 (conv.h's *_bf16; their
 *           only other kernel is ref)
 * UNET_KERNELS, read at every call (a getenv; no state, nothing to race
 * on): unset, empty or "avx512bf16": no cap; "avx512": nothing above
 * avx512 (so no bf16 kernel: what a CPU without AVX512_BF16 runs);
 * "avx2": nothing above avx2; "ref": the reference for every op. An op
 * runs the highest kernel it has that the CPU runs and the cap allows.
 * Any other value caps nothing; unet_kernels_check names it (unet-train
 * refuses it at start). Whether --precision bf16 may run at all is
 * unet_bf16_check's answer.
 *
 * Not here: the kernels themselves (conv/, ops/) and what the compiler
 * targets (every kernel is built with target attributes for plain x86-64).
 */
#ifndef UNET_ISA_H
#define UNET_ISA_H

#include <stddef.h>

typedef enum unet_kernel {
    UNET_KERNEL_REF,
    UNET_KERNEL_BASE,
    UNET_KERNEL_AVX2,
    UNET_KERNEL_AVX512,
    UNET_KERNEL_AVX512BF16
} unet_kernel;

/* One bit per kernel, for the `has` masks below. */
#define UNET_KERNEL_BIT(k) (1u << (k))

/* The kernel an op runs now, given the kernels it has (a mask of
 * UNET_KERNEL_BIT; UNET_KERNEL_REF is always taken to be there). */
unet_kernel unet_kernel_pick(unsigned has);

/* "ref", "base", "avx2", "avx512" or "avx512bf16". */
const char *unet_kernel_name(unet_kernel k);

/* 0 when UNET_KERNELS is unset, empty, "ref", "avx2", "avx512" or
 * "avx512bf16"; else -1 with one line in err: "UNET_KERNELS 'fast':
 * expected ref, avx2, avx512 or avx512bf16 (or unset: the best this CPU
 * has)". */
int unet_kernels_check(char *err, size_t errlen);

/* UNET_WINOGRAD, read at every call like UNET_KERNELS: "off" runs every
 * conv3x3 on the direct loop; unset, empty or "on" lets the float32
 * kernels run forward and backward-data as Winograd F(2x2, 3x3) where it
 * is faster (conv/wino.c). unet_winograd_off answers 1 for "off" (any
 * other value counts as on); unet_winograd_check is 0 for the four
 * accepted values, else -1 with one line in err: "UNET_WINOGRAD 'x':
 * expected on or off (or unset: Winograd where it is faster)". */
int unet_winograd_off(void);
int unet_winograd_check(char *err, size_t errlen);

/* Whether the bf16 convolutions run here: 0 when they run the avx512bf16
 * kernel, or the reference because UNET_KERNELS=ref asks for it (tests);
 * else -1 with one line in err saying why not: the CPU has no
 * AVX512_BF16, or UNET_KERNELS caps the kernels below it. */
int unet_bf16_check(char *err, size_t errlen);

/* AVX2 and FMA (the avx2 kernels). */
int unet_isa_avx2_fma(void);
/* AVX-512 F and VL, and FMA (the avx512 kernels). */
int unet_isa_avx512(void);
/* That, AVX-512 BW and AVX512_BF16 (the avx512bf16 kernels). */
int unet_isa_avx512_bf16(void);

#endif /* UNET_ISA_H */
