/* SPDX-License-Identifier: MIT */
/*
 * make_image_seeds.c: writes the seed images of fuzz_image into the folder
 * given as its argument: tiny PNGs of every colour type and bit depth the
 * loader handles (gray 1-16 bits, gray+alpha, RGB, RGBA, palette with and
 * without tRNS, one interlaced) and JPEGs (gray, YCbCr baseline,
 * progressive, and a CMYK one for the refusal). Run by
 * fuzz/tools/make_seeds.py; not part of any build.
 *
 * cc -std=c11 make_image_seeds.c -lpng -ljpeg && ./a.out fuzz/corpus/fuzz_image
 */
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

static const char *dir;

static FILE *create(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    return f;
}

/* A w x h PNG whose bytes follow a pattern (any bytes are valid samples;
 * palette images get a full palette so every index is in range). */
static void png(const char *name, int w, int h, int depth, int type, int interlace, int trns)
{
    FILE *f = create(name);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (!p || !info || setjmp(png_jmpbuf(p))) {
        fprintf(stderr, "%s: libpng failed\n", name);
        exit(1);
    }
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        int n = 1 << depth;
        for (int i = 0; i < n; i++)
            pal[i] = (png_color){(png_byte)(i * 37), (png_byte)(i * 91), (png_byte)(255 - i)};
        png_set_PLTE(p, info, pal, n);
        if (trns) {
            png_byte alpha[2] = {0, 128};
            png_set_tRNS(p, info, alpha, 2, NULL);
        }
    } else if (trns && (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_RGB)) {
        png_color_16 key = {0, 1, 1, 1, 1};
        png_set_tRNS(p, info, NULL, 0, &key);
    }
    png_write_info(p, info);
    png_size_t rowbytes = png_get_rowbytes(p, info);
    png_bytep row = malloc(rowbytes);
    int passes = png_set_interlace_handling(p);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            for (png_size_t x = 0; x < rowbytes; x++) row[x] = (png_byte)(x * 29 + (size_t)y * 71);
            png_write_row(p, row);
        }
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    free(row);
    fclose(f);
}

static void jpeg(const char *name, int w, int h, int comps, J_COLOR_SPACE cs, int progressive)
{
    FILE *f = create(name);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 50, TRUE);
    c.optimize_coding = TRUE;
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    JSAMPLE *row = malloc((size_t)w * (size_t)comps);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * comps; x++)
            row[x] = (JSAMPLE)(x * 13 + (int)c.next_scanline * 40);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    png("gray1.png", 7, 3, 1, PNG_COLOR_TYPE_GRAY, 0, 0);
    png("gray2.png", 5, 3, 2, PNG_COLOR_TYPE_GRAY, 0, 0);
    png("gray4.png", 5, 3, 4, PNG_COLOR_TYPE_GRAY, 0, 0);
    png("gray8-trns.png", 5, 3, 8, PNG_COLOR_TYPE_GRAY, 0, 1);
    png("gray16.png", 4, 3, 16, PNG_COLOR_TYPE_GRAY, 0, 0);
    png("graya8.png", 4, 3, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, 0);
    png("graya16.png", 3, 2, 16, PNG_COLOR_TYPE_GRAY_ALPHA, 0, 0);
    png("rgb8.png", 4, 3, 8, PNG_COLOR_TYPE_RGB, 0, 0);
    png("rgb16-trns.png", 3, 2, 16, PNG_COLOR_TYPE_RGB, 0, 1);
    png("rgba8-interlaced.png", 9, 9, 8, PNG_COLOR_TYPE_RGB_ALPHA, 1, 0);
    png("rgba16.png", 3, 2, 16, PNG_COLOR_TYPE_RGB_ALPHA, 0, 0);
    png("palette1.png", 6, 2, 1, PNG_COLOR_TYPE_PALETTE, 0, 0);
    png("palette4-trns.png", 5, 3, 4, PNG_COLOR_TYPE_PALETTE, 0, 1);
    png("palette8.png", 4, 4, 8, PNG_COLOR_TYPE_PALETTE, 0, 0);
    jpeg("gray.jpg", 8, 8, 1, JCS_GRAYSCALE, 0);
    jpeg("rgb.jpg", 16, 8, 3, JCS_RGB, 0);
    jpeg("rgb-progressive.jpg", 16, 16, 3, JCS_RGB, 1);
    jpeg("cmyk.jpg", 8, 8, 4, JCS_CMYK, 0);
    return 0;
}
