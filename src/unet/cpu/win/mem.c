/* SPDX-License-Identifier: MIT */
/*
 * win/mem.c: mem.h on Windows. The memory is VirtualAlloc'd (reserved and
 * committed, page-aligned, so 64-byte aligned too), discard decommits the
 * whole pages inside the range (VirtualFree MEM_DECOMMIT: the commit
 * charge falls at once, which is what lets the next allocation, of this
 * process or another, succeed), and zero commits its range again before
 * writing (VirtualAlloc MEM_COMMIT on pages already committed changes
 * nothing; fresh pages come zeroed). Should that commit fail (no commit
 * left), the memset faults rather than writing into memory that is not
 * there: zero() follows a discard only when a run goes on after an
 * emergency stop, which unet-train never does.
 */
#include "mem.h"

#include <stdint.h>
#include <string.h>

#include <windows.h>

void *cpu_mem_alloc(size_t bytes)
{
    return VirtualAlloc(NULL, bytes ? bytes : 1, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void cpu_mem_free(void *p, size_t bytes)
{
    (void)bytes;
    if (p) VirtualFree(p, 0, MEM_RELEASE);
}

void cpu_mem_zero(void *p, size_t bytes)
{
    if (!bytes) return;
    VirtualAlloc(p, bytes, MEM_COMMIT, PAGE_READWRITE);
    memset(p, 0, bytes);
}

void cpu_mem_discard(void *p, size_t bytes)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    const uintptr_t page = si.dwPageSize;
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) VirtualFree((void *)lo, hi - lo, MEM_DECOMMIT);
}
