/* SPDX-License-Identifier: MIT */
/*
 * loader.c: the epoch cursor over a data set (data.h, unet_loader_*): an
 * order per epoch (shuffled or not), flips per position from a hashed
 * epoch key, NCHW float batches made on demand from the set's bytes, and
 * a state of UNET_LOADER_STATE_WORDS integers for an exact resume.
 *
 * Not here: loading or drawing the samples (dataset.c, synthetic.c), the
 * split (split.c), any threading (a batch is a few MB of byte -> float
 * conversion).
 */
#include "data.h"
#include "errf.h"
#include "memguard.h"

#include <stdlib.h>
#include <string.h>

int unet_loader_init(unet_loader *l, const unet_data *d, const int *idx, int n, int batch,
                     unsigned flags, uint64_t seed, char *err, size_t errlen)
{
    if (!l || !d) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    memset(l, 0, sizeof *l);
    if (batch < 1) {
        unet_errf(err, errlen, "batch size %d must be at least 1", batch);
        return MG_EINVAL;
    }
    if (n <= 0 || !idx) {
        unet_errf(err, errlen, "empty sample list");
        return MG_EINVAL;
    }
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= d->n) {
            unet_errf(err, errlen, "sample index %d out of range [0, %d)", idx[i], d->n);
            return MG_ERANGE;
        }
    l->idx = malloc(sizeof(int) * (size_t)n);
    l->order = malloc(sizeof(int) * (size_t)n);
    if (!l->idx || !l->order) {
        free(l->idx);
        free(l->order);
        l->idx = l->order = NULL;
        unet_errf(err, errlen, "out of memory for a loader of %d samples", n);
        return MG_ENOMEM;
    }
    memcpy(l->idx, idx, sizeof(int) * (size_t)n);
    memcpy(l->order, idx, sizeof(int) * (size_t)n);
    l->data = d;
    l->n = n;
    l->batch = batch;
    l->flags = flags;
    unet_rng_seed(&l->rng, seed);
    unet_rng_get_state(&l->rng, l->epoch_rng);
    return 0;
}

void unet_loader_free(unet_loader *l)
{
    if (!l)
        return;
    free(l->idx);
    free(l->order);
    memset(l, 0, sizeof *l);
}

/* Everything an epoch draws, from the current rng: n - 1 draws for the
 * shuffle and one for the flip key, whatever the flags, so the stream of
 * later epochs does not depend on them. */
static void draw_epoch(unet_loader *l)
{
    unet_rng_get_state(&l->rng, l->epoch_rng);
    memcpy(l->order, l->idx, sizeof(int) * (size_t)l->n);
    unet_rng_shuffle_int(&l->rng, l->order, (size_t)l->n);
    if (!(l->flags & UNET_LOADER_SHUFFLE))
        memcpy(l->order, l->idx, sizeof(int) * (size_t)l->n);
    l->flip_key = unet_rng_u64(&l->rng);
}

void unet_loader_begin_epoch(unet_loader *l)
{
    draw_epoch(l);
    l->epoch++;
    l->pos = 0;
}

int unet_loader_set_batch(unet_loader *l, int batch)
{
    if (!l || batch < 1)
        return MG_EINVAL;
    l->batch = batch;
    return 0;
}

int unet_loader_batches_left(const unet_loader *l)
{
    if (l->epoch == 0 || l->pos >= l->n)
        return 0;
    return (l->n - l->pos + l->batch - 1) / l->batch;
}

unsigned unet_loader_flips(const unet_loader *l, int p)
{
    unsigned want = 0;
    if (l->flags & UNET_LOADER_FLIP_H)
        want |= 1u;
    if (l->flags & UNET_LOADER_FLIP_V)
        want |= 2u;
    if (!want)
        return 0;
    /* A hash of (epoch key, position): random access, independent of the
     * batch size, nothing to store beyond the key. */
    uint64_t x = l->flip_key ^ (0x9e3779b97f4a7c15ULL * ((uint64_t)p + 1));
    uint64_t h = unet_splitmix64(&x);
    return (unsigned)(h >> 62) & want;
}

/* lut[v] = v / 255.0f, the same rounding as torch's ToTensor (a division,
 * not a multiplication by 1/255, which differs in the last bit). */
static void fill_one(const unet_data *d, int s, unsigned flips, const float *lut, float *x,
                     float *y)
{
    const int S = d->size;
    const size_t plane = (size_t)S * (size_t)S;
    for (int c = 0; c <= d->channels; c++) {
        /* c == channels is the mask */
        const int is_mask = c == d->channels;
        const uint8_t *src = is_mask ? d->mask + (size_t)s * plane
                                     : d->img + ((size_t)s * (size_t)d->channels + (size_t)c) * plane;
        float *dst = is_mask ? y : (x ? x + (size_t)c * plane : NULL);
        if (!dst)
            continue;
        for (int r = 0; r < S; r++) {
            int sr = (flips & 2u) ? S - 1 - r : r;
            const uint8_t *row = src + (size_t)sr * (size_t)S;
            float *o = dst + (size_t)r * (size_t)S;
            if (flips & 1u) {
                for (int q = 0; q < S; q++)
                    o[q] = is_mask ? (float)row[S - 1 - q] : lut[row[S - 1 - q]];
            } else {
                for (int q = 0; q < S; q++)
                    o[q] = is_mask ? (float)row[q] : lut[row[q]];
            }
        }
    }
}

/* Fills positions [first, first + count) of the current epoch's order, with
 * the flips of those positions, without moving the cursor. Returns the
 * number filled (clipped at n), 0 if first is out of range. */
static int loader_fill(const unet_loader *l, int first, int count, float *x, float *y)
{
    if (first < 0 || first >= l->n || count <= 0)
        return 0;
    if (count > l->n - first)
        count = l->n - first;
    const unet_data *d = l->data;
    size_t plane = (size_t)d->size * (size_t)d->size;
    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)v / 255.0f;
    for (int k = 0; k < count; k++) {
        int p = first + k;
        fill_one(d, l->order[p], unet_loader_flips(l, p), lut,
                 x ? x + (size_t)k * (size_t)d->channels * plane : NULL,
                 y ? y + (size_t)k * plane : NULL);
    }
    return count;
}

int unet_loader_next(unet_loader *l, float *x, float *y)
{
    if (l->epoch == 0 || l->pos >= l->n)
        return 0;
    int bn = loader_fill(l, l->pos, l->batch, x, y);
    l->pos += bn;
    return bn;
}

int unet_loader_shard(int bn, int part, int parts, int *first)
{
    int q = bn / parts, r = bn % parts;
    *first = part * q + (part < r ? part : r);
    return q + (part < r);
}

int unet_loader_next_shard(unet_loader *l, int part, int parts, float *x, float *y, int *count)
{
    *count = 0;
    if (l->epoch == 0 || l->pos >= l->n)
        return 0;
    int bn = l->n - l->pos < l->batch ? l->n - l->pos : l->batch, first;
    int mine = unet_loader_shard(bn, part, parts, &first);
    *count = mine ? loader_fill(l, l->pos + first, mine, x, y) : 0;
    l->pos += bn;
    return bn;
}

void unet_loader_export(const unet_loader *l, uint64_t st[UNET_LOADER_STATE_WORDS])
{
    st[0] = 1;
    for (int i = 0; i < 4; i++)
        st[1 + i] = l->epoch_rng[i];
    st[5] = l->epoch;
    st[6] = (uint64_t)l->pos;
    st[7] = (uint64_t)l->n;
}

int unet_loader_import(unet_loader *l, const uint64_t st[UNET_LOADER_STATE_WORDS], char *err,
                       size_t errlen)
{
    if (st[0] != 1) {
        unet_errf(err, errlen, "resume state: unknown format version %llu",
             (unsigned long long)st[0]);
        return MG_EPARSE;
    }
    if (st[7] != (uint64_t)l->n) {
        unet_errf(err, errlen,
             "resume state: walks %llu samples but this run has %d (different data or split?)",
             (unsigned long long)st[7], l->n);
        return MG_EINVAL;
    }
    if (st[6] > (uint64_t)l->n || (st[5] == 0 && st[6] != 0)) {
        unet_errf(err, errlen, "resume state: position %llu is past the %d samples of an epoch",
             (unsigned long long)st[6], l->n);
        return MG_EPARSE;
    }
    unet_rng r;
    if (unet_rng_set_state(&r, st + 1) != 0) {
        unet_errf(err, errlen, "resume state: rng state is all zero");
        return MG_EPARSE;
    }
    l->rng = r;
    if (st[5] > 0) {
        draw_epoch(l); /* the current epoch's order and key, rng advanced */
    } else {
        unet_rng_get_state(&l->rng, l->epoch_rng);
        memcpy(l->order, l->idx, sizeof(int) * (size_t)l->n);
        l->flip_key = 0;
    }
    l->epoch = st[5];
    l->pos = (int)st[6];
    return 0;
}
