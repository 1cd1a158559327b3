/* SPDX-License-Identifier: MIT */
/*
 * mg_images.h: writing real PNG and JPEG files with libpng and libjpeg for
 * the tests that decode them (test_data.c, unet_imgtool.c). Test code
 * only: no error text, -1 on any failure; the file may be left half
 * written then (the tests write into folders of their own).
 */
#ifndef MG_IMAGES_H
#define MG_IMAGES_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>
#include <png.h>

/* A PNG: rows are in libpng's packed format for (color, depth); pal/trns
 * may be NULL; interlace is PNG_INTERLACE_NONE or PNG_INTERLACE_ADAM7. */
static int mg_write_png(const char *path, int w, int h, int color, int depth,
                        const uint8_t *data, size_t rowbytes, const png_color *pal, int npal,
                        const uint8_t *trns, int ntrns, int interlace)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, npal);
    if (trns)
        png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    int passes = interlace == PNG_INTERLACE_ADAM7 ? png_set_interlace_handling(png) : 1;
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++)
            png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 0;
}

/* A JPEG of `comps` interleaved components in colour space cs (CMYK is
 * stored as CMYK). luma_h x luma_v is the first component's sampling
 * factor (1x1: no chroma subsampling, so colours survive quality 100;
 * 2x2: 4:2:0, libjpeg's default; 2x1: 4:2:2); the others are 1x1. */
static int mg_write_jpeg(const char *path, int w, int h, int comps, J_COLOR_SPACE cs,
                         const uint8_t *data, int quality, int luma_h, int luma_v,
                         bool progressive)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    if (cs == JCS_CMYK)
        jpeg_set_colorspace(&ci, JCS_CMYK);
    jpeg_set_quality(&ci, quality, TRUE);
    for (int i = 0; i < ci.num_components; i++)
        ci.comp_info[i].h_samp_factor = ci.comp_info[i].v_samp_factor = 1;
    ci.comp_info[0].h_samp_factor = luma_h;
    ci.comp_info[0].v_samp_factor = luma_v;
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)ci.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    return 0;
}

#endif /* MG_IMAGES_H */
