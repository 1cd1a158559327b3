/* SPDX-License-Identifier: MIT */
/*
 * split.c: the train/validation split of a data set (data.h,
 * unet_split_make): a seeded shuffle of the sample indices, the first
 * round(val_frac * n) for validation, both lists sorted.
 *
 * Not here: the samples themselves (dataset.c, synthetic.c) and the order
 * of an epoch (loader.c).
 */
#include "data.h"
#include "errf.h"
#include "memguard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int unet_split_make(unet_split *sp, int n, double val_frac, uint64_t seed, char *err,
                    size_t errlen)
{
    if (!sp) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    memset(sp, 0, sizeof *sp);
    if (!(val_frac >= 0.0 && val_frac < 1.0)) {
        unet_errf(err, errlen, "validation fraction %g is out of range [0, 1)", val_frac);
        return MG_ERANGE;
    }
    if (n <= 0) {
        unet_errf(err, errlen, "no samples to split");
        return MG_EINVAL;
    }
    int nv = (int)floor(val_frac * n + 0.5);
    if (val_frac > 0.0 && nv < 1)
        nv = 1;
    if (val_frac > 0.0 && n < 2) {
        unet_errf(err, errlen,
             "cannot split %d sample into training and validation (need at least 2)", n);
        return MG_EINVAL;
    }
    if (nv > n - 1)
        nv = n - 1;
    int *perm = malloc(sizeof(int) * (size_t)n);
    if (!perm) {
        unet_errf(err, errlen, "out of memory splitting %d samples", n);
        return MG_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        perm[i] = i;
    unet_rng r;
    unet_rng_seed(&r, seed);
    unet_rng_shuffle_int(&r, perm, (size_t)n);
    int *val = NULL;
    int *train = malloc(sizeof(int) * (size_t)(n - nv));
    if (nv > 0)
        val = malloc(sizeof(int) * (size_t)nv);
    if (!train || (nv > 0 && !val)) {
        free(perm);
        free(train);
        free(val);
        unet_errf(err, errlen, "out of memory splitting %d samples", n);
        return MG_ENOMEM;
    }
    if (nv > 0)
        memcpy(val, perm, sizeof(int) * (size_t)nv);
    memcpy(train, perm + nv, sizeof(int) * (size_t)(n - nv));
    free(perm);
    /* Ascending lists: evaluation walks the validation set in file order,
     * and a printed split is readable. The training order is reshuffled
     * every epoch anyway. */
    if (nv > 1)
        qsort(val, (size_t)nv, sizeof(int), int_cmp);
    qsort(train, (size_t)(n - nv), sizeof(int), int_cmp);
    sp->n_train = n - nv;
    sp->n_val = nv;
    sp->train = train;
    sp->val = val;
    return 0;
}

void unet_split_free(unet_split *sp)
{
    if (!sp)
        return;
    free(sp->train);
    free(sp->val);
    memset(sp, 0, sizeof *sp);
}
