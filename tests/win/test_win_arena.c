/* SPDX-License-Identifier: MIT */
/*
 * test_win_arena.c: the CPU backend's memory on Windows (cpu/win/mem.c),
 * through the backend table the model uses. What the emergency stop
 * relies on: discard gives the commit charge back (Windows fails
 * allocations when commit runs out, not when RAM does), and zero makes the
 * discarded bytes usable again. The commit is this process's
 * PagefileUsage (GetProcessMemoryInfo; Microsoft documents PrivateUsage as
 * the same value, and Wine reports PrivateUsage wrongly: research notes).
 * Real commit exhaustion cannot be shown under Wine (it sits on Linux
 * overcommit); that needs real Windows.
 */
#include "mg_test.h"

#include "backend_cpu.h"

#include <windows.h>
#include <psapi.h>

#define MIB (1024.0 * 1024.0)
#define ARENA ((size_t)96 << 20)

static double commit_mib(void)
{
    PROCESS_MEMORY_COUNTERS pmc;
    memset(&pmc, 0, sizeof pmc);
    pmc.cb = sizeof pmc;
    if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return -1;
    return (double)pmc.PagefileUsage / MIB;
}

static void test_discard_returns_commit(void)
{
    const unet_backend *be = unet_backend_cpu();
    double c0 = commit_mib();
    unsigned char *a = be->alloc(ARENA);
    CHECK(a != NULL);
    if (!a) return;
    CHECK_INT((int)((uintptr_t)a % 64), 0);
    be->zero(a, ARENA);
    double c1 = commit_mib();
    /* The middle 80 MiB go, 8 MiB at each end stay (and keep their bytes). */
    a[0] = 7;
    a[ARENA - 1] = 9;
    be->discard(a + (8 << 20) + 100, ARENA - (16 << 20) - 200);
    double c2 = commit_mib();
    printf("# commit: %.1f MiB before, %.1f with the arena, %.1f after discard\n", c0, c1, c2);
    CHECK(c1 - c0 >= 95.0);
    CHECK(c1 - c2 >= 79.0); /* 80 MiB less 2 partial pages */
    CHECK_INT(a[0], 7);
    CHECK_INT(a[ARENA - 1], 9);
    /* zero() makes them usable again, zeroed, and commits them again */
    be->zero(a + (4 << 20), ARENA - (8 << 20));
    double c3 = commit_mib();
    size_t nonzero = 0;
    for (size_t i = 4 << 20; i < ARENA - (4 << 20); i += 4096) nonzero += a[i] != 0;
    a[ARENA / 2] = 1; /* writable: a decommitted page would fault here */
    CHECK_INT((int)nonzero, 0);
    CHECK(c3 - c2 >= 79.0);
    printf("# commit after zero: %.1f MiB\n", c3);
    be->free(a, ARENA);
    CHECK(commit_mib() - c0 < 1.0);
}

int main(void)
{
    MG_RUN(test_discard_returns_commit);
    return mg_test_exit();
}
