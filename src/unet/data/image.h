/* SPDX-License-Identifier: MIT */
/*
 * image.h: reading PNG and JPEG files into float pixels, resizing them the
 * way PyTorch does, and writing 8-bit gray PNGs (predicted masks) and RGB
 * PNGs (predict's outline overlays).
 *
 * Decoding: PNG of every colour type and bit depth (gray, gray+alpha, RGB,
 * RGBA, palette, with or without tRNS, 1 to 16 bits, interlaced or not) and
 * baseline/progressive JPEG (gray or YCbCr/RGB). CMYK/YCCK JPEGs are refused.
 * The format is chosen by the file's magic bytes, not by its extension.
 * Samples become floats in [0, 1] (v / 255 or v / 65535), interleaved HWC.
 *
 * Resizing (resize.c): bilinear as torch.nn.functional.interpolate(mode="bilinear",
 * align_corners=False, antialias=False) on float input, and nearest as
 * interpolate(mode="nearest") (src = min(floor(dst * in/out), in - 1), with
 * the scale computed in float like torch's CPU kernel), so masks and images
 * line up with what the PyTorch script saw.
 *
 * Errors: functions return 0 or a negative MG_E* code and write one line,
 * "PATH: problem", into the caller's err buffer (may be NULL). They never
 * print, exit or abort: libpng's longjmp and libjpeg's error_exit are caught,
 * and their warnings are swallowed (a truncated JPEG, which libjpeg only
 * warns about, is reported as corrupt).
 *
 * Not here: colour management, EXIF orientation, gamma, alpha compositing
 * (alpha is dropped, as PIL's convert("RGB") does), and any file format other
 * than PNG and JPEG.
 */
#ifndef UNET_IMAGE_H
#define UNET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest image accepted, in pixels (w * h): 2^26 = 67 M pixels, e.g.
 * 8192 x 8192. A decoded RGBA image of that size needs 1 GiB of floats. */
#define UNET_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)

typedef struct unet_image {
    int w, h;  /* width, height in pixels, both > 0 once loaded */
    int c;     /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    float *px; /* h * w * c floats in [0, 1], row-major, channels innermost;
                  owned, free with unet_image_free */
} unet_image;

/* Decodes a PNG or JPEG file. On success *img owns its pixels. On failure
 * *img is zeroed and err says (formats, PATH is the path as given):
 *   "PATH: cannot open: <strerror>"                      MG_ENOENT / MG_EIO
 *   "PATH: is a FIFO, expected a regular file"           MG_EINVAL
 *     (or a folder, a device, a socket: never waited on)
 *   "PATH: not a PNG or JPEG file"                        MG_EPARSE
 *   "PATH: corrupt PNG: <libpng's message>"               MG_EPARSE
 *   "PATH: corrupt JPEG: <libjpeg's message>"             MG_EPARSE
 *   "PATH: zero-size image (WxH)"                         MG_EPARSE
 *   "PATH: image too large (WxH, limit 67108864 pixels)"  MG_ERANGE
 *   "PATH: CMYK JPEG is not supported (convert it to RGB)" MG_EPARSE
 *   "PATH: out of memory decoding WxH"                    MG_ENOMEM */
int unet_image_load(const char *path, unet_image *img, char *err, size_t errlen);
void unet_image_free(unet_image *img);

/* Bilinear resize, torch semantics (align_corners=False, no antialias).
 * src: sh x sw x c HWC floats, dst: dh x dw x c HWC floats. All sizes > 0. */
void unet_resize_bilinear(const float *src, int sw, int sh, int c,
                          float *dst, int dw, int dh);

/* Nearest resize of one-byte-per-pixel planes (masks), torch "nearest"
 * semantics. src: sh x sw bytes, dst: dh x dw bytes. */
void unet_resize_nearest_u8(const uint8_t *src, int sw, int sh,
                            uint8_t *dst, int dw, int dh);

/* The training pipeline for one image: decode, resize to size x size
 * (bilinear), convert to `channels` (1: ITU-R 601 luma 0.299 R + 0.587 G +
 * 0.114 B, like PIL "L" but on floats; 3: gray is replicated), alpha dropped,
 * and quantise to bytes (round(v * 255)). out: channels x size x size bytes,
 * planar (CHW). *orig_w / *orig_h (may be NULL) get the file's size. Errors
 * as unet_image_load, plus MG_EINVAL for bad size / channels. */
int unet_image_load_u8(const char *path, int size, int channels, uint8_t *out,
                       int *orig_w, int *orig_h, char *err, size_t errlen);

/* Same, as floats in [0, 1] (the bytes / 255, exactly what training sees):
 * out is channels x size x size floats. For `unet-train predict`. */
int unet_image_load_chw(const char *path, int size, int channels, float *out,
                        int *orig_w, int *orig_h, char *err, size_t errlen);

/* The pipeline for one mask: decode, any colour channel > 0 (alpha ignored)
 * is foreground (1) else 0, then nearest resize to size x size. out:
 * size x size bytes in {0, 1}. */
int unet_mask_load_u8(const char *path, int size, uint8_t *out,
                      int *orig_w, int *orig_h, char *err, size_t errlen);

/* Writes an 8-bit grayscale PNG (no interlace, default compression). px is
 * h x w bytes, row-major. Atomically (mg_atomic_*: a temporary PATH.tmp.PID,
 * fsync, rename): PATH holds either what it held before or the whole new
 * image, and a symbolic link at PATH is replaced, never followed. Errors:
 * "PATH: cannot create: <reason>" (MG_ENOENT / MG_EPERM / MG_EIO /
 * MG_ENOSPC), "PATH: PNG write failed: <reason>" (MG_EIO / MG_ENOSPC /
 * MG_ENOMEM), "PATH: write failed: <reason>" (the final rename or fsync). */
int unet_png_write_gray8(const char *path, const uint8_t *px, int w, int h,
                         char *err, size_t errlen);

/* The same for an 8-bit RGB PNG (predict's --overlay): px is h x w x 3
 * bytes, row-major, R G B interleaved. Written and refused as above. */
int unet_png_write_rgb8(const char *path, const uint8_t *px, int w, int h,
                        char *err, size_t errlen);

#endif /* UNET_IMAGE_H */
