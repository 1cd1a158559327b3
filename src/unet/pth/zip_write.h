/* SPDX-License-Identifier: MIT */
/*
 * zip_write.h: the zip container of a torch.save file, streamed through
 * mg_atomic_* (research/pytorch-interop.md section a). For pth.c only.
 *
 * The entries are torch's, in torch's order, named by their position:
 * "<archive>/data.pkl", "<archive>/byteorder", "<archive>/data/0" ..
 * "<archive>/data/N-1", "<archive>/version". Each is stored (never
 * compressed) behind a local header padded ("FB" extra field, as torch)
 * so that its payload starts at a multiple of 64; the payload is written
 * from the caller's pointer, never copied. Zip64 records are written for
 * every entry when zw_open is asked for them.
 *
 * Not here: what goes in data.pkl (pickle_write.c), the choice of zip64
 * and the order of the calls (pth.c), reading (zip_read.c).
 */
#ifndef UNET_ZIP_WRITE_H
#define UNET_ZIP_WRITE_H

#include "memguard.h"

#include <stddef.h>
#include <stdint.h>

#define ZW_ENTRY 16          /* scratch bytes per entry: CRC-32 and local header offset */
#define ZW_FIXED_ENTRIES 3   /* data.pkl, byteorder, version */

typedef struct zw_zip {
    mg_atomic at;
    uint64_t pos;            /* bytes written to the file so far */
    uint64_t fail_after;     /* test hook: MG_EIO once this many bytes are written */
    int zip64;
    unsigned char hdr[1024]; /* one local header / central record at a time */
    size_t hlen;
    const char *archive;
    unsigned char *entries;  /* scratch: ZW_ENTRY bytes per entry */
    uint64_t nentries;       /* written so far */
    uint64_t ntotal;         /* ntensors + ZW_FIXED_ENTRIES */
} zw_zip;

/* Starts the temporary of path (mg_atomic_open's codes). entries: scratch
 * of ZW_ENTRY bytes for each of the ntensors + ZW_FIXED_ENTRIES entries. */
int zw_open(zw_zip *z, const char *path, const char *archive, uint64_t ntensors, int zip64,
            uint64_t fail_after, unsigned char *entries);

/* The next entry, with size bytes from data. 0 or mg_atomic_write's codes. */
int zw_add(zw_zip *z, const void *data, uint64_t size);

/* The central directory and the end records, after the last entry. */
int zw_central(zw_zip *z);

#endif /* UNET_ZIP_WRITE_H */
