/* SPDX-License-Identifier: MIT */
/*
 * plot_file.c (Windows): the file checks of `memguard plot`: the log
 * refused unless it is a file on a disk (not a folder, console or pipe),
 * and the output name refused when it is a symbolic link or other reparse
 * point (never followed), a folder, a device, the log itself, or in a
 * folder that does not exist. Whether the folder is writable is left to
 * the write, which says so (Windows' ACLs have no cheap access() check).
 * Names are UTF-8: memguard.exe's manifest makes UTF-8 the process code
 * page, so the CRT and the *A functions take them as they are. It neither
 * reads nor writes the files (cmd_plot.c does).
 */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <string.h>
#include <windows.h>

static bool is_sep(char c)
{
    return c == '/' || c == '\\';
}

/* The folder part of path ("." when it has none; "C:\" for "C:\x"). */
static void folder_of(const char *path, char *dir, size_t len)
{
    const char *sep = NULL;
    for (const char *p = path; *p; p++)
        if (is_sep(*p)) sep = p;
    if (!sep) snprintf(dir, len, ".");
    else if (sep == path || (sep == path + 2 && path[1] == ':'))
        snprintf(dir, len, "%.*s", (int)(sep - path + 1), path);
    else snprintf(dir, len, "%.*s", (int)(sep - path), path);
}

static bool file_id(HANDLE h, plot_file_id *id)
{
    BY_HANDLE_FILE_INFORMATION fi;
    if (!GetFileInformationByHandle(h, &fi)) return false;
    id->dev = fi.dwVolumeSerialNumber;
    id->ino = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    return true;
}

/* The thing at an existing path: 0 when it may be replaced, else the exit
 * status after one line. */
static int check_existing(const char *flag, const char *path, DWORD attrs,
                          const plot_file_id *in)
{
    if (attrs & FILE_ATTRIBUTE_REPARSE_POINT)
        return cli_usage_error("%s '%s': a symbolic link (not followed; remove it or "
                               "name another file)", flag, path);
    if (attrs & FILE_ATTRIBUTE_DIRECTORY)
        return cli_usage_error("%s '%s': a folder, expected a file name", flag, path);
    HANDLE h = CreateFileA(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE) return 0; /* the write will say what is wrong */
    plot_file_id id;
    bool disk = GetFileType(h) == FILE_TYPE_DISK;
    bool same = disk && in && file_id(h, &id) && id.dev == in->dev && id.ino == in->ino;
    CloseHandle(h);
    if (!disk)
        return cli_usage_error("%s '%s': not a regular file (a device or pipe)", flag, path);
    if (same)
        return cli_usage_error("%s '%s': that is the log itself; name another file", flag,
                               path);
    return 0;
}

int plot_check_output(const char *flag, const char *path, const plot_file_id *in)
{
    char dir[MAX_PATH * 4];
    if (strcmp(path, "-") == 0) return 0;
    if (!*path || is_sep(path[strlen(path) - 1]))
        return cli_usage_error("%s '%s': expected a file name", flag, path);
    DWORD attrs = GetFileAttributesA(path);
    if (attrs != INVALID_FILE_ATTRIBUTES) {
        int rc = check_existing(flag, path, attrs, in);
        if (rc) return rc;
    } else if (GetLastError() != ERROR_FILE_NOT_FOUND) {
        DWORD e = GetLastError();
        if (e == ERROR_PATH_NOT_FOUND) {
            folder_of(path, dir, sizeof dir);
            return cli_usage_error("%s '%s': no such folder '%s'", flag, path, dir);
        }
        return cli_usage_error("%s '%s': cannot be looked at (Windows error %lu)", flag, path,
                               (unsigned long)e);
    }
    folder_of(path, dir, sizeof dir);
    DWORD da = GetFileAttributesA(dir);
    if (da == INVALID_FILE_ATTRIBUTES || !(da & FILE_ATTRIBUTE_DIRECTORY))
        return cli_usage_error("%s '%s': no such folder '%s'", flag, path, dir);
    return 0;
}

int plot_open_log(const char *path, plot_file_id *id, int *status)
{
    DWORD attrs = GetFileAttributesA(path);
    if (attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_DIRECTORY)) {
        *status = cli_usage_error("plot: LOG '%s': a folder, expected the file memguard run "
                                  "--log wrote", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_BINARY | O_NOINHERIT);
    if (fd < 0) {
        *status = cli_usage_error("plot: LOG '%s': %s", path, strerror(errno));
        return -1;
    }
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    if (h == INVALID_HANDLE_VALUE || GetFileType(h) != FILE_TYPE_DISK || !file_id(h, id)) {
        close(fd);
        *status = cli_usage_error("plot: LOG '%s': not a regular file (a device or pipe)", path);
        return -1;
    }
    return fd;
}

void plot_fd_blocking(int fd)
{
    (void)fd;
}
