/* SPDX-License-Identifier: MIT */
/*
 * mingw.h: force-included (-include) into every file of the Windows cross
 * build (CMakeLists.txt, WIN32), never into the Linux build. It replaces
 * mingw-w64's classification macros (isnan, isinf, isfinite, fpclassify),
 * whose type dispatch converts a double to float in the branch not taken
 * and so trips -Wfloat-conversion under -Werror, with GCC's type-generic
 * builtins, which give the same answers (C11 7.12.3). It declares nothing
 * of memguard's and changes no behaviour.
 */
#ifndef MG_COMPAT_MINGW_H
#define MG_COMPAT_MINGW_H

#include <math.h>

#undef fpclassify
#define fpclassify(x) \
    __builtin_fpclassify(FP_NAN, FP_INFINITE, FP_NORMAL, FP_SUBNORMAL, FP_ZERO, x)
#undef isnan
#define isnan(x) __builtin_isnan(x)
#undef isinf
#define isinf(x) __builtin_isinf(x)
#undef isfinite
#define isfinite(x) __builtin_isfinite(x)

#endif /* MG_COMPAT_MINGW_H */
