#!/usr/bin/env bash
# test-win.sh [DIR]: the Windows part of the tests. Cross-builds memguard
# with mingw-w64 (cmake/mingw-w64.cmake) into DIR (default build-win/),
# after the libraries Debian has no mingw-w64 package of
# (scripts/win-deps.sh), and runs its ctest suite under Wine: headless (no
# DISPLAY), in a Wine prefix of its own (DIR/wineprefix), whose wineserver
# is started first, warmed with one process and stopped at the end (the
# first process of a fresh wineserver can hang: research/windows.md).
# Prints each stage's time. When the cross compiler or Wine is missing it
# says so in one line and exits 0 (scripts/setup.sh win installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-win}
wine=/usr/lib/wine/wine64
for tool in x86_64-w64-mingw32-gcc-posix "$wine" wineboot wineserver dpkg-source; do
    if ! command -v "$tool" >/dev/null; then
        echo "test-win: Windows tests skipped: $tool is not installed (scripts/setup.sh win)"
        exit 0
    fi
done

t_last=$(date +%s.%N)
lap() { # prints the time since the last lap, named $1
    local now
    now=$(date +%s.%N)
    awk -v a="$t_last" -v b="$now" -v n="$1" 'BEGIN { printf "test-win: %-28s %6.1f s\n", n, b - a }'
    t_last=$now
}

scripts/win-deps.sh "$dir"
lap "libraries (win-deps.sh)"

export WINEPREFIX
WINEPREFIX=$(realpath -m "$dir/wineprefix")
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wineboot --init >"$dir/wineboot.log" 2>&1
    wineserver -w
    lap "wineboot (new prefix)"
fi
wineserver -p
trap 'wineserver -k 2>/dev/null || true' EXIT
"$wine" cmd /c exit
sleep 3
lap "wineserver started, warmed"

# The toolchain is a configure-time choice: given again to a configured
# folder, CMake would only warn that it is unused.
toolchain=()
[ -f "$dir/CMakeCache.txt" ] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake)
cmake -S . -B "$dir" "${toolchain[@]}" -DMG_WIN_DEPS_PREFIX="$(realpath -m "$dir/deps/prefix")" \
    -DMG_WERROR=ON -DMG_TESTS=ON >/dev/null
if ! cmake --build "$dir" -j2 >"$dir/build.log" 2>&1; then
    cat "$dir/build.log"
    exit 1
fi
lap "cross build"

(cd "$dir" && ctest --output-on-failure -j2 --timeout 120)
lap "ctest under Wine"
