# mingw-w64.cmake: the CMake toolchain file of the Windows (x86-64) cross
# build, with Debian's mingw-w64 (gcc-mingw-w64-x86-64, the -posix variant:
# winpthreads gives unet-train its pthread and clock_gettime). ctest runs
# every test .exe through Wine (CMAKE_CROSSCOMPILING_EMULATOR);
# scripts/test-win.sh sets up the Wine prefix. Libraries cross-built from
# Debian source packages (scripts/win-deps.sh) are found under
# MG_WIN_DEPS_PREFIX (default: build-win/deps/prefix of this checkout).
# It chooses no flags: the top CMakeLists.txt does that under WIN32.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(MG_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${MG_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${MG_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${MG_MINGW_TRIPLE}-windres)
if(NOT MG_WIN_DEPS_PREFIX)
  set(MG_WIN_DEPS_PREFIX ${CMAKE_CURRENT_LIST_DIR}/../build-win/deps/prefix)
endif()
get_filename_component(MG_WIN_DEPS_PREFIX ${MG_WIN_DEPS_PREFIX} ABSOLUTE)
# try_compile projects see the same prefix
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES MG_WIN_DEPS_PREFIX)
set(CMAKE_FIND_ROOT_PATH /usr/${MG_MINGW_TRIPLE} ${MG_WIN_DEPS_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config: only the .pc files of the cross-built libraries, never the
# host's (a Linux libcjson.pc would hand the cross compiler Linux paths).
set(ENV{PKG_CONFIG_LIBDIR} ${MG_WIN_DEPS_PREFIX}/lib/pkgconfig:${MG_WIN_DEPS_PREFIX}/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
# Debian keeps wine64 in /usr/lib/wine; /usr/bin/wine would also try (and
# complain about) the 32-bit loader.
find_program(MG_WINE NAMES wine64 wine PATHS /usr/lib/wine)
if(MG_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MG_WINE})
endif()
