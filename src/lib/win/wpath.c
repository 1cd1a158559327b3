/* SPDX-License-Identifier: MIT */
/*
 * wpath.c: UTF-8 paths as Windows (UTF-16) paths, and Windows errors as
 * MG_E* codes. Every name libmemguard hands to Windows goes through
 * mg__wpath, so a checkpoint under C:\Users\<Japanese name>\ is the same
 * file the caller named; the *A functions would read the bytes in the ANSI
 * code page instead (research/windows.md). It allocates nothing and opens
 * nothing.
 */
#include "win/win.h"

int mg__wpath(const char *path, wchar_t *out, size_t cap)
{
    if (!path || !*path || !out || cap < 2 || cap > INT_MAX) return MG_EINVAL;
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, out, (int)cap);
    if (n <= 0)
        return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? MG_ENOBUFS : MG_EINVAL;
    if ((size_t)n - 1 < MAX_PATH) return 0;
    /* Long: the absolute form with the prefix, built in a second buffer of
     * the same size on the stack (no allocation: mg_atomic promises none). */
    if (wcsncmp(out, L"\\\\?\\", 4) == 0) return 0;
    wchar_t full[MG__WPATH_MAX];
    DWORD len = GetFullPathNameW(out, MG__WPATH_MAX, full, NULL);
    if (len == 0) return MG_EINVAL;
    if (len >= MG__WPATH_MAX) return MG_ENOBUFS;
    bool unc = full[0] == L'\\' && full[1] == L'\\';
    const wchar_t *prefix = unc ? L"\\\\?\\UNC\\" : L"\\\\?\\";
    const wchar_t *rest = unc ? full + 2 : full;
    size_t pl = wcslen(prefix), rl = wcslen(rest);
    if (pl + rl + 1 > cap) return MG_ENOBUFS;
    memcpy(out, prefix, pl * sizeof *out);
    memcpy(out + pl, rest, (rl + 1) * sizeof *out);
    return 0;
}

int mg__win_error(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH: case ERROR_MOD_NOT_FOUND:
        return MG_ENOENT;
    case ERROR_ACCESS_DENIED: case ERROR_SHARING_VIOLATION: case ERROR_LOCK_VIOLATION:
    case ERROR_WRITE_PROTECT: case ERROR_PRIVILEGE_NOT_HELD:
        return MG_EPERM;
    case ERROR_DISK_FULL: case ERROR_HANDLE_DISK_FULL:
        return MG_ENOSPC;
    case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: case ERROR_COMMITMENT_LIMIT:
        return MG_ENOMEM;
    case ERROR_INVALID_NAME: case ERROR_FILENAME_EXCED_RANGE: case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:
        return MG_EINVAL;
    case ERROR_INVALID_HANDLE: case ERROR_NOT_FOUND:
        return MG_ESRCH;
    default:
        return MG_EIO;
    }
}
