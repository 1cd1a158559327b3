/* SPDX-License-Identifier: MIT */
/*
 * metrics.c: see metrics.h. Opens metrics.csv without following a link,
 * finds where the rows a run continues from end, cuts there with one
 * ftruncate (the rows before it are never rewritten) and appends rows.
 */
#include "metrics.h"

#include "fileio.h"
#include "sys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The epoch a row starts with, or -1. */
static long row_epoch(const char *line)
{
    char *end;
    errno = 0;
    long e = strtol(line, &end, 10);
    return errno || end == line || *end != ',' || e < 1 ? -1 : e;
}

static FILE *open_file(const char *path, char *err, size_t len)
{
    int fd = unet_open_rw(path);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, len, "%s: %s", path,
                 fd < 0 && errno == ELOOP ? "is a symbolic link; move it away"
                 : fd < 0                 ? strerror(errno)
                                          : "is not a regular file; move it away");
        if (fd >= 0) close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r+b"); /* Windows: no \r added to the rows */
    if (!f) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* The offset after the last row to keep: rows 1, 2, ... in order, each
 * ending in a newline, none past `epoch`. *last gets the last kept epoch. */
static long keep_until(FILE *f, int64_t epoch, long *last)
{
    char line[1024];
    long keep = ftell(f);
    *last = 0;
    while (*last < epoch && unet_read_line(f, line, sizeof line) == 1 && !feof(f) &&
           row_epoch(line) == *last + 1) {
        keep = ftell(f);
        (*last)++;
    }
    return keep;
}

FILE *metrics_open(const char *out, int64_t epoch, const char *row, char *err, size_t len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    FILE *f = open_file(path, err, len);
    if (!f) return NULL;
    char line[1024];
    int r = unet_read_line(f, line, sizeof line);
    if (r == 0) {
        if (fputs(METRICS_HEADER "\n", f) < 0 || fflush(f) != 0) {
            snprintf(err, len, "%s: %s", path, strerror(errno));
            fclose(f);
            return NULL;
        }
    } else if (r != 1 || feof(f) || strcmp(line, METRICS_HEADER) != 0) {
        snprintf(err, len, "%s: its first line is not unet-train's header; move it away", path);
        fclose(f);
        return NULL;
    }
    long last;
    long keep = keep_until(f, epoch, &last);
    if (keep < 0 || ftruncate(fileno(f), keep) != 0 || fseek(f, 0, SEEK_END) != 0) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if (last == epoch - 1 && row && row_epoch(row) == epoch && metrics_append(f, row) != 0) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    return f;
}

int metrics_append(FILE *f, const char *row)
{
    if (fputs(row, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0) return -1;
    return 0;
}
