/* SPDX-License-Identifier: MIT */
/*
 * locale.c (Windows): the "C" numeric locale while the library formats or
 * parses numbers, so "91.2" is written and read with a dot whatever the
 * program's locale (mingw's printf takes the decimal point from
 * localeconv()). When LC_NUMERIC is "C" already, the case of every program
 * that never set it (C programs, and Python, which sets LC_CTYPE only),
 * nothing is switched at all. Otherwise the thread is given a locale of its
 * own (_configthreadlocale) and its LC_NUMERIC set to "C", then both are
 * put back. The C runtime of this build, msvcrt.dll, has no per-thread
 * locales (mingw-w64's _configthreadlocale returns -1 there), so the
 * switch is then process-wide for the microseconds of a formatting call:
 * another thread formatting a number at that moment would write a dot.
 * It touches no other category. Also the user's language when no locale
 * variable names one: the Windows display language.
 *
 * mg__num_locale's fields here: c is the earlier _configthreadlocale mode
 * plus 2 (NULL = nothing switched), old a malloc'ed copy of the earlier
 * LC_NUMERIC name.
 */
#include "win/win.h"

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

mg__num_locale mg__num_locale_begin(void)
{
    mg__num_locale l = {NULL, NULL};
    const char *cur = setlocale(LC_NUMERIC, NULL);
    if (!cur || strcmp(cur, "C") == 0) return l;
    /* As on POSIX, out of memory keeps the current locale. */
    char *saved = malloc(strlen(cur) + 1);
    if (!saved) return l;
    strcpy(saved, cur);
    int mode = _configthreadlocale(_ENABLE_PER_THREAD_LOCALE);
    if (!setlocale(LC_NUMERIC, "C")) {
        if (mode == _DISABLE_PER_THREAD_LOCALE) _configthreadlocale(mode);
        free(saved);
        return l;
    }
    l.c = (void *)(intptr_t)(mode + 2);
    l.old = saved;
    return l;
}

void mg__num_locale_end(mg__num_locale l)
{
    if (!l.c) return;
    setlocale(LC_NUMERIC, (const char *)l.old);
    int mode = (int)(intptr_t)l.c - 2;
    if (mode == _DISABLE_PER_THREAD_LOCALE) _configthreadlocale(mode);
    free(l.old);
}

/* Windows users set no LANG: their display language says it. */
bool mg__user_lang_ja(void)
{
    return PRIMARYLANGID(GetUserDefaultUILanguage()) == LANG_JAPANESE;
}
