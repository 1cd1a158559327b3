/* SPDX-License-Identifier: MIT */
/*
 * dataset.c: a data set from a folder (data.h): DIR/images and DIR/masks
 * listed (folder.c) and paired by stem, decoded on OpenMP threads
 * (image.c) and kept as bytes at size x size; the set's byte count for
 * the memory plan; and the pixel arrays the synthetic set shares.
 *
 * Not here: decoding formats (image.c), the synthetic set (synthetic.c),
 * the split (split.c), batches (loader.c); it prints nothing and keeps no
 * global state.
 */
#include "data.h"
#include "data_internal.h"
#include "errf.h"
#include "image.h"
#include "memguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif


uint64_t unet_data_bytes(int n, int size, int channels)
{
    if (n <= 0 || size <= 0 || channels <= 0)
        return 0;
    uint64_t px = (uint64_t)size * (uint64_t)size * (uint64_t)(channels + 1);
    return (uint64_t)n * (px + 256 + sizeof(char *));
}

/* ---- pairing the two folders ---------------------------------------------- */

/* DIR/sub of a data set. */
static int list_folder(const char *dir, const char *sub, data__listing *li, char *err,
                       size_t errlen)
{
    memset(li, 0, sizeof *li);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, sub) >= sizeof path) {
        unet_errf(err, errlen, "%s: path too long", dir);
        return MG_EINVAL;
    }
    int rc = data__list_dir(path, li, err, errlen);
    if (rc == MG_ENOENT)
        unet_errf(err, errlen, "%s: folder not found (a data set needs %s/images/ and %s/masks/)",
             path, dir, dir);
    if (rc)
        return rc;
    int i = data__first_dup(li);
    if (i) {
        unet_errf(err, errlen, "%s/%s: same stem as %s/%s (cannot pair)", path, li->e[i].name,
             path, li->e[i - 1].name);
        data__listing_free(li);
        return MG_EPARSE;
    }
    return 0;
}

struct pairs {
    int n;
    char **img;  /* full paths */
    char **mask; /* full paths */
    char **stem;
};

static void pairs_free(struct pairs *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->img[i]);
        free(p->mask[i]);
        free(p->stem[i]);
    }
    free(p->img);
    free(p->mask);
    free(p->stem);
    memset(p, 0, sizeof *p);
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s/%s", a, b, c);
    return s;
}

/* Lists both folders and pairs them by stem. With p NULL, only counts. */
static int scan_pairs(const char *dir, int *count, struct pairs *p, char *err, size_t errlen)
{
    data__listing im, mk;
    int rc = list_folder(dir, "images", &im, err, errlen);
    if (rc)
        return rc;
    rc = list_folder(dir, "masks", &mk, err, errlen);
    if (rc) {
        data__listing_free(&im);
        return rc;
    }
    if (im.n == 0 && mk.n == 0) {
        unet_errf(err, errlen, "%s: no images (%s/images/ has no .png, .jpg or .jpeg files)", dir,
             dir);
        rc = MG_EINVAL;
        goto out;
    }
    /* Merge the two sorted lists; the first unpaired name in stem order is
     * the one reported, whichever folder it is in. */
    int i = 0, j = 0;
    while (i < im.n || j < mk.n) {
        int c = i == im.n ? 1 : j == mk.n ? -1 : strcmp(im.e[i].stem, mk.e[j].stem);
        if (c < 0) {
            unet_errf(err, errlen,
                 "%s/images/%s: image has no mask (looked for masks/%s.png, .jpg or .jpeg)",
                 dir, im.e[i].name, im.e[i].stem);
            rc = MG_ENOENT;
            goto out;
        }
        if (c > 0) {
            unet_errf(err, errlen,
                 "%s/masks/%s: mask has no image (looked for images/%s.png, .jpg or .jpeg)",
                 dir, mk.e[j].name, mk.e[j].stem);
            rc = MG_ENOENT;
            goto out;
        }
        i++;
        j++;
    }
    *count = im.n;
    if (p) {
        memset(p, 0, sizeof *p);
        p->img = calloc((size_t)im.n, sizeof *p->img);
        p->mask = calloc((size_t)im.n, sizeof *p->mask);
        p->stem = calloc((size_t)im.n, sizeof *p->stem);
        if (!p->img || !p->mask || !p->stem) {
            rc = MG_ENOMEM;
        } else {
            for (int k = 0; k < im.n; k++) {
                p->n = k + 1;
                p->img[k] = join3(dir, "images", im.e[k].name);
                p->mask[k] = join3(dir, "masks", mk.e[k].name);
                p->stem[k] = strdup(im.e[k].stem);
                if (!p->img[k] || !p->mask[k] || !p->stem[k]) {
                    rc = MG_ENOMEM;
                    break;
                }
            }
        }
        if (rc) {
            pairs_free(p);
            unet_errf(err, errlen, "%s: out of memory listing files", dir);
        }
    }
out:
    data__listing_free(&im);
    data__listing_free(&mk);
    return rc;
}

int unet_data_count_folder(const char *dir, int *n, char *err, size_t errlen)
{
    if (!dir || !n) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    *n = 0;
    return scan_pairs(dir, n, NULL, err, errlen);
}

void unet_data_free(unet_data *d)
{
    if (!d)
        return;
    if (d->names)
        for (int i = 0; i < d->n; i++)
            free(d->names[i]);
    free(d->names);
    free(d->img);
    free(d->mask);
    memset(d, 0, sizeof *d);
}

/* ---- the pixel arrays (for synthetic.c too) -------------------------------- */

int data__check_shape(int size, int channels, int min_size, char *err, size_t errlen)
{
    if (size < min_size || size > DATA__MAX_SIZE) {
        unet_errf(err, errlen, "image size %d is out of range [%d, %d]", size, min_size,
                  DATA__MAX_SIZE);
        return MG_EINVAL;
    }
    if (channels != 1 && channels != 3) {
        unet_errf(err, errlen, "channels must be 1 or 3, not %d", channels);
        return MG_EINVAL;
    }
    return 0;
}

int data__alloc_pixels(unet_data *d, int n, int size, int channels, char *err, size_t errlen)
{
    size_t plane = (size_t)size * (size_t)size;
    uint64_t need = (uint64_t)n * plane * (uint64_t)(channels + 1);
    if (need > (uint64_t)SIZE_MAX / 2) {
        unet_errf(err, errlen, "data set of %d x %dx%d is too large for memory", n, size, size);
        return MG_ENOMEM;
    }
    d->img = malloc((size_t)n * plane * (size_t)channels);
    d->mask = malloc((size_t)n * plane);
    if (!d->img || !d->mask) {
        unet_errf(err, errlen, "out of memory for %d samples of %dx%d (%.1f MB)", n, size, size,
             (double)need / 1e6);
        free(d->img);
        free(d->mask);
        d->img = d->mask = NULL;
        return MG_ENOMEM;
    }
    d->n = n;
    d->size = size;
    d->channels = channels;
    return 0;
}

int unet_data_load_folder(unet_data *d, const char *dir, int size, int channels, char *err,
                          size_t errlen)
{
    if (!d || !dir) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    memset(d, 0, sizeof *d);
    int rc = data__check_shape(size, channels, 1, err, errlen);
    if (rc)
        return rc;
    struct pairs p;
    int n = 0;
    rc = scan_pairs(dir, &n, &p, err, errlen);
    if (rc)
        return rc;
    rc = data__alloc_pixels(d, n, size, channels, err, errlen);
    if (rc) {
        pairs_free(&p);
        return rc;
    }
    size_t plane = (size_t)size * (size_t)size;
    /* The first failure in file order wins, so the message does not depend
     * on thread scheduling; later files are skipped once one has failed. */
    int first_bad = n, bad_rc = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        int fb;
#pragma omp atomic read
        fb = first_bad;
        if (i > fb)
            continue;
        char msg[1024];
        int iw = 0, ih = 0, mw = 0, mh = 0;
        int r = unet_image_load_u8(p.img[i], size, channels,
                                   d->img + (size_t)i * plane * (size_t)channels, &iw, &ih,
                                   msg, sizeof msg);
        if (r == 0)
            r = unet_mask_load_u8(p.mask[i], size, d->mask + (size_t)i * plane, &mw, &mh, msg,
                                  sizeof msg);
        if (r == 0 && (mw != iw || mh != ih)) {
            snprintf(msg, sizeof msg, "%s: mask is %dx%d but its image %s is %dx%d", p.mask[i],
                     mw, mh, p.img[i], iw, ih);
            r = MG_EPARSE;
        }
        if (r != 0) {
#pragma omp critical(unet_data_first_bad)
            {
                if (i < first_bad) {
#pragma omp atomic write
                    first_bad = i;
                    bad_rc = r;
                    unet_errf(err, errlen, "%s", msg);
                }
            }
        }
    }
    if (bad_rc) {
        pairs_free(&p);
        unet_data_free(d);
        return bad_rc;
    }
    /* The stems become the names; the paths are no longer needed. */
    d->names = p.stem;
    p.stem = NULL;
    for (int i = 0; i < p.n; i++) {
        free(p.img[i]);
        free(p.mask[i]);
    }
    free(p.img);
    free(p.mask);
    return 0;
}

