/* SPDX-License-Identifier: MIT */
/*
 * posix_shim.h: force-included (-include) into the tests that the Windows
 * cross build shares with Linux (tests/win/CMakeLists.txt), so they compile
 * unchanged: setenv/unsetenv over the C runtime's _putenv_s (on Windows an
 * empty value removes the variable, which the library reads the same as
 * unset), pipe over _pipe, and O_NOCTTY, which Windows has no use for. It
 * holds no memguard code and no test.
 */
#ifndef MG_TESTS_POSIX_SHIM_H
#define MG_TESTS_POSIX_SHIM_H

#include <fcntl.h>
#include <io.h>
#include <stdlib.h>

static inline int setenv(const char *name, const char *value, int overwrite)
{
    if (!overwrite && getenv(name)) return 0;
    return _putenv_s(name, value) == 0 ? 0 : -1;
}

static inline int unsetenv(const char *name)
{
    return _putenv_s(name, "") == 0 ? 0 : -1;
}

#define pipe(fds) _pipe((fds), 4096, _O_BINARY)
#ifndef O_NOCTTY
#define O_NOCTTY 0
#endif

#endif /* MG_TESTS_POSIX_SHIM_H */
