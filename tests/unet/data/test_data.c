/* SPDX-License-Identifier: MIT */
/*
 * test_data.c: the trainer's data layer (data/: image.c, resize.c,
 * dataset.c, folder.c, synthetic.c, split.c, loader.c; common/rng.c).
 * Writes real PNG and JPEG files with libpng/libjpeg under MG_TMPDIR,
 * loads them back, compares resizing with torch (tests/py/resize_ref.py
 * run by MG_PYTHON), walks the bad-data table message by message, and
 * checks the split, the epoch cursor, flips, the synthetic set and exact
 * resume.
 */
#include "mg_files.h"
#include "mg_images.h"
#include "mg_test.h"

#include "data.h"
#include "image.h"
#include "memguard.h"
#include "rng.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

static char g_tmp[256]; /* this run's private folder */
static int g_oracle_broken; /* report a missing torch once, not per case */

/* ---- helpers -------------------------------------------------------------- */

static void path_of(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", g_tmp, rel);
}

static void mkdir_p(const char *rel)
{
    char p[1200], q[1200];
    path_of(p, sizeof p, rel);
    for (char *s = p + strlen(g_tmp) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    snprintf(q, sizeof q, "%s", p);
    mkdir(q, 0755);
}


/* Writes a PNG under the run's folder (mg_images.h), not interlaced. */
static int write_png(const char *rel, int w, int h, int color, int depth, const uint8_t *data,
                     size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns,
                     int ntrns)
{
    char p[1200];
    path_of(p, sizeof p, rel);
    return mg_write_png(p, w, h, color, depth, data, rowbytes, pal, npal, trns, ntrns,
                        PNG_INTERLACE_NONE);
}

static int write_png8(const char *rel, int w, int h, int c, const uint8_t *data)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
    return write_png(rel, w, h, types[c], 8, data, (size_t)w * (size_t)c, NULL, 0, NULL, 0);
}

/* Writes a JPEG, no chroma subsampling so colours survive quality 100. */
static int write_jpeg(const char *rel, int w, int h, int comps, J_COLOR_SPACE cs,
                      const uint8_t *data, int quality)
{
    char p[1200];
    path_of(p, sizeof p, rel);
    return mg_write_jpeg(p, w, h, comps, cs, data, quality, 1, 1, false);
}

static int write_bytes(const char *rel, const void *b, size_t n)
{
    char p[1200];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(b, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static long file_size(const char *rel)
{
    char p[1200];
    struct stat st;
    path_of(p, sizeof p, rel);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void truncate_to(const char *rel, long n)
{
    char p[1200];
    path_of(p, sizeof p, rel);
    CHECK_INT(truncate(p, n), 0);
}

static int load_rel(const char *rel, unet_image *img, char *err, size_t errlen)
{
    char p[1200];
    path_of(p, sizeof p, rel);
    return unet_image_load(p, img, err, errlen);
}

/* ---- decoding ------------------------------------------------------------- */

static void test_png_formats(void)
{
    char err[512] = "";
    unet_image im;
    mkdir_p("fmt");

    /* gray 8: 4x3 */
    uint8_t g8[12];
    for (int i = 0; i < 12; i++)
        g8[i] = (uint8_t)(i * 21);
    CHECK_INT(write_png8("fmt/g8.png", 4, 3, 1, g8), 0);
    CHECK_INT(load_rel("fmt/g8.png", &im, err, sizeof err), 0);
    CHECK_INT(im.w, 4);
    CHECK_INT(im.h, 3);
    CHECK_INT(im.c, 1);
    for (int i = 0; i < 12 && im.px; i++)
        CHECK_NEAR(im.px[i], g8[i] / 255.0, 1e-7);
    unet_image_free(&im);

    /* gray 16, big-endian samples */
    uint16_t v16[6] = {0, 1, 1000, 32768, 65534, 65535};
    uint8_t g16[12];
    for (int i = 0; i < 6; i++) {
        g16[2 * i] = (uint8_t)(v16[i] >> 8);
        g16[2 * i + 1] = (uint8_t)(v16[i] & 0xff);
    }
    CHECK_INT(write_png("fmt/g16.png", 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, 6, NULL, 0, NULL, 0),
              0);
    CHECK_INT(load_rel("fmt/g16.png", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 1);
    for (int i = 0; i < 6 && im.px; i++)
        CHECK_NEAR(im.px[i], v16[i] / 65535.0, 1e-7);
    unet_image_free(&im);

    /* gray + alpha, RGB, RGBA (8 bit) */
    uint8_t px[2 * 2 * 4];
    for (int i = 0; i < 16; i++)
        px[i] = (uint8_t)(17 * i);
    for (int c = 2; c <= 4; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "fmt/c%d.png", c);
        CHECK_INT(write_png8(rel, 2, 2, c, px), 0);
        CHECK_INT(load_rel(rel, &im, err, sizeof err), 0);
        CHECK_INT(im.c, c);
        for (int i = 0; i < 4 * c && im.px; i++)
            CHECK_NEAR(im.px[i], px[i] / 255.0, 1e-7);
        unet_image_free(&im);
    }

    /* RGB 16 */
    uint8_t rgb16[2 * 1 * 3 * 2];
    uint16_t rv[6] = {0, 65535, 12345, 54321, 256, 255};
    for (int i = 0; i < 6; i++) {
        rgb16[2 * i] = (uint8_t)(rv[i] >> 8);
        rgb16[2 * i + 1] = (uint8_t)rv[i];
    }
    CHECK_INT(write_png("fmt/rgb16.png", 2, 1, PNG_COLOR_TYPE_RGB, 16, rgb16, 12, NULL, 0, NULL,
                        0),
              0);
    CHECK_INT(load_rel("fmt/rgb16.png", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 3);
    for (int i = 0; i < 6 && im.px; i++)
        CHECK_NEAR(im.px[i], rv[i] / 65535.0, 1e-7);
    unet_image_free(&im);

    /* palette, 8 bit, without and with tRNS */
    png_color pal[3] = {{255, 0, 0}, {0, 128, 0}, {10, 20, 30}};
    uint8_t pidx[4] = {0, 1, 2, 1};
    CHECK_INT(write_png("fmt/pal.png", 2, 2, PNG_COLOR_TYPE_PALETTE, 8, pidx, 2, pal, 3, NULL, 0),
              0);
    CHECK_INT(load_rel("fmt/pal.png", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 3);
    if (im.px) {
        CHECK_NEAR(im.px[0], 1.0, 1e-7);
        CHECK_NEAR(im.px[1], 0.0, 1e-7);
        CHECK_NEAR(im.px[4], 128 / 255.0, 1e-7);
        CHECK_NEAR(im.px[6], 10 / 255.0, 1e-7);
        CHECK_NEAR(im.px[8], 30 / 255.0, 1e-7);
    }
    unet_image_free(&im);
    uint8_t trns[2] = {0, 200};
    CHECK_INT(write_png("fmt/palt.png", 2, 2, PNG_COLOR_TYPE_PALETTE, 8, pidx, 2, pal, 3, trns, 2),
              0);
    CHECK_INT(load_rel("fmt/palt.png", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 4);
    if (im.px) {
        CHECK_NEAR(im.px[3], 0.0, 1e-7);           /* index 0: alpha 0 */
        CHECK_NEAR(im.px[7], 200 / 255.0, 1e-7);   /* index 1: alpha 200 */
        CHECK_NEAR(im.px[11], 1.0, 1e-7);          /* index 2: opaque */
        CHECK_NEAR(im.px[9], 20 / 255.0, 1e-7);
    }
    unet_image_free(&im);

    /* 1-bit gray (a typical mask): 0 and 1 become 0.0 and 1.0 */
    uint8_t bits[2] = {0xA0, 0x40}; /* rows: 1 0 1, 0 1 0 */
    CHECK_INT(write_png("fmt/g1.png", 3, 2, PNG_COLOR_TYPE_GRAY, 1, bits, 1, NULL, 0, NULL, 0),
              0);
    CHECK_INT(load_rel("fmt/g1.png", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 1);
    static const float want1[6] = {1, 0, 1, 0, 1, 0};
    for (int i = 0; i < 6 && im.px; i++)
        CHECK_NEAR(im.px[i], want1[i], 0);
    unet_image_free(&im);
    if (err[0])
        printf("# last message: %s\n", err);
}

static void test_jpeg_formats(void)
{
    char err[512] = "";
    unet_image im;
    mkdir_p("fmt");
    enum { W = 16, H = 8 };
    uint8_t g[W * H], rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            g[y * W + x] = (uint8_t)(40 + 8 * x + 4 * y); /* smooth ramp */
            rgb[(y * W + x) * 3 + 0] = (uint8_t)(200 - 4 * x);
            rgb[(y * W + x) * 3 + 1] = (uint8_t)(50 + 6 * y);
            rgb[(y * W + x) * 3 + 2] = 120;
        }
    CHECK_INT(write_jpeg("fmt/g.jpg", W, H, 1, JCS_GRAYSCALE, g, 100), 0);
    CHECK_INT(load_rel("fmt/g.jpg", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 1);
    CHECK_INT(im.w, W);
    CHECK_INT(im.h, H);
    for (int i = 0; i < W * H && im.px; i++)
        CHECK_NEAR(im.px[i], g[i] / 255.0, 3 / 255.0);
    unet_image_free(&im);

    CHECK_INT(write_jpeg("fmt/rgb.jpeg", W, H, 3, JCS_RGB, rgb, 100), 0);
    CHECK_INT(load_rel("fmt/rgb.jpeg", &im, err, sizeof err), 0);
    CHECK_INT(im.c, 3);
    for (int i = 0; i < W * H * 3 && im.px; i++)
        CHECK_NEAR(im.px[i], rgb[i] / 255.0, 4 / 255.0);
    unet_image_free(&im);
    if (err[0])
        printf("# last message: %s\n", err);
}

static void test_png_writer(void)
{
    char err[512] = "", p[1200];
    enum { W = 7, H = 5 };
    uint8_t m[W * H];
    for (int i = 0; i < W * H; i++)
        m[i] = (uint8_t)(i * 7);
    mkdir_p("fmt");
    path_of(p, sizeof p, "fmt/written.png");
    CHECK_INT(unet_png_write_gray8(p, m, W, H, err, sizeof err), 0);
    unet_image im;
    CHECK_INT(unet_image_load(p, &im, err, sizeof err), 0);
    CHECK_INT(im.w, W);
    CHECK_INT(im.h, H);
    CHECK_INT(im.c, 1);
    for (int i = 0; i < W * H && im.px; i++)
        CHECK_INT((int)(im.px[i] * 255.0f + 0.5f), m[i]);
    unet_image_free(&im);

    path_of(p, sizeof p, "no/such/folder/x.png");
    CHECK_INT(unet_png_write_gray8(p, m, W, H, err, sizeof err), MG_ENOENT);
    CHECK_CONTAINS(err, "x.png: cannot create: No such file or directory");
}

/* ---- resizing ------------------------------------------------------------- */

/* Runs the torch oracle; returns 0, or -1 after a FAIL naming the cause. */
static int torch_resize(const float *in, int c, int h, int w, float *out, int oh, int ow,
                        const char *mode)
{
    char ip[1200], op[1200], script[1200], cmd[4096];
    path_of(ip, sizeof ip, "rs_in.bin");
    path_of(op, sizeof op, "rs_out.bin");
    snprintf(script, sizeof script, "%s/tests/py/resize_ref.py", MG_SOURCE_DIR);
    if (g_oracle_broken) {
        MG_FAIL_("torch oracle unavailable (see above)");
        return -1;
    }
    if (access(MG_PYTHON, X_OK) != 0) {
        g_oracle_broken = 1;
        MG_FAIL_("python interpreter %s not found: the bilinear/nearest oracle needs "
                 "python3 with torch", MG_PYTHON);
        return -1;
    }
    FILE *f = fopen(ip, "wb");
    if (!f) {
        MG_FAIL_("cannot write %s", ip);
        return -1;
    }
    fwrite(in, sizeof(float), (size_t)c * (size_t)h * (size_t)w, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' %d %d %d %d %d %s", MG_PYTHON, script, ip, op,
             c, h, w, oh, ow, mode);
    int st = system(cmd);
    if (st != 0) {
        g_oracle_broken = 1;
        MG_FAIL_("torch oracle failed (exit status %d): is torch installed for %s? "
                 "command: %s", st, MG_PYTHON, cmd);
        return -1;
    }
    f = fopen(op, "rb");
    size_t n = (size_t)c * (size_t)oh * (size_t)ow;
    size_t got = f ? fread(out, sizeof(float), n, f) : 0;
    if (f)
        fclose(f);
    if (got != n) {
        MG_FAIL_("torch oracle wrote %zu of %zu floats", got, n);
        return -1;
    }
    return 0;
}

static void test_resize_bilinear_torch(void)
{
    static const int cases[][4] = {
        /* h, w, oh, ow */
        {13, 7, 32, 32}, {50, 37, 16, 16}, {5, 5, 5, 8}, {1, 9, 4, 3}, {64, 64, 63, 65},
        {3, 100, 256, 256}, {256, 256, 256, 128},
    };
    unet_rng r;
    unet_rng_seed(&r, 42);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int h = cases[k][0], w = cases[k][1], oh = cases[k][2], ow = cases[k][3], c = 3;
        size_t n = (size_t)c * (size_t)h * (size_t)w, on = (size_t)c * (size_t)oh * (size_t)ow;
        float *chw = malloc(sizeof(float) * n), *hwc = malloc(sizeof(float) * n);
        float *ref = malloc(sizeof(float) * on), *got = malloc(sizeof(float) * on);
        for (size_t i = 0; i < n; i++)
            chw[i] = unet_rng_uniformf(&r);
        for (int ch = 0; ch < c; ch++)
            for (size_t i = 0; i < (size_t)h * (size_t)w; i++)
                hwc[i * (size_t)c + (size_t)ch] = chw[(size_t)ch * (size_t)h * (size_t)w + i];
        if (torch_resize(chw, c, h, w, ref, oh, ow, "bilinear") == 0) {
            unet_resize_bilinear(hwc, w, h, c, got, ow, oh);
            double worst = 0;
            for (int ch = 0; ch < c; ch++)
                for (size_t i = 0; i < (size_t)oh * (size_t)ow; i++) {
                    double d = fabs(got[i * (size_t)c + (size_t)ch]
                                    - ref[(size_t)ch * (size_t)oh * (size_t)ow + i]);
                    worst = d > worst ? d : worst;
                }
            printf("# bilinear %dx%d -> %dx%d: max |diff| vs torch %.3g\n", h, w, oh, ow, worst);
            if (!(worst <= 1e-5))
                MG_FAIL_("bilinear %dx%d -> %dx%d: max diff %g vs torch", h, w, oh, ow, worst);
        }
        free(chw);
        free(hwc);
        free(ref);
        free(got);
    }

    /* By hand: [[0, 1], [2, 3]] -> 4x4. Source coordinates are
     * (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge). */
    float src[4] = {0, 1, 2, 3}, dst[16];
    unet_resize_bilinear(src, 2, 2, 1, dst, 4, 4);
    static const float want[16] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f,
                                   1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3};
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(dst[i], want[i], 1e-6);
}

static void test_resize_nearest_torch(void)
{
    static const int cases[][4] = {
        {13, 7, 32, 32}, {50, 37, 16, 16}, {10, 10, 20, 20}, {7, 3, 7, 3}, {300, 200, 256, 256},
        {33, 65, 256, 256},
    };
    unet_rng r;
    unet_rng_seed(&r, 7);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int h = cases[k][0], w = cases[k][1], oh = cases[k][2], ow = cases[k][3];
        size_t n = (size_t)h * (size_t)w, on = (size_t)oh * (size_t)ow;
        uint8_t *m = malloc(n), *got = malloc(on);
        float *f = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * on);
        /* Distinct values per pixel identify which source pixel was taken. */
        for (size_t i = 0; i < n; i++) {
            m[i] = (uint8_t)unet_rng_below(&r, 256);
            f[i] = (float)i;
        }
        if (torch_resize(f, 1, h, w, ref, oh, ow, "nearest") == 0) {
            unet_resize_nearest_u8(m, w, h, got, ow, oh);
            int bad = 0;
            for (size_t i = 0; i < on; i++)
                bad += got[i] != m[(size_t)ref[i]];
            if (bad)
                MG_FAIL_("nearest %dx%d -> %dx%d: %d pixels differ from torch", h, w, oh, ow,
                         bad);
        }
        free(m);
        free(got);
        free(f);
        free(ref);
    }
}

/* ---- the per-file pipeline ------------------------------------------------ */

static void test_pipeline(void)
{
    char err[512] = "", p[1200];
    mkdir_p("pipe");
    /* RGB 2x1: pure red and pure green -> gray = luma */
    uint8_t rgb[6] = {255, 0, 0, 0, 255, 0};
    CHECK_INT(write_png8("pipe/rgb.png", 2, 1, 3, rgb), 0);
    path_of(p, sizeof p, "pipe/rgb.png");
    uint8_t out[3 * 4];
    int ow = 0, oh = 0;
    CHECK_INT(unet_image_load_u8(p, 2, 1, out, &ow, &oh, err, sizeof err), 0);
    CHECK_INT(ow, 2);
    CHECK_INT(oh, 1);
    /* resized 2x1 -> 2x2: rows repeat; red 0.299 * 255 = 76.2, green 149.7 */
    CHECK_INT(out[0], 76);
    CHECK_INT(out[1], 150);
    CHECK_INT(out[2], 76);
    CHECK_INT(out[3], 150);
    /* the same file as 3 channels: planar R, G, B */
    CHECK_INT(unet_image_load_u8(p, 2, 3, out, NULL, NULL, err, sizeof err), 0);
    CHECK_INT(out[0], 255);
    CHECK_INT(out[1], 0);
    CHECK_INT(out[4 + 0], 0);
    CHECK_INT(out[4 + 1], 255);
    CHECK_INT(out[8 + 0], 0);
    /* gray -> 3 channels replicates */
    uint8_t g[4] = {10, 20, 30, 40};
    CHECK_INT(write_png8("pipe/g.png", 2, 2, 1, g), 0);
    path_of(p, sizeof p, "pipe/g.png");
    CHECK_INT(unet_image_load_u8(p, 2, 3, out, NULL, NULL, err, sizeof err), 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++)
            CHECK_INT(out[c * 4 + i], g[i]);
    float f[4];
    CHECK_INT(unet_image_load_chw(p, 2, 1, f, NULL, NULL, err, sizeof err), 0);
    CHECK_NEAR(f[3], 40 / 255.0, 1e-7);

    /* RGBA mask: opaque black is background, any colour is foreground,
     * alpha alone is ignored. */
    uint8_t rgba[4 * 4] = {0, 0, 0, 255, 1, 0, 0, 255, 0, 0, 0, 0, 0, 0, 200, 0};
    CHECK_INT(write_png8("pipe/m.png", 4, 1, 4, rgba), 0);
    path_of(p, sizeof p, "pipe/m.png");
    uint8_t m[16];
    CHECK_INT(unet_mask_load_u8(p, 4, m, &ow, &oh, err, sizeof err), 0);
    static const uint8_t wm[4] = {0, 1, 0, 1};
    for (int i = 0; i < 4; i++)
        CHECK_INT(m[i], wm[i]);
    /* 16-bit mask, value 1 of 65535 is foreground */
    uint8_t m16[4] = {0, 0, 0, 1};
    CHECK_INT(write_png("pipe/m16.png", 2, 1, PNG_COLOR_TYPE_GRAY, 16, m16, 4, NULL, 0, NULL, 0),
              0);
    path_of(p, sizeof p, "pipe/m16.png");
    CHECK_INT(unet_mask_load_u8(p, 2, m, NULL, NULL, err, sizeof err), 0);
    CHECK_INT(m[0], 0);
    CHECK_INT(m[1], 1);
    CHECK_INT(m[2], 0);
    CHECK_INT(m[3], 1);
    CHECK_INT(unet_image_load_u8(p, 0, 1, out, NULL, NULL, err, sizeof err), MG_EINVAL);
    CHECK_INT(unet_image_load_u8(p, 2, 2, out, NULL, NULL, err, sizeof err), MG_EINVAL);
}

/* ---- folders -------------------------------------------------------------- */

static void test_folder_load(void)
{
    char err[512] = "", dir[1200];
    mkdir_p("ds1/images");
    mkdir_p("ds1/masks");
    /* b: RGB PNG 20x10, a: gray JPEG 16x16, c: palette PNG with an upper
     * case extension; masks in mixed formats. Also a stray text file and a
     * hidden file, both ignored. */
    enum { W = 20, H = 10 };
    uint8_t rgb[W * H * 3], mb[W * H];
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = (uint8_t)i;
        rgb[3 * i + 1] = 100;
        rgb[3 * i + 2] = 200;
        mb[i] = (i % W) < W / 2 ? 0 : 255; /* right half foreground */
    }
    CHECK_INT(write_png8("ds1/images/b.png", W, H, 3, rgb), 0);
    CHECK_INT(write_png8("ds1/masks/b.png", W, H, 1, mb), 0);
    uint8_t g[16 * 16], z[16 * 16];
    memset(g, 128, sizeof g);
    memset(z, 255, sizeof z);
    CHECK_INT(write_jpeg("ds1/images/a.jpg", 16, 16, 1, JCS_GRAYSCALE, g, 95), 0);
    CHECK_INT(write_jpeg("ds1/masks/a.JPEG", 16, 16, 1, JCS_GRAYSCALE, z, 95), 0);
    png_color pal[2] = {{0, 0, 0}, {255, 255, 255}};
    uint8_t pidx[4 * 4];
    for (int i = 0; i < 16; i++)
        pidx[i] = (uint8_t)(i & 1);
    CHECK_INT(write_png("ds1/images/c.PNG", 4, 4, PNG_COLOR_TYPE_PALETTE, 8, pidx, 4, pal, 2,
                        NULL, 0),
              0);
    CHECK_INT(write_png("ds1/masks/c.png", 4, 4, PNG_COLOR_TYPE_PALETTE, 8, pidx, 4, pal, 2,
                        NULL, 0),
              0);
    CHECK_INT(write_bytes("ds1/images/notes.txt", "hi", 2), 0);
    CHECK_INT(write_bytes("ds1/masks/.hidden.png", "x", 1), 0);

    path_of(dir, sizeof dir, "ds1");
    int n = -1;
    CHECK_INT(unet_data_count_folder(dir, &n, err, sizeof err), 0);
    CHECK_INT(n, 3);
    CHECK_U64(unet_data_bytes(3, 8, 3), 3 * (8 * 8 * 4 + 256 + sizeof(char *)));

    unet_data d;
    int rc = unet_data_load_folder(&d, dir, 8, 3, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc) {
        printf("# %s\n", err);
        return;
    }
    CHECK_INT(d.n, 3);
    CHECK_INT(d.size, 8);
    CHECK_INT(d.channels, 3);
    CHECK_STR(d.names[0], "a");
    CHECK_STR(d.names[1], "b");
    CHECK_STR(d.names[2], "c");
    size_t plane = 64;
    /* a: gray 128 replicated, mask all ones */
    for (size_t c = 0; c < 3; c++)
        CHECK_NEAR(d.img[c * plane + 27], 128, 2);
    for (size_t i = 0; i < plane; i++)
        CHECK_INT(d.mask[i], 1);
    /* b: G and B planes constant, mask left half 0 right half 1 */
    const uint8_t *bi = d.img + 3 * plane, *bm = d.mask + plane;
    CHECK_INT(bi[plane + 10], 100);
    CHECK_INT(bi[2 * plane + 63], 200);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            CHECK_INT(bm[y * 8 + x], x >= 4);
    /* c: 4x4 -> 8x8 nearest doubles each mask column: 0 0 1 1 0 0 1 1 */
    const uint8_t *cm = d.mask + 2 * plane;
    for (int x = 0; x < 8; x++)
        CHECK_INT(cm[x], (x / 2) & 1);
    unet_data_free(&d);
    unet_data_free(&d); /* idempotent */

    /* gray loading of the same folder */
    CHECK_INT(unet_data_load_folder(&d, dir, 5, 1, err, sizeof err), 0);
    CHECK_INT(d.channels, 1);
    CHECK_INT(d.size, 5);
    unet_data_free(&d);
}

/* One case of the bad-data table: a folder builder and the message. */
struct bad_case {
    const char *name;
    int want_rc;
    const char *want1, *want2; /* substrings the message must hold */
};

static void build_bad(const char *name, const char *root)
{
    char rel[512];
    uint8_t px[8 * 8 * 3];
    memset(px, 90, sizeof px);
    uint8_t cmyk[8 * 8 * 4];
    memset(cmyk, 50, sizeof cmyk);
#define R(fmt) (snprintf(rel, sizeof rel, "%s/" fmt, root), rel)
    if (strcmp(name, "no-images") == 0) {
        mkdir_p(R("masks"));
        return;
    }
    mkdir_p(R("images"));
    if (strcmp(name, "no-masks") == 0)
        return;
    mkdir_p(R("masks"));
    if (strcmp(name, "empty") == 0)
        return;
    write_png8(R("images/ok.png"), 8, 8, 3, px);
    write_png8(R("masks/ok.png"), 8, 8, 1, px);
    if (strcmp(name, "image-no-mask") == 0) {
        write_png8(R("images/lonely.png"), 8, 8, 3, px);
    } else if (strcmp(name, "mask-no-image") == 0) {
        write_png8(R("masks/zorro.png"), 8, 8, 1, px);
    } else if (strcmp(name, "truncated-png") == 0) {
        write_png8(R("images/t.png"), 8, 8, 3, px);
        write_png8(R("masks/t.png"), 8, 8, 1, px);
        truncate_to(R("images/t.png"), file_size(rel) - 30);
    } else if (strcmp(name, "garbage-png") == 0) {
        /* a plausible IHDR (9 x 9) followed by junk: the CRC fails */
        static const uint8_t junk[40] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0,
                                         13,   'I', 'H', 'D', 'R', 0,    0,    0,    9,
                                         0,    0,   0,   9,   8,   2,    0,    0,    0,
                                         1,    2,   3,   4,   5,   6,    7,    8,    9};
        write_bytes(R("images/g.png"), junk, sizeof junk);
        write_png8(R("masks/g.png"), 8, 8, 1, px);
    } else if (strcmp(name, "not-an-image") == 0) {
        write_bytes(R("images/x.jpg"), "GIF89a....", 10);
        write_png8(R("masks/x.png"), 8, 8, 1, px);
    } else if (strcmp(name, "empty-file") == 0) {
        write_bytes(R("masks/e.png"), "", 0);
        write_png8(R("images/e.png"), 8, 8, 3, px);
    } else if (strcmp(name, "truncated-jpeg") == 0) {
        write_jpeg(R("images/j.jpg"), 8, 8, 3, JCS_RGB, px, 90);
        truncate_to(R("images/j.jpg"), file_size(rel) / 2);
        write_png8(R("masks/j.png"), 8, 8, 1, px);
    } else if (strcmp(name, "cmyk-jpeg") == 0) {
        write_jpeg(R("images/k.jpg"), 8, 8, 4, JCS_CMYK, cmyk, 90);
        write_png8(R("masks/k.png"), 8, 8, 1, px);
    } else if (strcmp(name, "size-mismatch") == 0) {
        write_png8(R("images/s.png"), 8, 8, 3, px);
        write_png8(R("masks/s.png"), 8, 4, 1, px);
    } else if (strcmp(name, "zero-size") == 0) {
        /* A hand-made PNG whose IHDR says 0 x 4, with a valid CRC. */
        uint8_t f[8 + 25];
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        static const uint8_t ihdr[4 + 4 + 13] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 0,
                                                 0, 0, 0, 4,  8,   0,   0,   0,   0};
        memcpy(f, sig, 8);
        memcpy(f + 8, ihdr, sizeof ihdr);
        uLong crc = crc32(0L, ihdr + 4, 17);
        f[29] = (uint8_t)(crc >> 24);
        f[30] = (uint8_t)(crc >> 16);
        f[31] = (uint8_t)(crc >> 8);
        f[32] = (uint8_t)crc;
        write_bytes(R("images/z.png"), f, sizeof f);
        write_png8(R("masks/z.png"), 8, 8, 1, px);
    } else if (strcmp(name, "same-stem") == 0) {
        write_png8(R("images/d.png"), 8, 8, 3, px);
        write_jpeg(R("images/d.jpg"), 8, 8, 3, JCS_RGB, px, 90);
        write_png8(R("masks/d.png"), 8, 8, 1, px);
    }
#undef R
}

static void test_bad_data(void)
{
    static const struct bad_case cases[] = {
        {"no-images", MG_ENOENT, "/no-images/images: folder not found",
         "a data set needs "},
        {"no-masks", MG_ENOENT, "/no-masks/masks: folder not found", "/no-masks/masks/)"},
        {"empty", MG_EINVAL, "/empty: no images (", "/empty/images/ has no .png, .jpg or .jpeg"},
        {"image-no-mask", MG_ENOENT, "/image-no-mask/images/lonely.png: image has no mask",
         "(looked for masks/lonely.png, .jpg or .jpeg)"},
        {"mask-no-image", MG_ENOENT, "/mask-no-image/masks/zorro.png: mask has no image",
         "(looked for images/zorro.png, .jpg or .jpeg)"},
        {"truncated-png", MG_EPARSE, "/truncated-png/images/t.png: corrupt PNG: ", ""},
        {"garbage-png", MG_EPARSE, "/garbage-png/images/g.png: corrupt PNG: ", "CRC"},
        {"not-an-image", MG_EPARSE, "/not-an-image/images/x.jpg: not a PNG or JPEG file", ""},
        {"empty-file", MG_EPARSE, "/empty-file/masks/e.png: not a PNG or JPEG file", ""},
        {"truncated-jpeg", MG_EPARSE, "/truncated-jpeg/images/j.jpg: corrupt JPEG: ",
         "Premature end of JPEG file"},
        {"cmyk-jpeg", MG_EPARSE, "/cmyk-jpeg/images/k.jpg: CMYK JPEG is not supported", ""},
        {"size-mismatch", MG_EPARSE, "/size-mismatch/masks/s.png: mask is 8x4 but its image ",
         "/size-mismatch/images/s.png is 8x8"},
        {"zero-size", MG_EPARSE, "/zero-size/images/z.png: zero-size image (0x4)", ""},
        {"same-stem", MG_EPARSE, "/same-stem/images/d.png: same stem as ",
         "/same-stem/images/d.jpg (cannot pair)"},
    };
    mkdir_p("bad");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct bad_case *c = &cases[k];
        char root[256], dir[1200], err[1024] = "";
        snprintf(root, sizeof root, "bad/%s", c->name);
        build_bad(c->name, root);
        path_of(dir, sizeof dir, root);
        unet_data d;
        memset(&d, 0x5a, sizeof d);
        int rc = unet_data_load_folder(&d, dir, 8, 3, err, sizeof err);
        if (rc != c->want_rc)
            MG_FAIL_("case %s: rc %d (%s), want %d; message: %s", c->name, rc, mg_err_name(rc),
                     c->want_rc, err);
        CHECK_CONTAINS(err, c->want1);
        CHECK_CONTAINS(err, c->want2);
        CHECK(strchr(err, '\n') == NULL); /* one line */
        CHECK(d.img == NULL && d.mask == NULL && d.names == NULL && d.n == 0);
        unet_data_free(&d);
        printf("#   %-15s %s\n", c->name, err);
    }
    /* Pairing errors come from the scan alone, before any decoding. */
    char dir[1200], err[1024] = "";
    int n = 0;
    path_of(dir, sizeof dir, "bad/image-no-mask");
    CHECK_INT(unet_data_count_folder(dir, &n, err, sizeof err), MG_ENOENT);
    CHECK_CONTAINS(err, "lonely.png: image has no mask");
    path_of(dir, sizeof dir, "bad/truncated-png");
    CHECK_INT(unet_data_count_folder(dir, &n, err, sizeof err), 0);
    CHECK_INT(n, 2);
    /* Argument checks */
    unet_data d;
    CHECK_INT(unet_data_load_folder(&d, dir, 0, 3, err, sizeof err), MG_EINVAL);
    CHECK_CONTAINS(err, "image size 0 is out of range");
    CHECK_INT(unet_data_load_folder(&d, dir, 8, 2, err, sizeof err), MG_EINVAL);
    CHECK_CONTAINS(err, "channels must be 1 or 3, not 2");
    /* A missing file given straight to the decoder */
    unet_image im;
    CHECK_INT(load_rel("bad/nope.png", &im, err, sizeof err), MG_ENOENT);
    CHECK_CONTAINS(err, "nope.png: cannot open: No such file or directory");
}

/* ---- split ---------------------------------------------------------------- */

static void test_split(void)
{
    char err[256] = "";
    unet_split a, b, c;
    CHECK_INT(unet_split_make(&a, 500, 0.2, 1234, err, sizeof err), 0);
    CHECK_INT(unet_split_make(&b, 500, 0.2, 1234, err, sizeof err), 0);
    CHECK_INT(unet_split_make(&c, 500, 0.2, 999, err, sizeof err), 0);
    CHECK_INT(a.n_val, 100);
    CHECK_INT(a.n_train, 400);
    CHECK(memcmp(a.val, b.val, sizeof(int) * 100) == 0);
    CHECK(memcmp(a.train, b.train, sizeof(int) * 400) == 0);
    CHECK(memcmp(a.val, c.val, sizeof(int) * 100) != 0);
    /* disjoint, covering, ascending */
    uint8_t seen[500] = {0};
    for (int i = 0; i < a.n_val; i++)
        seen[a.val[i]]++;
    for (int i = 0; i < a.n_train; i++)
        seen[a.train[i]]++;
    int ok = 1;
    for (int i = 0; i < 500; i++)
        ok &= seen[i] == 1;
    CHECK(ok);
    for (int i = 1; i < a.n_val; i++)
        CHECK(a.val[i - 1] < a.val[i]);
    for (int i = 1; i < a.n_train; i++)
        CHECK(a.train[i - 1] < a.train[i]);
    unet_split_free(&a);
    unet_split_free(&b);
    unet_split_free(&c);

    /* rounding and the edges */
    CHECK_INT(unet_split_make(&a, 7, 0.25, 1, err, sizeof err), 0); /* 1.75 -> 2 */
    CHECK_INT(a.n_val, 2);
    unet_split_free(&a);
    CHECK_INT(unet_split_make(&a, 3, 0.05, 1, err, sizeof err), 0); /* 0.15 -> 1 */
    CHECK_INT(a.n_val, 1);
    CHECK_INT(a.n_train, 2);
    unet_split_free(&a);
    CHECK_INT(unet_split_make(&a, 2, 0.9, 1, err, sizeof err), 0); /* train never empty */
    CHECK_INT(a.n_train, 1);
    CHECK_INT(a.n_val, 1);
    unet_split_free(&a);
    CHECK_INT(unet_split_make(&a, 10, 0.0, 1, err, sizeof err), 0);
    CHECK_INT(a.n_val, 0);
    CHECK_INT(a.n_train, 10);
    CHECK(a.val == NULL);
    unet_split_free(&a);
    CHECK_INT(unet_split_make(&a, 1, 0.2, 1, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "cannot split 1 sample into training and validation (need at least 2)");
    CHECK_INT(unet_split_make(&a, 1, 0.0, 1, err, sizeof err), 0);
    CHECK_INT(a.n_train, 1);
    unet_split_free(&a);
    CHECK_INT(unet_split_make(&a, 10, 1.0, 1, err, sizeof err), MG_ERANGE);
    CHECK_STR(err, "validation fraction 1 is out of range [0, 1)");
    CHECK_INT(unet_split_make(&a, 0, 0.2, 1, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "no samples to split");
}

/* ---- the cursor ----------------------------------------------------------- */

/* A hand-made set whose mask is (channel 0 > 127): alignment is visible. */
static int make_aligned_set(unet_data *d, int n, int S, int C, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    size_t plane = (size_t)S * (size_t)S;
    d->img = malloc((size_t)n * plane * (size_t)C);
    d->mask = malloc((size_t)n * plane);
    if (!d->img || !d->mask)
        return -1;
    d->n = n;
    d->size = S;
    d->channels = C;
    unet_rng r;
    unet_rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < plane; p++) {
            for (int c = 0; c < C; c++)
                d->img[((size_t)i * (size_t)C + (size_t)c) * plane + p] =
                    (uint8_t)unet_rng_below(&r, 256);
            d->mask[(size_t)i * plane + p] = d->img[(size_t)i * (size_t)C * plane + p] > 127;
        }
    return 0;
}

static int *iota(int n)
{
    int *a = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        a[i] = i;
    return a;
}

static void test_loader_batches(void)
{
    char err[256] = "";
    unet_data d;
    CHECK_INT(make_aligned_set(&d, 10, 6, 3, 5), 0);
    int *idx = iota(10);
    unet_loader l;
    CHECK_INT(unet_loader_init(&l, &d, idx, 10, 4, 0, 0, err, sizeof err), 0);
    float x[4 * 3 * 36], y[4 * 36];
    CHECK_INT(unet_loader_batches_left(&l), 0);
    CHECK_INT(unet_loader_next(&l, x, y), 0); /* no epoch begun */
    unet_loader_begin_epoch(&l);
    CHECK_INT(unet_loader_batches_left(&l), 3);
    CHECK_INT(unet_loader_next(&l, x, y), 4);
    /* eval: order is the given order, no flips, values exact */
    CHECK_NEAR(x[0], (float)d.img[0] / 255.0f, 0);
    CHECK_NEAR(x[3 * 36 + 5], (float)d.img[3 * 36 + 5] / 255.0f, 0); /* sample 1, ch 0, px 5 */
    CHECK_NEAR(y[36 + 7], d.mask[36 + 7], 0);
    CHECK_INT(unet_loader_next(&l, x, y), 4);
    CHECK_INT(unet_loader_batches_left(&l), 1);
    CHECK_INT(unet_loader_next(&l, x, y), 2); /* the partial batch is kept */
    CHECK_NEAR(x[0], (float)d.img[8 * 3 * 36] / 255.0f, 0);
    CHECK_INT(unet_loader_next(&l, x, y), 0);
    CHECK_INT(unet_loader_batches_left(&l), 0);
    unet_loader_free(&l);

    /* argument checks */
    CHECK_INT(unet_loader_init(&l, &d, idx, 10, 0, 0, 0, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "batch size 0 must be at least 1");
    CHECK_INT(unet_loader_init(&l, &d, idx, 0, 4, 0, 0, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "empty sample list");
    idx[3] = 10;
    CHECK_INT(unet_loader_init(&l, &d, idx, 10, 4, 0, 0, err, sizeof err), MG_ERANGE);
    CHECK_STR(err, "sample index 10 out of range [0, 10)");
    free(idx);
    unet_data_free(&d);
}

/* The sample order of the current epoch. */
static void epoch_order(unet_loader *l, int *order)
{
    for (int p = 0; p < l->n; p++)
        order[p] = l->order[p];
}

static void test_loader_shuffle(void)
{
    char err[256] = "";
    unet_data d;
    CHECK_INT(make_aligned_set(&d, 40, 4, 1, 9), 0);
    int *idx = iota(40);
    unet_loader a, b;
    CHECK_INT(unet_loader_init(&a, &d, idx, 40, 8, UNET_LOADER_SHUFFLE, 77, err, sizeof err), 0);
    CHECK_INT(unet_loader_init(&b, &d, idx, 40, 8, UNET_LOADER_SHUFFLE, 77, err, sizeof err), 0);
    int o1[40], o2[40], o3[40], ob[40];
    unet_loader_begin_epoch(&a);
    epoch_order(&a, o1);
    unet_loader_begin_epoch(&a);
    epoch_order(&a, o2);
    unet_loader_begin_epoch(&a);
    epoch_order(&a, o3);
    CHECK(memcmp(o1, o2, sizeof o1) != 0);
    CHECK(memcmp(o2, o3, sizeof o1) != 0);
    CHECK(memcmp(o1, idx, sizeof o1) != 0);
    /* each epoch is a permutation */
    int cnt[40] = {0};
    for (int i = 0; i < 40; i++)
        cnt[o2[i]]++;
    int ok = 1;
    for (int i = 0; i < 40; i++)
        ok &= cnt[i] == 1;
    CHECK(ok);
    /* the same seed gives the same epochs */
    unet_loader_begin_epoch(&b);
    epoch_order(&b, ob);
    CHECK(memcmp(o1, ob, sizeof o1) == 0);
    unet_loader_begin_epoch(&b);
    epoch_order(&b, ob);
    CHECK(memcmp(o2, ob, sizeof o1) == 0);
    /* the order stream does not depend on the flip flags */
    unet_loader c;
    CHECK_INT(unet_loader_init(&c, &d, idx, 40, 8,
                               UNET_LOADER_SHUFFLE | UNET_LOADER_FLIP_H | UNET_LOADER_FLIP_V, 77,
                               err, sizeof err),
              0);
    unet_loader_begin_epoch(&c);
    unet_loader_begin_epoch(&c);
    epoch_order(&c, ob);
    CHECK(memcmp(o2, ob, sizeof o1) == 0);
    unet_loader_free(&a);
    unet_loader_free(&b);
    unet_loader_free(&c);
    free(idx);
    unet_data_free(&d);
}

static void test_loader_flips(void)
{
    char err[256] = "";
    enum { N = 16, S = 5, C = 3 };
    unet_data d;
    CHECK_INT(make_aligned_set(&d, N, S, C, 21), 0);
    int *idx = iota(N);
    unet_loader l, plain;
    CHECK_INT(unet_loader_init(&l, &d, idx, N, N,
                               UNET_LOADER_SHUFFLE | UNET_LOADER_FLIP_H | UNET_LOADER_FLIP_V, 3,
                               err, sizeof err),
              0);
    CHECK_INT(unet_loader_init(&plain, &d, idx, N, N, 0, 0, err, sizeof err), 0);
    static float x[N * C * S * S], y[N * S * S], px[N * C * S * S], py[N * S * S];
    unet_loader_begin_epoch(&plain);
    CHECK_INT(unet_loader_next(&plain, px, py), N);
    int seen[4] = {0};
    for (int e = 0; e < 4; e++) {
        unet_loader_begin_epoch(&l);
        CHECK_INT(unet_loader_next(&l, x, y), N);
        int bad_align = 0, bad_flip = 0;
        for (int k = 0; k < N; k++) {
            int s = l.order[k];
            unsigned f = unet_loader_flips(&l, k);
            seen[f]++;
            for (int r = 0; r < S; r++)
                for (int q = 0; q < S; q++) {
                    int sr = (f & 2) ? S - 1 - r : r, sq = (f & 1) ? S - 1 - q : q;
                    size_t o = (size_t)k * S * S + (size_t)r * S + (size_t)q;
                    /* image/mask alignment after flipping */
                    float x0 = x[(size_t)k * C * S * S + (size_t)r * S + (size_t)q];
                    bad_align += (x0 * 255.0f > 127.5f) != (y[o] > 0.5f);
                    /* the flip is the claimed one, for every channel */
                    for (int c = 0; c < C; c++)
                        bad_flip += x[((size_t)k * C + (size_t)c) * S * S + (size_t)r * S
                                      + (size_t)q]
                                    != px[((size_t)s * C + (size_t)c) * S * S
                                          + (size_t)sr * S + (size_t)sq];
                    bad_flip += y[o] != py[(size_t)s * S * S + (size_t)sr * S + (size_t)sq];
                }
        }
        CHECK_INT(bad_align, 0);
        CHECK_INT(bad_flip, 0);
    }
    /* 64 draws: every flip combination shows up */
    for (int f = 0; f < 4; f++)
        CHECK(seen[f] > 0);
    /* only horizontal when only FLIP_H is asked */
    unet_loader h;
    CHECK_INT(unet_loader_init(&h, &d, idx, N, N, UNET_LOADER_FLIP_H, 3, err, sizeof err), 0);
    unet_loader_begin_epoch(&h);
    int any_h = 0;
    for (int k = 0; k < N; k++) {
        CHECK((unet_loader_flips(&h, k) & 2u) == 0);
        any_h |= (int)(unet_loader_flips(&h, k) & 1u);
    }
    CHECK(any_h);
    unet_loader_free(&h);
    unet_loader_free(&l);
    unet_loader_free(&plain);
    free(idx);
    unet_data_free(&d);
}

/* Runs the loader to the end of `epochs` more epochs (beginning new ones as
 * needed), appending every batch to buf; returns floats written. */
static size_t drain(unet_loader *l, int epochs, float *buf, size_t cap, size_t per_sample)
{
    size_t w = 0;
    for (int e = 0; e < epochs; e++) {
        if (unet_loader_batches_left(l) == 0)
            unet_loader_begin_epoch(l);
        int bn;
        float *x = malloc(sizeof(float) * per_sample * (size_t)l->batch);
        float *y = malloc(sizeof(float) * (size_t)l->data->size * (size_t)l->data->size
                          * (size_t)l->batch);
        while ((bn = unet_loader_next(l, x, y)) > 0) {
            size_t nx = per_sample * (size_t)bn;
            size_t ny = (size_t)l->data->size * (size_t)l->data->size * (size_t)bn;
            if (w + nx + ny <= cap) {
                memcpy(buf + w, x, sizeof(float) * nx);
                w += nx;
                memcpy(buf + w, y, sizeof(float) * ny);
                w += ny;
            }
        }
        free(x);
        free(y);
    }
    return w;
}

static void test_resume(void)
{
    char err[256] = "";
    enum { N = 23, C = 3, B = 4 };
    unet_data d;
    CHECK_INT(unet_data_synthetic(&d, N, 8, C, 11, err, sizeof err), 0);
    int *idx = iota(N);
    unsigned fl = UNET_LOADER_SHUFFLE | UNET_LOADER_FLIP_H | UNET_LOADER_FLIP_V;
    size_t per = (size_t)C * 64;
    size_t cap = (size_t)N * (per + 64) * 4;
    float *ref = malloc(sizeof(float) * cap), *got = malloc(sizeof(float) * cap);

    /* The uninterrupted run: epoch 1 (2 batches, then save), the rest of
     * epoch 1, epochs 2 and 3. */
    unet_loader a;
    CHECK_INT(unet_loader_init(&a, &d, idx, N, B, fl, 5, err, sizeof err), 0);
    unet_loader_begin_epoch(&a);
    float x[B * C * 64], y[B * 64];
    CHECK_INT(unet_loader_next(&a, x, y), B);
    CHECK_INT(unet_loader_next(&a, x, y), B);
    uint64_t st[UNET_LOADER_STATE_WORDS];
    unet_loader_export(&a, st);
    CHECK_U64(st[0], 1);
    CHECK_U64(st[5], 1);
    CHECK_U64(st[6], 2 * B);
    CHECK_U64(st[7], N);
    size_t nref = drain(&a, 3, ref, cap, per);
    CHECK(nref > 0);

    /* Resumed in a fresh loader (other seed: the state overrides it). */
    unet_loader b;
    CHECK_INT(unet_loader_init(&b, &d, idx, N, B, fl, 999, err, sizeof err), 0);
    CHECK_INT(unet_loader_import(&b, st, err, sizeof err), 0);
    size_t ngot = drain(&b, 3, got, cap, per);
    CHECK_INT(ngot, nref);
    CHECK(memcmp(ref, got, sizeof(float) * nref) == 0);

    /* Resumed with another batch size: the same samples in the same order
     * with the same flips, only cut into other batches (the state counts
     * samples, not batches). Batch-1 streams make that comparable. */
    unet_loader a1, c1;
    CHECK_INT(unet_loader_init(&a1, &d, idx, N, 1, fl, 5, err, sizeof err), 0);
    unet_loader_begin_epoch(&a1);
    for (int i = 0; i < 2 * B; i++)
        CHECK_INT(unet_loader_next(&a1, x, y), 1);
    CHECK_INT(unet_loader_init(&c1, &d, idx, N, 1, fl, 0, err, sizeof err), 0);
    CHECK_INT(unet_loader_import(&c1, st, err, sizeof err), 0);
    uint64_t stc[UNET_LOADER_STATE_WORDS];
    unet_loader_export(&c1, stc);
    CHECK(memcmp(st, stc, sizeof st) == 0);
    size_t n1 = drain(&a1, 3, ref, cap, per);
    size_t n2 = drain(&c1, 3, got, cap, per);
    CHECK_INT(n1, n2);
    CHECK(memcmp(ref, got, sizeof(float) * n1) == 0);
    unet_loader_free(&c1);
    unet_loader_free(&a1);

    /* A state saved at an epoch's end resumes into the next epoch. */
    unet_loader e, f;
    CHECK_INT(unet_loader_init(&e, &d, idx, N, B, fl, 8, err, sizeof err), 0);
    unet_loader_begin_epoch(&e);
    while (unet_loader_next(&e, x, y) > 0) {
    }
    unet_loader_export(&e, st);
    CHECK_U64(st[6], N);
    CHECK_INT(unet_loader_init(&f, &d, idx, N, B, fl, 1, err, sizeof err), 0);
    CHECK_INT(unet_loader_import(&f, st, err, sizeof err), 0);
    nref = drain(&e, 2, ref, cap, per);
    ngot = drain(&f, 2, got, cap, per);
    CHECK_INT(nref, ngot);
    CHECK(memcmp(ref, got, sizeof(float) * nref) == 0);
    /* A state saved before the first epoch. */
    unet_loader g, h;
    CHECK_INT(unet_loader_init(&g, &d, idx, N, B, fl, 42, err, sizeof err), 0);
    unet_loader_export(&g, st);
    CHECK_INT(unet_loader_init(&h, &d, idx, N, B, fl, 43, err, sizeof err), 0);
    CHECK_INT(unet_loader_import(&h, st, err, sizeof err), 0);
    nref = drain(&g, 2, ref, cap, per);
    ngot = drain(&h, 2, got, cap, per);
    CHECK_INT(nref, ngot);
    CHECK(memcmp(ref, got, sizeof(float) * nref) == 0);

    /* bad states */
    unet_loader_export(&a, st);
    st[0] = 9;
    CHECK_INT(unet_loader_import(&h, st, err, sizeof err), MG_EPARSE);
    CHECK_STR(err, "resume state: unknown format version 9");
    unet_loader_export(&a, st);
    st[7] = 400;
    CHECK_INT(unet_loader_import(&h, st, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "resume state: walks 400 samples but this run has 23 (different data or "
                   "split?)");
    unet_loader_export(&a, st);
    st[6] = 500;
    CHECK_INT(unet_loader_import(&h, st, err, sizeof err), MG_EPARSE);
    CHECK_STR(err, "resume state: position 500 is past the 23 samples of an epoch");
    unet_loader_export(&a, st);
    st[1] = st[2] = st[3] = st[4] = 0;
    CHECK_INT(unet_loader_import(&h, st, err, sizeof err), MG_EPARSE);
    CHECK_STR(err, "resume state: rng state is all zero");

    unet_loader_free(&a);
    unet_loader_free(&b);
    unet_loader_free(&e);
    unet_loader_free(&f);
    unet_loader_free(&g);
    unet_loader_free(&h);
    free(ref);
    free(got);
    free(idx);
    unet_data_free(&d);
}

/* ---- synthetic ------------------------------------------------------------ */

static void test_synthetic(void)
{
    char err[256] = "";
    unet_data a, b, c, g;
    CHECK_INT(unet_data_synthetic(&a, 64, 64, 3, 2024, err, sizeof err), 0);
    CHECK_INT(unet_data_synthetic(&b, 64, 64, 3, 2024, err, sizeof err), 0);
    CHECK_INT(unet_data_synthetic(&c, 5, 64, 3, 2025, err, sizeof err), 0);
    CHECK(a.names == NULL);
    size_t plane = 64 * 64;
    CHECK(memcmp(a.img, b.img, 64 * 3 * plane) == 0);
    CHECK(memcmp(a.mask, b.mask, 64 * plane) == 0);
    CHECK(memcmp(a.img, c.img, 5 * 3 * plane) != 0);
    unet_data_free(&c);
    /* sample i does not depend on n */
    CHECK_INT(unet_data_synthetic(&c, 5, 64, 3, 2024, err, sizeof err), 0);
    CHECK(memcmp(a.img, c.img, 5 * 3 * plane) == 0);
    CHECK(memcmp(a.mask, c.mask, 5 * plane) == 0);
    unet_data_free(&c);

    /* foreground fraction, and shapes brighter than background */
    double fg = 0, lo = 1, hi = 0, in_sum = 0, out_sum = 0;
    long in_n = 0, out_n = 0;
    int masks_ok = 1;
    for (int i = 0; i < 64; i++) {
        long s = 0;
        for (size_t p = 0; p < plane; p++) {
            uint8_t m = a.mask[(size_t)i * plane + p];
            masks_ok &= m <= 1;
            s += m;
            double v = a.img[(size_t)i * 3 * plane + p]; /* red plane */
            if (m) {
                in_sum += v;
                in_n++;
            } else {
                out_sum += v;
                out_n++;
            }
        }
        double f = (double)s / (double)plane;
        fg += f;
        lo = f < lo ? f : lo;
        hi = f > hi ? f : hi;
    }
    fg /= 64;
    printf("# synthetic 64x64: foreground mean %.3f, min %.3f, max %.3f; "
           "mean level in %.1f out %.1f\n",
           fg, lo, hi, in_sum / (double)in_n, out_sum / (double)out_n);
    CHECK(masks_ok);
    CHECK(fg >= 0.08 && fg <= 0.35);
    CHECK(lo > 0.005);
    CHECK(hi < 0.8);
    CHECK(in_sum / (double)in_n > out_sum / (double)out_n + 80);

    /* gray variant: same masks */
    CHECK_INT(unet_data_synthetic(&g, 64, 64, 1, 2024, err, sizeof err), 0);
    CHECK(memcmp(a.mask, g.mask, 64 * plane) == 0);
    unet_data_free(&g);
    unet_data_free(&a);
    unet_data_free(&b);

    CHECK_INT(unet_data_synthetic(&a, 0, 64, 3, 1, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "synthetic sample count 0 is out of range [1, 16777216]");
    CHECK_INT(unet_data_synthetic(&a, 4, 4, 3, 1, err, sizeof err), MG_EINVAL);
    CHECK_STR(err, "image size 4 is out of range [8, 16384]");
}

/* ---- rng ------------------------------------------------------------------ */

static void test_rng(void)
{
    /* splitmix64 from 0: published first outputs */
    uint64_t x = 0;
    CHECK_U64(unet_splitmix64(&x), 0xe220a8397b1dcdafULL);
    CHECK_U64(unet_splitmix64(&x), 0x6e789e6aa1b965f4ULL);
    unet_rng r, s;
    unet_rng_seed(&r, 1);
    uint64_t st[4];
    for (int i = 0; i < 10; i++)
        (void)unet_rng_u64(&r);
    unet_rng_get_state(&r, st);
    CHECK_INT(unet_rng_set_state(&s, st), 0);
    int same = 1;
    for (int i = 0; i < 100; i++)
        same &= unet_rng_u64(&r) == unet_rng_u64(&s);
    CHECK(same);
    uint64_t z[4] = {0, 0, 0, 0};
    CHECK_INT(unet_rng_set_state(&s, z), -1);
    /* bounded draws in range and roughly uniform */
    int hist[10] = {0};
    for (int i = 0; i < 10000; i++)
        hist[unet_rng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++)
        CHECK(hist[i] > 850 && hist[i] < 1150);
    double m = 0, v = 0;
    for (int i = 0; i < 20000; i++) {
        double g = unet_rng_normal(&r);
        m += g;
        v += g * g;
    }
    m /= 20000;
    v = v / 20000 - m * m;
    CHECK_NEAR(m, 0.0, 0.05);
    CHECK_NEAR(v, 1.0, 0.05);
    float u = unet_rng_uniformf(&r);
    CHECK(u >= 0.0f && u < 1.0f);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "%s/test_data.XXXXXX", MG_TMPDIR);
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "cannot create a folder under %s: %s\n", MG_TMPDIR, strerror(errno));
        return 1;
    }
    MG_RUN(test_rng);
    MG_RUN(test_png_formats);
    MG_RUN(test_jpeg_formats);
    MG_RUN(test_png_writer);
    MG_RUN(test_resize_bilinear_torch);
    MG_RUN(test_resize_nearest_torch);
    MG_RUN(test_pipeline);
    MG_RUN(test_folder_load);
    MG_RUN(test_bad_data);
    MG_RUN(test_split);
    MG_RUN(test_loader_batches);
    MG_RUN(test_loader_shuffle);
    MG_RUN(test_loader_flips);
    MG_RUN(test_resume);
    MG_RUN(test_synthetic);
    if (mg_test_failed_tests == 0)
        mg_rm_rf(g_tmp);
    else
        printf("# files kept in %s\n", g_tmp);
    return mg_test_exit();
}
