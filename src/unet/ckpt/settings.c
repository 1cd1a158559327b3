/* SPDX-License-Identifier: MIT */
/*
 * settings.c: the table of unet-train's numeric settings and their ranges
 * (see settings.h), and the strict decimal grammar of its reals. Pure
 * functions: nothing here prints, allocates or touches a file.
 */
#include "settings.h"

#include "memguard.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ut_setting table[] = {
    {"in_ch", true, 1, 3, false, 2},
    {"img_size", true, 8, 8192, false, 0},
    {"base", true, 8, 256, false, 8},
    {"depth", true, 1, 6, false, 0},
    {"batch", true, 1, 4096, false, 0},
    {"epochs", true, 1, 1000000, false, 0},
    {"synthetic", true, 2, 1000000, false, 0},
    {"threads", true, 1, 1024, false, 0},
    {"check_train", true, 1, 1000000, false, 0},
    {"check_eval", true, 1, 1000000, false, 0},
    {"val_split", false, 0, 0.95, false, 0},
    {"lr", false, 0, 10, true, 0},
    {"beta1", false, 0, 0.999999, false, 0},
    {"beta2", false, 0, 0.999999999, false, 0},
    {"eps", false, 0, 1, true, 0},
    {"weight_decay", false, 0, 1, false, 0},
};

const ut_setting *ut_setting_find(const char *key)
{
    for (size_t i = 0; key && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].key, key) == 0) return &table[i];
    return NULL;
}

bool ut_setting_ok(const ut_setting *s, double v)
{
    if (!isfinite(v) || v < s->lo || v > s->hi || (s->lo_open && v == s->lo)) return false;
    if (s->integer && v != floor(v)) return false;
    return s->step <= 1 || fmod(v - s->lo, s->step) == 0;
}

void ut_setting_describe(const ut_setting *s, char *buf, size_t len)
{
    if (strcmp(s->key, "in_ch") == 0)
        snprintf(buf, len, "1 (gray) or 3 (RGB)");
    else if (s->step > 1)
        snprintf(buf, len, "a multiple of %d from %.0f to %.0f", s->step, s->lo, s->hi);
    else if (s->integer)
        snprintf(buf, len, "an integer from %.0f to %.0f", s->lo, s->hi);
    else
        snprintf(buf, len, "a number in %s%g, %g]", s->lo_open ? "(" : "[", s->lo, s->hi);
}

/* Skips a run of decimal digits; returns how many. */
static size_t digits(const char **p)
{
    size_t n = 0;
    while (isdigit((unsigned char)**p)) {
        (*p)++;
        n++;
    }
    return n;
}

/* Whether s is digits [. digits] [e [+-] digits], with a digit somewhere
 * in the mantissa. */
static bool decimal_grammar(const char *s)
{
    const char *p = s;
    size_t n = digits(&p);
    if (*p == '.') {
        p++;
        n += digits(&p);
    }
    if (n == 0) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (digits(&p) == 0) return false;
    }
    return *p == '\0';
}

int ut_parse_real(const char *s, double *out)
{
    if (!s || !decimal_grammar(s)) return MG_EPARSE;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end) return MG_EPARSE;
    if (!isfinite(v)) return MG_ERANGE;
    *out = v;
    return 0;
}
