/* SPDX-License-Identifier: MIT */
/*
 * data.h: the trainer's data set. It loads a folder of images and masks (or
 * draws a synthetic set), keeps every sample resized to size x size as bytes,
 * splits it into train and validation, and fills NCHW float batches, with
 * an epoch cursor whose state fits in a few integers for exact resume.
 * One file per concern: dataset.c (a folder's set, its byte count),
 * synthetic.c, split.c, loader.c (the cursor), and folder.c (the one
 * image-folder lister, for the set and for predict's --input).
 *
 * Typical use (errors omitted; every call returning int gives 0 or a
 * negative MG_E* code and, where it takes err, one line of text):
 *
 *     unet_data d;
 *     uint64_t need = unet_data_bytes(n, size, ch);        // memory plan
 *     unet_data_load_folder(&d, "data", size, ch, err, sizeof err);
 *        // or unet_data_synthetic(&d, 500, size, ch, seed, err, sizeof err);
 *     unet_split sp;
 *     unet_split_make(&sp, d.n, 0.2, seed, err, sizeof err);
 *     unet_loader tr, va;
 *     unet_loader_init(&tr, &d, sp.train, sp.n_train, batch,
 *                      UNET_LOADER_SHUFFLE | UNET_LOADER_FLIP_H, seed, err, sizeof err);
 *     unet_loader_init(&va, &d, sp.val, sp.n_val, batch, 0, 0, err, sizeof err);
 *     if (resuming) unet_loader_import(&tr, saved, err, sizeof err);
 *     for (epoch ...) {
 *         if (!resumed_mid_epoch) unet_loader_begin_epoch(&tr);
 *         int bn;
 *         while ((bn = unet_loader_next(&tr, x, y)) > 0) {
 *             train_step(x, y, bn);
 *             unet_loader_export(&tr, saved);  // with every checkpoint
 *         }
 *         unet_loader_begin_epoch(&va);
 *         while ((bn = unet_loader_next(&va, x, y)) > 0) eval_step(x, y, bn);
 *     }
 *
 * Not here: the decoding itself (image.h), any threading of batch assembly
 * (a batch is a few MB of byte -> float conversion), augmentation beyond
 * flips, and printing: messages are handed back to the caller.
 */
#ifndef UNET_DATA_H
#define UNET_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* ---- the data set --------------------------------------------------------- */

typedef struct unet_data {
    int n;          /* samples */
    int size;       /* every image and mask is size x size */
    int channels;   /* 1 or 3 */
    uint8_t *img;   /* n x channels x size x size bytes (value / 255 = pixel) */
    uint8_t *mask;  /* n x size x size bytes, each 0 or 1 */
    char **names;   /* n file stems ("case_017"), sorted; NULL for synthetic */
} unet_data;

/* Bytes a loaded set of n samples takes, an upper bound: the pixel arrays
 * exactly, n * size^2 * (channels + 1), plus 256 + sizeof(char *) per sample
 * for the names (a stem is at most 255 bytes). 500 x 256^2 x RGB: 131 MB.
 * Loading also needs, for a moment and per decoding thread, the decoded
 * file as floats (w * h * c * 4 bytes) and its resized copy. */
uint64_t unet_data_bytes(int n, int size, int channels);

/* Counts the image/mask pairs of DIR without decoding anything (for the
 * memory plan). Same pairing rules and messages as unet_data_load_folder. */
int unet_data_count_folder(const char *dir, int *n, char *err, size_t errlen);

/* Loads DIR/images/ and DIR/masks/. Files are paired by stem (images/a.jpg
 * with masks/a.png); extensions .png .jpg .jpeg in any case; other files
 * and names starting with '.' are ignored; pairs are sorted by stem (byte
 * order) so sample i is the same on every machine. Each image is resized to
 * size x size bilinearly and converted to `channels` (see image.h), each
 * mask thresholded (> 0 is foreground) and resized nearest. Files are
 * decoded on OpenMP threads; the error reported is that of the first bad
 * file in sorted order, so it does not depend on the thread count.
 * On failure *d is empty (safe to free). Messages (PATH as built from DIR):
 *   "DIR/images: folder not found (a data set needs DIR/images/ and DIR/masks/)"
 *   "DIR/masks: folder not found (a data set needs DIR/images/ and DIR/masks/)"
 *   "DIR/images: cannot read folder: <strerror>"
 *   "DIR/images/a.jpg: image has no mask (looked for masks/a.png, .jpg or .jpeg)"
 *   "DIR/masks/b.png: mask has no image (looked for images/b.png, .jpg or .jpeg)"
 *   "DIR/images/a.png: same stem as DIR/images/a.jpg (cannot pair)"
 *   "DIR: no images (DIR/images/ has no .png, .jpg or .jpeg files)"
 *   "DIR/masks/a.png: mask is 32x16 but its image DIR/images/a.jpg is 32x32"
 *   any unet_image_load message, e.g. "DIR/images/a.png: corrupt PNG: ..."
 * Codes: MG_ENOENT (folders, unpaired files), MG_EPARSE (bad files, size
 * mismatch, duplicate stems), MG_EINVAL (empty set, bad size/channels),
 * MG_ENOMEM, MG_ERANGE (too many files or a too large image). */
int unet_data_load_folder(unet_data *d, const char *dir, int size, int channels,
                          char *err, size_t errlen);

/* The images of one folder for `unet-train predict`: the names (not
 * paths) of its .png, .jpg and .jpeg files (any case; regular files only,
 * names starting with '.' skipped), sorted by stem in byte order. Each stem
 * names one output, so two files with one stem are refused. On success
 * *names holds *n strings (free with unet_list_free). Messages:
 *   "DIR: folder not found"                                    MG_ENOENT
 *   "DIR: cannot read folder: <strerror>"                      MG_EPERM / MG_EIO
 *   "DIR/a.png: same stem as DIR/a.jpg (both would give a.png)" MG_EPARSE
 *   "DIR: no .png, .jpg or .jpeg images in it"                 MG_EINVAL */
int unet_list_images(const char *dir, char ***names, int *n, char *err, size_t errlen);
void unet_list_free(char **names, int n);

/* The built-in synthetic set: n samples, each 1 to 3 shapes (disc,
 * rectangle, triangle) of a bright textured colour over a darker textured
 * background (low-frequency waves plus pixel noise), the mask being the
 * union of the shapes. Sample i depends only on (seed, i, size, channels),
 * not on n or the thread count. Foreground averages about 15 % of the
 * pixels (2-40 % per sample at 64 x 64, seed 2024); shapes average about
 * 190/255 against 50/255 for the background. size >= 8. Messages:
 *   "synthetic sample count 0 is out of range [1, 16777216]"    MG_EINVAL
 *   "image size 4 is out of range [8, 16384]"                    MG_EINVAL
 *   "channels must be 1 or 3, not 2"                             MG_EINVAL
 *   "out of memory for 500 samples of 256x256 (131.1 MB)"        MG_ENOMEM */
int unet_data_synthetic(unet_data *d, int n, int size, int channels, uint64_t seed,
                        char *err, size_t errlen);

/* Frees what *d owns and zeroes it. Safe on a zeroed or freed set. */
void unet_data_free(unet_data *d);

/* ---- train / validation split --------------------------------------------- */

typedef struct unet_split {
    int n_train, n_val;
    int *train; /* n_train sample indices, ascending */
    int *val;   /* n_val sample indices, ascending (NULL when n_val is 0) */
} unet_split;

/* Splits samples 0..n-1: shuffle 0..n-1 with unet_rng_seed(seed), the first
 * n_val of the shuffle are validation, the rest training, both lists then
 * sorted. n_val = round(val_frac * n) (halves away from zero), raised to 1
 * when val_frac > 0 and lowered to n - 1 so training is never empty.
 * val_frac must be in [0, 1). Messages:
 *   "validation fraction 1.5 is out of range [0, 1)"           MG_ERANGE
 *   "cannot split 1 sample into training and validation (need at least 2)"
 *                                                              MG_EINVAL
 *   "no samples to split"                                      MG_EINVAL */
int unet_split_make(unet_split *sp, int n, double val_frac, uint64_t seed,
                    char *err, size_t errlen);
void unet_split_free(unet_split *sp);

/* ---- the epoch cursor ----------------------------------------------------- */

enum {
    UNET_LOADER_SHUFFLE = 1, /* a new random order every epoch */
    UNET_LOADER_FLIP_H = 2,  /* each sample flipped left-right with p = 1/2 */
    UNET_LOADER_FLIP_V = 4   /* each sample flipped up-down with p = 1/2 */
};

/* Words in an exported cursor state:
 *   [0] format version (1)
 *   [1..4] the rng state when the current epoch began
 *   [5] epochs begun so far
 *   [6] samples of the current epoch already handed out
 *   [7] the number of samples the cursor walks (checked on import)
 * Every word is a plain unsigned 64-bit integer; a checkpoint that stores
 * signed 64-bit integers may cast both ways (two's complement round trip). */
#define UNET_LOADER_STATE_WORDS 8

typedef struct unet_loader {
    const unet_data *data; /* not owned */
    int n;                 /* samples walked */
    int batch;             /* samples per full batch */
    unsigned flags;        /* UNET_LOADER_* */
    int *idx;              /* n sample indices, owned copy */
    int *order;            /* this epoch's order (sample indices), owned */
    unet_rng rng;          /* advanced by every begin_epoch */
    uint64_t epoch_rng[4]; /* rng state when the current epoch began */
    uint64_t flip_key;     /* this epoch's flip hash key */
    uint64_t epoch;        /* epochs begun */
    int pos;               /* samples of this epoch already handed out */
} unet_loader;

/* A cursor over the samples idx[0..n) of d (copied), batch samples at a
 * time. Before the first begin_epoch it hands out nothing. The rng is
 * seeded from `seed`; the split and the loader draw from separate
 * generators, so one --seed may serve both. An evaluation loader uses
 * flags 0 (given order, no flips) and ignores the seed.
 * Messages: "batch size 0 must be at least 1" (MG_EINVAL), "empty sample
 * list" (MG_EINVAL, n must be > 0), "sample index 7 out of range [0, 5)"
 * (MG_ERANGE), out of memory (MG_ENOMEM). */
int unet_loader_init(unet_loader *l, const unet_data *d, const int *idx, int n, int batch,
                     unsigned flags, uint64_t seed, char *err, size_t errlen);
void unet_loader_free(unet_loader *l);

/* Starts the next epoch: a new order (shuffled when UNET_LOADER_SHUFFLE is
 * set; the rng advances the same way whatever the flags, so turning flips
 * on or off on resume keeps the order stream) and a new flip key; pos = 0. */
void unet_loader_begin_epoch(unet_loader *l);

/* From the next batch on, `batch` samples at a time (>= 1; MG_EINVAL
 * otherwise, nothing changed). The order, the position and the flips are
 * kept: they are counted in samples, so the epoch goes on exactly where it
 * was (unet-train --on-memory shrink). */
int unet_loader_set_batch(unet_loader *l, int batch);

/* Batches of this epoch not yet handed out: ceil((n - pos) / batch). */
int unet_loader_batches_left(const unet_loader *l);

/* Fills the next batch and advances. x: bn x channels x size x size floats
 * in [0, 1] (bytes / 255); y: bn x 1 x size x size floats in {0, 1} (either
 * may be NULL to skip it). Returns bn: batch, or fewer for the last, partial
 * batch of an epoch (it is kept, not dropped), 0 when the epoch is done. */
int unet_loader_next(unet_loader *l, float *x, float *y);

/* The next batch of a data-parallel step, cut into `parts` contiguous
 * shards in position order, the first (bn % parts) one sample longer:
 * advances past the whole batch, like unet_loader_next, and fills only
 * shard `part` into x and y, so the shards of parts 0..parts-1 put
 * together are unet_loader_next's batch. Returns the whole batch's size bn
 * (0 when the epoch is done) and the shard's in *count (0 when bn < parts
 * leaves this part none). parts 1 is unet_loader_next. */
int unet_loader_next_shard(unet_loader *l, int part, int parts, float *x, float *y, int *count);

/* The size of shard `part` of `parts` of a batch of bn (the split above);
 * *first gets its first position within the batch. */
int unet_loader_shard(int bn, int part, int parts, int *first);

/* Whether position p of this epoch is flipped (bit 0 horizontal, bit 1
 * vertical); for tests and logs. */
unsigned unet_loader_flips(const unet_loader *l, int p);

/* Saves the cursor as UNET_LOADER_STATE_WORDS integers (layout above). The
 * state position is counted in samples, so a run may resume with another
 * batch size and continue exactly where it stopped. */
void unet_loader_export(const unet_loader *l, uint64_t st[UNET_LOADER_STATE_WORDS]);

/* Restores a saved cursor: re-creates the epoch's order and flips from the
 * saved epoch-start rng state and continues at the saved position; the next
 * begin_epoch then matches the uninterrupted run. The loader must have been
 * initialised over the same samples. Messages (MG_EPARSE / MG_EINVAL):
 *   "resume state: unknown format version 9"
 *   "resume state: rng state is all zero"
 *   "resume state: walks 400 samples but this run has 380 (different data
 *    or split?)"
 *   "resume state: position 500 is past the 400 samples of an epoch" */
int unet_loader_import(unet_loader *l, const uint64_t st[UNET_LOADER_STATE_WORDS],
                       char *err, size_t errlen);

#endif /* UNET_DATA_H */
