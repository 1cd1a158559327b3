/* SPDX-License-Identifier: MIT */
/*
 * textbuf.c: the one text builder behind every formatter (report.c,
 * report_json.c). The switch to the "C" numeric locale that the formatters
 * and the number parsers (parse.c) run under is the platform's
 * (posix/locale.c).
 *
 * The builder appends into a buffer the caller owns and follows snprintf's
 * rule: the buffer is always NUL-terminated (when it has a byte at all),
 * whatever fits is written, and mg__tb_done() returns the length the whole
 * text needs, so a first call on (NULL, 0) sizes the buffer. It never
 * allocates, never prints and knows nothing of the texts or of JSON; the
 * escaping and number forms of JSON stay in report_json.c.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- the append-only builder --------------------------------------------- */

void mg__tb_init(mg__tb *b, char *buf, size_t len)
{
    b->buf = buf;
    b->len = len;
    b->pos = 0;
    b->bad = false;
    /* Terminated from the start, so a text that stays empty (a safe
     * verdict) or whose first piece does not fit still reads as a string. */
    if (buf && len) buf[0] = '\0';
}

void mg__tb_printf(mg__tb *b, const char *fmt, ...)
{
    size_t room = b->buf && b->pos < b->len ? b->len - b->pos : 0;
    va_list ap;
    va_start(ap, fmt);
    /* With room 0, vsnprintf only measures; with some room it writes what
     * fits and terminates, which keeps the whole buffer terminated. */
    int n = vsnprintf(room ? b->buf + b->pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) b->bad = true;
    else b->pos += (size_t)n;
}

void mg__tb_put(mg__tb *b, const char *s, size_t n)
{
    if (b->buf && b->pos < b->len) {
        size_t room = b->len - b->pos - 1; /* keep the terminator's byte */
        size_t k = n < room ? n : room;
        memcpy(b->buf + b->pos, s, k);
        b->buf[b->pos + k] = '\0';
    }
    b->pos += n;
}

int mg__tb_done(const mg__tb *b)
{
    if (b->bad) return MG_EINVAL;
    /* The public formatters return int, as snprintf does. */
    if (b->pos > (size_t)INT_MAX) return MG_ENOBUFS;
    return (int)b->pos;
}
