/* SPDX-License-Identifier: MIT */
/*
 * pickle_read.h: runs the data.pkl of a torch.save file into a pyval tree.
 * For pth.c only.
 *
 * Not here: the zip container (zip_read.h), whose storages the pickle's
 * persistent ids name; reading a file (pth.c).
 */
#ifndef UNET_PICKLE_READ_H
#define UNET_PICKLE_READ_H

#include "pyval.h"
#include "zip_read.h"

/* Unpickles entry pkl of z (its CRC checked already) into *out, nodes in
 * z->arena; storages are z's "data/<key>" entries. 0, or MG_EPARSE /
 * MG_ENOMEM with a "data.pkl: ... at offset N" message in z->err. */
int pk_read(zr_ctx *z, const zr_entry *pkl, pv **out);

#endif /* UNET_PICKLE_READ_H */
