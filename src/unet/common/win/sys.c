/* SPDX-License-Identifier: MIT */
/*
 * win/sys.c: sys.h on Windows (mingw-w64). Paths are UTF-8 and reach the
 * *A calls as they are: unet-train.exe runs with the UTF-8 code page
 * (src/compat/utf8.manifest; Windows 10 1903 and later).
 *
 * How each POSIX behaviour is kept:
 * - no following a link: CreateFileA with FILE_FLAG_OPEN_REPARSE_POINT
 *   opens the link itself, which is then refused (ELOOP) or compared;
 * - the run lock: LockFileEx on one byte far past any content, so readers
 *   of the file (the pid it holds) are not blocked by Windows' mandatory
 *   byte-range locks; the system drops it with the handle or the process;
 * - files opened with FILE_SHARE_DELETE, so a held .lock can be removed
 *   when its run ends, as on POSIX;
 * - file identity: the volume serial number and the file index of
 *   GetFileInformationByHandle (stat's st_ino is always 0 on Windows);
 * - "is that pid gone": OpenProcess fails with ERROR_INVALID_PARAMETER for
 *   an id no process has; a process that exited but whose handle someone
 *   still holds is gone too;
 * - binary mode and no inheritance on every descriptor.
 * Windows errors become the nearest errno value (errno_of).
 *
 * Not here: anything with policy or a message (the callers have them).
 */
#include "sys.h"

#include <direct.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <malloc.h>
#include <process.h>
#include <stdio.h>
#include <string.h>

#include <windows.h>

/* The byte unet_try_lock locks: past any file unet-train writes. */
#define LOCK_OFFSET_HIGH 0x7fffffffu

static int errno_of(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: case ERROR_INVALID_NAME:
    case ERROR_BAD_NETPATH: case ERROR_INVALID_DRIVE: return ENOENT;
    case ERROR_ACCESS_DENIED: case ERROR_SHARING_VIOLATION: return EACCES;
    case ERROR_LOCK_VIOLATION: case ERROR_IO_PENDING: return EWOULDBLOCK;
    case ERROR_WRITE_PROTECT: return EROFS;
    case ERROR_ALREADY_EXISTS: case ERROR_FILE_EXISTS: return EEXIST;
    case ERROR_DISK_FULL: case ERROR_HANDLE_DISK_FULL: return ENOSPC;
    case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: return ENOMEM;
    case ERROR_FILENAME_EXCED_RANGE: return ENAMETOOLONG;
    case ERROR_DIRECTORY: return ENOTDIR;
    default: return EIO;
    }
}

/* -1 with errno from GetLastError(). */
static int fail_last(void)
{
    errno = errno_of(GetLastError());
    return -1;
}

static HANDLE handle_of(int fd)
{
    return (HANDLE)_get_osfhandle(fd);
}

int unet_mkdir(const char *path)
{
    return _mkdir(path);
}

int unet_open_read(const char *path)
{
    DWORD a = GetFileAttributesA(path);
    if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY)) {
        errno = EISDIR; /* _open says EACCES for a folder */
        return -1;
    }
    return _open(path, _O_RDONLY | _O_BINARY | _O_NOINHERIT);
}

int unet_fd_blocking(int fd)
{
    (void)fd; /* opening never waits on Windows: nothing to undo */
    return 0;
}

int unet_open_rw(const char *path)
{
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT,
                           NULL);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        DWORD a = GetFileAttributesA(path);
        errno = a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) ? EISDIR
                                                                               : errno_of(e);
        return -1;
    }
    BY_HANDLE_FILE_INFORMATION fi;
    if (!GetFileInformationByHandle(h, &fi) ||
        (fi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)) {
        CloseHandle(h);
        errno = ELOOP;
        return -1;
    }
    int fd = _open_osfhandle((intptr_t)h, _O_RDWR | _O_BINARY);
    if (fd < 0) CloseHandle(h);
    return fd;
}

int unet_create_new(const char *path)
{
    return _open(path, _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY | _O_NOINHERIT,
                 _S_IREAD | _S_IWRITE);
}

int unet_try_lock(int fd)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.OffsetHigh = LOCK_OFFSET_HIGH;
    if (LockFileEx(handle_of(fd), LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0,
                   &ov))
        return 0;
    return fail_last();
}

long unet_pread(int fd, void *buf, size_t n, uint64_t off)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)off;
    ov.OffsetHigh = (DWORD)(off >> 32);
    DWORD got = 0;
    DWORD want = n > 0x40000000u ? 0x40000000u : (DWORD)n;
    if (ReadFile(handle_of(fd), buf, want, &got, &ov)) return (long)got;
    return GetLastError() == ERROR_HANDLE_EOF ? 0 : fail_last();
}

int unet_rewrite(int fd, const void *buf, size_t n)
{
    HANDLE h = handle_of(fd);
    LARGE_INTEGER zero = {.QuadPart = 0};
    if (!SetFilePointerEx(h, zero, NULL, FILE_BEGIN) || !SetEndOfFile(h)) return fail_last();
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    DWORD put = 0;
    if (n > 0x40000000u) {
        errno = EFBIG;
        return -1;
    }
    if (!WriteFile(h, buf, (DWORD)n, &put, &ov)) return fail_last();
    if (put != n) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

static int id_of_handle(HANDLE h, unet_file_id *id)
{
    BY_HANDLE_FILE_INFORMATION fi;
    if (!GetFileInformationByHandle(h, &fi)) return fail_last();
    id->dev = fi.dwVolumeSerialNumber;
    id->ino = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    return 0;
}

int unet_file_id_of(const char *path, bool follow, unet_file_id *id)
{
    /* No access asked (attributes only); BACKUP_SEMANTICS opens folders. */
    HANDLE h = CreateFileA(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING,
                           FILE_FLAG_BACKUP_SEMANTICS | (follow ? 0 : FILE_FLAG_OPEN_REPARSE_POINT),
                           NULL);
    if (h == INVALID_HANDLE_VALUE) return fail_last();
    int rc = id_of_handle(h, id);
    CloseHandle(h);
    return rc;
}

int unet_file_id_fd(int fd, unet_file_id *id)
{
    return id_of_handle(handle_of(fd), id);
}

bool unet_file_id_eq(const unet_file_id *a, const unet_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

unet_entry unet_entry_kind(const char *path)
{
    DWORD a = GetFileAttributesA(path);
    if (a == INVALID_FILE_ATTRIBUTES) return UNET_ENTRY_NONE;
    if (a & FILE_ATTRIBUTE_REPARSE_POINT) return UNET_ENTRY_LINK;
    if (a & FILE_ATTRIBUTE_DIRECTORY) return UNET_ENTRY_DIR;
    if (a & FILE_ATTRIBUTE_DEVICE) return UNET_ENTRY_OTHER;
    return UNET_ENTRY_FILE;
}

int unet_remove_file_at(const char *dir, const char *name)
{
    char path[MAX_PATH * 4];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* DeleteFileA removes a link itself, never its target. */
    if (unet_entry_kind(path) != UNET_ENTRY_FILE) return -1;
    return DeleteFileA(path) ? 0 : fail_last();
}

long unet_pid(void)
{
    return (long)GetCurrentProcessId();
}

bool unet_pid_gone(long pid)
{
    HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h) return GetLastError() == ERROR_INVALID_PARAMETER;
    bool exited = WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
    CloseHandle(h);
    return exited;
}

int unet_disk_free(const char *path, uint64_t *bytes)
{
    ULARGE_INTEGER avail;
    if (!GetDiskFreeSpaceExA(path, &avail, NULL, NULL)) return fail_last();
    *bytes = avail.QuadPart;
    return 0;
}

const char *unet_strerror(int e, char *buf, size_t len)
{
    if (strerror_s(buf, len, e) != 0) snprintf(buf, len, "errno %d", e);
    return buf;
}

void *unet_aligned_alloc(size_t align, size_t n)
{
    return _aligned_malloc(n ? n : 1, align);
}

void unet_aligned_free(void *p)
{
    _aligned_free(p);
}
