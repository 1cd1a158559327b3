/* SPDX-License-Identifier: MIT */
/*
 * posix/mem.c: mem.h on POSIX systems: aligned_alloc and free, memset,
 * and madvise(MADV_DONTNEED), after which the pages read as zeros when
 * touched again (Linux), so zero() needs nothing more than memset.
 */
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CPU_ALIGN 64

void *cpu_mem_alloc(size_t bytes)
{
    return aligned_alloc(CPU_ALIGN, (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN);
}

void cpu_mem_free(void *p, size_t bytes)
{
    (void)bytes;
    free(p);
}

void cpu_mem_zero(void *p, size_t bytes)
{
    memset(p, 0, bytes);
}

void cpu_mem_discard(void *p, size_t bytes)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
