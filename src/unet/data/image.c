/* SPDX-License-Identifier: MIT */
/*
 * image.c: PNG/JPEG decoding, the training pipeline's conversions (resize,
 * channels, bytes), the gray and RGB PNG writers (see image.h); the
 * torch-compatible resizes themselves are resize.c's. Both decoders are driven through their error hooks so a
 * bad file becomes an error code and one line of text, never a crash, an
 * exit or output on stderr.
 *
 * setjmp notes: every object that is written after setjmp() and read after
 * the longjmp is either volatile or lives in memory behind a pointer we
 * passed to the library, as C11 7.13.2.1 requires.
 */
#include "errf.h"
#include "image.h"

#include "fileio.h"
#include "memguard.h"
#include "sys.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>


/* "cannot open" with errno mapped to our codes. unet_strerror (strerror_r)
 * because the data loader decodes files on several threads at once. */
static int open_error(const char *path, const char *what, int e, char *err, size_t errlen)
{
    char buf[128];
    unet_errf(err, errlen, "%s: %s: %s", path, what, unet_strerror(e, buf, sizeof buf));
    if (e == ENOENT || e == ENOTDIR)
        return MG_ENOENT;
    if (e == EACCES || e == EPERM)
        return MG_EPERM;
    return MG_EIO;
}

static int too_large(const char *path, uint64_t w, uint64_t h, char *err, size_t errlen)
{
    unet_errf(err, errlen, "%s: image too large (%llux%llu, limit %llu pixels)", path,
         (unsigned long long)w, (unsigned long long)h,
         (unsigned long long)UNET_IMAGE_MAX_PIXELS);
    return MG_ERANGE;
}

/* ---- PNG ------------------------------------------------------------------ */

struct png_catch {
    jmp_buf jb;
    char msg[192];
};

static void png_error_cb(png_structp png, png_const_charp msg)
{
    struct png_catch *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    longjmp(c->jb, 1);
}

/* libpng's default prints warnings (bad CRC in an ancillary chunk, iCCP
 * profile complaints) to stderr; those files still decode, so stay quiet. */
static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int load_png(FILE *f, const char *path, unet_image *img, char *err, size_t errlen)
{
    struct png_catch pc;
    pc.msg[0] = '\0';
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &pc, png_error_cb,
                                             png_warning_cb);
    if (!png) {
        unet_errf(err, errlen, "%s: out of memory decoding PNG", path);
        return MG_ENOMEM;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        unet_errf(err, errlen, "%s: out of memory decoding PNG", path);
        return MG_ENOMEM;
    }
    unsigned char *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    float *volatile px = NULL;
    volatile int rc = 0;

    if (setjmp(pc.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        free(px);
        if (rc == 0) {
            unet_errf(err, errlen, "%s: corrupt PNG: %s", path, pc.msg);
            rc = MG_EPARSE;
        }
        return rc;
    }
    png_init_io(png, f);
    /* The header is checked against our own pixel limit below; this stops
     * libpng from accepting absurd widths before we get there. */
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    if ((uint64_t)w * h > UNET_IMAGE_MAX_PIXELS) {
        rc = too_large(path, w, h, err, errlen);
        longjmp(pc.jb, 1);
    }
    /* palette -> RGB, gray 1/2/4 bit -> 8 bit (scaled to 0..255), tRNS ->
     * alpha channel. 16-bit samples are kept and read big-endian below. */
    png_set_expand(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (c < 1 || c > 4 || (depth != 8 && depth != 16)) {
        snprintf(pc.msg, sizeof pc.msg, "unsupported layout (%d channels, %d bits)", c, depth);
        longjmp(pc.jb, 1);
    }
    raw = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    px = malloc(sizeof(float) * (size_t)w * h * (size_t)c);
    if (!raw || !rows || !px) {
        unet_errf(err, errlen, "%s: out of memory decoding %ux%u", path, (unsigned)w, (unsigned)h);
        rc = MG_ENOMEM;
        longjmp(pc.jb, 1);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw + rowbytes * y;
    png_read_image(png, rows);

    float *out = px;
    const unsigned char *in = raw;
    if (depth == 8) {
        for (png_uint_32 y = 0; y < h; y++) {
            const unsigned char *r = in + rowbytes * y;
            for (size_t i = 0; i < (size_t)w * (size_t)c; i++)
                out[(size_t)y * w * (size_t)c + i] = (float)r[i] / 255.0f;
        }
    } else {
        for (png_uint_32 y = 0; y < h; y++) {
            const unsigned char *r = in + rowbytes * y;
            for (size_t i = 0; i < (size_t)w * (size_t)c; i++)
                out[(size_t)y * w * (size_t)c + i] =
                    (float)((unsigned)r[2 * i] << 8 | r[2 * i + 1]) / 65535.0f;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    img->w = (int)w;
    img->h = (int)h;
    img->c = c;
    img->px = out;
    return 0;
}

/* ---- JPEG ----------------------------------------------------------------- */

struct jpeg_catch {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jb;
    int code;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_error_exit_cb(j_common_ptr ci)
{
    struct jpeg_catch *c = (struct jpeg_catch *)ci->err;
    c->code = c->pub.msg_code;
    (*c->pub.format_message)(ci, c->msg);
    longjmp(c->jb, 1);
}

/* Warnings: libjpeg's default prints them. A premature end of data is only
 * a warning to libjpeg (it pads the image with gray), but a truncated file
 * is a broken training sample, as it is to PIL; treat it as an error. Other
 * warnings (extraneous bytes before a marker, ...) still decode. */
static void jpeg_emit_cb(j_common_ptr ci, int level)
{
    struct jpeg_catch *c = (struct jpeg_catch *)ci->err;
    if (level < 0 && c->pub.msg_code == JWRN_JPEG_EOF)
        jpeg_error_exit_cb(ci);
}

static void jpeg_output_cb(j_common_ptr ci)
{
    (void)ci;
}

static int load_jpeg(FILE *f, const char *path, unet_image *img, char *err, size_t errlen)
{
    struct jpeg_decompress_struct ci;
    struct jpeg_catch jc;
    memset(&jc, 0, sizeof jc);
    ci.err = jpeg_std_error(&jc.pub);
    jc.pub.error_exit = jpeg_error_exit_cb;
    jc.pub.emit_message = jpeg_emit_cb;
    jc.pub.output_message = jpeg_output_cb;
    unsigned char *volatile row = NULL;
    float *volatile px = NULL;
    volatile int rc = 0;

    if (setjmp(jc.jb)) {
        if (rc == 0) {
            if (jc.code == JERR_EMPTY_IMAGE)
                unet_errf(err, errlen, "%s: zero-size image (%ux%u)", path,
                     (unsigned)ci.image_width, (unsigned)ci.image_height);
            else
                unet_errf(err, errlen, "%s: corrupt JPEG: %s", path, jc.msg);
            rc = MG_EPARSE;
        }
        jpeg_destroy_decompress(&ci);
        free(row);
        free(px);
        return rc;
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    (void)jpeg_read_header(&ci, TRUE);
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        unet_errf(err, errlen, "%s: CMYK JPEG is not supported (convert it to RGB)", path);
        rc = MG_EPARSE;
        longjmp(jc.jb, 1);
    }
    if (ci.image_width == 0 || ci.image_height == 0) {
        unet_errf(err, errlen, "%s: zero-size image (%ux%u)", path, (unsigned)ci.image_width,
             (unsigned)ci.image_height);
        rc = MG_EPARSE;
        longjmp(jc.jb, 1);
    }
    if ((uint64_t)ci.image_width * ci.image_height > UNET_IMAGE_MAX_PIXELS) {
        rc = too_large(path, ci.image_width, ci.image_height, err, errlen);
        longjmp(jc.jb, 1);
    }
    ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    (void)jpeg_start_decompress(&ci);
    int c = ci.output_components;
    size_t w = ci.output_width, h = ci.output_height;
    row = malloc(w * (size_t)c);
    px = malloc(sizeof(float) * w * h * (size_t)c);
    if (!row || !px) {
        unet_errf(err, errlen, "%s: out of memory decoding %zux%zu", path, w, h);
        rc = MG_ENOMEM;
        longjmp(jc.jb, 1);
    }
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            snprintf(jc.msg, sizeof jc.msg, "no data at row %zu", y);
            longjmp(jc.jb, 1);
        }
        float *o = px + y * w * (size_t)c;
        for (size_t i = 0; i < w * (size_t)c; i++)
            o[i] = (float)row[i] / 255.0f;
    }
    (void)jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(row);
    img->w = (int)w;
    img->h = (int)h;
    img->c = c;
    img->px = px;
    return 0;
}

/* ---- dispatch ------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int unet_image_load(const char *path, unet_image *img, char *err, size_t errlen)
{
    if (!img || !path) {
        unet_errf(err, errlen, "%s: invalid argument", path ? path : "(null)");
        return MG_EINVAL;
    }
    memset(img, 0, sizeof *img);
    /* A FIFO or a folder named x.png is refused, never waited on. */
    int rc0;
    FILE *f = unet_fopen_regular(path, &rc0, err, errlen);
    if (!f)
        return rc0;
    unsigned char hdr[24];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    int rc;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got >= 8 && memcmp(hdr, png_sig, 8) == 0) {
        /* libpng rejects a zero width or height with a generic "Invalid
         * IHDR data"; read the header ourselves to say what is wrong. */
        if (got == 24 && memcmp(hdr + 12, "IHDR", 4) == 0
            && (be32(hdr + 16) == 0 || be32(hdr + 20) == 0)) {
            unet_errf(err, errlen, "%s: zero-size image (%ux%u)", path, (unsigned)be32(hdr + 16),
                 (unsigned)be32(hdr + 20));
            rc = MG_EPARSE;
        } else {
            rewind(f);
            rc = load_png(f, path, img, err, errlen);
        }
    } else if (got >= 3 && hdr[0] == 0xff && hdr[1] == 0xd8 && hdr[2] == 0xff) {
        rewind(f);
        rc = load_jpeg(f, path, img, err, errlen);
    } else if (ferror(f)) {
        rc = open_error(path, "cannot read", errno, err, errlen);
    } else {
        unet_errf(err, errlen, "%s: not a PNG or JPEG file", path);
        rc = MG_EPARSE;
    }
    fclose(f);
    if (rc == 0 && (img->w <= 0 || img->h <= 0)) {
        unet_errf(err, errlen, "%s: zero-size image (%dx%d)", path, img->w, img->h);
        unet_image_free(img);
        rc = MG_EPARSE;
    }
    if (rc != 0)
        memset(img, 0, sizeof *img);
    return rc;
}

void unet_image_free(unet_image *img)
{
    if (!img)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ---- the training pipeline ------------------------------------------------ */

static uint8_t quant(float v)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

int unet_image_load_u8(const char *path, int size, int channels, uint8_t *out, int *orig_w,
                       int *orig_h, char *err, size_t errlen)
{
    if (size <= 0 || (channels != 1 && channels != 3) || !out) {
        unet_errf(err, errlen, "%s: invalid size %d or channels %d", path ? path : "(null)", size,
             channels);
        return MG_EINVAL;
    }
    unet_image img;
    int rc = unet_image_load(path, &img, err, errlen);
    if (rc)
        return rc;
    if (orig_w)
        *orig_w = img.w;
    if (orig_h)
        *orig_h = img.h;
    size_t plane = (size_t)size * (size_t)size;
    float *rs = malloc(sizeof(float) * plane * (size_t)img.c);
    if (!rs) {
        unet_errf(err, errlen, "%s: out of memory resizing to %dx%d", path, size, size);
        unet_image_free(&img);
        return MG_ENOMEM;
    }
    /* Resize first, convert channels after: both are linear, so the order
     * does not change the result beyond float rounding, and converting the
     * small image is cheaper. */
    unet_resize_bilinear(img.px, img.w, img.h, img.c, rs, size, size);
    int c = img.c;
    for (size_t i = 0; i < plane; i++) {
        const float *p = rs + i * (size_t)c;
        float r, g, b;
        if (c >= 3) {
            r = p[0];
            g = p[1];
            b = p[2];
        } else {
            r = g = b = p[0];
        }
        if (channels == 1) {
            out[i] = c >= 3 ? quant(0.299f * r + 0.587f * g + 0.114f * b) : quant(r);
        } else {
            out[i] = quant(r);
            out[plane + i] = quant(g);
            out[2 * plane + i] = quant(b);
        }
    }
    free(rs);
    unet_image_free(&img);
    return 0;
}

int unet_image_load_chw(const char *path, int size, int channels, float *out, int *orig_w,
                        int *orig_h, char *err, size_t errlen)
{
    if (size <= 0 || (channels != 1 && channels != 3) || !out) {
        unet_errf(err, errlen, "%s: invalid size %d or channels %d", path ? path : "(null)", size,
             channels);
        return MG_EINVAL;
    }
    size_t n = (size_t)size * (size_t)size * (size_t)channels;
    uint8_t *u = malloc(n);
    if (!u) {
        unet_errf(err, errlen, "%s: out of memory", path);
        return MG_ENOMEM;
    }
    int rc = unet_image_load_u8(path, size, channels, u, orig_w, orig_h, err, errlen);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            out[i] = (float)u[i] / 255.0f;
    free(u);
    return rc;
}

int unet_mask_load_u8(const char *path, int size, uint8_t *out, int *orig_w, int *orig_h,
                      char *err, size_t errlen)
{
    if (size <= 0 || !out) {
        unet_errf(err, errlen, "%s: invalid size %d", path ? path : "(null)", size);
        return MG_EINVAL;
    }
    unet_image img;
    int rc = unet_image_load(path, &img, err, errlen);
    if (rc)
        return rc;
    if (orig_w)
        *orig_w = img.w;
    if (orig_h)
        *orig_h = img.h;
    size_t n = (size_t)img.w * (size_t)img.h;
    uint8_t *bin = malloc(n);
    if (!bin) {
        unet_errf(err, errlen, "%s: out of memory", path);
        unet_image_free(&img);
        return MG_ENOMEM;
    }
    /* Colour channels only: an RGBA mask with an opaque black background
     * is background. Thresholding before the nearest resize is the same as
     * after it (nearest only copies values). */
    int colour = img.c >= 3 ? 3 : 1;
    for (size_t i = 0; i < n; i++) {
        const float *p = img.px + i * (size_t)img.c;
        uint8_t fg = 0;
        for (int k = 0; k < colour; k++)
            fg |= p[k] > 0.0f;
        bin[i] = fg;
    }
    unet_resize_nearest_u8(bin, img.w, img.h, out, size, size);
    free(bin);
    unet_image_free(&img);
    return 0;
}

/* ---- PNG writer ----------------------------------------------------------- */

/* libpng's output goes through the atomic writer; the first failed write
 * is kept and ends the image with png_error. */
struct png_sink {
    mg_atomic at;
    int rc;
};

static void sink_write(png_structp png, png_bytep data, size_t len)
{
    struct png_sink *k = png_get_io_ptr(png);
    if (k->rc == 0) k->rc = mg_atomic_write(&k->at, data, len);
    if (k->rc != 0) png_error(png, mg_strerror(k->rc));
}

static void sink_flush(png_structp png)
{
    (void)png;
}

/* The rows of px (ch bytes a pixel: 1 gray, 3 RGB) as PNG into the sink;
 * 0 or MG_EIO / MG_ENOMEM. */
static int png_rows(struct png_sink *k, const uint8_t *px, int w, int h, int ch, char *msg,
                    size_t len)
{
    struct png_catch pc;
    pc.msg[0] = '\0';
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &pc, png_error_cb,
                                              png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(msg, len, "out of memory");
        return MG_ENOMEM;
    }
    if (setjmp(pc.jb)) {
        png_destroy_write_struct(&png, &info);
        snprintf(msg, len, "%s", pc.msg);
        return k->rc ? k->rc : MG_EIO;
    }
    png_set_write_fn(png, k, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(px + (size_t)y * (size_t)w * (size_t)ch));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* unet_png_write_gray8 and unet_png_write_rgb8: ch bytes a pixel. */
static int png_write(const char *path, const uint8_t *px, int w, int h, int ch, char *err,
                     size_t errlen)
{
    if (!path || !px || w <= 0 || h <= 0) {
        unet_errf(err, errlen, "%s: invalid image %dx%d", path ? path : "(null)", w, h);
        return MG_EINVAL;
    }
    struct png_sink k = {.rc = 0};
    int rc = mg_atomic_open(&k.at, path);
    if (rc != 0) {
        /* open(2) is mg_atomic_open's last call: errno says why. */
        int e = errno;
        unet_errf(err, errlen, "%s: cannot create: %s", path,
             rc == MG_EINVAL ? "path too long" : strerror(e));
        return rc;
    }
    char msg[256];
    rc = png_rows(&k, px, w, h, ch, msg, sizeof msg);
    if (rc != 0) {
        mg_atomic_abort(&k.at);
        unet_errf(err, errlen, "%s: PNG write failed: %s", path, msg);
        return rc;
    }
    rc = mg_atomic_commit(&k.at);
    if (rc != 0) unet_errf(err, errlen, "%s: write failed: %s", path, mg_strerror(rc));
    return rc;
}

int unet_png_write_gray8(const char *path, const uint8_t *px, int w, int h, char *err,
                         size_t errlen)
{
    return png_write(path, px, w, h, 1, err, errlen);
}

int unet_png_write_rgb8(const char *path, const uint8_t *px, int w, int h, char *err,
                        size_t errlen)
{
    return png_write(path, px, w, h, 3, err, errlen);
}
