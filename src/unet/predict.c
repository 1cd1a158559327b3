/* SPDX-License-Identifier: MIT */
/*
 * predict.c: `unet-train predict`: runs a checkpoint (ours or a PyTorch
 * state_dict of the same model) over a folder of images and writes one
 * PNG mask per image, at the image's own size (the probability map is
 * resized back bilinearly, then thresholded at 0.5), and optionally the raw
 * logits at the model's size as one (N, 1, H, W) float32 .npy file, the
 * form the parity tests compare with PyTorch.
 */
#include "train.h"

#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The image files of dir, sorted by name. */
static char **list_images(const char *dir, int *n, char *err, size_t len)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, len, "--input %s: %s", dir, strerror(errno));
        return NULL;
    }
    char **v = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n == 0) {
        snprintf(err, len, "--input %s: no .png, .jpg or .jpeg images in it", dir);
        free(v);
        return NULL;
    }
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* A .npy (format 1.0) header for float32 (n, 1, h, w), little-endian. */
static int write_npy_header(FILE *f, int n, int h, int w)
{
    char dict[128];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, %d, %d), }", n,
                      h, w);
    int total = 10 + dl + 1;
    int pad = (64 - total % 64) % 64;
    unsigned short hl = (unsigned short)(dl + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char le[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(le, 1, 2, f);
    fwrite(dict, 1, (size_t)dl, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}

int predict_run(const predict_opts *o)
{
    char err[1024];
    if (o->threads > 0) omp_set_num_threads(o->threads);
    unet_cfg cfg;
    if (ckpt_peek(o->checkpoint, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "unet-train: --checkpoint %s\n", err);
        return UT_EXIT_USAGE;
    }
    int n;
    char **files = list_images(o->input, &n, err, sizeof err);
    if (!files) {
        fprintf(stderr, "unet-train: %s\n", err);
        return UT_EXIT_USAGE;
    }
    /* The image size: asked for, else the checkpoint's own. */
    run_cfg saved = {0};
    int size = o->img_size;
    int batch = o->batch > 0 ? o->batch : 4;
    if (batch > n) batch = n;
    unet *m = NULL;
    int status = UT_EXIT_USAGE;
    FILE *npy = NULL;
    if (size == 0) {
        /* Peek the config by loading into a minimal model first. */
        unet *probe = unet_create(&cfg, 1, 1 << cfg.depth, 1 << cfg.depth, 0, err, sizeof err);
        int ho, hr;
        run_state st;
        if (probe && ckpt_load(o->checkpoint, probe, &saved, &st, &ho, &hr, err, sizeof err) == 0)
            size = saved.img_size;
        unet_destroy(probe);
        if (size <= 0) {
            fprintf(stderr, "unet-train: --checkpoint %s has no image size in its config: give "
                    "--img-size\n", o->checkpoint);
            goto out;
        }
    }
    m = unet_create(&cfg, batch, size, size, 0, err, sizeof err);
    if (!m) {
        fprintf(stderr, "unet-train: %s\n", err);
        goto out;
    }
    int ho, hr;
    if (ckpt_load(o->checkpoint, m, NULL, NULL, &ho, &hr, err, sizeof err) < 0) {
        fprintf(stderr, "unet-train: --checkpoint %s\n", err);
        goto out;
    }
    if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "unet-train: --out %s: %s\n", o->out, strerror(errno));
        goto out;
    }
    if (o->logits) {
        npy = fopen(o->logits, "wb");
        if (!npy || write_npy_header(npy, n, size, size) < 0) {
            fprintf(stderr, "unet-train: --logits %s: %s\n", o->logits, strerror(errno));
            goto out;
        }
    }
    status = UT_EXIT_ERROR;
    size_t hw = (size_t)size * (size_t)size;
    int ow[4096], oh[4096]; /* original sizes of one batch */
    for (int first = 0; first < n; first += batch) {
        int bn = n - first < batch ? n - first : batch;
        for (int i = 0; i < bn; i++) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", o->input, files[first + i]);
            if (unet_image_load_chw(path, size, cfg.in_ch,
                                    m->in_nchw + (size_t)i * hw * (size_t)cfg.in_ch, &ow[i],
                                    &oh[i], err, sizeof err) < 0) {
                fprintf(stderr, "unet-train: %s\n", err);
                status = UT_EXIT_USAGE;
                goto out;
            }
        }
        unet_forward(m, bn, false);
        if (npy && fwrite(m->logits_nchw, sizeof(float), (size_t)bn * hw, npy) != (size_t)bn * hw) {
            fprintf(stderr, "unet-train: --logits %s: %s\n", o->logits, strerror(errno));
            goto out;
        }
        for (int i = 0; i < bn; i++) {
            const float *lg = m->logits_nchw + (size_t)i * hw;
            float *sig = malloc(hw * sizeof *sig);
            size_t opx = (size_t)ow[i] * (size_t)oh[i];
            float *big = malloc(opx * sizeof *big);
            uint8_t *px = malloc(opx);
            if (!sig || !big || !px) {
                free(sig);
                free(big);
                free(px);
                fprintf(stderr, "unet-train: out of memory for a %dx%d mask\n", ow[i], oh[i]);
                goto out;
            }
            for (size_t k = 0; k < hw; k++) sig[k] = 1.0f / (1.0f + expf(-lg[k]));
            unet_resize_bilinear(sig, size, size, 1, big, ow[i], oh[i]);
            for (size_t k = 0; k < opx; k++) px[k] = big[k] > 0.5f ? 255 : 0;
            char path[2048], stem[1024];
            snprintf(stem, sizeof stem, "%s", files[first + i]);
            char *dot = strrchr(stem, '.');
            if (dot) *dot = '\0';
            snprintf(path, sizeof path, "%s/%s.png", o->out, stem);
            int rc = unet_png_write_gray8(path, px, ow[i], oh[i], err, sizeof err);
            free(sig);
            free(big);
            free(px);
            if (rc < 0) {
                fprintf(stderr, "unet-train: %s\n", err);
                goto out;
            }
        }
    }
    printf("predicted %d masks into %s%s%s\n", n, o->out, o->logits ? ", logits in " : "",
           o->logits ? o->logits : "");
    status = UT_EXIT_OK;
out:
    if (npy && fclose(npy) != 0 && status == UT_EXIT_OK) status = UT_EXIT_ERROR;
    unet_destroy(m);
    for (int i = 0; i < n && files; i++) free(files[i]);
    free(files);
    return status;
}
