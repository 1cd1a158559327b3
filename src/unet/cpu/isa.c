/* SPDX-License-Identifier: MIT */
/*
 * isa.c: the CPU feature tests of the trainer's kernels and the one
 * reading of UNET_KERNELS (isa.h), for every op, and of UNET_WINOGRAD.
 * The features come from GCC's __builtin_cpu_supports, which reads CPUID
 * once. Off x86 every answer is "no", and the reference and base kernels
 * run.
 *
 * Not here: the choice between an op's kernels beyond "the highest one
 * allowed" (each op dispatches on unet_kernel_pick's answer), and
 * printing: a bad UNET_KERNELS or UNET_WINOGRAD is a message for the
 * caller to show.
 */
#include "isa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
static int has(int avx2, int fma, int avx512, int bf16)
{
    __builtin_cpu_init();
    return (!avx2 || __builtin_cpu_supports("avx2")) &&
           (!fma || __builtin_cpu_supports("fma")) &&
           (!avx512 || (__builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512vl"))) &&
           (!bf16 || (__builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512bf16")));
}
#else
static int has(int avx2, int fma, int avx512, int bf16)
{
    (void)avx2;
    (void)fma;
    (void)avx512;
    (void)bf16;
    return 0;
}
#endif

int unet_isa_avx2_fma(void) { return has(1, 1, 0, 0); }
int unet_isa_avx512(void) { return has(0, 1, 1, 0); }
int unet_isa_avx512_bf16(void) { return has(0, 1, 1, 1); }

static const char *const names[] = {"ref", "base", "avx2", "avx512", "avx512bf16"};

const char *unet_kernel_name(unet_kernel k)
{
    return k <= UNET_KERNEL_AVX512BF16 ? names[k] : "ref";
}

/* The cap UNET_KERNELS sets; *known false for a value it does not name. */
static unet_kernel kernels_cap(int *known)
{
    const char *v = getenv("UNET_KERNELS");
    *known = 1;
    if (!v || !*v || strcmp(v, "avx512bf16") == 0) return UNET_KERNEL_AVX512BF16;
    if (strcmp(v, "avx512") == 0) return UNET_KERNEL_AVX512;
    if (strcmp(v, "avx2") == 0) return UNET_KERNEL_AVX2;
    if (strcmp(v, "ref") == 0) return UNET_KERNEL_REF;
    *known = 0;
    return UNET_KERNEL_AVX512BF16;
}

/* Whether this CPU runs kernel k. */
static int cpu_runs(unet_kernel k)
{
    if (k == UNET_KERNEL_AVX512BF16) return unet_isa_avx512_bf16();
    if (k == UNET_KERNEL_AVX512) return unet_isa_avx512();
    if (k == UNET_KERNEL_AVX2) return unet_isa_avx2_fma();
    return 1;
}

unet_kernel unet_kernel_pick(unsigned has_mask)
{
    int known;
    unet_kernel cap = kernels_cap(&known);
    for (int k = (int)cap; k > UNET_KERNEL_REF; k--)
        if ((has_mask & UNET_KERNEL_BIT(k)) && cpu_runs((unet_kernel)k)) return (unet_kernel)k;
    return UNET_KERNEL_REF;
}

/* A variable's value as a message shows it: at most 40 bytes, anything
 * unprintable as '?', "..." after a cut. */
static void shown(char out[44], const char *v)
{
    size_t n = 0;
    for (; v[n] && n < 40; n++) out[n] = v[n] >= 0x20 && v[n] < 0x7f ? v[n] : '?';
    strcpy(out + n, v[n] ? "..." : "");
}

int unet_kernels_check(char *err, size_t errlen)
{
    int known;
    kernels_cap(&known);
    if (known) return 0;
    char v[44];
    shown(v, getenv("UNET_KERNELS"));
    if (err && errlen)
        snprintf(err, errlen, "UNET_KERNELS '%s': expected ref, avx2, avx512 or avx512bf16 (or "
                 "unset: the best this CPU has)", v);
    return -1;
}

/* 1 for "off", 0 for unset, empty or "on", -1 for anything else. */
static int winograd_env(void)
{
    const char *v = getenv("UNET_WINOGRAD");
    if (!v || !*v || strcmp(v, "on") == 0) return 0;
    return strcmp(v, "off") == 0 ? 1 : -1;
}

int unet_winograd_off(void) { return winograd_env() == 1; }

int unet_winograd_check(char *err, size_t errlen)
{
    if (winograd_env() >= 0) return 0;
    char v[44];
    shown(v, getenv("UNET_WINOGRAD"));
    if (err && errlen)
        snprintf(err, errlen, "UNET_WINOGRAD '%s': expected on or off (or unset: Winograd "
                 "where it is faster)", v);
    return -1;
}

int unet_bf16_check(char *err, size_t errlen)
{
    int known;
    unet_kernel cap = kernels_cap(&known);
    if (cap == UNET_KERNEL_REF ||
        unet_kernel_pick(UNET_KERNEL_BIT(UNET_KERNEL_AVX512BF16)) == UNET_KERNEL_AVX512BF16)
        return 0;
    if (err && errlen) {
        if (!unet_isa_avx512_bf16())
            snprintf(err, errlen, "--precision bf16: this CPU has no AVX512_BF16 (bf16 "
                     "dot products); use --precision fp32 here");
        else
            snprintf(err, errlen, "--precision bf16: UNET_KERNELS=%s caps the kernels below "
                     "avx512bf16; unset it (or set ref, for the slow reference)",
                     unet_kernel_name(cap));
    }
    return -1;
}
