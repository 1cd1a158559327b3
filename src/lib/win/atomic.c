/* SPDX-License-Identifier: MIT */
/*
 * atomic.c (Windows): files that are never torn: a temporary file in the
 * same folder, FlushFileBuffers, then MoveFileExW with REPLACE_EXISTING
 * (rename() cannot replace an existing file on Windows: every checkpoint
 * after the first would fail) and WRITE_THROUGH (it returns once the move
 * is on disk, which the folder fsync does on POSIX). An antivirus scanner,
 * the search indexer or a viewer holding the old file makes the move fail
 * with a sharing violation for a moment: it is retried for about a second,
 * and the old file is never deleted first. Names are UTF-8, converted once
 * to UTF-16 (mg__wpath). It allocates nothing, so an emergency checkpoint
 * can be written with it when memory is short. It does not decide names or
 * clean up temporaries left by a crash (the trainer does that at start-up).
 */
#include "win/win.h"

#include <stdio.h>

/* Retry schedule of the move: 1, 2, 4 ... 128 ms, then 128 ms steps, for
 * at most RETRY_TOTAL_MS in all. */
#define RETRY_TOTAL_MS 1000u
#define RETRY_MAX_STEP_MS 128u

static bool is_open(const mg_atomic *a)
{
    return a->tmp[0] != '\0' && a->os.handle != NULL && a->os.handle != INVALID_HANDLE_VALUE;
}

static void forget(mg_atomic *a)
{
    a->os.handle = INVALID_HANDLE_VALUE;
    a->tmp[0] = '\0';
}

int mg_atomic_open(mg_atomic *a, const char *path)
{
    if (!a) return MG_EINVAL;
    forget(a);
    if (!path || !*path || mg__path(a->path, sizeof a->path, "%s", path) < 0 ||
        mg__path(a->tmp, sizeof a->tmp, "%s.tmp.%lu", path,
                 (unsigned long)GetCurrentProcessId()) < 0) {
        a->tmp[0] = '\0';
        return MG_EINVAL;
    }
    wchar_t wtmp[MG__WPATH_MAX];
    int rc = mg__wpath(a->tmp, wtmp, MG__WPATH_MAX);
    if (rc < 0) {
        a->tmp[0] = '\0';
        return rc == MG_ENOBUFS ? MG_EINVAL : rc;
    }
    /* A temporary of ours from an earlier failed attempt is stale. */
    DeleteFileW(wtmp);
    HANDLE h = CreateFileW(wtmp, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        a->tmp[0] = '\0';
        return mg__win_error(GetLastError());
    }
    a->os.handle = h;
    return 0;
}

int mg_atomic_write(mg_atomic *a, const void *buf, size_t len)
{
    if (!a || !is_open(a) || (!buf && len)) return MG_EINVAL;
    const char *p = buf;
    while (len > 0) {
        DWORD chunk = len > (1u << 30) ? (1u << 30) : (DWORD)len, n = 0;
        if (!WriteFile(a->os.handle, p, chunk, &n, NULL)) return mg__win_error(GetLastError());
        if (n == 0) return MG_EIO;
        p += n;
        len -= n;
    }
    return 0;
}

/* MoveFileExW, retried while something else holds the target open. */
static int replace(const wchar_t *from, const wchar_t *to)
{
    DWORD waited = 0, step = 1;
    for (;;) {
        if (MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) return 0;
        DWORD e = GetLastError();
        bool busy = e == ERROR_SHARING_VIOLATION || e == ERROR_ACCESS_DENIED ||
                    e == ERROR_LOCK_VIOLATION;
        if (!busy || waited >= RETRY_TOTAL_MS) return mg__win_error(e);
        Sleep(step);
        waited += step;
        if (step < RETRY_MAX_STEP_MS) step *= 2;
    }
}

int mg_atomic_commit(mg_atomic *a)
{
    if (!a || !is_open(a)) return MG_EINVAL;
    int rc = 0;
    if (!FlushFileBuffers(a->os.handle)) rc = mg__win_error(GetLastError());
    if (!CloseHandle(a->os.handle) && rc == 0) rc = mg__win_error(GetLastError());
    a->os.handle = INVALID_HANDLE_VALUE;
    wchar_t wtmp[MG__WPATH_MAX], wpath[MG__WPATH_MAX];
    int crc = mg__wpath(a->tmp, wtmp, MG__WPATH_MAX);
    if (crc == 0) crc = mg__wpath(a->path, wpath, MG__WPATH_MAX);
    if (crc < 0) rc = MG_EINVAL; /* cannot happen: open converted longer names */
    if (rc == 0) rc = replace(wtmp, wpath);
    if (rc < 0 && crc == 0) DeleteFileW(wtmp);
    a->tmp[0] = '\0';
    return rc;
}

/* A zero-initialised object (NULL handle, no temporary name) was never
 * opened: the temporary's name is what proves the handle is ours. */
void mg_atomic_abort(mg_atomic *a)
{
    if (!a || !is_open(a)) return;
    CloseHandle(a->os.handle);
    wchar_t wtmp[MG__WPATH_MAX];
    if (mg__wpath(a->tmp, wtmp, MG__WPATH_MAX) == 0) DeleteFileW(wtmp);
    forget(a);
}
