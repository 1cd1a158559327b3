/* SPDX-License-Identifier: MIT */
/*
 * trace.c: see trace.h. One line per training batch, written with one
 * write(2) from a buffer on the stack; the lines of a batch too large for
 * it end in " ..." (the tests use small ones).
 */
#include "trace.h"
#include "sys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACE_ENV "UNET_TRAIN_TRACE"

int trace_open(trace *t, char *err, size_t len)
{
    t->fd = -1;
    const char *path = getenv(TRACE_ENV);
    if (!path || !*path) return 0;
    t->fd = unet_open_rw(path); /* no link followed, no FIFO waited on */
    if (t->fd >= 0 && lseek(t->fd, 0, SEEK_END) >= 0) return 0; /* one writer: appends */
    int e = errno;
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    snprintf(err, len, "%s=%s: %s", TRACE_ENV, path, strerror(e));
    return -1;
}

void trace_batch(const trace *t, const unet_loader *l, int count)
{
    if (t->fd < 0) return;
    char line[4096];
    int first = l->pos - count;
    size_t u = (size_t)snprintf(line, sizeof line, "%llu %d %d", (unsigned long long)l->epoch,
                                first, count);
    for (int k = 0; k < count && u < sizeof line - 32; k++)
        u += (size_t)snprintf(line + u, sizeof line - u, " %d", l->order[first + k]);
    if (u >= sizeof line - 32) u += (size_t)snprintf(line + u, sizeof line - u, " ...");
    line[u++] = '\n';
    /* u < sizeof line: the count fits Windows' unsigned as well */
    ssize_t w = write(t->fd, line, (unsigned)u);
    (void)w; /* a test hook: a short write shows as a broken trace */
}

void trace_close(trace *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
}
