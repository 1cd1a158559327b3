"""Training throughput and peak RSS of unet-train against Debian's PyTorch
(python3-torch 1.13) on the same UNet, side by side in one run.

    /usr/bin/python3 bench/train_vs_torch.py [--build build] [--rounds 2] [--isa avx2]

Configurations: synthetic 128x128 RGB at batch 8 and batch 4, and 256x256
at batch 4; default model (base 16, depth 4); 2 threads each
(OMP_NUM_THREADS=2 for unet-train, torch.set_num_threads(2) and
OPENBLAS_NUM_THREADS=1 for PyTorch). Each run is its own process, so its
peak RSS (ru_maxrss from wait4) is its own. The rounds alternate the two
programs so drift on a shared machine hits both; the table shows medians
over rounds and the ratios. Targets (issue 4): throughput >= 1.4x
PyTorch's, peak RSS <= 0.4x.

--isa avx2 plays a CPU without AVX-512 (most desktops, the first user's
among them) on one that has it: UNET_KERNELS=avx2 for unet-train, and
ATEN_CPU_CAPABILITY=avx2 with DNNL_MAX_CPU_ISA=AVX2 for PyTorch (its ATen
kernels and its oneDNN convolutions), so both sides use the same ISA.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, env):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{out}")
    return out, ru.ru_maxrss / 1024.0  # MiB


ISA_ENV = {
    "native": ({}, {}),
    "avx2": ({"UNET_KERNELS": "avx2"}, {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}),
}


def unet_train(build, size, batch, steps, isa):
    env = dict(os.environ, OMP_NUM_THREADS="2", **ISA_ENV[isa][0])
    with tempfile.TemporaryDirectory() as out:
        # One epoch of `steps` batches after a one-epoch warm-up; no
        # validation, so the epoch's rate is the training rate.
        n = batch * steps
        cmd = [os.path.join(build, "unet-train"), "--synthetic", str(n), "--val-split", "0",
               "--img-size", str(size), "--batch", str(batch), "--epochs", "2",
               "--threads", "2", "--progress", "lines", "--out", out]
        _, rss = run(cmd, env)
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = [line.split(",") for line in f.read().split("\n")[1:] if line]
        return float(rows[-1][7]), rss


def torch_train(size, batch, steps, isa):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **ISA_ENV[isa][1])
    out, rss = run(["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), "--size", str(size),
                    "--batch", str(batch), "--steps", str(steps), "--threads", "2"], env)
    rate = float([ln for ln in out.split("\n") if ln.startswith("images_per_s")][0].split()[1])
    return rate, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--isa", choices=sorted(ISA_ENV), default="native")
    a = ap.parse_args()
    print(f"isa: {a.isa}")
    configs = [(128, 8, 12), (128, 4, 16), (256, 4, 8)]
    print(f"{'config':>12} {'unet-train img/s':>17} {'torch img/s':>12} {'speed':>7} "
          f"{'unet RSS MiB':>13} {'torch RSS MiB':>14} {'RSS':>6}")
    for size, batch, steps in configs:
        u, t = [], []
        for _ in range(a.rounds):
            u.append(unet_train(a.build, size, batch, steps, a.isa))
            t.append(torch_train(size, batch, steps, a.isa))
        ur = statistics.median(r for r, _ in u)
        tr = statistics.median(r for r, _ in t)
        um = statistics.median(m for _, m in u)
        tm = statistics.median(m for _, m in t)
        print(f"{f'{size}px b{batch}':>12} {ur:>17.2f} {tr:>12.2f} {ur / tr:>6.2f}x "
              f"{um:>13.1f} {tm:>14.1f} {um / tm:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
