/* SPDX-License-Identifier: MIT */
/*
 * errf.h: one line of error text into a buffer the caller owns (the
 * trainer's err/errlen convention). A NULL or empty buffer takes nothing.
 * Also the printf-format attribute every formatting function of the
 * trainer declares itself with.
 */
#ifndef UNET_ERRF_H
#define UNET_ERRF_H

#include <stddef.h>

/* printf-style checking for the trainer's formatting functions. On
 * mingw-w64 "printf" means msvcrt's dialect (no %zu); the build uses
 * mingw's own printf family (__USE_MINGW_ANSI_STDIO), which is GNU's. */
#ifdef __MINGW32__
#define UNET_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#else
#define UNET_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif

void unet_errf(char *err, size_t errlen, const char *fmt, ...) UNET_PRINTF(3, 4);

#endif /* UNET_ERRF_H */
