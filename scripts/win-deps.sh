#!/usr/bin/env bash
# win-deps.sh [DIR]: the libraries of the Windows cross build that Debian
# ships no mingw-w64 package of, cross-built from Debian's own source
# packages into DIR/deps/prefix (default build-win/), where
# cmake/mingw-w64.cmake finds them. Static libraries only, so the programs
# import nothing but system DLLs.
#   cJSON          `memguard plot` reads the run log with it; the tests parse
#                  `memguard check --json` with it
#   libpng         unet-train reads PNG images and masks, writes PNG masks
#   libjpeg-turbo  unet-train reads JPEG images
# zlib is Debian's libz-mingw-w64-dev, as it is; its zlib.pc is copied
# beside the others (libpng.pc requires it, and the toolchain file lets
# pkg-config see this prefix only).
#
# Which version: the one installed on this machine (libcjson-dev,
# libpng-dev, libjpeg62-turbo-dev), so Linux and Windows build the same
# source. Where apt can no longer download that one (the mirror keeps the
# newest of each suite only: libpng 1.6.39-2+deb12u4 was installed here and
# gone), the newest version the Sources index lists that downloads, and it
# says so. Every library's exact version is printed, built or not. Debian's
# patches are applied (dpkg-source), so the decoders are Debian's:
# test_unet_win_image checks that unet-train.exe decodes every test image to
# the same bytes as the Linux build. libjpeg-turbo is built WITH_SIMD=OFF (no
# nasm): its SIMD and C paths decode to the same bytes, which that test
# checks against Debian's SIMD build on Linux.
#
# The sources come through a private apt configuration under DIR/deps/apt
# (nothing under /etc is written). Idempotent: a library already in the
# prefix at the version wanted is not built again. Needs dpkg-dev and the
# cross compiler (scripts/setup.sh win).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-win}
deps=$(realpath -m "$out/deps")
prefix=$deps/prefix
stamps=$prefix/share/memguard-deps
toolchain=$PWD/cmake/mingw-w64.cmake
mingw=/usr/x86_64-w64-mingw32
mkdir -p "$deps/apt/lists/partial" "$deps/apt/cache/archives/partial" "$deps/src" "$stamps"
apt_opts=(-o "Dir::Etc::SourceList=$deps/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o "Dir::State::Lists=$deps/apt/lists" -o "Dir::Cache=$deps/apt/cache"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root)

apt_update() {
    if [ ! -s "$deps/apt/sources.list" ]; then
        printf '%s\n' "deb-src http://deb.debian.org/debian bookworm main" \
            "deb-src http://deb.debian.org/debian-security bookworm-security main" \
            > "$deps/apt/sources.list"
        apt-get "${apt_opts[@]}" -qq update >&2
    fi
}

# versions SOURCE BINARY: the installed version of BINARY first (if any),
# then the versions of SOURCE that the Sources index lists, newest first.
versions() {
    dpkg-query -W -f='${Version}\n' "$2" 2>/dev/null || true
    apt_update
    apt-cache "${apt_opts[@]}" showsrc "$1" 2>/dev/null | sed -n 's/^Version: //p' |
        sort -r -V -u
}

# fetch SOURCE VERSION: downloads and unpacks the source package (apt
# checks the files against the signed Sources index; dpkg-source then only
# warns that it has no key for the .dsc's own signature); prints its folder.
fetch() {
    local src=$1 version=$2
    local dir=$deps/src/$src-${version//:/_} # no colon: make cannot take one
    if [ ! -d "$dir" ]; then
        apt_update
        (cd "$deps/src" && apt-get "${apt_opts[@]}" -qq source --download-only "$src=$version" &&
         dpkg-source -x "${src}_${version#*:}.dsc" "$dir" >/dev/null 2>&1) >/dev/null 2>&1 ||
            return 1
    fi
    echo "$dir"
}

# cmake_lib NAME SRC_DIR CMAKE_ARGS...: configure, build and install one
# CMake-built library into the prefix. The libdir is absolute: libjpeg-turbo
# reads a relative one against the current folder.
cmake_lib() {
    local name=$1 srcdir=$2
    shift 2
    rm -rf "$deps/build-$name"
    cmake -S "$srcdir" -B "$deps/build-$name" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DMG_WIN_DEPS_PREFIX="$prefix" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR="$prefix/lib" \
        -Wno-dev -Wno-deprecated "$@" >/dev/null
    cmake --build "$deps/build-$name" -j2 --target install >/dev/null
}

# dep NAME SOURCE BINARY CMAKE_ARGS...: NAME built from SOURCE at the
# installed version of BINARY (or the newest that downloads), unless the
# prefix has it already.
dep() {
    local name=$1 src=$2 bin=$3 want stamp="" dir="" v t0
    shift 3
    want=$(dpkg-query -W -f='${Version}' "$bin" 2>/dev/null || echo -)
    # the stamp: the installed version it was built for, the version built
    [ -f "$stamps/$name" ] && stamp=$(cat "$stamps/$name")
    if [ -n "$stamp" ] && { [ "$want" = - ] || [ "${stamp%% *}" = "$want" ]; }; then
        echo "win-deps: $name: Debian $src ${stamp#* } (built)"
        return
    fi
    for v in $(versions "$src" "$bin"); do
        dir=$(fetch "$src" "$v") && break
        dir=""
    done
    if [ -z "$dir" ]; then
        echo "win-deps: cannot download Debian's $src source package (any version)" >&2
        exit 1
    fi
    [ "$want" != - ] && [ "$v" != "$want" ] &&
        echo "win-deps: $name: the installed $bin $want is no longer downloadable"
    t0=$(date +%s)
    cmake_lib "$name" "$dir" "$@"
    echo "$want $v" >"$stamps/$name"
    echo "win-deps: $name: Debian $src $v, built in $(($(date +%s) - t0)) s"
}

dep cjson cjson libcjson-dev -DBUILD_SHARED_LIBS=OFF -DENABLE_CJSON_TEST=OFF \
    -DENABLE_CJSON_UTILS=OFF -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_TARGET_EXPORT=OFF
dep libjpeg libjpeg-turbo libjpeg62-turbo-dev -DENABLE_SHARED=OFF -DWITH_SIMD=OFF \
    -DWITH_TURBOJPEG=OFF
dep libpng libpng1.6 libpng-dev -DPNG_SHARED=OFF -DPNG_TESTS=OFF -DPNG_EXECUTABLES=OFF \
    -DZLIB_LIBRARY="$mingw/lib/libz.a" -DZLIB_INCLUDE_DIR="$mingw/include"
cp "$mingw/lib/pkgconfig/zlib.pc" "$prefix/lib/pkgconfig/"
echo "win-deps: zlib: Debian libz-mingw-w64-dev $(dpkg-query -W -f='${Version}' libz-mingw-w64-dev)"
echo "win-deps: $prefix ready"
