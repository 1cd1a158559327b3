#!/usr/bin/env bash
# release-win.sh [BUILD_DIR [OUT_DIR]]: the Windows release zip. First the
# Windows cross build and its tests under Wine (scripts/test-win.sh
# BUILD_DIR, default build-win/): a zip is only made from a build whose
# tests passed. Then OUT_DIR (default dist/) gets memguard-VERSION-win64/
# and memguard-VERSION-win64.zip (zipped with python3's zipfile: no other
# tool needed):
#   bin/memguard.exe, bin/libmemguard.dll   (stripped copies)
#   bin/unet-train.exe                      when the build has it
#   lib/libmemguard.dll.a                   mingw-w64's import library
#   include/memguard.h
#   python/memguard/                        the package, with libmemguard.dll beside it
#   examples/train_unet.py                  the seed's PyTorch script with the Guard
#   QUICKSTART.md                           docs/windows-quickstart.md
#   MANIFEST.txt                            version, commit, what is in and what is not,
#                                           each file's size and SHA-256
# It replaces only its own memguard-VERSION-win64 folder and zip in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-win}
out=${2:-dist}
scripts/test-win.sh "$build"
for f in memguard.exe libmemguard.dll libmemguard.dll.a; do
    if [ ! -f "$build/$f" ]; then
        echo "release-win: $build/$f is missing: no Windows build (scripts/setup.sh win, then" \
             "scripts/test-win.sh)" >&2
        exit 1
    fi
done
version=$(sed -n 's/^project(memguard VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
name=memguard-$version-win64
stage=$out/$name
rm -rf "$stage" "$out/$name.zip"
mkdir -p "$stage/bin" "$stage/lib" "$stage/include" "$stage/python" "$stage/examples"

strip=x86_64-w64-mingw32-strip
"$strip" -o "$stage/bin/memguard.exe" "$build/memguard.exe"
"$strip" --strip-unneeded -o "$stage/bin/libmemguard.dll" "$build/libmemguard.dll"
if [ -f "$build/unet-train.exe" ]; then
    "$strip" -o "$stage/bin/unet-train.exe" "$build/unet-train.exe"
    unet="bin/unet-train.exe: the C UNet trainer"
else
    unet="unet-train.exe: NOT in this build (the Windows build of unet-train has not landed, or MG_UNET is off)"
    echo "release-win: $unet" >&2
fi
cp "$build/libmemguard.dll.a" "$stage/lib/"
cp include/memguard.h "$stage/include/"
mkdir "$stage/python/memguard"
cp python/memguard/*.py "$stage/python/memguard/"
cp "$stage/bin/libmemguard.dll" "$stage/python/memguard/"
cp examples/pytorch/train_unet.py "$stage/examples/"
cp docs/windows-quickstart.md "$stage/QUICKSTART.md"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "memguard $version for Windows x64, from commit $commit$dirty"
    echo "cross-built with mingw-w64 on Debian, tested under Wine (scripts/test-win.sh)"
    echo "$unet"
    echo
    (cd "$stage" && find . -type f ! -name MANIFEST.txt | sort | while read -r f; do
        printf '%10s  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)" "${f#./}"
    done)
} > "$stage/MANIFEST.txt"

(cd "$out" && /usr/bin/python3 -m zipfile -c "$name.zip" "$name")
echo "release-win: $out/$name.zip ($(stat -c %s "$out/$name.zip") bytes)"
