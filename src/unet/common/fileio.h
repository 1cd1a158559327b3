/* SPDX-License-Identifier: MIT */
/*
 * fileio.h: opening the files unet-train reads (checkpoints, images, the
 * --config file) so that a path naming a FIFO, a folder or a device
 * neither hangs the program nor is read as if it were empty, and reading
 * text lines with a length limit.
 *
 * Not here: writing (pth/zip_write.c and image.c go through mg_atomic_*,
 * so a final name never holds a torn file) and folder listings (folder.c).
 */
#ifndef UNET_FILEIO_H
#define UNET_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* Opens path for reading without blocking (a FIFO with no writer would
 * block a plain open forever), requires a regular file (symbolic links
 * are followed: the user named the path), then clears O_NONBLOCK. Returns
 * the descriptor, or a negative MG_E* code with one line in err:
 *   "PATH: cannot open: No such file or directory"          MG_ENOENT
 *   "PATH: cannot open: Permission denied"                  MG_EPERM
 *   "PATH: is a folder, expected a regular file"            MG_EINVAL
 *   "PATH: is a FIFO, expected a regular file"              MG_EINVAL
 * (also "a character device", "a block device", "a socket"). */
int unet_open_regular(const char *path, char *err, size_t errlen);

/* The same as a read-only stdio stream; NULL on failure, *rc (may be
 * NULL) gets the code. */
FILE *unet_fopen_regular(const char *path, int *rc, char *err, size_t errlen);

/* Reads one line of f into buf (cap bytes: at most cap - 1 characters,
 * the newline and a '\r' before it removed). Returns 1 for a line, 0 at
 * the end of the file, UNET_LINE_LONG when the line has cap or more
 * characters (the rest of it is skipped) and UNET_LINE_NUL when it holds
 * a NUL byte (either is an error for a text file). */
enum { UNET_LINE_LONG = -1, UNET_LINE_NUL = -2 };
int unet_read_line(FILE *f, char *buf, size_t cap);

#endif /* UNET_FILEIO_H */
