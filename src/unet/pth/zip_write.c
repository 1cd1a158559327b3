/* SPDX-License-Identifier: MIT */
/*
 * zip_write.c: writes the zip container of a torch.save file (see
 * zip_write.h; the layout is byte for byte that of ptckpt_ref.py, whose
 * golden file the tests compare against). Signatures and field offsets are
 * those of PKWARE's APPNOTE.TXT (4.3.7 local header, 4.3.12 central
 * directory header, 4.3.14-16 zip64 end records, 4.5.3 zip64 extra field).
 *
 * Allocation-free: one header buffer in the zw_zip, 16 bytes of caller
 * scratch per entry (its CRC-32 and offset; the central directory recomputes
 * names and sizes from them). It does not compress, write data descriptors
 * or comments, or know what the entries hold.
 */
#include "zip_write.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define ZW_ALIGN 64              /* torch's kFieldAlignment */
#define ZW_MAX_NAME 256
#define ZW_LOCAL_SIG 0x04034B50u
#define ZW_CENTRAL_SIG 0x02014B50u
#define ZW_EOCD_SIG 0x06054B50u
#define ZW_EOCD64_SIG 0x06064B50u
#define ZW_LOC64_SIG 0x07064B50u
#define ZW_ZIP64_EXTRA 0x0001u
#define ZW_PAD_EXTRA 0x4246u     /* "FB": torch's padding field */
#define ZW_U32_MAX 0xFFFFFFFFu   /* "the real value is in a zip64 record" */

static int zw_write(zw_zip *z, const void *b, size_t n)
{
    if (z->fail_after && z->pos + n > z->fail_after) {
        size_t part = z->pos < z->fail_after ? (size_t)(z->fail_after - z->pos) : 0;
        if (part) mg_atomic_write(&z->at, b, part);
        return MG_EIO;
    }
    int rc = mg_atomic_write(&z->at, b, n);
    if (rc == 0) z->pos += n;
    return rc;
}

static void h16(zw_zip *z, unsigned v)
{
    z->hdr[z->hlen++] = (unsigned char)(v & 0xFF);
    z->hdr[z->hlen++] = (unsigned char)((v >> 8) & 0xFF);
}

static void h32(zw_zip *z, uint32_t v)
{
    for (int i = 0; i < 4; i++) z->hdr[z->hlen++] = (unsigned char)(v >> (8 * i));
}

static void h64(zw_zip *z, uint64_t v)
{
    for (int i = 0; i < 8; i++) z->hdr[z->hlen++] = (unsigned char)(v >> (8 * i));
}

static void hbytes(zw_zip *z, const void *b, size_t n)
{
    memcpy(z->hdr + z->hlen, b, n);
    z->hlen += n;
}

/* A 32-bit size or offset field: 0xFFFFFFFF in a zip64 file. */
static uint32_t zw_u32(const zw_zip *z, uint64_t v)
{
    return z->zip64 ? ZW_U32_MAX : (uint32_t)v;
}

/* "version needed to extract" (and "made by"): 4.5 for zip64, else 2.0 */
static unsigned zw_version(const zw_zip *z)
{
    return z->zip64 ? 45 : 20;
}

/* The name of entry i, torch's order (see zip_write.h); its length. */
static size_t zw_name(const zw_zip *z, uint64_t i, char name[ZW_MAX_NAME])
{
    int n;
    if (i == 0) n = snprintf(name, ZW_MAX_NAME, "%s/data.pkl", z->archive);
    else if (i == 1) n = snprintf(name, ZW_MAX_NAME, "%s/byteorder", z->archive);
    else if (i + 1 == z->ntotal) n = snprintf(name, ZW_MAX_NAME, "%s/version", z->archive);
    else n = snprintf(name, ZW_MAX_NAME, "%s/data/%llu", z->archive, (unsigned long long)(i - 2));
    return n < 0 ? 0 : (size_t)n;
}

/* Where the payload of an entry with an nlen-byte name and its local
 * header at lho starts: after the header, its zip64 and "FB" extra fields
 * and the padding to ZW_ALIGN. */
static uint64_t zw_payload_start(const zw_zip *z, uint64_t lho, size_t nlen)
{
    uint64_t start = lho + 30 + nlen + (z->zip64 ? 20 : 0) + 4;
    return start + (ZW_ALIGN - start % ZW_ALIGN) % ZW_ALIGN;
}

static uint32_t zw_crc(const void *data, uint64_t size)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    const unsigned char *d = data;
    for (uint64_t left = size; left > 0;) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = (uint32_t)crc32(crc, d, chunk);
        d += chunk;
        left -= chunk;
    }
    return crc;
}

/* The fields a local header and its central directory record share, from
 * "version needed to extract" to "file name length" (APPNOTE 4.3.7 and
 * 4.3.12): no flags (no data descriptor), stored, time and date 0. */
static void zw_shared_fields(zw_zip *z, uint32_t crc, uint64_t size, size_t nlen)
{
    h16(z, zw_version(z));
    h16(z, 0);                            /* flags */
    h16(z, 0);                            /* stored */
    h16(z, 0);
    h16(z, 0);                            /* time, date */
    h32(z, crc);
    h32(z, zw_u32(z, size));              /* compressed size */
    h32(z, zw_u32(z, size));              /* uncompressed size */
    h16(z, (unsigned)nlen);
}

static void zw_local_header(zw_zip *z, const char *name, size_t nlen, uint32_t crc,
                            uint64_t size)
{
    unsigned z64 = z->zip64 ? 20 : 0;
    unsigned pad = (unsigned)(zw_payload_start(z, z->pos, nlen) - (z->pos + 30 + nlen + z64 + 4));
    z->hlen = 0;
    h32(z, ZW_LOCAL_SIG);
    zw_shared_fields(z, crc, size, nlen);
    h16(z, z64 + 4 + pad);
    hbytes(z, name, nlen);
    if (z->zip64) {
        h16(z, ZW_ZIP64_EXTRA);
        h16(z, 16);
        h64(z, size);
        h64(z, size);
    }
    h16(z, ZW_PAD_EXTRA);
    h16(z, pad);
    memset(z->hdr + z->hlen, 'Z', pad);
    z->hlen += pad;
}

int zw_open(zw_zip *z, const char *path, const char *archive, uint64_t ntensors, int zip64,
            uint64_t fail_after, unsigned char *entries)
{
    memset(z, 0, sizeof *z);
    z->archive = archive;
    z->ntotal = ntensors + ZW_FIXED_ENTRIES;
    z->zip64 = zip64;
    z->fail_after = fail_after;
    z->entries = entries;
    return mg_atomic_open(&z->at, path);
}

int zw_add(zw_zip *z, const void *data, uint64_t size)
{
    char name[ZW_MAX_NAME];
    size_t nlen = zw_name(z, z->nentries, name);
    uint32_t crc = zw_crc(data, size);
    uint64_t lho = z->pos;
    zw_local_header(z, name, nlen, crc, size);
    int rc = zw_write(z, z->hdr, z->hlen);
    for (const unsigned char *p = data; rc == 0 && size > 0;) {
        size_t chunk = size > (1u << 30) ? (1u << 30) : (size_t)size;
        rc = zw_write(z, p, chunk);
        p += chunk;
        size -= chunk;
    }
    if (rc) return rc;
    unsigned char *e = z->entries + z->nentries++ * ZW_ENTRY;
    memcpy(e, &crc, 4);
    memcpy(e + 8, &lho, 8);
    return 0;
}

static uint64_t zw_entry_lho(const zw_zip *z, uint64_t i)
{
    uint64_t lho;
    memcpy(&lho, z->entries + i * ZW_ENTRY + 8, 8);
    return lho;
}

/* The central directory record of entry i (the directory starts at
 * cd_start). The size is what lies between this entry's payload start
 * and the next header, which keeps the scratch at 16 bytes per entry. */
static int zw_central_entry(zw_zip *z, uint64_t i, uint64_t cd_start)
{
    char name[ZW_MAX_NAME];
    size_t nlen = zw_name(z, i, name);
    uint32_t crc;
    memcpy(&crc, z->entries + i * ZW_ENTRY, 4);
    uint64_t lho = zw_entry_lho(z, i);
    uint64_t next = i + 1 < z->nentries ? zw_entry_lho(z, i + 1) : cd_start;
    uint64_t size = next - zw_payload_start(z, lho, nlen);
    z->hlen = 0;
    h32(z, ZW_CENTRAL_SIG);
    h16(z, zw_version(z));                /* made by */
    zw_shared_fields(z, crc, size, nlen);
    h16(z, z->zip64 ? 28 : 0);            /* extra length */
    h16(z, 0);                            /* comment length */
    h16(z, 0);                            /* disk */
    h16(z, 0);                            /* internal attributes */
    h32(z, 0);                            /* external attributes */
    h32(z, zw_u32(z, lho));
    hbytes(z, name, nlen);
    if (z->zip64) {
        h16(z, ZW_ZIP64_EXTRA);
        h16(z, 24);
        h64(z, size);
        h64(z, size);
        h64(z, lho);
    }
    return zw_write(z, z->hdr, z->hlen);
}

/* The zip64 end record and locator (zip64 files only), then the end of
 * central directory record. */
static int zw_end_records(zw_zip *z, uint64_t cd_start)
{
    uint64_t cd_size = z->pos - cd_start, n = z->nentries;
    z->hlen = 0;
    if (z->zip64) {
        uint64_t eocd64 = z->pos;
        h32(z, ZW_EOCD64_SIG);
        h64(z, 44);                       /* size of the rest of the record */
        h16(z, 45);
        h16(z, 45);
        h32(z, 0);
        h32(z, 0);                        /* disks */
        h64(z, n);
        h64(z, n);
        h64(z, cd_size);
        h64(z, cd_start);
        h32(z, ZW_LOC64_SIG);
        h32(z, 0);
        h64(z, eocd64);
        h32(z, 1);                        /* total disks */
    }
    h32(z, ZW_EOCD_SIG);
    h16(z, 0);
    h16(z, 0);                            /* disks */
    h16(z, z->zip64 ? 0xFFFF : (unsigned)n);
    h16(z, z->zip64 ? 0xFFFF : (unsigned)n);
    h32(z, zw_u32(z, cd_size));
    h32(z, zw_u32(z, cd_start));
    h16(z, 0);                            /* comment length */
    return zw_write(z, z->hdr, z->hlen);
}

int zw_central(zw_zip *z)
{
    uint64_t cd_start = z->pos;
    int rc = 0;
    for (uint64_t i = 0; i < z->nentries && rc == 0; i++) rc = zw_central_entry(z, i, cd_start);
    return rc ? rc : zw_end_records(z, cd_start);
}
