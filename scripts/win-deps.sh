#!/usr/bin/env bash
# win-deps.sh [DIR]: the libraries of the Windows cross build that Debian
# ships no mingw-w64 package of, cross-built from Debian's own source
# packages (the version installed on this machine, so Linux and Windows
# build the same source) into DIR/deps/prefix (default build-win/), where
# cmake/mingw-w64.cmake finds them. Static libraries only, so the programs
# import nothing but system DLLs.
#   cJSON   `memguard plot` reads the run log with it; the tests parse
#           `memguard check --json` with it
# The sources come through a private apt configuration under DIR/deps/apt
# (nothing under /etc is written). Idempotent: a library already in the
# prefix is not built again. Needs dpkg-dev (scripts/setup.sh win).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-win}
deps=$(realpath -m "$out/deps")
prefix=$deps/prefix
toolchain=$PWD/cmake/mingw-w64.cmake
mkdir -p "$deps/apt/lists/partial" "$deps/apt/cache/archives/partial" "$deps/src"
apt_opts=(-o "Dir::Etc::SourceList=$deps/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o "Dir::State::Lists=$deps/apt/lists" -o "Dir::Cache=$deps/apt/cache"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root)

# fetch SOURCE BINARY: unpacks the Debian source package SOURCE at the
# version of the installed BINARY package; prints the source folder.
fetch() {
    local src=$1 bin=$2 version
    version=$(dpkg-query -W -f='${Version}' "$bin")
    local dir=$deps/src/$src-$version
    if [ ! -d "$dir" ]; then
        if [ ! -s "$deps/apt/sources.list" ]; then
            printf '%s\n' "deb-src http://deb.debian.org/debian bookworm main" \
                "deb-src http://deb.debian.org/debian-security bookworm-security main" \
                > "$deps/apt/sources.list"
            apt-get "${apt_opts[@]}" -qq update >&2
        fi
        # apt checks the files against the signed Sources index; dpkg-source
        # then only warns that it has no key for the .dsc's own signature.
        (cd "$deps/src" && apt-get "${apt_opts[@]}" -qq source --download-only "$src=$version" &&
         dpkg-source -x "${src}_${version#*:}.dsc" "$dir" >/dev/null 2>&1) >&2 ||
            { echo "win-deps: cannot fetch and unpack $src $version" >&2; exit 1; }
    fi
    echo "$dir"
}

# cmake_lib NAME SRC_DIR CMAKE_ARGS...: configure, build and install one
# CMake-built library into the prefix.
cmake_lib() {
    local name=$1 srcdir=$2
    shift 2
    cmake -S "$srcdir" -B "$deps/build-$name" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DMG_WIN_DEPS_PREFIX="$prefix" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib -Wno-dev -Wno-deprecated "$@" >/dev/null
    cmake --build "$deps/build-$name" -j2 --target install >/dev/null
}

if [ ! -f "$prefix/lib/pkgconfig/libcjson.pc" ]; then
    echo "win-deps: cJSON from Debian's cjson source package"
    cmake_lib cjson "$(fetch cjson libcjson-dev)" -DBUILD_SHARED_LIBS=OFF -DENABLE_CJSON_TEST=OFF \
        -DENABLE_CJSON_UTILS=OFF -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_TARGET_EXPORT=OFF
fi
echo "win-deps: $prefix ready"
