/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json.h: "this is one valid JSON text", as the probe and run-log
 * harnesses check it. cJSON parses it (the whole text, nothing after it)
 * and, because cJSON is lenient where RFC 8259 is not, two checks follow:
 * the bytes are valid UTF-8 (RFC 8259 section 8.1; overlong forms,
 * surrogates and code points above U+10FFFF refused) and no control
 * character below 0x20 appears raw (inside a string it must be escaped,
 * and a JSON line has no newline but its last byte). fz_utf8_replaced
 * gives the text a JSON string written from arbitrary bytes must decode
 * to: the library writes each byte that starts no valid sequence as
 * \ufffd (mg_json_quote, report_json.c).
 * Header-only (static inline functions).
 */
#ifndef MG_FUZZ_JSON_H
#define MG_FUZZ_JSON_H

#include "fuzz_util.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (at most `left` bytes, left > 0),
 * 0 when the bytes there are not one. */
static inline size_t fz_utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > left) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Offset of the first byte that is not valid UTF-8, or len. */
static inline size_t fz_utf8_bad_at(const unsigned char *s, size_t len)
{
    size_t i = 0, k;
    while (i < len && (k = fz_utf8_seq(s + i, len - i)) > 0) i += k;
    return i;
}

/* s with every byte that does not start a valid UTF-8 sequence replaced
 * by U+FFFD: what a JSON string written from s must decode to (free it). */
static inline char *fz_utf8_replaced(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), o = 0;
    char *r = malloc(3 * n + 1);
    if (!r) abort();
    for (size_t i = 0; i < n;) {
        size_t k = fz_utf8_seq(u + i, n - i);
        if (k == 0) {
            memcpy(r + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(r + o, s + i, k);
            o += k;
            i += k;
        }
    }
    r[o] = '\0';
    return r;
}

/* Checks text[0..len) (one trailing newline allowed) and returns the parsed
 * document (cJSON_Delete it). `what` names the text in the message. */
static inline cJSON *fz_json_check(const char *what, const char *text, size_t len)
{
    size_t body = len && text[len - 1] == '\n' ? len - 1 : len;
    for (size_t i = 0; i < body; i++)
        FZ_CHECK((unsigned char)text[i] >= 0x20, "%s: raw control byte 0x%02x at %zu: %.*s",
                 what, (unsigned char)text[i], i, (int)body, text);
    size_t bad = fz_utf8_bad_at((const unsigned char *)text, body);
    FZ_CHECK(bad == body, "%s: invalid UTF-8 at byte %zu of %zu: %.*s", what, bad, body,
             (int)body, text);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, body, &end, 0);
    FZ_CHECK(doc != NULL, "%s: cJSON rejects it near byte %td: %.*s", what,
             end ? end - text : (ptrdiff_t)-1, (int)body, text);
    FZ_CHECK(end == text + body, "%s: %td bytes after the JSON value", what,
             (text + body) - end);
    return doc;
}

#endif /* MG_FUZZ_JSON_H */
