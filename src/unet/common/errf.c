/* SPDX-License-Identifier: MIT */
/*
 * errf.c: unet_errf (errf.h), vsnprintf into the caller's buffer. It
 * allocates and prints nothing.
 */
#include "errf.h"

#include <stdarg.h>
#include <stdio.h>

void unet_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
