"""Training throughput and peak RSS of unet-train against Debian's PyTorch
(python3-torch 1.13) on the same UNet, side by side in one run.

    /usr/bin/python3 bench/train_vs_torch.py [--build build] [--rounds 2] [--isa avx2] [--bf16]

Configurations: synthetic 128x128 RGB at batch 8 and batch 4, and 256x256
at batch 4; default model (base 16, depth 4); 2 threads each
(OMP_NUM_THREADS=2 for unet-train, torch.set_num_threads(2) and
OPENBLAS_NUM_THREADS=1 for PyTorch). Each run is its own process, so its
peak RSS (ru_maxrss from wait4) is its own. The rounds alternate the two
programs so drift on a shared machine hits both; the table shows medians
over rounds and the ratios. Targets (issue 17): throughput >= 2.0x
PyTorch's natively, >= 1.7x with --isa avx2, peak RSS <= 0.35x, and
>= 55 % of the FMA peak.

The FMA peak is bench/fma_peak's (built with the project): independent
FMA chains on every thread, AVX-512 natively, AVX2 with --isa avx2,
measured in the same run (once per round; the best of the run counts, as
a peak should). Each program's training rate in GFLOPS is its images/s
times the UNet's multiply-adds per image x 2 (forward, backward-data
except the input layer's, backward-weight of every convolution: 4.53
GFLOP at 128x128, research/cnn-in-c.md 4), printed as a fraction of that
peak. Those are the direct convolution's multiply-adds: where unet-train
runs a 3x3 convolution as Winograd F(2x2, 3x3) (forward, backward-data, weights)
(4 multiply-adds instead of 9, UNET_WINOGRAD in unet-train(1)) it does
fewer, so its fraction is an effective one, the direct loop's speed that
would give the same images/s.

--bf16 also runs unet-train --precision bf16 in every round (beside its
float32 run, same binary) and prints its images/s and its ratio to the
float32 median (target, issue 17: >= 1.5x); bf16's fraction of the peak is
of bench/fma_peak's bf16 (VDPBF16PS) peak.

--omp-wait passive sets OMP_WAIT_POLICY=passive for both programs (both
use libgomp): on a machine other people load, threads that spin at
OpenMP barriers while their partner waits for a core cost both sides
2-5x (README, Benchmarks), and the ratios then measure the scheduler.

--isa avx2 plays a CPU without AVX-512 (most desktops, the first user's
among them) on one that has it: UNET_KERNELS=avx2 for unet-train, and
ATEN_CPU_CAPABILITY=avx2 with DNNL_MAX_CPU_ISA=AVX2 for PyTorch (its ATen
kernels and its oneDNN convolutions), so both sides use the same ISA.
"""
import os
import statistics
import subprocess
import sys
import tempfile

import side_by_side

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{out}")
    return out, ru.ru_maxrss / 1024.0  # MiB




def unet_train(build, size, batch, steps, isa, precision="fp32"):
    env = dict(os.environ, OMP_NUM_THREADS="2", **side_by_side.ISA_ENV[isa][0])
    with tempfile.TemporaryDirectory() as out:
        # One epoch of `steps` batches after a one-epoch warm-up; no
        # validation, so the epoch's rate is the training rate.
        n = batch * steps
        cmd = [os.path.join(build, "unet-train"), "--synthetic", str(n), "--val-split", "0",
               "--img-size", str(size), "--batch", str(batch), "--epochs", "2",
               "--threads", "2", "--progress", "lines", "--precision", precision, "--out", out]
        _, rss = run(cmd, env)
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = [line.split(",") for line in f.read().split("\n")[1:] if line]
        return float(rows[-1][7]), rss


def torch_train(size, batch, steps, isa):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **side_by_side.ISA_ENV[isa][1])
    out, rss = run(["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), "--size", str(size),
                    "--batch", str(batch), "--steps", str(steps), "--threads", "2"], env)
    rate = float([ln for ln in out.split("\n") if ln.startswith("images_per_s")][0].split()[1])
    return rate, rss


def train_gflop_per_image(size, in_ch=3, base=16, depth=4):
    """FLOP of one training image (x 1e-9): 2 x the multiply-adds of every
    convolution's forward, backward-data (none for the input layer) and
    backward-weight; BN, pooling, loss and Adam are < 1 % and left out."""
    macs_fwd, macs_dx = 0, 0

    def conv(ci, co, hw, taps, first=False):
        nonlocal macs_fwd, macs_dx
        m = hw * hw * ci * co * taps
        macs_fwd += m
        if not first:
            macs_dx += m

    ch = [base << i for i in range(depth + 1)]
    hw = size
    prev = in_ch
    for i in range(depth):
        conv(prev, ch[i], hw, 9, first=(i == 0))
        conv(ch[i], ch[i], hw, 9)
        prev = ch[i]
        hw //= 2
    conv(ch[depth - 1], ch[depth], hw, 9)
    conv(ch[depth], ch[depth], hw, 9)
    for i in reversed(range(depth)):
        conv(ch[i + 1], ch[i], hw, 4)  # ConvTranspose2d 2x2 s2: 4 taps per input pixel
        hw *= 2
        conv(2 * ch[i], ch[i], hw, 9)
        conv(ch[i], ch[i], hw, 9)
    conv(ch[0], 1, hw, 1)
    return 2 * (2 * macs_fwd + macs_dx) * 1e-9


def fma_peak(build, isa):
    """GFLOPS of bench/fma_peak's all-thread loops (2 threads): the FMA
    peak for the ISA, and the bf16 one (None where the CPU has none)."""
    out, _ = run([os.path.join(build, "bench", "fma_peak"), "0.2", "5"],
                 dict(os.environ, OMP_NUM_THREADS="2"))
    got = {}
    for ln in out.split("\n"):
        f = ln.split()
        if len(f) == 4 and f[0] == "peak" and f[2] == "2":
            got[f[1]] = float(f[3])
    want = "avx512" if isa == "native" else "avx2"
    if want not in got:
        sys.exit(f"fma_peak gave no 2-thread {want} peak:\n{out}")
    return got[want], got.get("bf16")


def main():
    ap = side_by_side.parser(rounds=2)
    a = ap.parse_args()
    side_by_side.apply(a)
    configs = [(128, 8, 12), (128, 4, 16), (256, 4, 8)]
    print(f"{'config':>12} {'unet-train img/s':>17} {'torch img/s':>12} {'speed':>7} "
          f"{'unet RSS MiB':>13} {'torch RSS MiB':>14} {'RSS':>6}"
          + (f" {'bf16 img/s':>11} {'bf16/fp32':>10}" if a.bf16 else ""))
    peaks, bpeaks, rows = [], [], []
    for size, batch, steps in configs:
        u, t, b = [], [], []
        for _ in range(a.rounds):
            p, pb = fma_peak(a.build, a.isa)
            peaks.append(p)
            if pb:
                bpeaks.append(pb)
            u.append(unet_train(a.build, size, batch, steps, a.isa))
            t.append(torch_train(size, batch, steps, a.isa))
            if a.bf16:
                b.append(unet_train(a.build, size, batch, steps, a.isa, "bf16"))
        ur = statistics.median(r for r, _ in u)
        tr = statistics.median(r for r, _ in t)
        um = statistics.median(m for _, m in u)
        tm = statistics.median(m for _, m in t)
        br = statistics.median(r for r, _ in b) if b else None
        rows.append((size, batch, ur, tr, br))
        print(f"{f'{size}px b{batch}':>12} {ur:>17.2f} {tr:>12.2f} {ur / tr:>6.2f}x "
              f"{um:>13.1f} {tm:>14.1f} {um / tm:>5.2f}x"
              + (f" {br:>11.2f} {br / ur:>9.2f}x" if b else ""), flush=True)
    peak = max(peaks)
    bpeak = max(bpeaks) if bpeaks else None
    print(f"FMA peak ({'AVX-512' if a.isa == 'native' else 'AVX2'}, 2 threads, bench/fma_peak, "
          f"best of {len(peaks)} in this run): {peak:.1f} GFLOPS"
          + (f"; bf16 (VDPBF16PS) peak {bpeak:.1f}" if bpeak else ""))
    print(f"{'config':>12} {'GFLOP/img':>10} {'unet-train':>11} {'torch':>7}"
          + (f" {'bf16':>7}" if a.bf16 else "") + "   (training GFLOPS, direct-convolution FLOP, as a fraction of the peak)")
    for size, batch, ur, tr, br in rows:
        gf = train_gflop_per_image(size)
        print(f"{f'{size}px b{batch}':>12} {gf:>10.2f} {100 * ur * gf / peak:>10.1f}% "
              f"{100 * tr * gf / peak:>6.1f}%"
              + (f" {100 * br * gf / bpeak:>6.1f}%" if br and bpeak else ""))

if __name__ == "__main__":
    main()
