#!/usr/bin/env bash
# demo.sh: the main job on a built-in default: the seed's story on the
# synthetic data set, in about a minute on 2 cores.
#   1. memguard check: the System Resource Check of this machine;
#   2. a normal short training run;
#   3. batch 8 under a tight --ram-budget, guarded by `memguard run` with
#      the same budget: the monitor reaches the stop threshold, the trainer
#      writes emergency_epochN.pth and exits with 75;
#   4. a resume from that file at batch 6, which fits, to the end;
#   5. `memguard plot` of step 3's log: one SVG of the run.
# Installs what is missing (scripts/setup.sh main: compiler, CMake, libpng,
# libjpeg, zlib, cJSON) and builds the programs first (not the tests).
# Output under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh main
scripts/build.sh build -DMG_TESTS=OFF
out=runs/demo
rm -rf "$out"
mkdir -p "$out"

echo
echo "== 1. memguard check"
build/memguard check || true

echo
echo "== 2. a normal run: unet-train --synthetic 96 --img-size 64 --batch 4 --epochs 3"
build/unet-train --synthetic 96 --img-size 64 --batch 4 --epochs 3 --out "$out/normal" \
    --progress lines | grep -E '^(epoch|done|data|memory plan|note)'

# 185 MiB: batch 8 at 128x128 plans 169 MiB with the data (unet-train
# plan) and peaks at 175 MiB RSS, above the stop threshold of the seed's
# batch-8 row (84 %: 155 MiB); batch 6 plans 137 MiB with the data and
# peaks at 143, below the warn threshold of its row (83 %: 154 MiB) and
# memguard run's (80 %: 148 MiB).
# memguard run watches the same budget with the same row (80 / 84 %) and
# logs a sample every 20 ms: whichever monitor sees the stop line first,
# the trainer's own or memguard run's request, the trainer saves and
# exits 75.
echo
echo "== 3. batch 8 under --ram-budget 185M: the seed's crash, now a safe stop"
build/unet-train plan --batch 8 --img-size 128 | tail -1
mkdir -p "$out/seed"
set +e
build/memguard run --ram-budget 185M --warn-ram 80% --stop-ram 84% --report-interval 20 \
    --log "$out/seed/run.jsonl" -- \
    build/unet-train --synthetic 96 --img-size 128 --batch 8 --epochs 3 --out "$out/seed" \
    --ram-budget 185M --progress lines
status=$?
set -e
echo "(exit $status: 75 means stopped for memory after a good checkpoint)"
[ "$status" -eq 75 ] || { echo "demo: expected exit 75" >&2; exit 1; }
emergency=$(ls "$out"/seed/emergency_epoch*.pth)

echo
echo "== 4. resume from $emergency at batch 6"
build/unet-train --synthetic 96 --img-size 128 --batch 6 --epochs 3 --out "$out/seed" \
    --ram-budget 185M --resume "$emergency" --progress lines | grep -E '^(epoch|done|resumed|\[Batch)'

echo
echo "== 5. the plot of step 3: memguard plot $out/seed/run.jsonl"
build/memguard plot "$out/seed/run.jsonl" -o "$out/seed/run.svg"

echo
echo "Files:"
echo "  $out/normal/last.pth, best.pth, metrics.csv   (the normal run)"
echo "  $emergency   (the emergency checkpoint)"
echo "  $out/seed/last.pth, best.pth, metrics.csv     (after the resume)"
echo "  $out/seed/run.jsonl   (memguard run's log of step 3)"
echo "  $out/seed/run.svg     (its plot: RAM against the budget, the events; open it in a browser)"
echo "They load in PyTorch: torch.load(\"$out/seed/best.pth\")[\"model\"] is the state_dict of"
echo "tests/py/unet_ref.py's UNet. Programs: build/memguard, build/unet-train (--help)."
