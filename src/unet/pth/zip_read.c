/* SPDX-License-Identifier: MIT */
/*
 * zip_read.c: the directory of a torch.save zip file in memory (ours and
 * PyTorch's: data descriptors, zip64 records, any archive folder name); see
 * zip_read.h for what is checked. Signatures and field offsets are those of
 * PKWARE's APPNOTE.TXT (4.3.7 local header, 4.3.12 central directory
 * header, 4.3.14-16 zip64 end records, 4.5.3 zip64 extra field).
 *
 * It does not inflate, decrypt, follow multi-disk archives or look inside
 * an entry; the pickle is pickle_read.c's.
 */
#include "zip_read.h"

#include "memguard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZR_LOCAL_SIG 0x04034B50u   /* local file header, 30 bytes + name + extra */
#define ZR_CENTRAL_SIG 0x02014B50u /* central directory header, 46 bytes + ... */
#define ZR_EOCD_SIG 0x06054B50u    /* end of central directory, 22 bytes */
#define ZR_EOCD64_SIG 0x06064B50u  /* zip64 end of central directory, 56 bytes */
#define ZR_LOC64_SIG 0x07064B50u   /* zip64 end locator, 20 bytes */
#define ZR_ZIP64_EXTRA 0x0001u     /* zip64 extended information extra field */
#define ZR_U32_MAX 0xFFFFFFFFu     /* "the real value is in a zip64 record" */

int zr_fail(zr_ctx *z, int rc, const char *fmt, ...)
{
    if (z->err && z->err_len && !z->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(z->err, z->err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* off + n <= len without overflow */
static int zr_in(const zr_ctx *z, uint64_t off, uint64_t n)
{
    return off <= z->len && n <= z->len - off;
}

static int zr_ent_cmp(const void *a, const void *b)
{
    const zr_entry *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int r = memcmp(x->name, y->name, n);
    if (r) return r;
    return x->nlen < y->nlen ? -1 : x->nlen > y->nlen;
}

zr_entry *zr_find(zr_ctx *z, const char *rel, size_t rlen)
{
    char name[512];
    if (z->plen + rlen > sizeof name) return NULL;
    memcpy(name, z->prefix, z->plen);
    memcpy(name + z->plen, rel, rlen);
    zr_entry key = {.name = name, .nlen = z->plen + rlen};
    return bsearch(&key, z->ents, (size_t)z->nents, sizeof *z->ents, zr_ent_cmp);
}

int zr_check_crc(zr_ctx *z, zr_entry *e)
{
    if (e->crc_ok) return 0;
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    const unsigned char *p = z->buf + e->off;
    for (uint64_t left = e->size; left > 0;) {
        uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        left -= n;
    }
    if (crc != e->crc)
        return zr_fail(z, MG_EPARSE, "zip: %.*s: CRC-32 mismatch (0x%08x, directory says 0x%08x)",
                       (int)e->nlen, e->name, crc, e->crc);
    e->crc_ok = 1;
    return 0;
}

const void *zr_payload(zr_ctx *z, zr_entry *e, size_t align)
{
    const void *data = z->buf + e->off;
    if ((uintptr_t)data % align == 0) return data;
    if (!e->aligned) {
        void *copy = pv_arena_alloc(z->arena, (size_t)e->size);
        if (!copy) return NULL;
        memcpy(copy, data, (size_t)e->size);
        e->aligned = copy;
    }
    return e->aligned;
}

/* The end of central directory record: torch writes no comment, but one
 * (at most 64 KiB) is allowed. */
static int zr_find_eocd(zr_ctx *z, uint64_t *at)
{
    const unsigned char *b = z->buf;
    if (z->len < 22 || rd32(b) != ZR_LOCAL_SIG)
        return zr_fail(z, MG_EPARSE, "zip: not a zip file (no local header signature at offset 0)");
    uint64_t eocd = z->len - 22, lo = z->len > 22 + 65535 ? z->len - 22 - 65535 : 0;
    for (;; eocd--) {
        if (rd32(b + eocd) == ZR_EOCD_SIG && eocd + 22 + rd16(b + eocd + 20) <= z->len) break;
        if (eocd == lo) return zr_fail(z, MG_EPARSE, "zip: no end of central directory record");
    }
    *at = eocd;
    return 0;
}

/* Entry count, size and offset of the central directory, from the EOCD or,
 * when it says so, from the zip64 end record its locator points at. */
static int zr_dir_extent(zr_ctx *z, uint64_t eocd, uint64_t *n, uint64_t *size, uint64_t *off)
{
    const unsigned char *b = z->buf;
    *n = rd16(b + eocd + 10);
    *size = rd32(b + eocd + 12);
    *off = rd32(b + eocd + 16);
    if (*n != 0xFFFF && *size != ZR_U32_MAX && *off != ZR_U32_MAX) return 0;
    if (eocd < 20 || rd32(b + eocd - 20) != ZR_LOC64_SIG)
        return zr_fail(z, MG_EPARSE, "zip: zip64 end locator missing");
    uint64_t z64 = rd64(b + eocd - 20 + 8);
    if (!zr_in(z, z64, 56) || rd32(b + z64) != ZR_EOCD64_SIG)
        return zr_fail(z, MG_EPARSE, "zip: bad zip64 end record offset %llu",
                       (unsigned long long)z64);
    *n = rd64(b + z64 + 32);
    *size = rd64(b + z64 + 40);
    *off = rd64(b + z64 + 48);
    return 0;
}

/* The zip64 extra field of a central directory entry (x, xlen bytes):
 * only the fields that are 0xFFFFFFFF, in this order. -1 when one of them
 * is missing from the field. */
static int zr_zip64_extra(const unsigned char *x, unsigned xlen, uint64_t *usize,
                          uint64_t *csize, uint64_t *lho)
{
    uint64_t *want[3] = {usize, csize, lho};
    for (unsigned q = 0; q + 4 <= xlen;) {
        unsigned id = rd16(x + q), hl = rd16(x + q + 2);
        if (q + 4 + hl > xlen) break;
        if (id == ZR_ZIP64_EXTRA) {
            unsigned r = q + 4;
            for (int f = 0; f < 3; f++) {
                if (*want[f] != ZR_U32_MAX) continue;
                if (r + 8 > q + 4 + hl) return -1;
                *want[f] = rd64(x + r);
                r += 8;
            }
        }
        q += 4 + hl;
    }
    return 0;
}

/* Where the payload of the entry whose local header is at lho starts, or
 * an error: the local header must be there and the payload in the file. */
static int zr_payload_start(zr_ctx *z, const char *name, unsigned nlen, uint64_t lho,
                            uint64_t size, uint64_t *start)
{
    const unsigned char *b = z->buf;
    if (!zr_in(z, lho, 30) || rd32(b + lho) != ZR_LOCAL_SIG)
        return zr_fail(z, MG_EPARSE, "zip: %.*s: bad local header at offset %llu",
                       (int)nlen, name, (unsigned long long)lho);
    *start = lho + 30 + rd16(b + lho + 26) + rd16(b + lho + 28);
    if (!zr_in(z, *start, size))
        return zr_fail(z, MG_EPARSE, "zip: %.*s: %llu bytes at offset %llu run past the end "
                       "of the file (%llu bytes)", (int)nlen, name, (unsigned long long)size,
                       (unsigned long long)*start, (unsigned long long)z->len);
    return 0;
}

/* Every entry sits in the folder of the first one, which sets the prefix. */
static int zr_in_folder(zr_ctx *z, uint64_t i, const char *name, unsigned nlen)
{
    if (i == 0) {
        const char *slash = memchr(name, '/', nlen);
        if (!slash || slash == name)
            return zr_fail(z, MG_EPARSE, "zip: first entry '%.*s' is not in a folder",
                           (int)nlen, name);
        z->prefix = name;
        z->plen = (size_t)(slash - name) + 1;
    }
    if (nlen < z->plen || memcmp(name, z->prefix, z->plen) != 0)
        return zr_fail(z, MG_EPARSE, "zip: entry '%.*s' is not under '%.*s'", (int)nlen, name,
                       (int)z->plen, z->prefix);
    return 0;
}

/* Central directory entry i at *p (end: the directory's end) into
 * z->ents[i]; *p moves to the next entry. */
static int zr_dir_entry(zr_ctx *z, uint64_t i, uint64_t *p, uint64_t end)
{
    const unsigned char *h = z->buf + *p;
    if (end - *p < 46 || rd32(h) != ZR_CENTRAL_SIG)
        return zr_fail(z, MG_EPARSE, "zip: bad central directory entry %llu at offset %llu",
                       (unsigned long long)i, (unsigned long long)*p);
    unsigned flags = rd16(h + 8), method = rd16(h + 10);
    uint32_t crc = rd32(h + 16);
    uint64_t csize = rd32(h + 20), usize = rd32(h + 24), lho = rd32(h + 42), start = 0;
    unsigned nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
    if (end - *p - 46 < (uint64_t)nlen + xlen + clen)
        return zr_fail(z, MG_EPARSE, "zip: central directory entry %llu is truncated",
                       (unsigned long long)i);
    const char *name = (const char *)h + 46;
    if (method != 0)
        return zr_fail(z, MG_EPARSE, "zip: %.*s is compressed (method %u); only stored "
                       "entries are supported", (int)nlen, name, method);
    if (flags & 1) return zr_fail(z, MG_EPARSE, "zip: %.*s is encrypted", (int)nlen, name);
    if (zr_zip64_extra(h + 46 + nlen, xlen, &usize, &csize, &lho))
        return zr_fail(z, MG_EPARSE, "zip: %.*s: zip64 extra field too short", (int)nlen, name);
    if (usize != csize)
        return zr_fail(z, MG_EPARSE, "zip: %.*s: sizes differ (%llu vs %llu) in a stored entry",
                       (int)nlen, name, (unsigned long long)csize, (unsigned long long)usize);
    int rc = zr_payload_start(z, name, nlen, lho, csize, &start);
    if (rc == 0) rc = zr_in_folder(z, i, name, nlen);
    if (rc) return rc;
    z->ents[i] = (zr_entry){name, nlen, start, csize, crc, 0, NULL};
    *p += 46 + (uint64_t)nlen + xlen + clen;
    return 0;
}

/* The "version" record (".data/version" in older torch files): 1..10. */
static int zr_check_version(zr_ctx *z)
{
    zr_entry *v = zr_find(z, "version", 7);
    if (!v) v = zr_find(z, ".data/version", 13);
    if (!v) return zr_fail(z, MG_EPARSE, "zip: no '%.*sversion' record", (int)z->plen, z->prefix);
    int rc = zr_check_crc(z, v);
    if (rc) return rc;
    unsigned ver = 0;
    uint64_t k = 0;
    for (; k < v->size && k < 4 && z->buf[v->off + k] >= '0' && z->buf[v->off + k] <= '9'; k++)
        ver = ver * 10 + (unsigned)(z->buf[v->off + k] - '0');
    if (k == 0 || ver < 1 || ver > 10)
        return zr_fail(z, MG_EPARSE, "zip: version record is not a number in 1..10");
    return 0;
}

int zr_open(zr_ctx *z)
{
    uint64_t eocd = 0, n = 0, cd_size = 0, cd_off = 0;
    int rc = zr_find_eocd(z, &eocd);
    if (rc == 0) rc = zr_dir_extent(z, eocd, &n, &cd_size, &cd_off);
    if (rc) return rc;
    if (!zr_in(z, cd_off, cd_size))
        return zr_fail(z, MG_EPARSE, "zip: central directory (%llu bytes at %llu) is past the end",
                       (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (n == 0 || n > cd_size / 46)
        return zr_fail(z, MG_EPARSE, "zip: %llu entries cannot fit a %llu-byte directory",
                       (unsigned long long)n, (unsigned long long)cd_size);
    z->ents = pv_arena_alloc(z->arena, (size_t)n * sizeof *z->ents);
    if (!z->ents) return zr_fail(z, MG_ENOMEM, "zip: out of memory for %llu entries",
                                 (unsigned long long)n);
    uint64_t p = cd_off;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = zr_dir_entry(z, i, &p, cd_off + cd_size))) return rc;
    z->nents = n;
    qsort(z->ents, (size_t)n, sizeof *z->ents, zr_ent_cmp);
    for (uint64_t i = 1; i < n; i++)
        if (zr_ent_cmp(&z->ents[i - 1], &z->ents[i]) == 0)
            return zr_fail(z, MG_EPARSE, "zip: duplicate entry '%.*s'", (int)z->ents[i].nlen,
                           z->ents[i].name);
    return zr_check_version(z);
}
