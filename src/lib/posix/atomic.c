/* SPDX-License-Identifier: MIT */
/*
 * atomic.c: files that are never torn: temporary file, fsync, rename,
 * fsync of the folder (the redis rdbSave recipe). It allocates nothing, so
 * an emergency checkpoint can be written with it when memory is short. It
 * does not decide names or clean up temporaries left by a crash (the
 * trainer does that at start-up).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int from_errno(int e)
{
    switch (e) {
    case ENOENT: case ENOTDIR: return MG_ENOENT;
    case EACCES: case EPERM: case EROFS: return MG_EPERM;
    case ENOSPC: case EDQUOT: return MG_ENOSPC;
    case ENAMETOOLONG: return MG_EINVAL;
    default: return MG_EIO;
    }
}

/* fsync of the folder that holds `path`, so the rename itself survives a
 * power cut. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" lives in "/" */
        if (n >= sizeof dir) return MG_EINVAL;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return from_errno(errno);
    int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : from_errno(errno);
    close(fd);
    return rc;
}

int mg_atomic_open(mg_atomic *a, const char *path)
{
    if (!a) return MG_EINVAL;
    a->os.fd = -1;
    a->tmp[0] = '\0';
    if (!path || !*path || mg__path(a->path, sizeof a->path, "%s", path) < 0 ||
        mg__path(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        return MG_EINVAL;
    /* A temporary of ours from an earlier failed attempt is stale. */
    unlink(a->tmp);
    a->os.fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return a->os.fd < 0 ? from_errno(errno) : 0;
}

int mg_atomic_write(mg_atomic *a, const void *buf, size_t len)
{
    if (!a || a->os.fd < 0 || (!buf && len)) return MG_EINVAL;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(a->os.fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return from_errno(errno);
        }
        if (n == 0) return MG_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mg_atomic_commit(mg_atomic *a)
{
    if (!a || a->os.fd < 0) return MG_EINVAL;
    int rc = 0;
    if (fsync(a->os.fd) != 0) rc = from_errno(errno);
    if (close(a->os.fd) != 0 && rc == 0) rc = from_errno(errno);
    a->os.fd = -1;
    if (rc == 0 && rename(a->tmp, a->path) != 0) rc = from_errno(errno);
    if (rc < 0) unlink(a->tmp);
    a->tmp[0] = '\0';
    return rc < 0 ? rc : sync_dir(a->path);
}

/* A zero-initialised object (fd 0, no temporary name) was never opened:
 * the temporary's name is what proves the descriptor is ours. */
void mg_atomic_abort(mg_atomic *a)
{
    if (!a || a->os.fd < 0 || a->tmp[0] == '\0') return;
    close(a->os.fd);
    a->os.fd = -1;
    unlink(a->tmp);
    a->tmp[0] = '\0';
}
