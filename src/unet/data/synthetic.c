/* SPDX-License-Identifier: MIT */
/*
 * synthetic.c: the built-in synthetic data set (data.h,
 * unet_data_synthetic): 1 to 3 bright textured shapes over a darker
 * textured background, the mask their union, each sample a pure function
 * of (seed, index, size, channels), drawn on OpenMP threads. Tests and
 * demos need no files.
 *
 * Not here: files (dataset.c), the split and the loader (split.c,
 * loader.c); no global state: the randomness is a unet_rng seeded per
 * sample.
 */
#include "data.h"
#include "data_internal.h"
#include "errf.h"
#include "memguard.h"

#include <math.h>
#include <string.h>

struct synth_shape {
    int kind; /* 0 disc, 1 rectangle, 2 triangle */
    float cx, cy, r, hw, hh;
    float vx[3], vy[3];
};

static int inside(const struct synth_shape *s, float x, float y)
{
    switch (s->kind) {
    case 0:
        return (x - s->cx) * (x - s->cx) + (y - s->cy) * (y - s->cy) <= s->r * s->r;
    case 1:
        return fabsf(x - s->cx) <= s->hw && fabsf(y - s->cy) <= s->hh;
    default: {
        /* Same sign of all three edge functions (either winding). */
        float d[3];
        for (int k = 0; k < 3; k++) {
            int m = (k + 1) % 3;
            d[k] = (s->vx[m] - s->vx[k]) * (y - s->vy[k]) - (s->vy[m] - s->vy[k]) * (x - s->vx[k]);
        }
        int neg = d[0] < 0 || d[1] < 0 || d[2] < 0;
        int pos = d[0] > 0 || d[1] > 0 || d[2] > 0;
        return !(neg && pos);
    }
    }
}

static float uni(unet_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * unet_rng_uniformf(r);
}

/* One sample, a pure function of (seed, i, size, channels). The design
 * goal is a task a small UNet learns in minutes: shapes are brighter than
 * the background on average (levels 0.6-0.85 against 0.1-0.3) but both are
 * textured, so a per-pixel threshold is not enough and edges matter. */
static void synth_one(uint8_t *img, uint8_t *mask, int size, int channels, uint64_t seed,
                      int i)
{
    unet_rng r;
    unet_rng_seed(&r, seed ^ (0xd1b54a32d192ed03ULL * ((uint64_t)i + 1)));
    const float S = (float)size;
    const float two_pi = 6.2831853f;
    size_t plane = (size_t)size * (size_t)size;

    float bg[3], fg[3];
    float bl = uni(&r, 0.1f, 0.3f);
    float fl = uni(&r, 0.6f, 0.85f);
    for (int c = 0; c < 3; c++) {
        bg[c] = bl + uni(&r, -0.05f, 0.05f);
        fg[c] = fl + uni(&r, -0.08f, 0.08f);
    }
    /* Background texture: three plane waves of random direction. */
    float wfx[3], wfy[3], wph[3], wam[3];
    for (int k = 0; k < 3; k++) {
        float ang = uni(&r, 0.0f, two_pi);
        float freq = uni(&r, 1.0f, 6.0f) * two_pi / S;
        wfx[k] = freq * cosf(ang);
        wfy[k] = freq * sinf(ang);
        wph[k] = uni(&r, 0.0f, two_pi);
        wam[k] = uni(&r, 0.02f, 0.05f);
    }
    /* Shape texture: one finer wave. */
    float sang = uni(&r, 0.0f, two_pi), sfreq = uni(&r, 8.0f, 16.0f) * two_pi / S;
    float sfx = sfreq * cosf(sang), sfy = sfreq * sinf(sang);

    struct synth_shape sh[3];
    int ns = 1 + (int)unet_rng_below(&r, 3);
    for (int k = 0; k < ns; k++) {
        struct synth_shape *s = &sh[k];
        s->kind = (int)unet_rng_below(&r, 3);
        s->cx = uni(&r, 0.15f, 0.85f) * S;
        s->cy = uni(&r, 0.15f, 0.85f) * S;
        s->r = uni(&r, 0.1f, 0.25f) * S;
        s->hw = s->r * uni(&r, 0.5f, 1.0f);
        s->hh = s->r * uni(&r, 0.5f, 1.0f);
        float a0 = uni(&r, 0.0f, two_pi);
        for (int v = 0; v < 3; v++) {
            float a = a0 + two_pi * (float)v / 3.0f + uni(&r, -0.4f, 0.4f);
            float rr = s->r * uni(&r, 0.8f, 1.2f);
            s->vx[v] = s->cx + rr * cosf(a);
            s->vy[v] = s->cy + rr * sinf(a);
        }
    }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f, py = (float)y + 0.5f;
            int in = 0;
            for (int k = 0; k < ns && !in; k++)
                in = inside(&sh[k], px, py);
            size_t o = (size_t)y * (size_t)size + (size_t)x;
            mask[o] = (uint8_t)in;
            float tex = 0.0f;
            if (in) {
                tex = 0.05f * sinf(sfx * px + sfy * py);
            } else {
                for (int k = 0; k < 3; k++)
                    tex += wam[k] * sinf(wfx[k] * px + wfy[k] * py + wph[k]);
            }
            float v[3];
            for (int c = 0; c < 3; c++)
                v[c] = (in ? fg[c] : bg[c]) + tex + uni(&r, -0.06f, 0.06f);
            if (channels == 1)
                v[0] = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
            for (int c = 0; c < channels; c++) {
                float q = v[c] < 0.0f ? 0.0f : v[c] > 1.0f ? 1.0f : v[c];
                img[(size_t)c * plane + o] = (uint8_t)(q * 255.0f + 0.5f);
            }
        }
}

int unet_data_synthetic(unet_data *d, int n, int size, int channels, uint64_t seed,
                        char *err, size_t errlen)
{
    if (!d) {
        unet_errf(err, errlen, "invalid argument");
        return MG_EINVAL;
    }
    memset(d, 0, sizeof *d);
    if (n <= 0 || n > DATA__MAX_SAMPLES) {
        unet_errf(err, errlen, "synthetic sample count %d is out of range [1, %d]", n,
                  DATA__MAX_SAMPLES);
        return MG_EINVAL;
    }
    int rc = data__check_shape(size, channels, 8, err, errlen);
    if (rc)
        return rc;
    rc = data__alloc_pixels(d, n, size, channels, err, errlen);
    if (rc)
        return rc;
    size_t plane = (size_t)size * (size_t)size;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++)
        synth_one(d->img + (size_t)i * plane * (size_t)channels, d->mask + (size_t)i * plane,
                  size, channels, seed, i);
    return 0;
}
