/* SPDX-License-Identifier: MIT */
/*
 * posix/mem.c: mem.h on POSIX systems: aligned_alloc and free, memset,
 * and madvise(MADV_DONTNEED), after which the pages read as zeros when
 * touched again (Linux), so zero() needs nothing more than memset. The
 * arena asks for transparent huge pages: the kernels stride across
 * channel planes megabytes apart, and with 4 KiB pages the TLB covers a
 * fraction of a layer (256 px b4: 12.4 -> 12.7 images/s, 128 px b8
 * 50.4 -> 50.6, medians of 6-8 interleaved runs of unet-train).
 */
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CPU_ALIGN 64

/* Arenas of at least this many bytes start on a 2 MiB boundary and ask
 * for transparent huge pages (MADV_HUGEPAGE: what Linux needs where THP
 * is "madvise", as on this machine; nothing changes where it is "always"
 * or "never"). Advice only: a refusal changes nothing. */
#define CPU_HUGE ((size_t)2 << 20)

void *cpu_mem_alloc(size_t bytes)
{
    if (bytes < CPU_HUGE)
        return aligned_alloc(CPU_ALIGN, (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN);
    void *p = aligned_alloc(CPU_HUGE, (bytes + CPU_HUGE - 1) / CPU_HUGE * CPU_HUGE);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, (bytes + CPU_HUGE - 1) / CPU_HUGE * CPU_HUGE, MADV_HUGEPAGE);
#endif
    return p;
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
