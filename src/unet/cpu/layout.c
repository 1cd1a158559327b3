/* SPDX-License-Identifier: MIT */
/*
 * layout.c: conversion between PyTorch's NCHW and the blocked layout of
 * layout.h. Used at the model's edges only (a batch in, logits out), so it
 * is written for clarity, not speed.
 */
#include "layout.h"

#include <string.h>

void layout_pack(float *dst, shape s, const float *nchw)
{
    memset(dst, 0, shape_floats(s) * sizeof *dst);
    for (int b = 0; b < s.b; b++)
        for (int c = 0; c < s.c; c++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++)
                    dst[shape_at(s, c, b, y, x)] =
                        nchw[(((size_t)b * (size_t)s.c + (size_t)c) * (size_t)s.h + (size_t)y)
                                 * (size_t)s.w + (size_t)x];
}

void layout_unpack(float *nchw, shape s, const float *src)
{
    for (int b = 0; b < s.b; b++)
        for (int c = 0; c < s.c; c++)
            for (int y = 0; y < s.h; y++)
                for (int x = 0; x < s.w; x++)
                    nchw[(((size_t)b * (size_t)s.c + (size_t)c) * (size_t)s.h + (size_t)y)
                             * (size_t)s.w + (size_t)x] = src[shape_at(s, c, b, y, x)];
}

void layout_zero_border(float *t, shape s)
{
    size_t row = (size_t)(s.w + 2) * CB;
    size_t planes = (size_t)shape_blocks(s) * (size_t)s.b;
    for (size_t p = 0; p < planes; p++) {
        float *pl = t + p * shape_plane(s);
        memset(pl, 0, row * sizeof *pl);                                   /* top */
        memset(pl + (size_t)(s.h + 1) * row, 0, row * sizeof *pl);         /* bottom */
        for (int y = 1; y <= s.h; y++) {
            memset(pl + (size_t)y * row, 0, CB * sizeof *pl);              /* left */
            memset(pl + (size_t)y * row + (size_t)(s.w + 1) * CB, 0, CB * sizeof *pl);
        }
    }
}
