/* SPDX-License-Identifier: MIT */
/*
 * zip_read.h: the zip container of a torch.save file, read from memory
 * (research/pytorch-interop.md section b). For pickle_read.c and pth.c only.
 *
 * zr_open reads the end of central directory record (zip64 when flagged)
 * and the central directory: sizes, CRCs and offsets come from there, since
 * torch writes zeros in its local headers; a local header is read only for
 * where its payload starts. Every entry must be stored (not compressed, not
 * encrypted), lie inside the buffer and sit in the folder of the first one
 * ("<archive>/"), and the folder must hold a version record of 1..10.
 * All input is untrusted: every read is bounds-checked and every size
 * overflow-checked. An entry's CRC-32 is checked when it is first used
 * (zr_check_crc), not for entries nobody reads.
 *
 * Not here: the pickle (pickle_read.c), reading a file (pth.c), writing
 * (zip_write.c), compressed entries, multi-disk archives.
 */
#ifndef UNET_ZIP_READ_H
#define UNET_ZIP_READ_H

#include "errf.h"
#include "pyval.h"

#include <stddef.h>
#include <stdint.h>

typedef struct zr_entry {
    const char *name;    /* points into the buffer, not NUL-terminated */
    size_t nlen;
    uint64_t off, size;  /* payload */
    uint32_t crc;
    int crc_ok;          /* checked already */
    const void *aligned; /* copy for a payload at a misaligned address */
} zr_entry;

typedef struct zr_ctx {
    const unsigned char *buf; /* the whole file; outlives the arena's use */
    uint64_t len;
    pv_arena *arena;     /* the entry table and aligned copies live here */
    zr_entry *ents;      /* sorted by name */
    uint64_t nents;
    const char *prefix;  /* "<archive>/" of the first entry, in the buffer */
    size_t plen;
    char *err;           /* the first failure's message; may be NULL */
    size_t err_len;
} zr_ctx;

/* Writes the message into z->err unless one is there already; returns rc. */
int zr_fail(zr_ctx *z, int rc, const char *fmt, ...)
    UNET_PRINTF(3, 4);

/* Reads the directory of z->buf (buf, len, arena, err set by the caller).
 * 0, or MG_EPARSE / MG_ENOMEM with a "zip: ..." message. */
int zr_open(zr_ctx *z);

/* The entry "<prefix><rel>", or NULL. */
zr_entry *zr_find(zr_ctx *z, const char *rel, size_t rlen);

/* Checks e's CRC-32 once: 0 or MG_EPARSE. */
int zr_check_crc(zr_ctx *z, zr_entry *e);

/* e's payload at an address that is a multiple of align: in the buffer,
 * or a copy made once in the arena. NULL when out of memory. */
const void *zr_payload(zr_ctx *z, zr_entry *e, size_t align);

#endif /* UNET_ZIP_READ_H */
