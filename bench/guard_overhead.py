"""What the memory guard inside unet-train costs in training throughput.

    /usr/bin/python3 bench/guard_overhead.py [--build build] [--rounds 10]
        [--size 128] [--batch 8] [--steps 16]

Two measurements, both on the same build:

1. Interleaved training runs of the same binary with the guard on (the
   defaults: a check every 10th training batch, the watcher thread between
   checks, the stop-request poll at every batch) and off as far as the
   trainer allows (--no-watcher, --check-train and --check-eval 1000000:
   only the epoch-start check and the per-batch stop poll remain). Each
   run trains one warm-up epoch and one timed epoch of synthetic images
   (no validation) and reports the timed epoch's images/s (metrics.csv).
   Rounds run on,off then off,on alternately, so drift hits both; printed:
   the median of each, and the median over rounds of the paired
   difference (off - on) / off, with its quartiles: on a shared machine
   the spread is the noise floor of this test. The same difference in
   images per CPU second of the whole run (user + system time; OpenMP
   threads wait passively, OMP_WAIT_POLICY=passive, in both modes, so
   spinning does not count) is far less sensitive to other processes.
2. The guard's cost on its own (bench_guard_overhead): the per-batch poll,
   one due check and the watcher's CPU per second, turned into a fraction
   of the timed epoch's step time at the "on" median. That is the cost the
   A/B difference cannot resolve below its noise.

Target (issue 17): the difference <= 0.5 % of throughput. Run nothing else
meanwhile if you can; write the load (uptime) beside the numbers.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

OFF = ["--no-watcher", "--check-train", "1000000", "--check-eval", "1000000"]


def train(build, size, batch, steps, threads, extra):
    """images/s of the second (timed) epoch, and images per CPU second of
    the whole run (both epochs; user + system time of all its threads)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [os.path.join(build, "unet-train"), "--synthetic", str(batch * steps),
               "--val-split", "0", "--img-size", str(size), "--batch", str(batch),
               "--epochs", "2", "--threads", str(threads), "--progress", "lines",
               "--out", out] + extra
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS=str(threads),
                                      OMP_WAIT_POLICY="passive"))
        text = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed ({status}): {' '.join(cmd)}\n{text}")
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = [line.split(",") for line in f.read().split("\n")[1:] if line]
        return float(rows[-1][7]), 2 * batch * steps / (ru.ru_utime + ru.ru_stime)


def guard_cost(build):
    p = subprocess.run([os.path.join(build, "bench", "bench_guard_overhead"), "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_guard_overhead failed: {p.stdout}")
    return {k: float(v) for k, v in (ln.split() for ln in p.stdout.split("\n") if ln)}


def quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"guard on vs off: {a.size} px, batch {a.batch}, {a.steps} timed steps per run, "
          f"{a.threads} threads, {a.rounds} rounds", flush=True)
    on, off, diff, cdiff = [], [], [], []
    for r in range(a.rounds):
        order = [("on", []), ("off", OFF)] if r % 2 == 0 else [("off", OFF), ("on", [])]
        got = {}
        for name, extra in order:
            got[name] = train(a.build, a.size, a.batch, a.steps, a.threads, extra)
        (won, con), (woff, coff) = got["on"], got["off"]
        on.append(won)
        off.append(woff)
        diff.append((woff - won) / woff)
        cdiff.append((coff - con) / coff)
        print(f"  round {r + 1}: on {won:.2f} img/s, off {woff:.2f} img/s, difference "
              f"{100 * diff[-1]:+.2f} %; per CPU second {100 * cdiff[-1]:+.2f} %", flush=True)
    print(f"median images/s: on {statistics.median(on):.2f}, off {statistics.median(off):.2f}")
    for what, d in (("wall time", diff), ("CPU time", cdiff)):
        lo, hi = quartiles(d)
        print(f"guard overhead, {what} (median of paired (off - on) / off): "
              f"{100 * statistics.median(d):+.2f} % (quartiles {100 * lo:+.2f} .. {100 * hi:+.2f} %; "
              f"target <= 0.5 %)")
    c = guard_cost(a.build)
    step_s = a.batch / statistics.median(on)
    per_step = (c["poll_ns"] * 1e-9 + c["check_us"] * 1e-6 / 10) / step_s
    watcher = c["watcher_cpu_ms_per_s"] * 1e-3 / a.threads
    print(f"guard cost on its own: poll {c['poll_ns']:.0f} ns per batch, check {c['check_us']:.1f} us "
          f"every 10th, watcher {c['watcher_cpu_ms_per_s']:.3f} ms CPU per s")
    print(f"  = {100 * (per_step + watcher):.4f} % of a {1e3 * step_s:.0f} ms step on {a.threads} "
          f"threads (loop {100 * per_step:.4f} %, watcher {100 * watcher:.4f} %)")


if __name__ == "__main__":
    main()
