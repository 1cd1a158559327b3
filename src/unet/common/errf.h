/* SPDX-License-Identifier: MIT */
/*
 * errf.h: one line of error text into a buffer the caller owns (the
 * trainer's err/errlen convention). A NULL or empty buffer takes nothing.
 */
#ifndef UNET_ERRF_H
#define UNET_ERRF_H

#include <stddef.h>

void unet_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* UNET_ERRF_H */
