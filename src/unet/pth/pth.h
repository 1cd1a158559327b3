/* SPDX-License-Identifier: MIT */
/*
 * pth.h: PyTorch checkpoint (.pth) files, written and read without torch.
 *
 * The writer turns a pyval tree into the zip that torch.save writes: one
 * folder "<archive>/" holding data.pkl (pickle protocol 2), byteorder,
 * data/0..N-1 (one storage per tensor, raw little-endian bytes, 64-byte
 * aligned) and version ("3\n"); stored entries, zlib CRC-32, zip64 records
 * only when the file would reach 4 GiB. The pickle uses only opcodes and
 * globals that torch.load(weights_only=True) accepts (floats need torch >=
 * 2.x there, see research/pytorch-interop.md c.2). The file goes through
 * mg_atomic_* (temporary, fsync, rename, fsync of the folder), so the final
 * name never holds a torn file.
 *
 * Memory on the save path: nothing but `scratch` (see pth_save_scratch),
 * which the trainer can reserve at start-up; tensor bytes are streamed from
 * the caller's pointers, never copied.
 *
 * The reader accepts the files above and torch.save's own output (data
 * descriptors, zip64 records, any archive folder name, pickle memo); it
 * rejects compressed entries, non-contiguous tensors and any global outside
 * a small allowlist. It reads the whole file into memory owned by the
 * returned arena; tensors point into it. Every failure is a negative MG_E*
 * code plus a one-line message, e.g.
 *     "data.pkl: unsupported opcode 0x93 at offset 120".
 *
 * Not done: compression, big-endian files, tensor subclasses, quantized or
 * sparse tensors, protocol 3+ pickles.
 */
#ifndef UNET_PTH_H
#define UNET_PTH_H

#include "pyval.h"

#include <stddef.h>
#include <stdint.h>

#define PTH_ERR_LEN 256 /* a good size for the err buffers below */

typedef struct pth_save_opts {
    /* Folder name inside the zip (no '/'); NULL: "archive". torch uses the
     * file's base name; the reader does not care. */
    const char *archive;
    /* Tests only: zip64 records even for small files. */
    int force_zip64;
    /* Tests only: fail with MG_EIO once this many bytes were written
     * (0 = never), to check that the old file survives. */
    uint64_t fail_after;
} pth_save_opts;

/* Bytes of scratch that pth_save needs for this tree: the pickle plus 16
 * bytes per zip entry. Depends on the tree's shape and scalar values (an
 * int's width, a string's length), not on tensor contents. Returns 0 for
 * an invalid tree (an internal node kind, a key that is not str/int, a
 * negative dimension, an overflow). */
size_t pth_save_scratch(const pv *root, const pth_save_opts *opts);

/* Writes root to path (atomically, see above). scratch/scratch_len: a
 * caller buffer of at least pth_save_scratch() bytes; NULL makes pth_save
 * malloc it (normal checkpoints). Returns 0 or MG_EINVAL (bad tree, NULL
 * tensor data), MG_ENOBUFS (scratch too small), MG_ENOSPC (disk full), MG_ENOMEM,
 * MG_EIO, MG_EPERM, MG_ENOENT, MG_ERANGE (too many entries); err (may be
 * NULL) gets one line. */
int pth_save(const char *path, const pv *root, void *scratch, size_t scratch_len,
             const pth_save_opts *opts, char *err, size_t err_len);

/* Reads a .pth file. On success *out_arena owns everything (file bytes
 * included) and *out_root is the unpickled object; free with
 * pv_arena_free(*out_arena). On failure both are NULL. */
int pth_load(const char *path, pv_arena **out_arena, pv **out_root,
             char *err, size_t err_len);

/* Same from memory. buf must outlive the arena (tensors point into it,
 * except storages at an offset that is not a multiple of their item size,
 * which are copied into the arena). */
int pth_load_mem(const void *buf, size_t len, pv_arena **out_arena, pv **out_root,
                 char *err, size_t err_len);

#endif /* UNET_PTH_H */
