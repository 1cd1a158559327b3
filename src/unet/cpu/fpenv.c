/* SPDX-License-Identifier: MIT */
/*
 * fpenv.c: FTZ/DAZ in MXCSR for the calling thread and the OpenMP pool
 * (see fpenv.h). MXCSR bit 15 is FTZ, bit 6 is DAZ (DAZ exists on every
 * SSE2 x86-64 CPU).
 */
#include "fpenv.h"

#include <omp.h>

#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
#include <xmmintrin.h>

#define FPENV_BITS 0x8040u /* FTZ | DAZ */

static void fpenv_set_here(void) { _mm_setcsr(_mm_getcsr() | FPENV_BITS); }

int fpenv_flush_denormals(void)
{
    int n = 0;
    fpenv_set_here();
#pragma omp parallel reduction(+ : n)
    {
        fpenv_set_here();
        n += 1;
    }
    return n;
}

int fpenv_denormals_flushed(void) { return (_mm_getcsr() & FPENV_BITS) == FPENV_BITS; }

#else

int fpenv_flush_denormals(void) { return 0; }
int fpenv_denormals_flushed(void) { return 0; }

#endif
