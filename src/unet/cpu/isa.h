/* SPDX-License-Identifier: MIT */
/*
 * isa.h: which x86 vector extensions this CPU has, asked once per process
 * (cpu/isa.c). Every kernel that has an AVX2 or AVX-512 path picks it
 * through these, so there is one meaning of "AVX2 here" for every op. It
 * does not read UNET_KERNELS (the convolution dispatch does) and says
 * nothing about what the compiler targets.
 */
#ifndef UNET_ISA_H
#define UNET_ISA_H

/* AVX2 alone (the BN and pooling kernels use no FMA). */
int unet_isa_avx2(void);
/* AVX2 and FMA (the convolution and Adam kernels). */
int unet_isa_avx2_fma(void);
/* AVX-512 F and VL, and FMA (the AVX-512 convolution kernels). */
int unet_isa_avx512(void);

#endif /* UNET_ISA_H */
