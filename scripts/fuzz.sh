#!/usr/bin/env bash
# fuzz.sh [--keep-going] [SECONDS] [HARNESS...]: builds the libFuzzer
# harnesses of fuzz/ with clang into build-fuzz/ and runs each for SECONDS
# (default 60; every harness in fuzz/ unless some are named, e.g.
# fuzz_pickle). scripts/test.sh runs it with 15 seconds each.
#
# Each harness starts from its checked-in seeds (fuzz/corpus/<h>, never
# written) plus what earlier runs kept (build-fuzz/corpus/<h>), with its
# dictionary (fuzz/dict/<h>.dict) when there is one; a crash lands in
# build-fuzz/artifacts/<h>/ and fails the script. A known crash, one saved
# under fuzz/crashes/<h>/ (NAME, and NAME.txt saying what it is), is
# replayed first: while it still crashes, that harness only replays its
# corpus (no mutation), so the open bug does not fail every run, and the
# script says so; once it is fixed the harness fuzzes again and the script
# says the crash can move into the corpus. --keep-going (long runs by
# hand) fuzzes every harness anyway, in libFuzzer's fork mode, which goes
# on after a crash and counts them. Ends with one line per harness:
# executions, coverage (edges), features, corpus size, and the verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_going=0
if [ "${1:-}" = --keep-going ]; then
    keep_going=1
    shift
fi
secs=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
if [ $# -gt 0 ]; then
    harnesses=("$@")
else
    harnesses=()
    for f in fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi

cc=clang-14
command -v "$cc" >/dev/null || cc=clang
echo "== build the fuzz harnesses ($cc, build-fuzz/)"
cmake -S fuzz -B build-fuzz -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${harnesses[@]}"

# The harnesses write their files under TMPDIR: memory is faster than disk.
if [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
# use-after-return: fuzz_ini reads the options its reader left behind
export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1

# Replays the saved crashes of $1; prints the still-open ones' names.
open_crashes() {
    local h=$1 f
    [ -d "fuzz/crashes/$h" ] || return 0
    for f in "fuzz/crashes/$h"/*; do
        [ -f "$f" ] && [[ $f != *.txt ]] || continue
        if "build-fuzz/$h" -timeout=10 "$f" >/dev/null 2>&1; then
            echo "fuzz: $h: $(basename "$f") no longer crashes: move it into fuzz/corpus/$h" >&2
        else
            echo "$(basename "$f")"
        fi
    done
}

summary=()
failed=0
for h in "${harnesses[@]}"; do
    work=build-fuzz/corpus/$h
    arts=build-fuzz/artifacts/$h
    mkdir -p "$work" "$arts"
    args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$arts/")
    [ -f "fuzz/dict/$h.dict" ] && args+=(-dict="fuzz/dict/$h.dict")
    known=""
    [ "$keep_going" -eq 1 ] || known=$(open_crashes "$h")
    if [ "$keep_going" -eq 1 ]; then
        echo "== $h: $secs s, going on after crashes"
        args+=(-max_total_time="$secs" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
        mode="${secs} s fork"
    elif [ -n "$known" ]; then
        for k in $known; do
            echo "fuzz: $h: known open crash $k: $(cat "fuzz/crashes/$h/$k.txt" 2>/dev/null)"
        done
        echo "== $h: corpus only (the crash above is not fixed yet)"
        args+=(-runs=0)
        mode="corpus only"
    else
        echo "== $h: $secs s"
        args+=(-max_total_time="$secs")
        mode="${secs} s"
    fi
    log=build-fuzz/$h.log
    rc=0
    "build-fuzz/$h" "${args[@]}" "$work" "fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
    # the last status line: "#N DONE cov: ..." (or NEW, pulse... before a
    # crash) or, in fork mode, "#N: cov: ..."
    last=$(grep -E '^#[0-9]+(:|[[:space:]]+[A-Z]+)[[:space:]]+cov:' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
    crashes=$(sed -n 's/.*oom\/timeout\/crash: \([0-9/]*\).*/\1/p' <<<"$last")
    if [ "$keep_going" -eq 1 ]; then
        verdict=ok
        if [ "${crashes:-0/0/0}" != 0/0/0 ]; then
            verdict="oom/timeout/crash $crashes (see $arts/)"
            failed=1
        fi
    elif [ "$rc" -eq 0 ]; then
        verdict=ok
    else
        verdict="CRASH (exit $rc, see $log and $arts/)"
        failed=1
        grep -E 'ERROR|fuzz check failed|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    fi
    summary+=("$(printf '%-14s %-12s execs %-9s cov %-5s ft %-6s corpus %-12s %s' "$h" "$mode" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$verdict")")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
