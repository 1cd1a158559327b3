/* SPDX-License-Identifier: MIT */
/*
 * files.c: the clock and the file readers of a POSIX system, which the
 * Linux probes build on: CLOCK_MONOTONIC, and whole-file reads through
 * descriptors kept open.
 *
 * Reading a /proc file through a descriptor kept open and pread from offset
 * 0 regenerates its content: 2-11 us here against 9-21 us for
 * open+read+close (research/probes.md 3.6), which is why probes keep their
 * descriptors. Only mg__read_file_grow allocates (the buffer it is given).
 */
#include "internal.h"
#include "posix/posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t mg__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mg__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int err_from_errno(int e)
{
    switch (e) {
    case ENOENT: case ENOTDIR: return MG_ENOENT;
    case EACCES: case EPERM: return MG_EPERM;
    case ESRCH: return MG_ESRCH;
    case ENOMEM: return MG_ENOMEM;
    default: return MG_EIO;
    }
}

/* Reads a whole file through a descriptor: pread from offset 0 until EOF
 * (a /proc file can come back in several page-sized pieces) into buf,
 * NUL-terminated. Returns the length or mg__pread_single's errors. */
static ssize_t pread_all(int fd, char *buf, size_t buf_len)
{
    size_t off = 0;
    if (buf_len == 0) return MG_ENOBUFS;
    /* A single read of a large /proc file returns one page (4092 of 6000
     * bytes for a children list, measured), so read until EOF. */
    for (;;) {
        if (off + 1 >= buf_len) return MG_ENOBUFS;
        ssize_t n = pread(fd, buf + off, buf_len - 1 - off, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return err_from_errno(errno);
        }
        if (n == 0) break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    return (ssize_t)off;
}

ssize_t mg__pread_single(int fd, char *buf, size_t buf_len)
{
    if (buf_len < 2) return MG_ENOBUFS;
    for (;;) {
        ssize_t n = pread(fd, buf, buf_len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return err_from_errno(errno);
        /* A full buffer may mean more is left: let the caller know rather
         * than parse a cut file. */
        if ((size_t)n >= buf_len - 1) return MG_ENOBUFS;
        buf[n] = '\0';
        return n;
    }
}

ssize_t mg__read_file(const char *path, char *buf, size_t buf_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_from_errno(errno);
    ssize_t n = pread_all(fd, buf, buf_len);
    close(fd);
    return n;
}

ssize_t mg__read_file_grow(const char *path, char **buf, size_t *buf_len)
{
    for (;;) {
        ssize_t n = mg__read_file(path, *buf, *buf_len);
        if (n != MG_ENOBUFS || *buf_len >= (16u << 20)) return n;
        char *nb = realloc(*buf, *buf_len * 2);
        if (!nb) return MG_ENOMEM;
        *buf = nb;
        *buf_len *= 2;
    }
}
