/* SPDX-License-Identifier: MIT */
/*
 * test_win_atomic.c: mg_atomic on Windows (src/lib/win/atomic.c), with
 * real files, each checked with Windows' own wide calls:
 *   - a second and a third commit replace the existing file (rename()
 *     could not), no temporary is left, the bytes are exact (no text-mode
 *     \r\n);
 *   - a Japanese folder and file name given as UTF-8 is that name on disk
 *     (one directory entry, the expected UTF-16 name), not mojibake;
 *   - a name longer than MAX_PATH works (the \\?\ form);
 *   - a replace blocked by a handle that denies deletion is retried until
 *     the handle closes (about 0.3 s here), and fails with MG_EPERM within
 *     the retry budget when it never does, the old file intact and the
 *     temporary gone;
 *   - abort removes the temporary and keeps the target; bad names fail
 *     cleanly (missing folder, invalid UTF-8).
 * Everything is made under MG_TMPDIR and removed at the end.
 */
#include "memguard.h"
#include "mg_test.h"
#include "mg_win_test.h"

#ifndef MG_TMPDIR
#error "MG_TMPDIR must name a writable folder"
#endif

static char base[1024];
static wchar_t wbase[1024];

/* The whole content of the file at the UTF-16 path, or -1. */
static long slurp(const wchar_t *path, char *buf, size_t len)
{
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) return -1;
    DWORD n = 0;
    BOOL ok = ReadFile(h, buf, (DWORD)len - 1, &n, NULL);
    CloseHandle(h);
    if (!ok) return -1;
    buf[n] = '\0';
    return (long)n;
}

/* Entries of a folder (UTF-16 path), "." and ".." left out; the first
 * one's name into first. */
static int entries(const wchar_t *dir, wchar_t *first, size_t cap)
{
    wchar_t pat[2048];
    _snwprintf(pat, 2048, L"%ls\\*", dir);
    WIN32_FIND_DATAW fd;
    HANDLE h = FindFirstFileW(pat, &fd);
    if (h == INVALID_HANDLE_VALUE) return -1;
    int n = 0;
    do {
        if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0) continue;
        if (n++ == 0 && first) wcsncpy(first, fd.cFileName, cap);
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return n;
}

/* base/name as UTF-8 (for the library) and UTF-16 (for the checks). */
static void in_base(const char *name, char *path, size_t len, wchar_t *wpath, int wcap)
{
    snprintf(path, len, "%s/%s", base, name);
    mg_w(path, wpath, wcap);
}

static int save(const char *path, const char *text)
{
    mg_atomic a;
    int rc = mg_atomic_open(&a, path);
    if (rc) return rc;
    rc = mg_atomic_write(&a, text, strlen(text));
    if (rc) {
        mg_atomic_abort(&a);
        return rc;
    }
    return mg_atomic_commit(&a);
}

static void test_replace_twice(void)
{
    char path[1200];
    wchar_t wpath[1200], first[MAX_PATH];
    in_base("ckpt.pth", path, sizeof path, wpath, 1200);
    char got[64];
    CHECK_INT(save(path, "one\n"), 0);
    CHECK_INT(slurp(wpath, got, sizeof got), 4);
    CHECK_STR(got, "one\n");
    CHECK_INT(save(path, "second\n"), 0); /* must replace the first */
    CHECK_STR((slurp(wpath, got, sizeof got), got), "second\n");
    CHECK_INT(save(path, "3rd\r\nx"), 0);
    CHECK_INT(slurp(wpath, got, sizeof got), 6);
    CHECK_STR(got, "3rd\r\nx");
    CHECK_INT(entries(wbase, first, MAX_PATH), 1); /* no temporary left */
    CHECK(wcscmp(first, L"ckpt.pth") == 0);
    DeleteFileW(wpath);
}

static void test_japanese_path(void)
{
    /* 学習 / チェックポイント.pth, as UTF-8 for the library... */
    const char *dir_u8 = "\xe5\xad\xa6\xe7\xbf\x92";
    const char *file_u8 = "\xe3\x83\x81\xe3\x82\xa7\xe3\x83\x83\xe3\x82\xaf\xe3\x83\x9d"
                          "\xe3\x82\xa4\xe3\x83\xb3\xe3\x83\x88.pth";
    /* ...and as UTF-16 for Windows' own calls. */
    const wchar_t *dir_w = L"\x5b66\x7fd2";
    const wchar_t *file_w = L"\x30c1\x30a7\x30c3\x30af\x30dd\x30a4\x30f3\x30c8.pth";
    wchar_t wdir[1200], wfile[1300], first[MAX_PATH];
    _snwprintf(wdir, 1200, L"%ls\\%ls", wbase, dir_w);
    _snwprintf(wfile, 1300, L"%ls\\%ls", wdir, file_w);
    CHECK(CreateDirectoryW(wdir, NULL));
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", base, dir_u8, file_u8);
    CHECK_INT(save(path, "epoch 1"), 0);
    CHECK_INT(save(path, "epoch 2"), 0);
    char got[64];
    CHECK_INT(slurp(wfile, got, sizeof got), 7);
    CHECK_STR(got, "epoch 2");
    CHECK_INT(entries(wdir, first, MAX_PATH), 1);
    CHECK(wcscmp(first, file_w) == 0);
    DeleteFileW(wfile);
    RemoveDirectoryW(wdir);
}

static void test_long_path(void)
{
    /* Five folders of 60 characters: past MAX_PATH (260). */
    char path[2048];
    wchar_t wdirs[5][2048];
    int n = snprintf(path, sizeof path, "%s", base);
    for (int i = 0; i < 5; i++) {
        n += snprintf(path + n, sizeof path - (size_t)n, "/%d%059d", i, 0);
        wchar_t w[2048];
        _snwprintf(wdirs[i], 2048, L"\\\\?\\%ls", mg_w(path, w, 2048));
        for (wchar_t *p = wdirs[i]; *p; p++)
            if (*p == L'/') *p = L'\\';
        CHECK(CreateDirectoryW(wdirs[i], NULL));
    }
    snprintf(path + n, sizeof path - (size_t)n, "/model.pth");
    CHECK(strlen(path) > MAX_PATH);
    CHECK_INT(save(path, "long"), 0);
    CHECK_INT(save(path, "longer"), 0);
    wchar_t wfile[2100];
    _snwprintf(wfile, 2100, L"%ls\\model.pth", wdirs[4]);
    char got[16];
    CHECK_INT(slurp(wfile, got, sizeof got), 6);
    DeleteFileW(wfile);
    for (int i = 4; i >= 0; i--) RemoveDirectoryW(wdirs[i]);
}

static DWORD WINAPI close_later(void *h)
{
    Sleep(300);
    CloseHandle(h);
    return 0;
}

static void test_sharing_violation(void)
{
    char path[1200];
    wchar_t wpath[1200], first[MAX_PATH];
    in_base("held.pth", path, sizeof path, wpath, 1200);
    CHECK_INT(save(path, "old"), 0);
    /* A reader that does not share deletion, as a viewer or scanner may:
     * the move cannot replace the file until it closes. */
    HANDLE h = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    HANDLE t = CreateThread(NULL, 0, close_later, h, 0, NULL);
    ULONGLONG t0 = GetTickCount64();
    CHECK_INT(save(path, "new"), 0);
    ULONGLONG waited = GetTickCount64() - t0;
    WaitForSingleObject(t, 5000);
    CloseHandle(t);
    printf("# replace waited %llu ms for the reader\n", (unsigned long long)waited);
    CHECK(waited >= 200);
    char got[16];
    slurp(wpath, got, sizeof got);
    CHECK_STR(got, "new");

    /* Held throughout: fails within the budget, nothing lost or left. */
    h = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    t0 = GetTickCount64();
    CHECK_INT(save(path, "never"), MG_EPERM);
    waited = GetTickCount64() - t0;
    CHECK(waited >= 900 && waited < 5000);
    CloseHandle(h);
    slurp(wpath, got, sizeof got);
    CHECK_STR(got, "new");
    CHECK_INT(entries(wbase, first, MAX_PATH), 1);
    DeleteFileW(wpath);
}

static void test_abort_and_bad_names(void)
{
    char path[1200];
    wchar_t wpath[1200], first[MAX_PATH];
    in_base("kept.pth", path, sizeof path, wpath, 1200);
    CHECK_INT(save(path, "kept"), 0);
    mg_atomic a;
    CHECK_INT(mg_atomic_open(&a, path), 0);
    CHECK_INT(mg_atomic_write(&a, "lost", 4), 0);
    CHECK_INT(entries(wbase, NULL, 0), 2); /* the temporary exists meanwhile */
    mg_atomic_abort(&a);
    mg_atomic_abort(&a); /* twice is harmless */
    CHECK_INT(entries(wbase, first, MAX_PATH), 1);
    char got[16];
    slurp(wpath, got, sizeof got);
    CHECK_STR(got, "kept");
    DeleteFileW(wpath);

    mg_atomic z;
    memset(&z, 0, sizeof z);
    mg_atomic_abort(&z); /* never opened */
    CHECK_INT(mg_atomic_write(&z, "x", 1), MG_EINVAL);
    CHECK_INT(mg_atomic_commit(&z), MG_EINVAL);
    snprintf(path, sizeof path, "%s/no-such-folder/x.pth", base);
    CHECK_INT(mg_atomic_open(&a, path), MG_ENOENT);
    snprintf(path, sizeof path, "%s/bad-\xff\xfe.pth", base);
    CHECK_INT(mg_atomic_open(&a, path), MG_EINVAL);
    CHECK_INT(mg_atomic_open(&a, ""), MG_EINVAL);
    CHECK_INT(entries(wbase, NULL, 0), 0);
}

int main(void)
{
    snprintf(base, sizeof base, "%s/win_atomic_%lu", MG_TMPDIR, (unsigned long)GetCurrentProcessId());
    mg_w(base, wbase, 1024);
    for (wchar_t *p = wbase; *p; p++)
        if (*p == L'/') *p = L'\\';
    if (!CreateDirectoryW(wbase, NULL)) {
        fprintf(stderr, "cannot make %s\n", base);
        return 1;
    }
    MG_RUN(test_replace_twice);
    MG_RUN(test_japanese_path);
    MG_RUN(test_long_path);
    MG_RUN(test_sharing_violation);
    MG_RUN(test_abort_and_bad_names);
    RemoveDirectoryW(wbase);
    return mg_test_exit();
}
