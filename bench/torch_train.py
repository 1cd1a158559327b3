"""The PyTorch side of bench/train_vs_torch.py: trains tests/py/unet_ref.py
on random images for a number of steps and prints the median images/s.
Run by Debian's /usr/bin/python3 (python3-torch 1.13) with
OPENBLAS_NUM_THREADS=1, as research/pytorch-interop.md d.2 measured.

    torch_train.py --size 128 --batch 8 --steps 12 --warmup 3 --threads 2
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))
from unet_ref import UNet, bce_dice_loss  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = UNet(3, 16, 4)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(a.batch, 3, a.size, a.size)
    t = (torch.rand(a.batch, 1, a.size, a.size) > 0.7).float()
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = bce_dice_loss(m(x), t)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(f"images_per_s {a.batch / statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
