/* SPDX-License-Identifier: MIT */
/*
 * log.c: the library's only way to say something: a line handed to the
 * caller's callback. The library never writes to stdout or stderr itself.
 */
#include "internal.h"

#include <stdio.h>

void mg__logf(const mg__log *log, mg_log_level level, const char *fmt, ...)
{
    if (!log || !log->fn || level > log->level) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap); /* a longer line is cut, not lost */
    va_end(ap);
    log->fn(log->user, level, line);
}
