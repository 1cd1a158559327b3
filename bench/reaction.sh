#!/usr/bin/env bash
# reaction.sh: does the checkpoint beat the budget? `memguard run` guards a
# child (bench/ramp.c) that allocates at 1, 4 and 8 GB/s (GiB-based: 1000,
# 4000, 8000 MiB/s; the rate it achieved is printed) under a 2 GiB budget
# with the default thresholds (warn 85 %, stop 88 %). On the request the
# child "saves" for SAVE_MS (100) while its memory keeps growing at the same
# rate, as a run whose DataLoader workers do not pause would; the save
# counts as made before the hard limit when the child's peak RSS stayed
# below the budget. Each rate runs RUNS times (10) with the prediction
# (default: at warn, act when the measured growth fills the budget within
# --predict-lead, 3 s) and with --no-predict, interleaved. Printed per rate
# and mode: the share of saves before the limit, the median request point
# (% of the budget, memguard's --log) and the median peak.
# Usage: bench/reaction.sh [BUILD_DIR] [RUNS] [SAVE_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-10}
save_ms=${3:-100}
[ -x "$build/bench/bench_ramp" ] || scripts/build.sh "$build"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 "$runs"); do
    for rate in 1000 4000 8000; do
        for mode in predict no-predict; do
            rm -f "$tmp/log" "$tmp/res"
            flag=(--predict-lead 3s)
            [ "$mode" = no-predict ] && flag=(--no-predict)
            set +e
            "$build/memguard" run --no-gpu --ram-budget 2G "${flag[@]}" --log "$tmp/log" -- \
                "$build/bench/bench_ramp" "$rate" 4 "$tmp/res" "$save_ms" 2>/dev/null
            st=$?
            set -e
            req=$(grep '"event":"request"' "$tmp/log" | head -1 |
                  /usr/bin/python3 -c 'import json,sys; l=sys.stdin.read(); print(json.loads(l)["sample"]["ram"]["used_frac"] if l else "nan")')
            res=$(cat "$tmp/res" 2>/dev/null || echo "none")
            echo "$rate $mode $st $req $res" >> "$tmp/all"
        done
    done
done
/usr/bin/python3 - "$tmp/all" "$save_ms" <<'PY'
import re, statistics, sys
budget = 2 * 1024**3
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(re.findall(r"(\w+)=([0-9.]+)", line))
    rows.setdefault((int(f[0]), f[1]), []).append((int(f[2]), float(f[3]), kv))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"save {sys.argv[2]} ms while memory keeps growing; budget 2 GiB, warn 85 %, stop 88 %")
print(f"{'rate MiB/s':>10} {'mode':>10} {'runs':>4} {'achieved':>8} {'saved<limit':>11} "
      f"{'request at':>10} {'peak':>7}")
for (rate, mode), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "predict")):
    ok = [r for r in rs if r[0] == 75 and "hwm_kib" in r[2]]
    peaks = [float(r[2]["hwm_kib"]) * 1024 / budget * 100 for r in ok]
    saved = sum(1 for p in peaks if p < 100)
    ach = med([float(r[2]["achieved_mib_s"]) for r in ok])
    req = med([r[1] * 100 for r in ok if r[1] == r[1]])
    print(f"{rate:>10} {mode:>10} {len(rs):>4} {ach:>8.0f} {saved:>5}/{len(rs):<5} "
          f"{req:>9.1f}% {med(peaks):>6.1f}%")
PY
