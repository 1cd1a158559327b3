/* SPDX-License-Identifier: MIT */
/*
 * locale.c: the "C" numeric locale for the calling thread only (POSIX
 * uselocale), so "91.2" is written and read with a dot whatever the
 * program's locale. It touches no other category and no other thread. With
 * no locale variable set, the user's language is the C locale's (English).
 */
#include "internal.h"

#include <locale.h>

/* ---- the "C" numeric locale ----------------------------------------------- */

mg__num_locale mg__num_locale_begin(void)
{
    mg__num_locale l;
    /* uselocale() changes the calling thread only, unlike setlocale(), so a
     * program running in a German locale keeps it everywhere else. If the
     * locale object cannot be made (out of memory), the current locale is
     * kept: in the common case it is "C" anyway. */
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    l.c = c;
    l.old = c ? uselocale(c) : (locale_t)0;
    return l;
}

void mg__num_locale_end(mg__num_locale l)
{
    if (!l.c) return;
    uselocale((locale_t)l.old);
    freelocale((locale_t)l.c);
}

bool mg__user_lang_ja(void)
{
    return false;
}
