#!/usr/bin/env bash
# win-deps.sh TOOLCHAIN [DIR]: builds the image libraries unet-train.exe needs
# (libpng, libjpeg-turbo) for Windows with the mingw-w64 cross compiler, from
# Debian's own source packages, into DIR/prefix (default build-win/deps; a
# build-* folder, so git ignores it). TOOLCHAIN is the project's CMake
# toolchain file for mingw-w64. zlib is Debian's libz-mingw-w64-dev (the
# only one of the three Debian ships built for mingw).
#
# The sources come through a private apt configuration under DIR/apt
# (deb-src lines for bookworm and bookworm-security, its own lists and
# cache): nothing under /etc is read for sources or written. apt checks them
# against the signed indexes. dpkg-source applies Debian's patches, so the
# decoders are Debian's, and the Windows trainer decodes every image to the
# same bytes as the Linux one (test_unet_win_image checks it).
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
MINGW=/usr/x86_64-w64-mingw32

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: win-deps.sh TOOLCHAIN [DIR]   (DIR defaults to build-win/deps)" >&2
    exit 2
fi
tc=$(realpath "$1")
cd "$(dirname "$0")/.."
dir=$(realpath -m "${2:-build-win/deps}")
prefix=$dir/prefix
stamp="$prefix/.memguard-deps"
want="$PNG_SRC=$PNG_VERSION $JPEG_SRC=$JPEG_VERSION zlib=$(dpkg-query -W -f='${Version}' libz-mingw-w64-dev 2>/dev/null || echo missing)"

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
    echo "win-deps: need $MINGW/lib/libz.a (libz-mingw-w64-dev) and the toolchain file '$1'" >&2
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
rm -rf "$dir/src" "$dir/build-jpeg" "$dir/build-png" "$prefix" "$dir/dpkg-source.log"
mkdir -p "$dir/src"
(cd "$dir/src" && apt-get "${A[@]}" source --download-only \
    "$PNG_SRC=$PNG_VERSION" "$JPEG_SRC=$JPEG_VERSION" &&
    for dsc in ./*.dsc; do dpkg-source -q -x "$dsc" >>../dpkg-source.log 2>&1 ||
        { cat ../dpkg-source.log >&2; exit 1; }; done)
png_dir=$(echo "$dir"/src/libpng1.6-*/)
jpeg_dir=$(echo "$dir"/src/libjpeg-turbo-*/)

common=(-DCMAKE_TOOLCHAIN_FILE="$tc" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
        -DCMAKE_INSTALL_LIBDIR="$prefix/lib")  # libjpeg-turbo takes a relative one from the cwd
cmake -S "$jpeg_dir" -B "$dir/build-jpeg" "${common[@]}" -DENABLE_SHARED=OFF -DWITH_SIMD=OFF \
    -DWITH_TURBOJPEG=OFF >/dev/null
cmake --build "$dir/build-jpeg" -j2 --target install >/dev/null
cmake -S "$png_dir" -B "$dir/build-png" "${common[@]}" -DPNG_SHARED=OFF -DPNG_TESTS=OFF \
    -DPNG_EXECUTABLES=OFF -DZLIB_LIBRARY="$MINGW/lib/libz.a" \
    -DZLIB_INCLUDE_DIR="$MINGW/include" >/dev/null
cmake --build "$dir/build-png" -j2 --target install >/dev/null
echo "$want" >"$stamp"
echo "win-deps: built $want in $(($(date +%s) - t0)) s"
