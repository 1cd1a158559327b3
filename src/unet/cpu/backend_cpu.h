/* SPDX-License-Identifier: MIT */
/*
 * backend_cpu.h: the CPU backend, the one table (backend.h) unet-train
 * runs on today: the arena in host memory (host_visible), AVX-512, AVX2 or
 * reference kernels picked at run time (conv/, ops/), OpenMP threads.
 * The application picks it and hands it to the model; nothing below the
 * application names it.
 *
 * Not here: the contract it keeps (backend.h), its kernels (conv/, ops/).
 */
#ifndef UNET_BACKEND_CPU_H
#define UNET_BACKEND_CPU_H

#include "backend.h"

const unet_backend *unet_backend_cpu(void);

/* The same with bf16 convolutions (--precision bf16; conv.h's *_bf16):
 * everything else, tensors and parameters included, stays float32. Check
 * unet_bf16_check (isa.h) before running on it: without AVX512_BF16 its
 * convolutions fall back to the slow reference. */
const unet_backend *unet_backend_cpu_bf16(void);

#endif /* UNET_BACKEND_CPU_H */
