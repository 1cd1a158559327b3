/* SPDX-License-Identifier: MIT */
/*
 * util.c: the portable helpers every part of the library shares: a path
 * formatted into a fixed buffer and a decimal number parsed in place. The
 * clock and the file readers are the platform's (posix/files.c). Nothing
 * here allocates or does I/O.
 */
#include "internal.h"

#include <stdio.h>

int mg__path(char *buf, size_t buf_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, buf_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= buf_len) return MG_ENOBUFS;
    return 0;
}

int mg__parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t') p++;
    if (*p < '0' || *p > '9') return MG_EPARSE;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10u) return MG_ERANGE;
        v = v * 10u + d;
        p++;
    }
    *out = v;
    *s = p;
    return 0;
}

