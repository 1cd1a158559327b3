#!/usr/bin/env bash
# demo.sh: the main job on a built-in default: the seed's story on the
# synthetic data set, in about a minute on 2 cores.
#   1. memguard check: the System Resource Check of this machine;
#   2. a normal short training run;
#   3. batch 8 under a tight --ram-budget: the monitor reaches the stop
#      threshold, writes emergency_epochN.pth and exits with 75;
#   4. a resume from that file at batch 6, which fits, to the end.
# Installs what is missing and builds first. Output under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
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

# 235 MiB: batch 8 at 128x128 plans 206 MiB (unet-train plan), above the
# stop threshold of the seed's batch-8 row (84 %); batch 6 plans 163 MiB,
# below the warn threshold of its row (83 %), with about 12 MiB of program.
echo
echo "== 3. batch 8 under --ram-budget 235M: the seed's crash, now a safe stop"
build/unet-train plan --batch 8 --img-size 128 | tail -1
set +e
build/unet-train --synthetic 96 --img-size 128 --batch 8 --epochs 3 --out "$out/seed" \
    --ram-budget 235M --progress lines
status=$?
set -e
echo "(exit $status: 75 means stopped for memory after a good checkpoint)"
[ "$status" -eq 75 ] || { echo "demo: expected exit 75" >&2; exit 1; }
emergency=$(ls "$out"/seed/emergency_epoch*.pth)

echo
echo "== 4. resume from $emergency at batch 6"
build/unet-train --synthetic 96 --img-size 128 --batch 6 --epochs 3 --out "$out/seed" \
    --ram-budget 235M --resume "$emergency" --progress lines | grep -E '^(epoch|done|resumed|\[Batch)'

echo
echo "Files:"
echo "  $out/normal/last.pth, best.pth, metrics.csv   (the normal run)"
echo "  $emergency   (the emergency checkpoint)"
echo "  $out/seed/last.pth, best.pth, metrics.csv     (after the resume)"
echo "They load in PyTorch: torch.load(\"$out/seed/best.pth\")[\"model\"] is the state_dict of"
echo "tests/py/unet_ref.py's UNet. Programs: build/memguard, build/unet-train (--help)."
