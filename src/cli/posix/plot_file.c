/* SPDX-License-Identifier: MIT */
/*
 * plot_file.c (POSIX): the file checks of `memguard plot` and `memguard
 * run --plot`: the log opened without blocking on a FIFO and refused
 * unless it is a regular file, and the output name refused when it is a
 * symlink (never followed), a folder, something else than a regular file,
 * the log itself, or in a folder that is missing or not writable. It
 * neither reads nor writes the files (cmd_plot.c does).
 */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder part of path ("." when it has none). */
static void folder_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == path) snprintf(dir, len, "/");
    else snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int plot_check_output(const char *flag, const char *path, const plot_file_id *in)
{
    struct stat st;
    char dir[PATH_MAX];
    if (strcmp(path, "-") == 0) return 0;
    if (!*path || path[strlen(path) - 1] == '/')
        return cli_usage_error("%s '%s': expected a file name", flag, path);
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return cli_usage_error("%s '%s': a symbolic link (not followed; remove it or "
                                   "name another file)", flag, path);
        if (S_ISDIR(st.st_mode))
            return cli_usage_error("%s '%s': a folder, expected a file name", flag, path);
        if (!S_ISREG(st.st_mode))
            return cli_usage_error("%s '%s': not a regular file (a FIFO, device or socket)",
                                   flag, path);
        if (in && (uint64_t)st.st_dev == in->dev && (uint64_t)st.st_ino == in->ino)
            return cli_usage_error("%s '%s': that is the log itself; name another file", flag,
                                   path);
    } else if (errno != ENOENT) {
        return cli_usage_error("%s '%s': %s", flag, path, strerror(errno));
    }
    folder_of(path, dir, sizeof dir);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_usage_error("%s '%s': no such folder '%s'", flag, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return cli_usage_error("%s '%s': the folder '%s' is not writable", flag, path, dir);
    return 0;
}

int plot_open_log(const char *path, plot_file_id *id, int *status)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *status = cli_usage_error("plot: LOG '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bool dir = S_ISDIR(st.st_mode);
        close(fd);
        *status = cli_usage_error("plot: LOG '%s': %s", path,
                                  dir ? "a folder, expected the file memguard run --log wrote"
                                      : "not a regular file (a FIFO, device or socket)");
        return -1;
    }
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return fd;
}

void plot_fd_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}
