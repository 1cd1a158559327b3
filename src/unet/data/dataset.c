/* SPDX-License-Identifier: MIT */
/*
 * data.c: the data set, the train/validation split and the epoch cursor
 * (see data.h). Folder loading pairs files by stem, decodes them in
 * parallel and keeps bytes; batches are made on demand from those bytes.
 * The synthetic set is drawn here too, so tests and demos need no files.
 *
 * It does not decode formats itself (image.c does), print, or keep global
 * state; all randomness comes from unet_rng instances the caller seeds.
 */
#include "errf.h"
#include "data.h"

#include "image.h"
#include "memguard.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif


/* Largest set accepted: keeps every index product inside int and size_t. */
#define MAX_SAMPLES (1 << 24)
#define MAX_SIZE 16384

uint64_t unet_data_bytes(int n, int size, int channels)
{
    if (n <= 0 || size <= 0 || channels <= 0)
        return 0;
    uint64_t px = (uint64_t)size * (uint64_t)size * (uint64_t)(channels + 1);
    return (uint64_t)n * (px + 256 + sizeof(char *));
}

/* ---- folder scanning ------------------------------------------------------ */

struct entry {
    char *stem; /* file name without its last extension */
    char *name; /* file name */
};

struct listing {
    struct entry *e;
    int n, cap;
};

static void listing_free(struct listing *li)
{
    for (int i = 0; i < li->n; i++) {
        free(li->e[i].stem);
        free(li->e[i].name);
    }
    free(li->e);
    memset(li, 0, sizeof *li);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    return c ? c : strcmp(x->name, y->name);
}

/* Whether name ends in .png, .jpg or .jpeg (any case); returns the stem
 * length or 0. */
static size_t image_stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    if (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))
        return 0;
    return (size_t)(dot - name);
}

/* The image files of folder `path` (regular files only: a folder or a
 * FIFO named x.png is skipped, never opened), sorted by stem. */
static int list_dir(const char *path, struct listing *li, char *err, size_t errlen)
{
    memset(li, 0, sizeof *li);
    DIR *dp = opendir(path);
    if (!dp) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            unet_errf(err, errlen, "%s: folder not found", path);
            return MG_ENOENT;
        }
        char buf[128];
        if (strerror_r(e, buf, sizeof buf) != 0)
            snprintf(buf, sizeof buf, "errno %d", e);
        unet_errf(err, errlen, "%s: cannot read folder: %s", path, buf);
        return e == EACCES ? MG_EPERM : MG_EIO;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        size_t sl = image_stem_len(name);
        if (sl == 0)
            continue;
        /* Skip anything that is not a regular file (a folder "x.png"). */
        char full[4096];
        struct stat st;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", path, name) >= sizeof full
            || stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (li->n == li->cap) {
            if (li->cap >= MAX_SAMPLES) {
                unet_errf(err, errlen, "%s: more than %d image files", path, MAX_SAMPLES);
                rc = MG_ERANGE;
                break;
            }
            int cap = li->cap ? 2 * li->cap : 64;
            struct entry *ne = realloc(li->e, sizeof *ne * (size_t)cap);
            if (!ne) {
                rc = MG_ENOMEM;
                break;
            }
            li->e = ne;
            li->cap = cap;
        }
        struct entry *e = &li->e[li->n];
        e->name = strdup(name);
        e->stem = strndup(name, sl);
        if (!e->name || !e->stem) {
            free(e->name);
            free(e->stem);
            rc = MG_ENOMEM;
            break;
        }
        li->n++;
    }
    closedir(dp);
    if (rc == MG_ENOMEM)
        unet_errf(err, errlen, "%s: out of memory listing files", path);
    if (rc) {
        listing_free(li);
        return rc;
    }
    /* Byte order, not the locale's collation: the same order everywhere. */
    if (li->n > 1)
        qsort(li->e, (size_t)li->n, sizeof *li->e, entry_cmp);
    return 0;
}

/* The first entry whose stem equals its predecessor's, or 0 if none. */
static int first_dup(const struct listing *li)
{
    for (int i = 1; i < li->n; i++)
        if (strcmp(li->e[i].stem, li->e[i - 1].stem) == 0)
            return i;
    return 0;
}

/* DIR/sub of a data set. */
static int list_folder(const char *dir, const char *sub, struct listing *li, char *err,
                       size_t errlen)
{
    memset(li, 0, sizeof *li);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, sub) >= sizeof path) {
        unet_errf(err, errlen, "%s: path too long", dir);
        return MG_EINVAL;
    }
    int rc = list_dir(path, li, err, errlen);
    if (rc == MG_ENOENT)
        unet_errf(err, errlen, "%s: folder not found (a data set needs %s/images/ and %s/masks/)",
             path, dir, dir);
    if (rc)
        return rc;
    int i = first_dup(li);
    if (i) {
        unet_errf(err, errlen, "%s/%s: same stem as %s/%s (cannot pair)", path, li->e[i].name,
             path, li->e[i - 1].name);
        listing_free(li);
        return MG_EPARSE;
    }
    return 0;
}

int unet_list_images(const char *dir, char ***names, int *n, char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    struct listing li;
    int rc = list_dir(dir, &li, err, errlen);
    if (rc)
        return rc;
    int i = first_dup(&li);
    if (i) {
        unet_errf(err, errlen, "%s/%s: same stem as %s/%s (both would give %s.png)", dir,
             li.e[i].name, dir, li.e[i - 1].name, li.e[i].stem);
        listing_free(&li);
        return MG_EPARSE;
    }
    if (li.n == 0) {
        unet_errf(err, errlen, "%s: no .png, .jpg or .jpeg images in it", dir);
        listing_free(&li);
        return MG_EINVAL;
    }
    char **v = malloc((size_t)li.n * sizeof *v);
    if (!v) {
        unet_errf(err, errlen, "%s: out of memory listing files", dir);
        listing_free(&li);
        return MG_ENOMEM;
    }
    for (int k = 0; k < li.n; k++) {
        v[k] = li.e[k].name; /* handed over */
        li.e[k].name = NULL;
    }
    *n = li.n;
    *names = v;
    listing_free(&li);
    return 0;
}

void unet_list_free(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
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
    struct listing im, mk;
    int rc = list_folder(dir, "images", &im, err, errlen);
    if (rc)
        return rc;
    rc = list_folder(dir, "masks", &mk, err, errlen);
    if (rc) {
        listing_free(&im);
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
    listing_free(&im);
    listing_free(&mk);
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

static int check_shape(int size, int channels, int min_size, char *err, size_t errlen)
{
    if (size < min_size || size > MAX_SIZE) {
        unet_errf(err, errlen, "image size %d is out of range [%d, %d]", size, min_size, MAX_SIZE);
        return MG_EINVAL;
    }
    if (channels != 1 && channels != 3) {
        unet_errf(err, errlen, "channels must be 1 or 3, not %d", channels);
        return MG_EINVAL;
    }
    return 0;
}

static int alloc_pixels(unet_data *d, int n, int size, int channels, char *err, size_t errlen)
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
    int rc = check_shape(size, channels, 1, err, errlen);
    if (rc)
        return rc;
    struct pairs p;
    int n = 0;
    rc = scan_pairs(dir, &n, &p, err, errlen);
    if (rc)
        return rc;
    rc = alloc_pixels(d, n, size, channels, err, errlen);
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

/* ---- the synthetic set ---------------------------------------------------- */

struct shape {
    int kind; /* 0 disc, 1 rectangle, 2 triangle */
    float cx, cy, r, hw, hh;
    float vx[3], vy[3];
};

static int inside(const struct shape *s, float x, float y)
{
    switch (s->kind) {
    case 0:
        return (x - s->cx) * (x - s->cx) + (y - s->cy) * (y - s->cy) <= s->r * s->r;
    case 1:
        return fabsf(x - s->cx) <= s->hw && fabsf(y - s->cy) <= s->hh;
    default: {
        /* Same sign of all three edge functions (either winding). */
        float d[3];
        for (int k = 0; k < 3; k++) {
            int m = (k + 1) % 3;
            d[k] = (s->vx[m] - s->vx[k]) * (y - s->vy[k]) - (s->vy[m] - s->vy[k]) * (x - s->vx[k]);
        }
        int neg = d[0] < 0 || d[1] < 0 || d[2] < 0;
        int pos = d[0] > 0 || d[1] > 0 || d[2] > 0;
        return !(neg && pos);
    }
    }
}

static float uni(unet_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * unet_rng_uniformf(r);
}

/* One sample, a pure function of (seed, i, size, channels). The design
 * goal is a task a small UNet learns in minutes: shapes are brighter than
 * the background on average (levels 0.6-0.85 against 0.1-0.3) but both are
 * textured, so a per-pixel threshold is not enough and edges matter. */
static void synth_one(uint8_t *img, uint8_t *mask, int size, int channels, uint64_t seed,
                      int i)
{
    unet_rng r;
    unet_rng_seed(&r, seed ^ (0xd1b54a32d192ed03ULL * ((uint64_t)i + 1)));
    const float S = (float)size;
    const float two_pi = 6.2831853f;
    size_t plane = (size_t)size * (size_t)size;

    float bg[3], fg[3];
    float bl = uni(&r, 0.1f, 0.3f);
    float fl = uni(&r, 0.6f, 0.85f);
    for (int c = 0; c < 3; c++) {
        bg[c] = bl + uni(&r, -0.05f, 0.05f);
        fg[c] = fl + uni(&r, -0.08f, 0.08f);
    }
    /* Background texture: three plane waves of random direction. */
    float wfx[3], wfy[3], wph[3], wam[3];
    for (int k = 0; k < 3; k++) {
        float ang = uni(&r, 0.0f, two_pi);
        float freq = uni(&r, 1.0f, 6.0f) * two_pi / S;
        wfx[k] = freq * cosf(ang);
        wfy[k] = freq * sinf(ang);
        wph[k] = uni(&r, 0.0f, two_pi);
        wam[k] = uni(&r, 0.02f, 0.05f);
    }
    /* Shape texture: one finer wave. */
    float sang = uni(&r, 0.0f, two_pi), sfreq = uni(&r, 8.0f, 16.0f) * two_pi / S;
    float sfx = sfreq * cosf(sang), sfy = sfreq * sinf(sang);

    struct shape sh[3];
    int ns = 1 + (int)unet_rng_below(&r, 3);
    for (int k = 0; k < ns; k++) {
        struct shape *s = &sh[k];
        s->kind = (int)unet_rng_below(&r, 3);
        s->cx = uni(&r, 0.15f, 0.85f) * S;
        s->cy = uni(&r, 0.15f, 0.85f) * S;
        s->r = uni(&r, 0.1f, 0.25f) * S;
        s->hw = s->r * uni(&r, 0.5f, 1.0f);
        s->hh = s->r * uni(&r, 0.5f, 1.0f);
        float a0 = uni(&r, 0.0f, two_pi);
        for (int v = 0; v < 3; v++) {
            float a = a0 + two_pi * (float)v / 3.0f + uni(&r, -0.4f, 0.4f);
            float rr = s->r * uni(&r, 0.8f, 1.2f);
            s->vx[v] = s->cx + rr * cosf(a);
            s->vy[v] = s->cy + rr * sinf(a);
        }
    }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f, py = (float)y + 0.5f;
            int in = 0;
            for (int k = 0; k < ns && !in; k++)
                in = inside(&sh[k], px, py);
            size_t o = (size_t)y * (size_t)size + (size_t)x;
            mask[o] = (uint8_t)in;
            float tex = 0.0f;
            if (in) {
                tex = 0.05f * sinf(sfx * px + sfy * py);
            } else {
                for (int k = 0; k < 3; k++)
                    tex += wam[k] * sinf(wfx[k] * px + wfy[k] * py + wph[k]);
            }
            float v[3];
            for (int c = 0; c < 3; c++)
                v[c] = (in ? fg[c] : bg[c]) + tex + uni(&r, -0.06f, 0.06f);
            if (channels == 1)
                v[0] = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
            for (int c = 0; c < channels; c++) {
                float q = v[c] < 0.0f ? 0.0f : v[c] > 1.0f ? 1.0f : v[c];
                img[(size_t)c * plane + o] = (uint8_t)(q * 255.0f + 0.5f);
            }
        }
}

int unet_data_synthetic(unet_data *d, int n, int size, int channels, uint64_t seed,
                        char *err, size_t errlen)
{
    if (!d) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    memset(d, 0, sizeof *d);
    if (n <= 0 || n > MAX_SAMPLES) {
        unet_errf(err, errlen, "synthetic sample count %d is out of range [1, %d]", n, MAX_SAMPLES);
        return MG_EINVAL;
    }
    int rc = check_shape(size, channels, 8, err, errlen);
    if (rc)
        return rc;
    rc = alloc_pixels(d, n, size, channels, err, errlen);
    if (rc)
        return rc;
    size_t plane = (size_t)size * (size_t)size;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++)
        synth_one(d->img + (size_t)i * plane * (size_t)channels, d->mask + (size_t)i * plane,
                  size, channels, seed, i);
    return 0;
}

/* ---- split ---------------------------------------------------------------- */

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

/* ---- the epoch cursor ----------------------------------------------------- */

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
static int unet_loader_fill(const unet_loader *l, int first, int count, float *x, float *y)
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
    int bn = unet_loader_fill(l, l->pos, l->batch, x, y);
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
