#!/usr/bin/env bash
# unet_win.sh LINUX_BUILD WIN_BUILD WINE: test_unet_win, the Windows
# trainer against the Linux one in the same test run (ctest of the Windows
# cross build; scripts/test-win.sh gives the Linux build folder). Checks:
#   1. images: the Linux build's unet_imgtool writes 14 PNG/JPEG files; both
#      builds decode them with image.c (floats, the training pipeline, the
#      mask pipeline): every byte equal;
#   2. training: the same synthetic run (seed, sizes, 3 epochs of 5 steps,
#      1 thread, the kernels the CPU has on both) gives the same losses,
#      Dice and IoU in metrics.csv: equal to 1e-5 relative (seen: equal to
#      the 6 decimals printed but one, 8e-7). Not bit-identical: the loss's
#      expf/log1pf and Adam's pow come from each system's libm (glibc,
#      mingw-w64), the only platform-dependent arithmetic on that path, and
#      the two differ in the last bit (each of expf, log1pf, exp, log, cos
#      and pow, over 10^6 inputs); after these 15 Adam steps the weights
#      differ by up to 3e-3 of the largest value of a tensor, because Adam
#      turns last-bit differences of near-zero gradients into whole steps;
#   3. UTF-8 paths: the Windows run writes into a folder named 学習, and the
#      Linux side finds its files under that very name;
#   4. forward: `predict --logits` of the Linux run's checkpoint over the
#      images gives bit-identical logits on both (convolutions, BN, pooling:
#      the same kernels, no libm on that path).
#   5. the --out folder: while one unet-train.exe trains, a second on the
#      same folder is refused (LockFileEx) naming the first's pid; a dead
#      run's temporary (NAME.pth.tmp.PID of a pid no process has) is
#      removed at the start, a file that only looks alike stays; .lock is
#      gone when the run ends.
# Exits 77 (skipped, with one line) when LINUX_BUILD has no unet-train or
# unet_imgtool; 1 with a line per failure.
set -uo pipefail
lin=$1 win=$2 wine=$3
fails=0 step_fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# report TEXT: "ok TEXT", or "not ok TEXT" when a check failed since the last report
report() {
    if [ "$fails" -eq "$step_fails" ]; then echo "ok $*"; else echo "not ok $*"; fi
    step_fails=$fails
}
for f in "$lin/unet-train" "$lin/tests/unet_imgtool"; do
    if [ ! -x "$f" ]; then
        echo "skipped: $f is not built (build the Linux tree first: scripts/build.sh build -DMG_TESTS=ON)"
        exit 77
    fi
done
zpath() { echo "Z:$(realpath -m "$1" | tr / '\\')"; } # Wine's drive Z: is /
t=$(mktemp -d "$win/tests/unet_win.XXXXXX")
trap 'rm -rf "$t"' EXIT
export OMP_WAIT_POLICY=PASSIVE WINEDEBUG=-all

# 1. images
mkdir -p "$t/img" "$t/lin" "$t/win"
"$lin/tests/unet_imgtool" write "$t/img" || bad "unet_imgtool write"
imgs=("$t"/img/*)
wimgs=()
for f in "${imgs[@]}"; do wimgs+=("$(zpath "$f")"); done
"$lin/tests/unet_imgtool" decode "$t/lin" "${imgs[@]}" || bad "Linux decoding"
"$wine" "$win/tests/unet_imgtool.exe" decode "$(zpath "$t/win")" "${wimgs[@]}" ||
    bad "Windows decoding"
n=0
for f in "$t"/lin/*; do
    cmp -s "$f" "$t/win/${f##*/}" || bad "image ${f##*/}: Windows decodes other bytes than Linux"
    n=$((n + 1))
done
[ "$n" -eq $((3 * ${#imgs[@]})) ] || bad "image decodings: $n files, expected $((3 * ${#imgs[@]}))"
report "1 images: ${#imgs[@]} files, $n decodings byte-identical"

# 2. training
base=(--synthetic 48 --img-size 32 --base 8 --depth 2 --batch 8 --lr 0.01 --threads 1
      --seed 7 --progress lines)
args=("${base[@]}" --epochs 3)
mkdir -p "$t/学習"
"$lin/unet-train" "${args[@]}" --out "$t/lin_run" >"$t/lin_run.log" 2>&1 ||
    bad "Linux training: $(tail -3 "$t/lin_run.log")"
"$wine" "$win/unet-train.exe" "${args[@]}" --out "$(zpath "$t/学習/win_run")" \
    >"$t/win_run.log" 2>&1 || bad "Windows training: $(tail -3 "$t/win_run.log")"
lm=$t/lin_run/metrics.csv wm=$t/学習/win_run/metrics.csv
# columns 2-7: train_loss, train_bce, train_dice_loss, val_loss, val_dice, val_iou
worst=$(paste -d, "$lm" "$wm" 2>/dev/null | tr -d '\r' | awk -F, '
    NR == 1 { h = NF / 2; next }
    { rows++; for (i = 2; i <= 7; i++) {
          a = $i; b = $(i + h); d = a - b; if (d < 0) d = -d
          m = a < 0 ? -a : a; r = d / (m > 1e-6 ? m : 1e-6)
          if (r > w) w = r; if (a == "" || b == "") w = 1 } }
    END { if (rows < 2) w = 1; printf "%.3g\n", w }')
awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }' ||
    bad "training: losses differ by $worst relative (allowed 1e-5), or a run has no metrics.csv"
report "2 training: 3 epochs of 5 steps, losses/Dice/IoU equal to $worst relative"
echo "   Linux:   $(sed -n 4p "$lm" 2>/dev/null | cut -d, -f1-7)"
echo "   Windows: $(sed -n 4p "$wm" 2>/dev/null | tr -d '\r' | cut -d, -f1-7)"

# 3. the UTF-8 name, seen from Linux
for f in metrics.csv last.pth best.pth; do
    [ -s "$t/学習/win_run/$f" ] || bad "Windows run: no $f under the folder 学習"
done
report "3 UTF-8 path: the Windows run wrote into 学習/win_run"

# 4. forward
"$lin/unet-train" predict --checkpoint "$t/lin_run/last.pth" --input "$t/img" \
    --out "$t/lin_pred" --logits "$t/lin_pred.npy" --threads 1 >"$t/lin_pred.log" 2>&1 ||
    bad "Linux predict: $(tail -3 "$t/lin_pred.log")"
"$wine" "$win/unet-train.exe" predict --checkpoint "$(zpath "$t/lin_run/last.pth")" \
    --input "$(zpath "$t/img")" --out "$(zpath "$t/win_pred")" \
    --logits "$(zpath "$t/win_pred.npy")" --threads 1 >"$t/win_pred.log" 2>&1 ||
    bad "Windows predict: $(tail -3 "$t/win_pred.log")"
cmp -s "$t/lin_pred.npy" "$t/win_pred.npy" || bad "predict: the logits differ"
report "4 forward: predict --logits over ${#imgs[@]} images bit-identical"

# 5. the --out folder: the lock, dead temporaries
o=$t/locked
mkdir -p "$o"
echo junk >"$o/last.pth.tmp.99999"   # Windows pids are multiples of 4: no such process
echo mine >"$o/notes.tmp.99999"
"$wine" "$win/unet-train.exe" "${base[@]}" --epochs 40 --out "$(zpath "$o")" >"$t/first.log" 2>&1 &
first=$!
for _ in $(seq 200); do # up to 20 s for the first run to hold its lock
    grep -q '^unet-train [0-9]' "$o/.lock" 2>/dev/null && break
    sleep 0.1
done
holder=$(sed -n 's/^unet-train \([0-9]*\)$/\1/p' "$o/.lock" 2>/dev/null)
[ -n "$holder" ] || bad "--out lock: no .lock naming a pid within 20 s"
[ -e "$o/last.pth.tmp.99999" ] && bad "--out: the dead run's last.pth.tmp.99999 is still there"
[ -e "$o/notes.tmp.99999" ] || bad "--out: notes.tmp.99999 (not a checkpoint temporary) was removed"
"$wine" "$win/unet-train.exe" "${args[@]}" --out "$(zpath "$o")" >"$t/second.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "in use by another unet-train (pid $holder)" "$t/second.log" ||
    bad "--out lock: a second run gave status $rc: $(tail -1 "$t/second.log")"
wait "$first" || bad "--out lock: the first run failed: $(tail -2 "$t/first.log")"
[ -e "$o/.lock" ] && bad "--out lock: .lock left behind"
report "5 --out folder: a second run refused (pid $holder), a dead temporary removed, .lock gone"
[ "$fails" -eq 0 ]
