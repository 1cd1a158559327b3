/* SPDX-License-Identifier: MIT */
/*
 * pickle_write.h: a pyval tree as torch.save's data.pkl (protocol 2), and
 * the tensors it refers to, in the order it numbers their storages. For
 * pth.c only.
 *
 * Not here: the zip container (zip_write.h), files.
 */
#ifndef UNET_PICKLE_WRITE_H
#define UNET_PICKLE_WRITE_H

#include "pyval.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pkw_info {
    size_t len;         /* bytes of pickle */
    uint64_t ntensors;  /* storages data/0 .. data/ntensors-1 */
    uint64_t payload;   /* their bytes in all (saturates at UINT64_MAX) */
} pkw_info;

/* Emits root into buf (cap bytes; buf NULL: only counts) and fills *info.
 * Allocation-free. 0, or -1 for a tree it cannot write (an internal node
 * kind, a key that is not str/int, a bad tensor dtype/shape, NULL tensor
 * data, nesting deeper than PV_MAX_DEPTH, a size overflow). */
int pkw_emit(const pv *root, unsigned char *buf, size_t cap, pkw_info *info);

/* Calls fn for every tensor of a tree that pkw_emit accepted, in storage
 * key order, with its size in bytes; stops at fn's first non-zero return
 * and returns it. */
typedef int (*pkw_tensor_fn)(void *ctx, const pv_tensor *t, uint64_t nbytes);
int pkw_each_tensor(const pv *root, pkw_tensor_fn fn, void *ctx);

#endif /* UNET_PICKLE_WRITE_H */
