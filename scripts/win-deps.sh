#!/usr/bin/env bash
# win-deps.sh [DIR]: builds, for the Windows cross build, the libraries that
# Debian has no mingw-w64 build of: libpng and libjpeg-turbo (unet-train's
# images) and cJSON (`memguard plot`, the tests). It compiles Debian's own
# source packages with the mingw-w64 cross compiler (the toolchain file
# cmake/mingw-w64.cmake, or $MG_WIN_TOOLCHAIN) into DIR/prefix (default
# build-win/deps: a build-* folder, so git ignores it). zlib is Debian's
# libz-mingw-w64-dev, used as it is (its zlib.pc is copied beside the others).
#
# The sources come through a private apt configuration under DIR/apt
# (deb-src lines for bookworm and bookworm-security, its own lists and
# cache): nothing under /etc is read for sources or written. apt checks the
# files against the signed indexes. dpkg-source applies Debian's patches, so
# the decoders are Debian's, and the Windows trainer decodes every image to
# the same bytes as the Linux one (test_unet_win_image checks it).
#
# Idempotent: when DIR/prefix holds a build of these exact versions (its
# stamp file), it prints the versions and does nothing else. It does not
# install packages (scripts/setup.sh win does) and does not build memguard.
#
# The versions are pinned and printed. libpng 1.6.39-2+deb12u6 is listed in
# bookworm-security but its files answered 404 on this mirror (see
# ../shared/research/windows.md), so deb12u5 from bookworm is the pin.
# libjpeg-turbo is built WITH_SIMD=OFF (no nasm needed): its SIMD and C
# paths decode to the same bytes, which the image test checks against the
# Linux build (that uses Debian's SIMD library).
set -euo pipefail

PNG_SRC=libpng1.6 PNG_VERSION=1.6.39-2+deb12u5
JPEG_SRC=libjpeg-turbo JPEG_VERSION=1:2.1.5-2
CJSON_SRC=cjson CJSON_VERSION=1.7.15-1+deb12u4
MINGW=/usr/x86_64-w64-mingw32

if [ $# -gt 1 ]; then
    echo "usage: win-deps.sh [DIR]   (DIR defaults to build-win/deps)" >&2
    exit 2
fi
dir=$(realpath -m "${1:-build-win/deps}")
cd "$(dirname "$0")/.."
tc=$(realpath -m "${MG_WIN_TOOLCHAIN:-cmake/mingw-w64.cmake}")
prefix=$dir/prefix
stamp="$prefix/.memguard-deps"
want="$PNG_SRC=$PNG_VERSION $JPEG_SRC=$JPEG_VERSION $CJSON_SRC=$CJSON_VERSION zlib=$(dpkg-query -W -f='${Version}' libz-mingw-w64-dev 2>/dev/null || echo missing)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "win-deps: already built in $prefix: $want"
    exit 0
fi
for tool in x86_64-w64-mingw32-gcc-posix dpkg-source cmake; do
    if ! command -v "$tool" >/dev/null; then
        echo "win-deps: $tool is missing; run scripts/setup.sh win first" >&2
        exit 1
    fi
done
if [ ! -f "$MINGW/lib/libz.a" ] || [ ! -f "$tc" ]; then
    echo "win-deps: need $MINGW/lib/libz.a (libz-mingw-w64-dev) and the toolchain file $tc" >&2
    exit 1
fi
echo "win-deps: building $want into $prefix"
t0=$(date +%s)

# The private apt configuration: its own sources, lists and cache.
apt=$dir/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/src"
cat >"$apt/sources.list" <<EOF
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
A=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
   -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
   -o APT::Sandbox::User=root -qq)
apt-get "${A[@]}" update
rm -rf "$dir/src" "$dir"/build-* "$prefix" "$dir/dpkg-source.log"
mkdir -p "$dir/src"
(cd "$dir/src" && apt-get "${A[@]}" source --download-only \
    "$PNG_SRC=$PNG_VERSION" "$JPEG_SRC=$JPEG_VERSION" "$CJSON_SRC=$CJSON_VERSION" &&
    for dsc in ./*.dsc; do dpkg-source -q -x "$dsc" >>../dpkg-source.log 2>&1 ||
        { cat ../dpkg-source.log >&2; exit 1; }; done)
png_dir=$(echo "$dir"/src/libpng1.6-*/)
jpeg_dir=$(echo "$dir"/src/libjpeg-turbo-*/)
cjson_dir=$(echo "$dir"/src/cjson-*/)

common=(-DCMAKE_TOOLCHAIN_FILE="$tc" -DMG_WIN_DEPS_PREFIX="$prefix" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
        -DCMAKE_INSTALL_LIBDIR="$prefix/lib" -Wno-dev -Wno-deprecated --no-warn-unused-cli)  # libjpeg-turbo takes a relative one from the cwd
cmake -S "$jpeg_dir" -B "$dir/build-jpeg" "${common[@]}" -DENABLE_SHARED=OFF -DWITH_SIMD=OFF \
    -DWITH_TURBOJPEG=OFF >/dev/null
cmake --build "$dir/build-jpeg" -j2 --target install >/dev/null
cmake -S "$png_dir" -B "$dir/build-png" "${common[@]}" -DPNG_SHARED=OFF -DPNG_TESTS=OFF \
    -DPNG_EXECUTABLES=OFF -DZLIB_LIBRARY="$MINGW/lib/libz.a" \
    -DZLIB_INCLUDE_DIR="$MINGW/include" >/dev/null
cmake --build "$dir/build-png" -j2 --target install >/dev/null
cmake -S "$cjson_dir" -B "$dir/build-cjson" "${common[@]}" -DBUILD_SHARED_LIBS=OFF \
    -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF >/dev/null
cmake --build "$dir/build-cjson" -j2 --target install >/dev/null
# libpng.pc requires zlib.pc: Debian's, beside the others (the toolchain
# file lets pkg-config see this prefix only).
cp "$MINGW/lib/pkgconfig/zlib.pc" "$prefix/lib/pkgconfig/"
echo "$want" >"$stamp"
echo "win-deps: built $want in $(($(date +%s) - t0)) s"
