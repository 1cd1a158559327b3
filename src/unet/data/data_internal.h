/* SPDX-License-Identifier: MIT */
/*
 * data_internal.h: what the files of data/ share and nothing outside
 * data/ includes: the limits of a set, the checks and allocation of its
 * pixel arrays (dataset.c, used by synthetic.c too), and the sorted
 * listing of one folder's image files (folder.c, used by dataset.c to pair
 * images with masks). Names carry the data__ prefix, the trainer's
 * internal one, as mg__ is the library's.
 *
 * Not here: anything a caller of the data layer needs (data.h, image.h).
 */
#ifndef UNET_DATA_INTERNAL_H
#define UNET_DATA_INTERNAL_H

#include "data.h"

#include <stddef.h>

/* Largest set accepted: keeps every index product inside int and size_t. */
#define DATA__MAX_SAMPLES (1 << 24)
#define DATA__MAX_SIZE 16384

/* ---- a set's pixel arrays (dataset.c) ------------------------------------- */

/* size in [min_size, DATA__MAX_SIZE] and channels 1 or 3, else MG_EINVAL
 * with "image size 4 is out of range [8, 16384]" or "channels must be 1 or
 * 3, not 2". */
int data__check_shape(int size, int channels, int min_size, char *err, size_t errlen);

/* d->img and d->mask for n samples, d->n, size and channels set. MG_ENOMEM
 * with "out of memory for 500 samples of 256x256 (131.1 MB)" or "data set
 * of 500 x 256x256 is too large for memory"; d is then left as it was. */
int data__alloc_pixels(unet_data *d, int n, int size, int channels, char *err, size_t errlen);

/* ---- one folder's image files (folder.c) ---------------------------------- */

typedef struct data__entry {
    char *stem; /* file name without its last extension */
    char *name; /* file name */
} data__entry;

typedef struct data__listing {
    data__entry *e;
    int n, cap;
} data__listing;

/* The .png, .jpg and .jpeg files of folder `path` (any case; regular files
 * only: a folder or a FIFO named x.png is skipped, never opened; names
 * starting with '.' skipped), sorted by stem in byte order. Messages:
 * "PATH: folder not found" (MG_ENOENT), "PATH: cannot read folder:
 * <strerror>" (MG_EPERM / MG_EIO), "PATH: more than 16777216 image files"
 * (MG_ERANGE), "PATH: out of memory listing files" (MG_ENOMEM). On failure
 * *li is empty. */
int data__list_dir(const char *path, data__listing *li, char *err, size_t errlen);

/* The first entry whose stem equals its predecessor's, or 0 if none. */
int data__first_dup(const data__listing *li);

void data__listing_free(data__listing *li);

#endif /* UNET_DATA_INTERNAL_H */
