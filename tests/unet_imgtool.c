/* SPDX-License-Identifier: MIT */
/*
 * unet_imgtool.c: the helper of test_unet_win (tests/win/unet_win.sh),
 * built by both builds from this one file: the Linux one writes the test
 * images, and both decode them with the trainer's own image.c, so the
 * script can compare Windows' bytes with Linux's.
 *
 *   unet_imgtool write DIR          writes the images into DIR
 *   unet_imgtool decode OUT FILE... for each FILE writes OUT/NAME.f32 (the
 *                                   decoded floats, unet_image_load),
 *                                   OUT/NAME.u8 (the training pipeline at
 *                                   24x24, 3 and 1 channels) and
 *                                   OUT/NAME.mask (the mask pipeline)
 *
 * The images cover what decodes differently: every PNG colour type, 1, 8
 * and 16 bits, palette with transparency, Adam7 interlacing; JPEG gray and
 * colour at 4:4:4, 4:2:2 and 4:2:0 (chroma upsampling), baseline and
 * progressive, at odd sizes so edge blocks are partial. The pixels are a
 * gradient with noise, from a fixed LCG (the same on every libc).
 * Not a test by itself: it checks nothing and exits 1 with one line on
 * any error.
 */
#include "mg_images.h"

#include "image.h"

#include <stdlib.h>
#include <string.h>

#define W 67
#define H 45

static uint32_t lcg = 12345u;

static uint8_t noise(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (uint8_t)(lcg >> 26); /* 0..63 */
}

/* Sample (x, y, channel c) of 8 bits: a gradient per channel plus noise. */
static uint8_t sample(int x, int y, int c)
{
    int v = (x * 255 / (W - 1)) * (c + 1) / 3 + (y * 255 / (H - 1)) * (3 - c) / 3;
    return (uint8_t)((v / 2 + noise()) & 0xff);
}

/* w x h x comps interleaved 8-bit samples. */
static void fill8(uint8_t *px, int comps)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < comps; c++)
                px[((size_t)y * W + (size_t)x) * (size_t)comps + (size_t)c] = sample(x, y, c);
}

static int write_pngs(const char *dir, uint8_t *px, uint8_t *px16)
{
    static const struct {
        const char *name;
        int color, comps;
    } k8[] = {{"g8.png", PNG_COLOR_TYPE_GRAY, 1}, {"ga8.png", PNG_COLOR_TYPE_GRAY_ALPHA, 2},
              {"rgb8.png", PNG_COLOR_TYPE_RGB, 3}, {"rgba8.png", PNG_COLOR_TYPE_RGBA, 4}};
    char p[4096];
    int rc = 0;
    for (size_t i = 0; i < sizeof k8 / sizeof k8[0]; i++) {
        fill8(px, k8[i].comps);
        snprintf(p, sizeof p, "%s/%s", dir, k8[i].name);
        rc |= mg_write_png(p, W, H, k8[i].color, 8, px, (size_t)W * (size_t)k8[i].comps, NULL, 0,
                           NULL, 0, PNG_INTERLACE_NONE);
    }
    fill8(px, 3);
    snprintf(p, sizeof p, "%s/rgb8_adam7.png", dir);
    rc |= mg_write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, px, (size_t)W * 3, NULL, 0, NULL, 0,
                       PNG_INTERLACE_ADAM7);
    /* 16 bits, big-endian: the 8-bit samples and fresh noise below them */
    fill8(px, 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        px16[2 * i] = px[i];
        px16[2 * i + 1] = (uint8_t)(noise() << 2);
    }
    snprintf(p, sizeof p, "%s/rgb16.png", dir);
    rc |= mg_write_png(p, W, H, PNG_COLOR_TYPE_RGB, 16, px16, (size_t)W * 6, NULL, 0, NULL, 0,
                       PNG_INTERLACE_NONE);
    snprintf(p, sizeof p, "%s/g16.png", dir);
    rc |= mg_write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 16, px16, (size_t)W * 2, NULL, 0, NULL, 0,
                       PNG_INTERLACE_NONE);
    /* palette of 16 colours, 4 of them partly transparent */
    png_color pal[16];
    uint8_t trns[4] = {0, 64, 128, 200};
    for (int i = 0; i < 16; i++)
        pal[i] = (png_color){(uint8_t)(i * 17), (uint8_t)(255 - i * 13), (uint8_t)(i * 29 % 256)};
    for (size_t i = 0; i < (size_t)W * H; i++) px[i] = noise() & 15;
    snprintf(p, sizeof p, "%s/pal.png", dir);
    rc |= mg_write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, px, W, pal, 16, trns, 4,
                       PNG_INTERLACE_NONE);
    /* 1 bit gray: 8 pixels per byte */
    size_t rb = (W + 7) / 8;
    for (size_t i = 0; i < rb * H; i++) px[i] = (uint8_t)(noise() * 4 + noise());
    snprintf(p, sizeof p, "%s/g1.png", dir);
    rc |= mg_write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 1, px, rb, NULL, 0, NULL, 0,
                       PNG_INTERLACE_NONE);
    return rc;
}

static int write_jpegs(const char *dir, uint8_t *px)
{
    static const struct {
        const char *name;
        int comps, quality, luma_h, luma_v;
        bool progressive;
    } k[] = {{"g.jpg", 1, 90, 1, 1, false},       {"rgb444.jpg", 3, 95, 1, 1, false},
             {"rgb422.jpg", 3, 85, 2, 1, false},  {"rgb420.jpg", 3, 75, 2, 2, false},
             {"rgb420p.jpg", 3, 80, 2, 2, true}};
    char p[4096];
    int rc = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        fill8(px, k[i].comps);
        snprintf(p, sizeof p, "%s/%s", dir, k[i].name);
        rc |= mg_write_jpeg(p, W, H, k[i].comps, k[i].comps == 1 ? JCS_GRAYSCALE : JCS_RGB, px,
                            k[i].quality, k[i].luma_h, k[i].luma_v, k[i].progressive);
    }
    return rc;
}

/* OUT/NAME.SUFFIX with n bytes of data after a "w h c\n" line. */
static int dump(const char *out, const char *file, const char *suffix, int w, int h, int c,
                const void *data, size_t n)
{
    const char *base = strrchr(file, '/');
    const char *bs = strrchr(file, '\\');
    base = bs > base ? bs : base;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.%s", out, base ? base + 1 : file, suffix);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    fprintf(f, "%d %d %d\n", w, h, c);
    size_t put = fwrite(data, 1, n, f);
    return fclose(f) == 0 && put == n ? 0 : -1;
}

enum { S = 24 }; /* the pipelines' training size */

static int decode(const char *out, const char *file)
{
    char err[4096] = "";
    unet_image im;
    if (unet_image_load(file, &im, err, sizeof err) < 0) {
        fprintf(stderr, "unet_imgtool: %s\n", err);
        return -1;
    }
    int rc = dump(out, file, "f32", im.w, im.h, im.c, im.px,
                  (size_t)im.w * (size_t)im.h * (size_t)im.c * sizeof(float));
    unet_image_free(&im);
    uint8_t u8[4 * S * S];
    if (unet_image_load_u8(file, S, 3, u8, NULL, NULL, err, sizeof err) < 0 ||
        unet_image_load_u8(file, S, 1, u8 + 3 * S * S, NULL, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "unet_imgtool: %s\n", err);
        return -1;
    }
    rc |= dump(out, file, "u8", S, S, 4, u8, sizeof u8);
    if (unet_mask_load_u8(file, S, u8, NULL, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "unet_imgtool: %s\n", err);
        return -1;
    }
    rc |= dump(out, file, "mask", S, S, 1, u8, S * S);
    if (rc) fprintf(stderr, "unet_imgtool: cannot write the decoding of %s into %s\n", file, out);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        uint8_t *px = malloc((size_t)W * H * 8), *px16 = malloc((size_t)W * H * 8);
        int rc = px && px16 ? write_pngs(argv[2], px, px16) | write_jpegs(argv[2], px) : -1;
        free(px);
        free(px16);
        if (rc) fprintf(stderr, "unet_imgtool: cannot write the images into %s\n", argv[2]);
        return rc ? 1 : 0;
    }
    if (argc >= 4 && strcmp(argv[1], "decode") == 0) {
        for (int i = 3; i < argc; i++)
            if (decode(argv[2], argv[i]) < 0) return 1;
        return 0;
    }
    fprintf(stderr, "usage: unet_imgtool write DIR | unet_imgtool decode OUT FILE...\n");
    return 2;
}
