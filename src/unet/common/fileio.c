/* SPDX-License-Identifier: MIT */
/*
 * fileio.c: see fileio.h. A non-blocking open, an fstat that insists on a
 * regular file, and a line reader that refuses what fgets would split or
 * cut short silently. It neither writes nor deletes anything.
 */
#include "fileio.h"

#include "memguard.h"
#include "sys.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a folder";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

static int code_of(int e)
{
    switch (e) {
    case ENOENT: case ENOTDIR: return MG_ENOENT;
    case EACCES: case EPERM: return MG_EPERM;
    case EISDIR: return MG_EINVAL;
    default: return MG_EIO;
    }
}

/* "PATH: is a FIFO, expected a regular file"; closes fd (if >= 0). */
static int not_regular(const char *path, int fd, mode_t m, char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "%s: is %s, expected a regular file", path, kind_of(m));
    if (fd >= 0) close(fd);
    return MG_EINVAL;
}

int unet_open_regular(const char *path, char *err, size_t errlen)
{
    int fd = unet_open_read(path);
    if (fd < 0 && errno == EISDIR) /* Windows cannot open a folder as a file */
        return not_regular(path, -1, S_IFDIR, err, errlen);
    if (fd < 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return code_of(e);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(e));
        close(fd);
        return code_of(e);
    }
    if (!S_ISREG(sb.st_mode)) return not_regular(path, fd, sb.st_mode, err, errlen);
    if (unet_fd_blocking(fd) != 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(e));
        close(fd);
        return MG_EIO;
    }
    return fd;
}

FILE *unet_fopen_regular(const char *path, int *rc, char *err, size_t errlen)
{
    int fd = unet_open_regular(path, err, errlen);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (fd >= 0 && !f) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        fd = MG_ENOMEM;
    }
    if (rc) *rc = f ? 0 : fd;
    return f;
}

int unet_read_line(FILE *f, char *buf, size_t cap)
{
    size_t n = 0;
    int c, rc = 1;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0' && rc == 1) rc = UNET_LINE_NUL;
        if (n + 1 < cap) buf[n++] = (char)c;
        else if (rc == 1) rc = UNET_LINE_LONG;
    }
    buf[n] = '\0';
    if (c == EOF && n == 0 && rc == 1) return 0;
    if (n > 0 && buf[n - 1] == '\r') buf[--n] = '\0';
    return rc;
}
