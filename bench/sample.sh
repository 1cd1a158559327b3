#!/usr/bin/env bash
# sample.sh: cost of one memory sample, libmemguard side by side with a bare
# pread of /proc/meminfo and with psutil.virtual_memory() (Debian's
# python3-psutil), in the same run. Medians of interleaved rounds; ratios
# are what to compare (these machines are shared and noisy).
# Targets (issue 2): ram <= 1.3x bare, psutil >= 4x ram.
# Usage: bench/sample.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -x "$build/bench/bench_sample" ] || scripts/build.sh "$build"

c_out=$("$build/bench/bench_sample" 20000 7)
py_ns=$(/usr/bin/python3 - <<'PY'
import statistics, time, psutil
iters, rounds = 20000, 7
psutil.virtual_memory()
res = []
for _ in range(rounds):
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        psutil.virtual_memory()
    res.append((time.perf_counter_ns() - t0) / iters)
print(round(statistics.median(res)))
PY
)
bare=$(awk '$1=="bare"{print $2}' <<<"$c_out")
ram=$(awk '$1=="ram"{print $2}' <<<"$c_out")
full=$(awk '$1=="full"{print $2}' <<<"$c_out")
nprocs=$(awk '$1=="full_nprocs"{print $2}' <<<"$c_out")
printf '%-40s %10s\n' "what (median ns per sample)" "ns"
printf '%-40s %10s\n' "bare pread /proc/meminfo" "$bare"
printf '%-40s %10s\n' "memguard RAM only" "$ram"
printf '%-40s %10s\n' "memguard RAM+cgroup+tree($nprocs)+PSI" "$full"
printf '%-40s %10s\n' "psutil.virtual_memory()" "$py_ns"
awk -v b="$bare" -v r="$ram" -v p="$py_ns" 'BEGIN{
  printf "ratio memguard RAM / bare pread : %.2fx (target <= 1.3x)\n", r/b;
  printf "ratio psutil / memguard RAM    : %.2fx (target >= 4x)\n", p/r;
  printf "ratio psutil / bare pread      : %.2fx (the most any meminfo reader can reach here)\n", p/b }'
