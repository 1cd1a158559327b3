#!/usr/bin/env bash
# build.sh [DIR [CMAKE ARGS...]]: configures and builds into DIR (default
# build/), warnings as errors. The programs land in DIR/memguard.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DMG_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
