/* SPDX-License-Identifier: MIT */
/*
 * isa.c: the CPU feature tests of the trainer's kernels, one place for all
 * of them (GCC's __builtin_cpu_supports, which reads CPUID once). Off x86
 * every answer is "no", and the reference kernels run. It keeps no state of
 * its own.
 */
#include "isa.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
static int has(int avx2, int fma, int avx512)
{
    __builtin_cpu_init();
    return (!avx2 || __builtin_cpu_supports("avx2")) &&
           (!fma || __builtin_cpu_supports("fma")) &&
           (!avx512 || (__builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512vl")));
}
#else
static int has(int avx2, int fma, int avx512)
{
    (void)avx2;
    (void)fma;
    (void)avx512;
    return 0;
}
#endif

int unet_isa_avx2(void) { return has(1, 0, 0); }
int unet_isa_avx2_fma(void) { return has(1, 1, 0); }
int unet_isa_avx512(void) { return has(0, 1, 1); }
