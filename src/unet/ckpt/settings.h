/* SPDX-License-Identifier: MIT */
/*
 * settings.h: the allowed range of every numeric setting of unet-train,
 * in one table that the command line, the --config file (main.c) and a
 * checkpoint's "config" dict (ckpt.c) all check against, and the strict
 * decimal grammar of the real-valued ones (--lr, --eps, ...).
 *
 * Not here: parsing whole command lines (main.c), sizes and fractions
 * (libmemguard's mg_parse_size and mg_parse_frac), unsigned integers
 * (mg_parse_uint).
 */
#ifndef UNET_SETTINGS_H
#define UNET_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

/* Samples of a data set, at most (folder.c refuses more files too). */
#define UT_MAX_SAMPLES (1 << 24)

typedef struct ut_setting {
    const char *key;  /* the config key: the long option with '_' for '-' */
    bool integer;     /* an integer, else a real */
    double lo, hi;    /* the range, both ends included unless lo_open */
    bool lo_open;
    int step;         /* integers: only lo, lo + step, ... (0: every one) */
} ut_setting;

/* The setting named key ("img_size"), or NULL for keys that are not
 * range-checked numbers (paths, flags, seed, thresholds). */
const ut_setting *ut_setting_find(const char *key);

/* Whether v is allowed (in range; for an integer setting integral and on
 * its step: in_ch 1 or 3, base a multiple of 8). */
bool ut_setting_ok(const ut_setting *s, double v);

/* What is allowed, for messages: "an integer from 8 to 8192", "a number
 * in (0, 10]", "1 (gray) or 3 (RGB)". */
void ut_setting_describe(const ut_setting *s, char *buf, size_t len);

/* A non-negative decimal real, strictly: digits with an optional
 * fraction ("16", "0.5", ".5", "5."), then an optional exponent ("1e-3",
 * "2E+2"). Nothing else: no blanks, no sign, no hex ("0x1p-3"), no "inf"
 * or "nan", no trailing characters. A value too large for a double is
 * refused; one too small becomes 0. Returns 0 or MG_EPARSE / MG_ERANGE.
 * (Converted with strtod in the C locale, which unet-train never leaves.) */
int ut_parse_real(const char *s, double *out);

#endif /* UNET_SETTINGS_H */
