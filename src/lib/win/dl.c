/* SPDX-License-Identifier: MIT */
/*
 * dl.c (Windows): the dynamic loader, the one place libmemguard touches it
 * (NVML is loaded at run time, gpu_nvml.c). A bare name such as "nvml.dll"
 * is looked for where NVIDIA's driver puts it and nowhere else, in the
 * order NVIDIA's own Python binding uses: System32 (DCH drivers), then
 * %ProgramFiles%\NVIDIA Corporation\NVSMI (older drivers). A name with a
 * folder is loaded from that path. Either way by full path with
 * LoadLibraryExW, whose search flags let the DLL's own imports come from
 * its folder and System32 only: never the current folder or PATH, where a
 * planted nvml.dll would run inside the trainer. It does not load anything
 * by itself and keeps no state.
 */
#include "win/win.h"

#define SEARCH (LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32)

static bool has_folder(const char *name)
{
    return strchr(name, '/') || strchr(name, '\\') || strchr(name, ':');
}

/* dir + "\" + the UTF-8 file name, loaded; NULL when it cannot be. */
static HMODULE load_in(const wchar_t *dir, size_t dir_len, const char *name)
{
    wchar_t path[MAX_PATH * 2];
    wchar_t file[MAX_PATH];
    if (dir_len == 0 || mg__wpath(name, file, MAX_PATH) != 0) return NULL;
    size_t fl = wcslen(file);
    if (dir_len + 1 + fl + 1 > sizeof path / sizeof path[0]) return NULL;
    memcpy(path, dir, dir_len * sizeof *path);
    path[dir_len] = L'\\';
    memcpy(path + dir_len + 1, file, (fl + 1) * sizeof *path);
    return LoadLibraryExW(path, NULL, SEARCH);
}

void *mg__dl_open(const char *name)
{
    if (!name || !*name) return NULL;
    if (has_folder(name)) {
        wchar_t w[MG__WPATH_MAX], full[MG__WPATH_MAX];
        if (mg__wpath(name, w, MG__WPATH_MAX) != 0) return NULL;
        /* LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR wants an absolute path. */
        DWORD n = GetFullPathNameW(w, MG__WPATH_MAX, full, NULL);
        if (n == 0 || n >= MG__WPATH_MAX) return NULL;
        return (void *)LoadLibraryExW(full, NULL, SEARCH);
    }
    wchar_t dir[MAX_PATH];
    UINT n = GetSystemDirectoryW(dir, MAX_PATH);
    HMODULE h = n < MAX_PATH ? load_in(dir, n, name) : NULL;
    if (h) return (void *)h;
    static const wchar_t nvsmi[] = L"\\NVIDIA Corporation\\NVSMI";
    size_t sl = sizeof nvsmi / sizeof nvsmi[0] - 1;
    DWORD pf = GetEnvironmentVariableW(L"ProgramFiles", dir, MAX_PATH);
    if (pf == 0 || pf >= MAX_PATH) {
        wcscpy(dir, L"C:\\Program Files");
        pf = (DWORD)wcslen(dir);
    }
    if (pf + sl >= MAX_PATH) return NULL;
    memcpy(dir + pf, nvsmi, (sl + 1) * sizeof *dir);
    return (void *)load_in(dir, pf + sl, name);
}

void *mg__dl_sym(void *lib, const char *symbol)
{
    FARPROC p = GetProcAddress((HMODULE)lib, symbol);
    void *out;
    _Static_assert(sizeof p == sizeof out, "a function pointer fits a void *");
    memcpy(&out, &p, sizeof out);
    return out;
}

void mg__dl_close(void *lib)
{
    FreeLibrary((HMODULE)lib);
}

/* Static texts for the last failure of this thread (no buffer to keep). */
const char *mg__dl_error(void)
{
    switch (GetLastError()) {
    case ERROR_MOD_NOT_FOUND: case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND:
        return "not found (looked in System32 and NVIDIA Corporation\\NVSMI, or the path given)";
    case ERROR_BAD_EXE_FORMAT:
        return "not a 64-bit DLL";
    case ERROR_PROC_NOT_FOUND:
        return "a function it imports is missing";
    case ERROR_ACCESS_DENIED:
        return "access denied";
    case ERROR_NO_UNICODE_TRANSLATION: case ERROR_INVALID_PARAMETER:
        return "the name is not valid UTF-8";
    default:
        return "it cannot be loaded";
    }
}
