/* SPDX-License-Identifier: MIT */
/*
 * mem.h: the CPU backend's memory section (backend.h's alloc, free, zero
 * and discard), the one part of the backend that differs by system:
 * posix/mem.c (aligned_alloc, madvise) or win/mem.c (VirtualAlloc,
 * decommit), picked by the build. backend_cpu.c puts them in its table.
 *
 * Why Windows differs: its out-of-memory line is the commit charge, not
 * resident memory. Memory handed back with MADV_DONTNEED's equivalents
 * (MEM_RESET, DiscardVirtualMemory) stays committed, so the emergency stop
 * would give nothing back that lets another allocation succeed; only a
 * decommit does, and a decommitted page faults when touched. So on Windows
 * discard decommits and zero commits again before it writes: the model's
 * next use of discarded bytes is always a zero() (backend.h).
 *
 * Not here: copies (memcpy in backend_cpu.c), the layout, the kernels.
 */
#ifndef UNET_CPU_MEM_H
#define UNET_CPU_MEM_H

#include <stddef.h>

/* 64-byte aligned memory of `bytes` (rounded up to 64), contents
 * undefined; NULL when there is not enough. */
void *cpu_mem_alloc(size_t bytes);
/* Gives back what cpu_mem_alloc gave (the same size); NULL is ignored. */
void cpu_mem_free(void *p, size_t bytes);
/* Zeroes bytes at p (memory of cpu_mem_alloc), after a discard too. */
void cpu_mem_zero(void *p, size_t bytes);
/* The whole pages inside [p, p + bytes) go back to the system at once
 * (POSIX: MADV_DONTNEED; Windows: decommitted, and the commit charge falls
 * with them). Their contents are gone; zero() them before any other use. */
void cpu_mem_discard(void *p, size_t bytes);

#endif /* UNET_CPU_MEM_H */
