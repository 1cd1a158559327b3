/* SPDX-License-Identifier: MIT */
/*
 * locale.c (Windows): the "C" numeric locale for the calling thread only,
 * so "91.2" is written and read with a dot whatever the program's locale.
 * The C runtime has no uselocale: the thread is switched to a locale of
 * its own (_configthreadlocale), its LC_NUMERIC set to "C", and both put
 * back at the end. When LC_NUMERIC is "C" already (a program that never
 * called setlocale) nothing is switched. It touches no other category and
 * no other thread.
 *
 * mg__num_locale's fields here: c is the thread's earlier
 * _configthreadlocale mode (as an integer, NULL = nothing switched), old a
 * malloc'ed copy of its earlier LC_NUMERIC name.
 */
#include "internal.h"

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
    if (mode == -1 || !setlocale(LC_NUMERIC, "C")) {
        if (mode == _DISABLE_PER_THREAD_LOCALE) _configthreadlocale(mode);
        free(saved);
        return l;
    }
    l.c = (void *)(intptr_t)mode;
    l.old = saved;
    return l;
}

void mg__num_locale_end(mg__num_locale l)
{
    if (!l.c) return;
    setlocale(LC_NUMERIC, (const char *)l.old);
    int mode = (int)(intptr_t)l.c;
    if (mode == _DISABLE_PER_THREAD_LOCALE) _configthreadlocale(mode);
    free(l.old);
}
