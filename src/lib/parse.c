/* SPDX-License-Identifier: MIT */
/*
 * parse.c: the two number parsers every memguard program shares, so "0.9",
 * "90%", "8G" and "512MiB" mean the same in flags, environment variables and
 * bindings.
 *
 * Both check the whole string against a strict grammar first (no blanks, no
 * sign, no hex, no "inf"/"nan", nothing trailing), then convert with strtod /
 * strtoull and range-check the result. strtod follows LC_NUMERIC, and a
 * program that called setlocale(LC_ALL, "") in a German locale would reject
 * "0.9"; the conversion therefore runs under the "C" numeric locale of the
 * calling thread only (uselocale, through textbuf.c's mg__num_locale), which
 * leaves the rest of the program alone. Nothing here prints or keeps state.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* strtod under the "C" numeric locale, for this thread only (textbuf.c's
 * switch, shared with the formatters). errno is cleared after the switch
 * and kept across the switch back, so the caller's ERANGE check sees what
 * strtod set and not what a failed newlocale left. */
static double strtod_c(const char *s, char **end)
{
    mg__num_locale l = mg__num_locale_begin();
    errno = 0;
    double v = strtod(s, end);
    int e = errno;
    mg__num_locale_end(l);
    errno = e;
    return v;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of `digits ['.' digits]` at s, 0 when it is not one. *frac tells
 * whether a fractional part was present. */
static size_t scan_decimal(const char *s, bool *frac)
{
    size_t i = 0;
    *frac = false;
    while (is_digit(s[i])) i++;
    if (i == 0) return 0;
    if (s[i] == '.') {
        size_t j = i + 1;
        while (is_digit(s[j])) j++;
        if (j == i + 1) return 0; /* "1." */
        *frac = true;
        i = j;
    }
    return i;
}

int mg_parse_frac(const char *s, double *out)
{
    if (!s || !out) return MG_EINVAL;
    bool frac;
    size_t n = scan_decimal(s, &frac);
    if (n == 0) return MG_EPARSE;
    /* An exponent ("9e-1") is accepted: strtod reads it and it is not
     * ambiguous. */
    if (s[n] == 'e' || s[n] == 'E') {
        size_t k = n + 1;
        if (s[k] == '+' || s[k] == '-') k++;
        if (!is_digit(s[k])) return MG_EPARSE;
        while (is_digit(s[k])) k++;
        n = k;
    }
    bool percent = s[n] == '%';
    if (s[n + (percent ? 1 : 0)] != '\0') return MG_EPARSE;

    char *end;
    errno = 0;
    double v = strtod_c(s, &end);
    if (end != s + n) return MG_EPARSE; /* grammar and strtod disagree */
    if (errno == ERANGE || !isfinite(v)) return MG_ERANGE;
    if (percent) v /= 100.0;
    if (!(v > 0.0 && v <= 1.0)) return MG_ERANGE;
    *out = v;
    return 0;
}

/* Binary multiplier for a unit letter, 0 when it is not one. */
static uint64_t unit_mult(char c)
{
    switch (c) {
    case 'k': case 'K': return 1ull << 10;
    case 'm': case 'M': return 1ull << 20;
    case 'g': case 'G': return 1ull << 30;
    case 't': case 'T': return 1ull << 40;
    case 'p': case 'P': return 1ull << 50;
    default: return 0;
    }
}

int mg_parse_size(const char *s, uint64_t *out)
{
    if (!s || !out) return MG_EINVAL;
    bool frac;
    size_t n = scan_decimal(s, &frac);
    if (n == 0) return MG_EPARSE; /* "", "-1", "G", ".5G" */

    const char *u = s + n;
    uint64_t mult = unit_mult(*u);
    if (mult) u++;
    else mult = 1;
    /* "B" after anything; "iB" only after a unit letter ("512MiB"). */
    if (mult > 1 && (*u == 'i' || *u == 'I') && (u[1] == 'b' || u[1] == 'B'))
        u += 2;
    else if (*u == 'b' || *u == 'B')
        u++;
    if (*u != '\0') return MG_EPARSE;
    /* A fraction of one byte means nothing; "1.5" is a typo for "1.5G". */
    if (frac && mult == 1) return MG_EPARSE;

    uint64_t v;
    if (!frac) {
        /* strtoull, not strtod: exact up to 2^64 - 1. */
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (end != s + n) return MG_EPARSE;
        if (errno == ERANGE || x > UINT64_MAX / mult) return MG_ERANGE;
        v = (uint64_t)x * mult;
    } else {
        char *end;
        errno = 0;
        double x = strtod_c(s, &end);
        if (end != s + n) return MG_EPARSE;
        if (errno == ERANGE || !isfinite(x)) return MG_ERANGE;
        double bytes = x * (double)mult;
        /* 2^64 is exact in double; anything at or above it does not fit. */
        if (!(bytes < 18446744073709551616.0)) return MG_ERANGE;
        v = (uint64_t)bytes; /* whole bytes, rounded down: 0.1K = 102 */
    }
    if (v == 0) return MG_ERANGE;
    *out = v;
    return 0;
}

int mg_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !out) return MG_EINVAL;
    if (!is_digit(s[0])) return MG_EPARSE;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p)) return MG_EPARSE;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10u) return MG_ERANGE;
        v = v * 10u + d;
    }
    if (v > max) return MG_ERANGE;
    *out = v;
    return 0;
}

int mg_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
    if (!s || !out) return MG_EINVAL;
    bool frac;
    size_t n = scan_decimal(s, &frac);
    if (n == 0) return MG_EPARSE;
    const char *unit = s + n;
    double scale;
    if (strcmp(unit, "ms") == 0) scale = 1.0;
    else if (strcmp(unit, "s") == 0 || *unit == '\0') scale = 1000.0;
    else if (strcmp(unit, "m") == 0) scale = 60000.0;
    else if (strcmp(unit, "h") == 0) scale = 3600000.0;
    else return MG_EPARSE;
    errno = 0;
    double v = strtod_c(s, NULL);
    if (errno || !isfinite(v)) return MG_ERANGE;
    v *= scale;
    /* Compared as integers: (double)max_ms rounds above 2^53, and may round
     * up to 2^64, which no uint64_t holds. */
    if (!(v < 18446744073709551616.0)) return MG_ERANGE;
    uint64_t ms = (uint64_t)v;
    if (ms > max_ms) return MG_ERANGE;
    *out = ms;
    return 0;
}
