#!/usr/bin/env bash
# reaction.sh: how fast `memguard run` reacts under a 2 GiB budget. A child
# (bench/ramp.c) allocates at 1 GB/s and at 4 GB/s (GiB-based: 1000 and
# 4000 MiB/s), 20 runs each; memguard asks it to stop at the stop
# threshold (88 %). Reported per rate: the worst overshoot past the stop
# threshold (child's peak RSS - 88 % of the budget, as % of the budget),
# whether the budget was ever exceeded, and the detection-to-signal latency
# (median and max) from memguard's --log. Targets (issue 3): never over
# the budget; overshoot at 1 GB/s <= 2 % of the budget.
# Usage: bench/reaction.sh [BUILD_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-20}
[ -x "$build/bench/bench_ramp" ] || scripts/build.sh "$build"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for rate in 1000 4000; do
    for i in $(seq 1 "$runs"); do
        rm -f "$tmp/log" "$tmp/res"
        set +e
        "$build/memguard" run --no-gpu --ram-budget 2G --log "$tmp/log" -- \
            "$build/bench/bench_ramp" "$rate" 4 "$tmp/res" 2>/dev/null
        st=$?
        set -e
        lat=$(grep '"event":"request"' "$tmp/log" | grep -o '"latency_ms":[0-9.]*' | cut -d: -f2 || true)
        res=$(cat "$tmp/res" 2>/dev/null || echo "none")
        echo "$rate $st ${lat:-nan} $res" >> "$tmp/all"
    done
done
/usr/bin/python3 - "$tmp/all" <<'PY'
import re, statistics, sys
budget = 2 * 1024**3
stop = 0.88 * budget
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rate, st, lat = int(f[0]), int(f[1]), float(f[2])
    kv = dict(re.findall(r"(\w+)=([0-9.]+)", line))
    rows.setdefault(rate, []).append((st, lat, kv))
print(f"{'rate MiB/s':>10} {'runs':>4} {'exit75':>6} {'achieved MiB/s':>14} {'worst overshoot':>16} "
      f"{'over budget':>11} {'latency med':>11} {'latency max':>11}")
for rate, rs in sorted(rows.items()):
    ok = [r for r in rs if r[0] == 75 and 'hwm_kib' in r[2]]
    over = [(float(r[2]['hwm_kib']) * 1024 - stop) / budget * 100 for r in ok]
    exceeded = sum(1 for r in ok if float(r[2]['hwm_kib']) * 1024 > budget)
    lats = [r[1] for r in ok]
    ach = statistics.median(float(r[2]['achieved_mib_s']) for r in ok) if ok else float('nan')
    print(f"{rate:>10} {len(rs):>4} {len(ok):>6} {ach:>14.0f} "
          f"{(max(over) if over else float('nan')):>15.2f}% {exceeded:>11} "
          f"{(statistics.median(lats) if lats else float('nan')):>9.3f}ms "
          f"{(max(lats) if lats else float('nan')):>9.3f}ms")
PY
