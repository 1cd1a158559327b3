/* SPDX-License-Identifier: MIT */
/*
 * win.h: what the Windows layer of libmemguard (win/) shares: the one
 * UTF-8 to UTF-16 path conversion every file the library opens goes
 * through, and the mapping of Windows error numbers to MG_E* codes. The
 * portable files never include it, so internal.h stays free of Windows
 * types. It declares no state.
 */
#ifndef MG_WIN_H
#define MG_WIN_H

#include "internal.h"

#include <windows.h>

/* The longest path the library converts, in UTF-16 units with the
 * terminator: mg_atomic's names are at most 4096 + 32 bytes of UTF-8, and
 * UTF-8 never takes fewer bytes than UTF-16 takes units, plus the 8 units
 * of a "\\?\UNC\" prefix. */
#define MG__WPATH_MAX (4096 + 32 + 8)

/* The UTF-8 `path` as a Windows path in out[0..cap): UTF-16, and when it is
 * MAX_PATH or longer, made absolute with the "\\?\" prefix that lifts
 * Windows' 260-character limit. Allocates nothing. Returns 0, MG_EINVAL
 * (empty, or not valid UTF-8: never guessed in the ANSI code page) or
 * MG_ENOBUFS (too long for cap). */
int mg__wpath(const char *path, wchar_t *out, size_t cap);

/* A GetLastError() number as an MG_E* code (MG_EIO for the rest). */
int mg__win_error(DWORD e);

#endif /* MG_WIN_H */
