"""Inference throughput of unet-train's model against PyTorch's
torch.inference_mode() on the same UNet, side by side in one run.

    /usr/bin/python3 bench/infer_vs_torch.py [--build build] [--rounds 3] [--isa avx2] [--bf16]

The C side is bench_infer (the eval-mode forward `unet-train predict` runs,
without image decoding and PNG writing); the PyTorch side is
tests/py/unet_ref.py in eval mode under torch.inference_mode(). Both get
random 128x128 (batch 8) and 256x256 (batch 4) RGB batches, 2 threads
(OPENBLAS_NUM_THREADS=1 for PyTorch), each run its own process; rounds
alternate the two and the table shows medians and their ratio. Target
(issue 17): >= 2x PyTorch. --isa avx2 limits both sides to AVX2 as
train_vs_torch.py does; --bf16 adds bench_infer in bf16; --omp-wait
passive sets OMP_WAIT_POLICY=passive for both (see train_vs_torch.py).
"""
import argparse
import os
import statistics
import subprocess
import sys

import side_by_side

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)



def rate(cmd, env):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    return float([ln for ln in p.stdout.split("\n") if ln.startswith("images_per_s")][0].split()[1])


def torch_side(size, batch, steps, warmup, threads):
    import time
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
    from unet_ref import UNet
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = UNet(3, 16, 4).eval()
    x = torch.rand(batch, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            m(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    print(f"images_per_s {batch / statistics.median(times):.3f}")


def main():
    ap = side_by_side.parser(rounds=3)
    ap.add_argument("--torch-side", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_side:
        torch_side(*a.torch_side, 2, 2)
        return
    side_by_side.apply(a)
    print(f"{'config':>12} {'unet img/s':>11} {'torch img/s':>12} {'speed':>7}"
          + (f" {'bf16 img/s':>11} {'bf16/fp32':>10}" if a.bf16 else ""))
    for size, batch, steps in [(128, 8, 10), (256, 4, 6)]:
        u, t, b = [], [], []
        cenv = dict(os.environ, OMP_NUM_THREADS="2", **side_by_side.ISA_ENV[a.isa][0])
        tenv = dict(os.environ, OPENBLAS_NUM_THREADS="1", **side_by_side.ISA_ENV[a.isa][1])
        infer = os.path.join(a.build, "bench", "bench_infer")
        for _ in range(a.rounds):
            u.append(rate([infer, str(size), str(batch), str(steps)], cenv))
            t.append(rate(["/usr/bin/python3", os.path.abspath(__file__), "--torch-side",
                           str(size), str(batch), str(steps)], tenv))
            if a.bf16:
                b.append(rate([infer, str(size), str(batch), str(steps), "2", "bf16"], cenv))
        ur, tr = statistics.median(u), statistics.median(t)
        line = f"{f'{size}px b{batch}':>12} {ur:>11.2f} {tr:>12.2f} {ur / tr:>6.2f}x"
        if b:
            br = statistics.median(b)
            line += f" {br:>11.2f} {br / ur:>9.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
