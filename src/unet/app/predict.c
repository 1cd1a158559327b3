/* SPDX-License-Identifier: MIT */
/*
 * predict.c: `unet-train predict`: runs a checkpoint (ours or a PyTorch
 * state_dict of the same model) over a folder of images and writes one
 * PNG mask per image, at the image's own size (the probability map is
 * resized back bilinearly, then thresholded at 0.5), and optionally the raw
 * logits at the model's size as one (N, 1, H, W) float32 .npy file, the
 * form the parity tests compare with PyTorch, and optionally (--overlay
 * DIR) DIR/STEM.png: the image as decoded, at its own size, in RGB (gray
 * replicated, alpha dropped), with the outline of its mask in red: the
 * mask's pixels with a 4-neighbour outside the mask or outside the image.
 *
 * Nothing the user has is destroyed: every check (the checkpoint, the
 * images, an --out or --overlay that is the --input folder, an --overlay
 * that is --out, two images with one stem, a mask, an overlay or the
 * logits landing on the checkpoint) comes before --out or --overlay is
 * created or anything is written; masks, overlays and logits are written
 * atomically
 * (a temporary renamed over the final name), so a failure never leaves a
 * half-written file under a final name.
 *
 * Not here: training, and any output other than the masks, the overlays
 * and the .npy.
 */
#include "train.h"

#include "image.h"
#include "errf.h"
#include "memguard.h"
#include "outdir.h"
#include "sys.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct pred {
    const predict_opts *o;
    char **files;       /* image names in --input, sorted */
    int n;
    ckpt_file *cf;
    ckpt_info ci;
    int size, batch;
    unet *m;
    mg_atomic npy;      /* the --logits temporary, fd -1 when none */
    out_dir od;
    out_dir ovd;        /* --overlay's folder */
} pred;

static int usage_err(const char *fmt, ...) UNET_PRINTF(1, 2);
static int usage_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("unet-train: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return MG_EXIT_USAGE;
}

/* Whether path's own directory entry (a link is not followed) is the file
 * id names: writing there would replace that file. */
static bool entry_is(const char *path, const unet_file_id *id)
{
    unet_file_id e;
    return unet_file_id_of(path, false, &e) == 0 && unet_file_id_eq(&e, id);
}

/* Whether two paths name one existing file. */
static bool same_file(const char *a, const char *b)
{
    unet_file_id ia, ib;
    return unet_file_id_of(a, true, &ia) == 0 && unet_file_id_of(b, true, &ib) == 0 &&
           unet_file_id_eq(&ia, &ib);
}

/* An output folder (`flag` --out or --overlay) must not be --input (its
 * PNGs would replace the images) and, when it exists, must be a folder. */
static int check_dir(const predict_opts *o, const char *flag, const char *dir)
{
    struct stat so;
    if (stat(dir, &so) != 0) return 0; /* created later */
    if (!S_ISDIR(so.st_mode)) return usage_err("%s %s: %s", flag, dir, strerror(ENOTDIR));
    if (same_file(dir, o->input))
        return usage_err("%s %s is the --input folder: its PNGs would replace the images; "
                         "choose another %s", flag, dir, flag);
    return 0;
}

/* --out, and --overlay, which must not be --out either (an overlay would
 * replace the mask of its image). */
static int check_out(const predict_opts *o)
{
    int rc = check_dir(o, "--out", o->out);
    if (rc || !o->overlay[0]) return rc;
    if ((rc = check_dir(o, "--overlay", o->overlay))) return rc;
    if (strcmp(o->overlay, o->out) == 0 || same_file(o->overlay, o->out))
        return usage_err("--overlay %s is the --out folder: the overlays would replace the "
                         "masks; choose another --overlay", o->overlay);
    return 0;
}

/* dir/STEM.png for image `name` (its extension replaced). */
static void png_path(char *path, size_t len, const char *dir, const char *name)
{
    const char *dot = strrchr(name, '.');
    snprintf(path, len, "%s/%.*s.png", dir, (int)(dot - name), name);
}

/* No mask and no --logits may replace the checkpoint itself. */
static int check_targets(const pred *p)
{
    const predict_opts *o = p->o;
    unet_file_id ck;
    if (unet_file_id_of(o->checkpoint, true, &ck) != 0) return 0;
    if (o->logits[0] && entry_is(o->logits, &ck))
        return usage_err("--logits %s is the --checkpoint file; choose another name", o->logits);
    for (int i = 0; i < p->n; i++) {
        char path[2 * UT_PATH_MAX + 8];
        png_path(path, sizeof path, o->out, p->files[i]);
        if (entry_is(path, &ck))
            return usage_err("--out %s: the mask of %s would replace the --checkpoint file %s",
                             o->out, p->files[i], o->checkpoint);
        png_path(path, sizeof path, o->overlay, p->files[i]);
        if (o->overlay[0] && entry_is(path, &ck))
            return usage_err("--overlay %s: the overlay of %s would replace the --checkpoint "
                             "file %s", o->overlay, p->files[i], o->checkpoint);
    }
    return 0;
}

/* --logits: a .npy name whose entry, if any, is a regular file or a link. */
static int check_logits(const predict_opts *o)
{
    size_t l = strlen(o->logits);
    if (l < 5 || strcasecmp(o->logits + l - 4, ".npy") != 0)
        return usage_err("--logits %s: expected a file name ending in .npy", o->logits);
    unet_entry k = unet_entry_kind(o->logits);
    if (k != UNET_ENTRY_NONE && k != UNET_ENTRY_FILE && k != UNET_ENTRY_LINK)
        return usage_err("--logits %s: exists and is not a regular file", o->logits);
    return 0;
}

/* The checkpoint, the images and the image size. */
static int check_inputs(pred *p)
{
    const predict_opts *o = p->o;
    char err[2048];
    if (ckpt_open(o->checkpoint, &p->cf, &p->ci, err, sizeof err) < 0)
        return usage_err("--checkpoint %s", err);
    if (unet_list_images(o->input, &p->files, &p->n, err, sizeof err) < 0)
        return usage_err("--input %s", err);
    p->size = o->img_size ? o->img_size : p->ci.img_size;
    if (p->size <= 0)
        return usage_err("--checkpoint %s has no image size in its config: give --img-size",
                         o->checkpoint);
    int unit = 1 << p->ci.model.depth;
    if (o->img_size && o->img_size % unit)
        return usage_err("--img-size %d: expected a multiple of %d (2^depth, the checkpoint's "
                         "depth being %d)", o->img_size, unit, p->ci.model.depth);
    p->batch = o->batch < p->n ? o->batch : p->n;
    int rc = check_out(o);
    if (rc == 0 && o->logits[0]) rc = check_logits(o);
    return rc ? rc : check_targets(p);
}

/* The model at the checkpoint's configuration, with its weights. */
static int make_model(pred *p)
{
    char err[2048];
    if (unet_check(&p->ci.model, p->batch, p->size, p->size, err, sizeof err) < 0)
        return usage_err("%s", err);
    p->m = unet_create(&p->ci.model, p->batch, p->size, p->size, 0, ut_backend(p->o->backend),
                       err, sizeof err);
    if (!p->m) {
        fprintf(stderr, "unet-train: %s\n", err);
        return MG_EXIT_ERROR;
    }
    if (ckpt_apply(p->cf, p->m, err, sizeof err) < 0) return usage_err("--checkpoint %s", err);
    ckpt_close(p->cf);
    p->cf = NULL;
    return 0;
}

/* A .npy (format 1.0) header for float32 (n, 1, h, w), little-endian. */
static int write_npy_header(mg_atomic *a, int n, int h, int w)
{
    char hdr[192];
    int dl = snprintf(hdr + 10, sizeof hdr - 10,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, %d, %d), }", n,
                      h, w);
    int total = 10 + dl + 1;
    int pad = (64 - total % 64) % 64;
    unsigned short hl = (unsigned short)(dl + pad + 1);
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    memset(hdr + 10 + dl, ' ', (size_t)pad);
    hdr[10 + dl + pad] = '\n';
    return mg_atomic_write(a, hdr, (size_t)total + (size_t)pad);
}

/* The --logits temporary, opened before --out is created so that a bad
 * --logits path is refused with nothing made. */
static int open_logits(pred *p)
{
    const predict_opts *o = p->o;
    if (!o->logits[0]) return 0;
    int rc = mg_atomic_open(&p->npy, o->logits);
    if (rc != 0) {
        int e = errno; /* open(2) is mg_atomic_open's last call */
        return usage_err("--logits %s: cannot create: %s", o->logits,
                         rc == MG_EINVAL ? "path too long" : strerror(e));
    }
    if ((rc = write_npy_header(&p->npy, p->n, p->size, p->size)) != 0) {
        fprintf(stderr, "unet-train: --logits %s: %s\n", o->logits, mg_strerror(rc));
        return MG_EXIT_ERROR;
    }
    return 0;
}

/* Whether mask pixel (x, y) is on its outline: in the mask, with a
 * 4-neighbour outside the mask or outside the image. */
static bool on_outline(const uint8_t *mask, int w, int h, int x, int y)
{
    const uint8_t *m = mask + (size_t)y * (size_t)w + (size_t)x;
    return *m && (x == 0 || y == 0 || x == w - 1 || y == h - 1 || !m[-1] || !m[1] ||
                  !m[-(ptrdiff_t)w] || !m[w]);
}

/* The image as decoded into RGB bytes (gray replicated, alpha dropped). */
static void to_rgb(const unet_image *im, uint8_t *rgb)
{
    size_t n = (size_t)im->w * (size_t)im->h;
    for (size_t k = 0; k < n; k++)
        for (int c = 0; c < 3; c++) {
            float v = im->px[k * (size_t)im->c + (size_t)(im->c >= 3 ? c : 0)];
            rgb[3 * k + (size_t)c] = (uint8_t)lrintf(v * 255.0f);
        }
}

/* --overlay: the image with its mask's outline (mask: w x h, 0 / 255) in
 * red, as DIR/STEM.png. The image is decoded again here, at its own size. */
static int write_overlay(pred *p, const char *name, const uint8_t *mask, int w, int h)
{
    char path[2 * UT_PATH_MAX + 8], err[2 * UT_PATH_MAX + 256];
    unet_image im;
    snprintf(path, sizeof path, "%s/%s", p->o->input, name);
    if (unet_image_load(path, &im, err, sizeof err) < 0) return usage_err("--input %s", err);
    uint8_t *rgb = im.w == w && im.h == h ? malloc((size_t)w * (size_t)h * 3) : NULL;
    int rc = MG_EXIT_ERROR;
    if (!rgb) {
        fprintf(stderr, "unet-train: %s: no memory for a %dx%d overlay, or the image changed\n",
                path, w, h);
        goto out;
    }
    to_rgb(&im, rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (on_outline(mask, w, h, x, y)) {
                uint8_t *q = rgb + 3 * ((size_t)y * (size_t)w + (size_t)x);
                q[0] = 255;
                q[1] = q[2] = 0;
            }
    png_path(path, sizeof path, p->o->overlay, name);
    if (unet_png_write_rgb8(path, rgb, w, h, err, sizeof err) < 0)
        fprintf(stderr, "unet-train: %s\n", err);
    else
        rc = 0;
out:
    free(rgb);
    unet_image_free(&im);
    return rc;
}

/* One image's mask: sigmoid, resized to the image's size, 0 / 255; and
 * its overlay when asked for. */
static int write_mask(pred *p, const float *logits, const char *name, int w, int h)
{
    size_t hw = (size_t)p->size * (size_t)p->size, opx = (size_t)w * (size_t)h;
    float *sig = malloc(hw * sizeof *sig), *big = malloc(opx * sizeof *big);
    uint8_t *px = malloc(opx);
    int rc = MG_EXIT_ERROR;
    if (!sig || !big || !px) {
        fprintf(stderr, "unet-train: out of memory for a %dx%d mask\n", w, h);
        goto out;
    }
    for (size_t k = 0; k < hw; k++) sig[k] = 1.0f / (1.0f + expf(-logits[k]));
    unet_resize_bilinear(sig, p->size, p->size, 1, big, w, h);
    for (size_t k = 0; k < opx; k++) px[k] = big[k] > 0.5f ? 255 : 0;
    char path[2 * UT_PATH_MAX + 8], err[2 * UT_PATH_MAX + 256];
    png_path(path, sizeof path, p->o->out, name);
    if (unet_png_write_gray8(path, px, w, h, err, sizeof err) < 0)
        fprintf(stderr, "unet-train: %s\n", err);
    else
        rc = p->o->overlay[0] ? write_overlay(p, name, px, w, h) : 0;
out:
    free(sig);
    free(big);
    free(px);
    return rc;
}

/* Loads images [first, first + bn) into the model's input staging. */
static int load_batch(pred *p, int first, int bn, int *ow, int *oh)
{
    size_t hw = (size_t)p->size * (size_t)p->size;
    int ch = p->ci.model.in_ch;
    float *in = unet_input_host(p->m);
    for (int i = 0; i < bn; i++) {
        char path[2 * UT_PATH_MAX + 8], err[2 * UT_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", p->o->input, p->files[first + i]);
        if (unet_image_load_chw(path, p->size, ch, in + (size_t)i * hw * (size_t)ch,
                                &ow[i], &oh[i], err, sizeof err) < 0)
            return usage_err("--input %s", err);
    }
    return 0;
}

static int run_batches(pred *p)
{
    size_t hw = (size_t)p->size * (size_t)p->size;
    static int ow[4096], oh[4096]; /* original sizes of one batch (--batch <= 4096) */
    for (int first = 0; first < p->n; first += p->batch) {
        int bn = p->n - first < p->batch ? p->n - first : p->batch;
        int rc = load_batch(p, first, bn, ow, oh);
        if (rc) return rc;
        unet_forward(p->m, bn, false);
        const float *logits = unet_logits_host(p->m, bn);
        if (p->o->logits[0] &&
            (rc = mg_atomic_write(&p->npy, logits, (size_t)bn * hw * sizeof(float)))) {
            fprintf(stderr, "unet-train: --logits %s: %s\n", p->o->logits, mg_strerror(rc));
            return MG_EXIT_ERROR;
        }
        for (int i = 0; i < bn; i++)
            if ((rc = write_mask(p, logits + (size_t)i * hw, p->files[first + i],
                                 ow[i], oh[i])))
                return rc;
    }
    return 0;
}

static int predict_all(pred *p)
{
    char err[2 * UT_PATH_MAX + 256];
    int rc = check_inputs(p);
    if (rc == 0) rc = make_model(p);
    if (rc == 0) rc = open_logits(p);
    if (rc) return rc;
    if (outdir_make(&p->od, "--out", p->o->out, err, sizeof err) < 0 ||
        (p->o->overlay[0] && outdir_make(&p->ovd, "--overlay", p->o->overlay, err, sizeof err) < 0))
        return usage_err("%s", err);
    if ((rc = run_batches(p))) return rc;
    if (p->o->logits[0] && (rc = mg_atomic_commit(&p->npy)) != 0) {
        fprintf(stderr, "unet-train: --logits %s: %s\n", p->o->logits, mg_strerror(rc));
        return MG_EXIT_ERROR;
    }
    printf("predicted %d masks into %s%s%s%s%s\n", p->n, p->o->out,
           p->o->logits[0] ? ", logits in " : "", p->o->logits,
           p->o->overlay[0] ? ", outlines in " : "", p->o->overlay);
    return MG_EXIT_OK;
}

int predict_run(const predict_opts *o)
{
    if (o->threads > 0) omp_set_num_threads(o->threads);
    pred p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.npy.os.fd = -1;
    p.od.lock_fd = -1;
    p.ovd.lock_fd = -1;
    int rc = predict_all(&p);
    mg_atomic_abort(&p.npy); /* after a commit: nothing to do */
    outdir_close(&p.ovd, rc != MG_EXIT_OK);
    outdir_close(&p.od, rc != MG_EXIT_OK);
    ckpt_close(p.cf);
    unet_destroy(p.m);
    unet_list_free(p.files, p.n);
    return rc;
}
