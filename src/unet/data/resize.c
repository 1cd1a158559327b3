/* SPDX-License-Identifier: MIT */
/*
 * resize.c: the two resizes of the data pipeline (image.h), written to
 * give PyTorch's results: bilinear as interpolate(mode="bilinear",
 * align_corners=False, antialias=False) on HWC floats, and nearest as
 * interpolate(mode="nearest") on one-byte planes (masks), each with
 * torch's float arithmetic where it differs from the exact one.
 *
 * Not here: decoding, channel conversion and quantisation (image.c).
 */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* torch's area_pixel_compute_source_index for align_corners=False, for
 * output index d: the scale is a float (in / out), the source coordinate is
 * computed in double (dst + 0.5 is a double in C++) and stored as float,
 * clamped at 0; the second tap is clamped at the edge. */
struct lin_tap {
    int i0, i1;
    float w0, w1;
};

static struct lin_tap lin_at(int in, int out, int d)
{
    float scale = (float)in / (float)out;
    float src = (float)((double)scale * ((double)d + 0.5) - 0.5);
    if (src < 0.0f)
        src = 0.0f;
    struct lin_tap t;
    t.i0 = (int)src;
    if (t.i0 > in - 1)
        t.i0 = in - 1;
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    t.w1 = fminf(src - (float)t.i0, 1.0f);
    t.w0 = 1.0f - t.w1;
    return t;
}

void unet_resize_bilinear(const float *src, int sw, int sh, int c, float *dst, int dw, int dh)
{
    if (sw == dw && sh == dh) {
        memcpy(dst, src, sizeof(float) * (size_t)sw * (size_t)sh * (size_t)c);
        return;
    }
    /* The column taps are the same for every row: a table of dw entries
     * (16 bytes each). Without memory for it, compute them per pixel. */
    struct lin_tap *xt = malloc(sizeof *xt * (size_t)dw);
    if (xt)
        for (int x = 0; x < dw; x++)
            xt[x] = lin_at(sw, dw, x);
    size_t cc = (size_t)c;
    for (int y = 0; y < dh; y++) {
        struct lin_tap ty = lin_at(sh, dh, y);
        const float *r0 = src + (size_t)ty.i0 * (size_t)sw * cc;
        const float *r1 = src + (size_t)ty.i1 * (size_t)sw * cc;
        float *o = dst + (size_t)y * (size_t)dw * cc;
        for (int x = 0; x < dw; x++) {
            struct lin_tap tx = xt ? xt[x] : lin_at(sw, dw, x);
            size_t a = (size_t)tx.i0 * cc, b = (size_t)tx.i1 * cc;
            /* torch's order: interpolate along x in both rows, then y */
            for (size_t k = 0; k < cc; k++) {
                float t0 = r0[a + k] * tx.w0 + r0[b + k] * tx.w1;
                float t1 = r1[a + k] * tx.w0 + r1[b + k] * tx.w1;
                o[(size_t)x * cc + k] = t0 * ty.w0 + t1 * ty.w1;
            }
        }
    }
    free(xt);
}

/* The source index torch's "nearest" picks for output index dst. */
static int nearest_index(int dst, int in_size, int out_size)
{
    /* torch's nearest_idx: identity and exact 2x upsampling are special
     * cased; otherwise floorf(dst * scale) with a float scale. */
    if (out_size == in_size)
        return dst;
    if (out_size == 2 * in_size)
        return dst >> 1;
    float scale = (float)in_size / (float)out_size;
    int s = (int)floorf((float)dst * scale);
    return s < in_size - 1 ? s : in_size - 1;
}

void unet_resize_nearest_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    for (int y = 0; y < dh; y++) {
        const uint8_t *r = src + (size_t)nearest_index(y, sh, dh) * (size_t)sw;
        uint8_t *o = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++)
            o[x] = r[nearest_index(x, sw, dw)];
    }
}
