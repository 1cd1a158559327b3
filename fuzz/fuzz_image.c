/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c: libFuzzer harness for unet-train's image loaders
 * (src/unet/image.c): format sniffing, the PNG path (libpng with its
 * longjmp caught), the JPEG path (libjpeg's error_exit caught, warnings
 * turned into errors), the pixel limit, and the training pipelines on top
 * (unet_image_load_u8: bilinear resize and channel conversion;
 * unet_mask_load_u8: binarisation and nearest resize).
 *
 * Input: the bytes of an image file, written to a file of the private
 * folder (the loaders take a path). Seeds are tiny PNGs of every colour
 * type and JPEGs, baseline and progressive (fuzz/tools/make_seeds.py).
 *
 * Images that declare between 2^22 pixels and the loaders' own limit
 * (2^26) are skipped before decoding: they are valid but cost seconds and
 * up to 1.5 GiB under ASan each, and the size check itself (above 2^26)
 * stays in reach. Checks: on success the pixels are finite and in [0, 1],
 * masks hold only 0 and 1, and a failure comes with its message.
 */
#include "fuzz_util.h"
#include "image.h"
#include "memguard.h"


#define SKIP_ABOVE ((uint64_t)1 << 22)
#define SIZE 12 /* the pipelines' output size */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* Width x height that the file declares, 0 when it is not found. */
static uint64_t declared_pixels(const uint8_t *d, size_t n)
{
    if (n >= 24 && memcmp(d, "\x89PNG", 4) == 0 && memcmp(d + 12, "IHDR", 4) == 0)
        return (uint64_t)(be16(d + 16) << 16 | be16(d + 18)) *
               (uint64_t)(be16(d + 20) << 16 | be16(d + 22));
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return 0;
    uint64_t most = 0;
    /* every SOFn in the file: libjpeg reads the first, be generous */
    for (size_t i = 2; i + 9 <= n;) {
        if (d[i] != 0xFF) { i++; continue; }
        uint8_t m = d[i + 1];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            uint64_t px = (uint64_t)be16(d + i + 5) * be16(d + i + 7);
            if (px > most) most = px;
        }
        if (m == 0xFF || m == 0x01 || (m >= 0xD0 && m <= 0xD9) || m == 0x00) i += 2;
        else i += 2 + be16(d + i + 2);
    }
    return most;
}

static void check_image(const unet_image *img)
{
    FZ_CHECK(img->w > 0 && img->h > 0 && img->c >= 1 && img->c <= 4 && img->px,
             "%dx%dx%d", img->w, img->h, img->c);
    size_t n = (size_t)img->w * (size_t)img->h * (size_t)img->c;
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(img->px[i] >= 0.0f && img->px[i] <= 1.0f, "pixel %zu is %g", i,
                 (double)img->px[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t px = declared_pixels(data, size);
    if (px > SKIP_ABOVE && px <= UNET_IMAGE_MAX_PIXELS) return 0;
    static char path[4200];
    if (!path[0]) snprintf(path, sizeof path, "%s/image", fz_tmpdir());
    if (fz_write_file(path, data, size) != 0) abort();

    char err[512];
    unet_image img;
    int rc = unet_image_load(path, &img, err, sizeof err);
    if (rc != 0) {
        FZ_CHECK(rc < 0 && err[0] && !img.px, "failure %d without its message", rc);
        unlink(path);
        return 0;
    }
    check_image(&img);
    unet_image_free(&img);

    static uint8_t out[3 * SIZE * SIZE];
    int w = 0, h = 0;
    rc = unet_image_load_u8(path, SIZE, 3, out, &w, &h, err, sizeof err);
    FZ_CHECK(rc == 0, "unet_image_load_u8 fails on what unet_image_load read: %s", err);
    rc = unet_mask_load_u8(path, SIZE, out, &w, &h, err, sizeof err);
    FZ_CHECK(rc == 0, "unet_mask_load_u8 fails on what unet_image_load read: %s", err);
    for (size_t i = 0; i < SIZE * SIZE; i++) FZ_CHECK(out[i] <= 1, "mask byte %u", out[i]);
    unlink(path);
    return 0;
}
