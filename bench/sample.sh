#!/usr/bin/env bash
# sample.sh: cost of one memory sample, libmemguard side by side with a bare
# pread of /proc/meminfo and with psutil.virtual_memory() (Debian's
# python3-psutil), in the same run. Medians of interleaved rounds; ratios
# are what to compare (these machines are shared and noisy).
# Targets (issue 2): ram <= 1.3x bare, psutil >= 4x ram.
# Then the process tree (issue 10): a parent sharing 1 GiB copy-on-write
# with its forked children, trees of 1, 5 and 17 processes, one sample on
# the RSS path (no budget) against one on the PSS path (smaps_rollup of
# every member), medians, and the interval mg_next_poll_ms settles at for
# such PSS samples once the 100 ms burst of sampling work is spent (10x
# their cost). Needs about 1.2 GiB of free RAM.
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

echo
printf '%-34s %12s %12s %9s %14s %18s\n' "tree sharing 1 GiB (median)" "RSS path" "PSS path" \
  "PSS/RSS" "RSS sum, PSS" "PSS-paced poll"
for n in 1 5 17; do
  t=$("$build/bench/bench_sample" tree "$n" 1024 15)
  get() { awk -v k="$1" '$1==k{print $2}' <<<"$t"; }
  awk -v n="$n" -v r="$(get tree_rss)" -v p="$(get tree_pss)" -v rm="$(get tree_rss_mib)" \
      -v pm="$(get tree_pss_mib)" -v np="$(get tree_next_poll_ms)" 'BEGIN{
    printf "%-34s %9.1f us %9.2f ms %8.0fx %7.0f,%5.0f MiB %15d ms\n",
      n " process" (n == 1 ? "" : "es"), r / 1e3, p / 1e6, p / r, rm, pm, np }'
done
