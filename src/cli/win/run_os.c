/* SPDX-License-Identifier: MIT */
/*
 * win/run_os.c: what `memguard run` does differently on Windows (run.h,
 * run_os_*): the one checkpoint signal (SIGBREAK, i.e. CTRL_BREAK_EVENT)
 * and the C runtime's signal names (also `memguard plot`'s),
 * no self-protection (Windows has no OOM killer to steer), and the file
 * operations of the log and the protocol's files. Nothing is opened
 * through a symbolic link or other reparse point (FILE_FLAG_OPEN_REPARSE_
 * POINT, then refused); handles are never inherited by the command; new
 * files are CREATE_NEW and renamed into place with MoveFileExW. The private
 * folder is a new folder under the user's %TEMP%, whose ACL already keeps
 * other users out. Windows has no cheap owner check, so a leftover at
 * --stop-file is recognised by its contents alone (run.h's `own` is not
 * checked here; Windows' ACLs decide what may be removed). Names are UTF-8
 * (memguard.exe's manifest makes UTF-8 the process code page). It decides
 * nothing about a run.
 */
#include "../run.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

uint64_t run_os_now_us(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (!freq.QuadPart) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (uint64_t)(now.QuadPart / freq.QuadPart) * 1000000u +
           (uint64_t)(now.QuadPart % freq.QuadPart) * 1000000u / (uint64_t)freq.QuadPart;
}

/* ---- the checkpoint signal ------------------------------------------------- */

int run_os_default_signal(void) { return SIGBREAK; }

int run_os_signal_arg(const char *arg, int *out)
{
    const char *n = _strnicmp(arg, "SIG", 3) == 0 ? arg + 3 : arg;
    if (_stricmp(n, "BREAK") == 0 || strcmp(arg, "21") == 0) {
        *out = SIGBREAK;
        return 0;
    }
    return cli_usage_error("--signal '%s': on Windows the checkpoint signal is BREAK "
                           "(CTRL_BREAK_EVENT, the default); there is no other", arg);
}

/* The C runtime's signal names ("SIGBREAK"), else "signal N" (a Linux
 * log's SIGUSR1, 10, reads "signal 10" here). */
const char *signal_name(int sig, char *buf, size_t len)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGINT, "SIGINT"}, {SIGILL, "SIGILL"}, {SIGFPE, "SIGFPE"},
                 {SIGSEGV, "SIGSEGV"}, {SIGTERM, "SIGTERM"}, {SIGBREAK, "SIGBREAK"},
                 {SIGABRT, "SIGABRT"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig) {
            snprintf(buf, len, "%s", names[i].name);
            return buf;
        }
    snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* ---- paths and the hook ------------------------------------------------------ */

int run_os_setenv(const char *name, const char *value)
{
    return SetEnvironmentVariableA(name, value) ? 0 : -EINVAL;
}

bool run_os_is_sep(char c) { return c == '/' || c == '\\'; }

char run_os_sep(void) { return '\\'; }

bool run_os_path_absolute(const char *p)
{
    bool drive = ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) &&
                 p[1] == ':' && run_os_is_sep(p[2]);
    return drive || (run_os_is_sep(p[0]) && run_os_is_sep(p[1]));
}

bool run_os_hook_ok(const char *path)
{
    DWORD a = GetFileAttributesA(path);
    return run_os_path_absolute(path) && a != INVALID_FILE_ATTRIBUTES &&
           !(a & FILE_ATTRIBUTE_DIRECTORY);
}

void run_os_protect_self(int verbose) { (void)verbose; }

void run_os_unprotect_memory(void) {}

/* ---- handles and descriptors ---------------------------------------------------- */

/* errno for a GetLastError() number. */
static int errno_of(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: return ENOENT;
    case ERROR_ACCESS_DENIED: case ERROR_SHARING_VIOLATION: return EACCES;
    case ERROR_FILE_EXISTS: case ERROR_ALREADY_EXISTS: return EEXIST;
    case ERROR_FILENAME_EXCED_RANGE: return ENAMETOOLONG;
    case ERROR_DISK_FULL: return ENOSPC;
    default: return EIO;
    }
}

/* A file opened without following a link: a regular file (not a folder,
 * not a reparse point), else INVALID_HANDLE_VALUE with errno set (ELOOP
 * for a link, EINVAL for the rest). */
static HANDLE open_plain(const char *path, DWORD access, DWORD disposition, DWORD flags)
{
    HANDLE h = CreateFileA(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, disposition, flags | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        errno = errno_of(GetLastError());
        return h;
    }
    BY_HANDLE_FILE_INFORMATION fi = {0};
    if (GetFileType(h) != FILE_TYPE_DISK || !GetFileInformationByHandle(h, &fi) ||
        (fi.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT))) {
        errno = fi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT ? ELOOP : EINVAL;
        CloseHandle(h);
        return INVALID_HANDLE_VALUE;
    }
    return h;
}

static int to_fd(HANDLE h, int flags)
{
    int fd = _open_osfhandle((intptr_t)h, flags | _O_BINARY);
    if (fd < 0) CloseHandle(h);
    return fd;
}

int run_os_log_open(const char *path)
{
    HANDLE h = open_plain(path, FILE_APPEND_DATA, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL);
    return h == INVALID_HANDLE_VALUE ? -1 : to_fd(h, _O_WRONLY | _O_APPEND);
}

int run_os_temp_beside(const char *name)
{
    const char *cut = NULL;
    for (const char *p = name; *p; p++)
        if (run_os_is_sep(*p)) cut = p + 1;
    for (unsigned n = 0; n < 100; n++) {
        char tmp[RUN_PATH_MAX];
        int k = snprintf(tmp, sizeof tmp, "%.*s.memguard-log-%lu-%u", cut ? (int)(cut - name) : 0,
                         name, (unsigned long)GetCurrentProcessId(), n);
        if (k < 0 || (size_t)k >= sizeof tmp) {
            errno = ENAMETOOLONG;
            return -1;
        }
        /* Deleted when its last handle closes, whatever happens to memguard. */
        HANDLE h = CreateFileA(tmp, GENERIC_READ | GENERIC_WRITE,
                               FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                               CREATE_NEW, FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE,
                               NULL);
        if (h != INVALID_HANDLE_VALUE) return to_fd(h, _O_RDWR);
        if (GetLastError() != ERROR_FILE_EXISTS) break;
    }
    errno = errno_of(GetLastError());
    return -1;
}

int run_os_dup(int fd)
{
    HANDLE src = (HANDLE)_get_osfhandle(fd), dup;
    if (src == INVALID_HANDLE_VALUE ||
        !DuplicateHandle(GetCurrentProcess(), src, GetCurrentProcess(), &dup, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
        return -1;
    return to_fd(dup, _O_WRONLY | _O_APPEND);
}

int run_os_open_read(const char *path)
{
    HANDLE h = open_plain(path, GENERIC_READ, OPEN_EXISTING, 0);
    return h == INVALID_HANDLE_VALUE ? -1 : to_fd(h, _O_RDONLY);
}

long long run_os_regular_size(int fd)
{
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    LARGE_INTEGER size;
    if (h == INVALID_HANDLE_VALUE || GetFileType(h) != FILE_TYPE_DISK ||
        !GetFileSizeEx(h, &size))
        return -1;
    return size.QuadPart;
}

/* ---- the protocol's files ------------------------------------------------------ */

long run_os_read_small(const char *path, char *buf, size_t len, bool own)
{
    (void)own; /* see the top of this file */
    HANDLE h = open_plain(path, GENERIC_READ, OPEN_EXISTING, 0);
    if (h == INVALID_HANDLE_VALUE) return -1;
    LARGE_INTEGER size;
    DWORD n = 0;
    bool ok = GetFileSizeEx(h, &size) && size.QuadPart < 8192 &&
              ReadFile(h, buf, (DWORD)(len - 1), &n, NULL);
    CloseHandle(h);
    if (!ok) return -1;
    buf[n] = '\0';
    return (long)n;
}

bool run_os_exists(const char *path)
{
    if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) return true;
    DWORD e = GetLastError();
    return e != ERROR_FILE_NOT_FOUND && e != ERROR_PATH_NOT_FOUND;
}

int run_os_unlink(const char *path)
{
    /* DeleteFile removes a link itself, never what it points to. */
    return DeleteFileA(path) ? 0 : -errno_of(GetLastError());
}

int run_os_private_dir(char *dir, size_t len)
{
    char base[MAX_PATH + 1];
    DWORD n = GetTempPathA(sizeof base, base);
    if (n == 0 || n > MAX_PATH) {
        fprintf(stderr, "memguard: no folder for the stop file: %%TEMP%% is not set "
                        "(use --stop-file PATH)\n");
        return MG_EXIT_ERROR;
    }
    if (run_os_is_sep(base[n - 1])) base[--n] = '\0';
    for (unsigned k = 0; k < 1000; k++) {
        snprintf(dir, len, "%s\\memguard-%lu-%u", base, (unsigned long)GetCurrentProcessId(),
                 k);
        if (CreateDirectoryA(dir, NULL)) return 0;
        if (GetLastError() != ERROR_ALREADY_EXISTS) break;
    }
    fprintf(stderr, "memguard: cannot create a private folder in %s: %s\n", base,
            strerror(errno_of(GetLastError())));
    return MG_EXIT_ERROR;
}

/* Removes dir\\<glob> (the temporaries a killed trainer left). */
static void remove_matching(const char *dir, const char *glob)
{
    char pattern[RUN_PATH_MAX + 32], path[RUN_PATH_MAX + MAX_PATH];
    snprintf(pattern, sizeof pattern, "%s\\%s", dir, glob);
    WIN32_FIND_DATAA fd;
    HANDLE f = FindFirstFileA(pattern, &fd);
    if (f != INVALID_HANDLE_VALUE) {
        do {
            snprintf(path, sizeof path, "%s\\%s", dir, fd.cFileName);
            DeleteFileA(path);
        } while (FindNextFileA(f, &fd));
        FindClose(f);
    }
}

void run_os_private_dir_remove(const char *dir)
{
    remove_matching(dir, "ack.tmp.*");
    remove_matching(dir, "continue.tmp.*");
    if (!RemoveDirectoryA(dir) && GetLastError() != ERROR_FILE_NOT_FOUND)
        fprintf(stderr, "memguard: leaving %s: %s\n", dir, strerror(errno_of(GetLastError())));
}

int run_os_write_replace(const char *path, const char *text, size_t n)
{
    char tmp[RUN_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%lu", path, (unsigned long)GetCurrentProcessId());
    HANDLE h = CreateFileA(tmp, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return -errno_of(GetLastError());
    DWORD w = 0;
    int e = WriteFile(h, text, (DWORD)n, &w, NULL) && w == n ? 0 : errno_of(GetLastError());
    CloseHandle(h);
    /* A reader holding the old file open makes the replace fail for a
     * moment: retried for up to a second, never by deleting it first. */
    for (int i = 0; !e && !MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING); i++) {
        DWORD le = GetLastError();
        if ((le != ERROR_ACCESS_DENIED && le != ERROR_SHARING_VIOLATION) || i == 50)
            e = errno_of(le);
        else
            Sleep(20);
    }
    if (e) {
        DeleteFileA(tmp);
        return -e;
    }
    return 0;
}
