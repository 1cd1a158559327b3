#!/usr/bin/env bash
# demo.sh: the main job on a built-in default. Installs what is missing,
# builds, then shows memguard on this machine: one System Resource Check
# and five seconds of `memguard watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build

echo
echo "== memguard check"
set +e
build/memguard check
status=$?
set -e
case $status in
    0) echo "(exit 0: safe)";;
    3) echo "(exit 3: warn)";;
    4) echo "(exit 4: critical)";;
    *) echo "(exit $status: error)"; exit "$status";;
esac

echo
echo "== memguard watch --interval 1000 --count 5"
build/memguard watch --interval 1000 --count 5
echo
echo "The programs are in build/: build/memguard --help"
