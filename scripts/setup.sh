#!/usr/bin/env bash
# setup.sh [main|test]: installs what memguard needs on Debian 12, through
# apt-get, only when something is missing. Idempotent: a second run
# installs nothing and says so. Run as root (or with sudo).
#   main   what the main job (scripts/demo.sh) needs to build memguard and
#          unet-train and run the demo: compiler, CMake, pkg-config, libpng,
#          libjpeg, zlib, cJSON
#   test   (the default) that and everything the tests, benchmarks, man
#          pages and fuzzing need (scripts/test.sh), and the win set
#   win    the Windows cross build and Wine (scripts/test-win.sh); as part
#          of test, a machine that cannot install them says so in one line
#          and the Windows tests are skipped
#
# Why each package is here (main_packages first):
#   build-essential, cmake, pkg-config  compiler, build system, .pc lookup
#   libcjson-dev     `memguard plot` reads the run log with cJSON (libcjson1
#                    at run time); the tests parse `memguard check --json`
#                    with it instead of string matching
#   python3-psutil   the benchmark measures psutil.virtual_memory() side by
#                    side with libmemguard (Debian's python3 at /usr/bin)
#   go-md2man        renders the Markdown man page docs/memguard.1.md
#   libpng-dev, libjpeg-dev  unet-train reads PNG and JPEG images and masks
#   zlib1g-dev       crc32 for the zip container of .pth checkpoints
#   python3-torch, python3-numpy  the oracle: parity tests of the trainer and
#                    the .pth files, the PyTorch side of the benchmarks, and
#                    the Python binding's PyTorch example
#   libopenblas0-pthread  PyTorch at its best for the benchmarks' ratios:
#                    Debian's torch takes libblas.so.3 through alternatives,
#                    and without OpenBLAS that is the netlib reference BLAS
#                    (its transposed convolutions run on BLAS); the benches
#                    print which one torch loaded
#   clang-14, libclang-rt-14-dev, libomp-14-dev  the fuzz harnesses (fuzz/,
#                    scripts/fuzz.sh): clang with libFuzzer, whose runtime
#                    (libclang_rt.fuzzer) and the ASan/UBSan runtimes are in
#                    libclang-rt-14-dev, and clang's OpenMP (the trainer's
#                    core is built again with clang for them)
#   librsvg2-bin, libxml2-dev  test_plot renders every SVG of `memguard plot`
#                    with rsvg-convert and parses it with libxml2
#   python3-venv, python3-setuptools, python3-wheel  test_install: pip
#                    install of the binding into a fresh venv, offline
#   libopenmpi-dev, openmpi-bin  unet-train's data-parallel mode (MPI,
#                    optional: without them it builds for one process) and
#                    its test under mpirun (test_unet_dist), the benchmark
#                    bench/dist.sh
#   win_packages:
#   gcc-mingw-w64-x86-64, libz-mingw-w64-dev  the Windows cross compiler
#                    (mingw-w64) and its zlib
#   wine, wine64     runs the Windows tests (64-bit only; the "wine32 is
#                    missing" notice is harmless)
#   dpkg-dev         dpkg-source unpacks the Debian source packages that
#                    scripts/win-deps.sh cross-builds (cJSON)
set -euo pipefail

main_packages=(build-essential cmake pkg-config libcjson-dev libpng-dev libjpeg-dev zlib1g-dev)

packages=(build-essential cmake pkg-config libcjson-dev python3 python3-psutil go-md2man
          libpng-dev libjpeg-dev zlib1g-dev python3-torch python3-numpy libopenblas0-pthread
          clang-14 libclang-rt-14-dev libomp-14-dev)
packages+=(librsvg2-bin libxml2-dev python3-venv python3-setuptools python3-wheel)
packages+=(libopenmpi-dev openmpi-bin)

win_packages=(gcc-mingw-w64-x86-64 libz-mingw-w64-dev wine wine64 dpkg-dev)

# missing PACKAGE...: prints those not installed
missing() {
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            printf '%s\n' "$p"
        fi
    done
}

# install WHAT PACKAGE...: installs the missing ones; fails when it cannot
install() {
    local what=$1
    shift
    local todo
    mapfile -t todo < <(missing "$@")
    if [ ${#todo[@]} -eq 0 ]; then
        echo "setup: all $# $what packages already installed"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing $what packages: ${todo[*]}; run as root (or: sudo $0)" >&2
        return 1
    fi
    echo "setup: installing ${todo[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${todo[@]}" &&
        echo "setup: done"
}

# The Windows set, as part of test: optional, one line when it fails.
install_win_optional() {
    if ! install Windows "${win_packages[@]}"; then
        echo "setup: the Windows cross build's packages could not be installed;" \
             "scripts/test.sh skips the Windows tests"
    fi
}

case "${1:-test}" in
    main) install main "${main_packages[@]}" ;;
    test) install test "${packages[@]}" && install_win_optional ;;
    win) install Windows "${win_packages[@]}" ;;
    *) echo "setup: '$1': expected main, test or win (default: test)" >&2; exit 2 ;;
esac
