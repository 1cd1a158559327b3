/* SPDX-License-Identifier: MIT */
/*
 * folder.c: the one image-folder lister of unet-train: a folder's .png,
 * .jpg and .jpeg files, regular files only, sorted by stem in byte order
 * (not the locale's collation: the same order on every machine). The data
 * set pairs DIR/images with DIR/masks through it (dataset.c), and
 * `unet-train predict` lists its --input folder with unet_list_images.
 *
 * Not here: pairing images with masks (dataset.c), decoding (image.c),
 * printing.
 */
#include "data.h"
#include "data_internal.h"
#include "errf.h"
#include "memguard.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void data__listing_free(data__listing *li)
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
    const data__entry *x = a, *y = b;
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

int data__list_dir(const char *path, data__listing *li, char *err, size_t errlen)
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
        unet_errf(err, errlen, "%s: cannot read folder: %s", path,
                  unet_strerror(e, buf, sizeof buf));
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
            if (li->cap >= DATA__MAX_SAMPLES) {
                unet_errf(err, errlen, "%s: more than %d image files", path, DATA__MAX_SAMPLES);
                rc = MG_ERANGE;
                break;
            }
            int cap = li->cap ? 2 * li->cap : 64;
            data__entry *ne = realloc(li->e, sizeof *ne * (size_t)cap);
            if (!ne) {
                rc = MG_ENOMEM;
                break;
            }
            li->e = ne;
            li->cap = cap;
        }
        data__entry *e = &li->e[li->n];
        e->name = strdup(name);
        e->stem = malloc(sl + 1); /* strndup, which Windows lacks */
        if (e->stem) {
            memcpy(e->stem, name, sl);
            e->stem[sl] = '\0';
        }
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
        data__listing_free(li);
        return rc;
    }
    /* Byte order, not the locale's collation: the same order everywhere. */
    if (li->n > 1)
        qsort(li->e, (size_t)li->n, sizeof *li->e, entry_cmp);
    return 0;
}

int data__first_dup(const data__listing *li)
{
    for (int i = 1; i < li->n; i++)
        if (strcmp(li->e[i].stem, li->e[i - 1].stem) == 0)
            return i;
    return 0;
}

int unet_list_images(const char *dir, char ***names, int *n, char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    data__listing li;
    int rc = data__list_dir(dir, &li, err, errlen);
    if (rc)
        return rc;
    int i = data__first_dup(&li);
    if (i) {
        unet_errf(err, errlen, "%s/%s: same stem as %s/%s (both would give %s.png)", dir,
             li.e[i].name, dir, li.e[i - 1].name, li.e[i].stem);
        data__listing_free(&li);
        return MG_EPARSE;
    }
    if (li.n == 0) {
        unet_errf(err, errlen, "%s: no .png, .jpg or .jpeg images in it", dir);
        data__listing_free(&li);
        return MG_EINVAL;
    }
    char **v = malloc((size_t)li.n * sizeof *v);
    if (!v) {
        unet_errf(err, errlen, "%s: out of memory listing files", dir);
        data__listing_free(&li);
        return MG_ENOMEM;
    }
    for (int k = 0; k < li.n; k++) {
        v[k] = li.e[k].name; /* handed over */
        li.e[k].name = NULL;
    }
    *n = li.n;
    *names = v;
    data__listing_free(&li);
    return 0;
}

void unet_list_free(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}
