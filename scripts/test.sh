#!/usr/bin/env bash
# test.sh: every test. Installs what is missing, builds, runs the whole
# ctest suite, then cross-builds for Windows and runs the Windows suite
# under Wine (scripts/test-win.sh; skipped, with one line, where mingw-w64
# or Wine is not installed), then builds again with AddressSanitizer +
# UBSan and runs the suite once more, then fuzzes each libFuzzer harness of
# fuzz/ for 15 s (scripts/fuzz.sh). Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

echo "== build and test (build/)"
scripts/build.sh build -DMG_TESTS=ON   # the demo builds build/ without the tests
(cd build && ctest --output-on-failure -j2 --timeout 300)

echo "== Windows: cross build and tests under Wine (build-win/)"
scripts/test-win.sh build-win

echo "== build and test with ASan + UBSan (build-asan/)"
scripts/build.sh build-asan -DMG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2 --timeout 600)

echo "== fuzz each harness for 15 s (build-fuzz/)"
scripts/fuzz.sh 15
