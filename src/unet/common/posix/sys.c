/* SPDX-License-Identifier: MIT */
/*
 * posix/sys.c: sys.h on POSIX systems (the build picks it on every system
 * but Windows). Each function is the system call the callers made before
 * sys.h existed: open with O_NONBLOCK / O_NOFOLLOW / O_CLOEXEC / O_EXCL,
 * flock, pread, ftruncate + pwrite, stat's st_dev/st_ino, fstatat +
 * unlinkat on the folder, kill(pid, 0), statvfs, strerror_r,
 * posix_memalign. No policy and no messages.
 */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

int unet_mkdir(const char *path)
{
    return mkdir(path, 0755);
}

int unet_open_read(const char *path)
{
    return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

int unet_fd_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ? -1 : 0;
}

int unet_open_rw(const char *path)
{
    return open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
}

int unet_create_new(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
}

int unet_try_lock(int fd)
{
    return flock(fd, LOCK_EX | LOCK_NB);
}

long unet_pread(int fd, void *buf, size_t n, uint64_t off)
{
    return (long)pread(fd, buf, n, (off_t)off);
}

int unet_rewrite(int fd, const void *buf, size_t n)
{
    if (ftruncate(fd, 0) != 0) return -1;
    ssize_t w = pwrite(fd, buf, n, 0);
    if (w >= 0 && (size_t)w != n) errno = ENOSPC;
    return w >= 0 && (size_t)w == n ? 0 : -1;
}

static void id_of_stat(const struct stat *sb, unet_file_id *id)
{
    id->dev = (uint64_t)sb->st_dev;
    id->ino = (uint64_t)sb->st_ino;
}

int unet_file_id_of(const char *path, bool follow, unet_file_id *id)
{
    struct stat sb;
    if ((follow ? stat(path, &sb) : lstat(path, &sb)) != 0) return -1;
    id_of_stat(&sb, id);
    return 0;
}

int unet_file_id_fd(int fd, unet_file_id *id)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return -1;
    id_of_stat(&sb, id);
    return 0;
}

bool unet_file_id_eq(const unet_file_id *a, const unet_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

unet_entry unet_entry_kind(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return UNET_ENTRY_NONE;
    if (S_ISREG(sb.st_mode)) return UNET_ENTRY_FILE;
    if (S_ISDIR(sb.st_mode)) return UNET_ENTRY_DIR;
    if (S_ISLNK(sb.st_mode)) return UNET_ENTRY_LINK;
    return UNET_ENTRY_OTHER;
}

int unet_remove_file_at(const char *dir, const char *name)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    struct stat sb;
    int rc = fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode)
                 ? unlinkat(dfd, name, 0)
                 : -1;
    close(dfd);
    return rc;
}

long unet_pid(void)
{
    return (long)getpid();
}

bool unet_pid_gone(long pid)
{
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int unet_disk_free(const char *path, uint64_t *bytes)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0) return -1;
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}

const char *unet_strerror(int e, char *buf, size_t len)
{
    if (strerror_r(e, buf, len) != 0) snprintf(buf, len, "errno %d", e);
    return buf;
}

void *unet_aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    return posix_memalign(&p, align, n ? n : 1) == 0 ? p : NULL;
}

void unet_aligned_free(void *p)
{
    free(p);
}
