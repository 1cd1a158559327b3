#!/usr/bin/python3
"""tests/launchers/trainer.py: a small PyTorch trainer on the CPU that
test_launchers.c runs under `memguard run` through the launchers people use
(plain python, torchrun, torch.multiprocessing.spawn, a bash wrapper, a tee
pipeline), with DataLoader workers forked or spawned.

It trains a tiny segmentation net (two 3x3 convolutions, BCE + Dice, Adam)
on random images, wired to memguard the way the README says: a Guard on
every rank, should_stop() at every batch on every rank, rank 0 saves
emergency_epochN.pth (Guard.emergency_save: atomic, acknowledged through
MEMGUARD_ACK_FILE, exit 75). Everything memory-related that a scenario needs
is an option, so that a request comes at a known point: a preloaded tensor
that forked workers share (--preload-mib), memory kept per batch
(--grow-mib), a data-loading phase before the Guard exists (--load-mib,
--load-seconds), a Guard budget on one rank only (--guard-headroom-mib).

It does not judge anything: the C driver checks the exit status, the files
and these lines on stdout:
    "tree: rss_sum=N pss_sum=N nprocs=N" (--report-tree, bytes, mid-epoch)
    "stop at epoch E batch B: REASON"    (rank 0; other ranks "[rank R] stop ...")
    "Training finished"                   (ran to the end without a stop)
"""
import argparse
import os
import sys
import time

# One thread per process: the machine is small and shared.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import memguard

MIB = 1 << 20


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=20, help="train batches per epoch")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--batch-sleep", type=float, default=0.0, help="seconds per batch")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--mp-context", choices=["fork", "spawn"], default="fork")
    ap.add_argument("--preload-mib", type=int, default=0,
                    help="a tensor of this size made before the workers, read by each")
    ap.add_argument("--report-tree", action="store_true",
                    help="print the process tree's RSS and PSS sums mid-epoch")
    ap.add_argument("--grow-mib", type=int, default=0, help="MiB kept after each batch")
    ap.add_argument("--grow-from-epoch", type=int, default=0)
    ap.add_argument("--grow-max-mib", type=int, default=1536)
    ap.add_argument("--grow-rank", type=int, default=-1, help="only this rank grows")
    ap.add_argument("--load-mib", type=int, default=0, help="kept while 'loading data'")
    ap.add_argument("--load-seconds", type=float, default=0.0,
                    help="time spent loading data before the Guard exists")
    ap.add_argument("--guard-headroom-mib", type=int, default=0,
                    help="the Guard of --grow-rank judges its own tree against its "
                         "RSS at start + this")
    ap.add_argument("--mp-spawn", type=int, default=0,
                    help="start this many ranks with torch.multiprocessing.spawn")
    return ap.parse_args(argv)


# ---- model and data --------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


def bce_dice(logits, target):
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + dice.mean()


class Images(Dataset):
    """Random images, plus ``preload``: a tensor held in memory for the
    workers to share (touch_preload reads it)."""

    def __init__(self, n, size, preload):
        self.n, self.size, self.preload = n, size, preload

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = torch.rand(3, self.size, self.size, generator=g)
        return img, (img[:1] > 0.5).float()


def touch_preload(worker_id):
    """worker_init_fn: each worker reads the whole preloaded tensor once (a
    real dataset is read in full over the epochs), without writing it."""
    info = torch.utils.data.get_worker_info()
    pre = info.dataset.preload
    if pre is not None:
        float(pre.sum())


# ---- memory the scenarios ask for ----------------------------------------------------------

def keep(kept, mib):
    """Appends mib MiB of touched (written) memory to ``kept``."""
    kept.append(bytearray(b"\x01") * (mib * MIB))


def tree_pids(root):
    """root and its descendants, from /proc/PID/task/*/children."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return pids


def rollup(pid, key):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def report_tree():
    """Prints the RSS and PSS sums of this process and its descendants,
    the two ways of counting memory that forked workers share."""
    pids = tree_pids(os.getpid())
    rss = sum(rollup(p, "Rss") for p in pids)
    pss = sum(rollup(p, "Pss") for p in pids)
    print(f"tree: rss_sum={rss} pss_sum={pss} nprocs={len(pids)}", flush=True)


# ---- ranks --------------------------------------------------------------------------------

def rank_and_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def say(text):
    """A line on stdout, prefixed "[rank R] " on ranks other than 0."""
    rank, _ = rank_and_world()
    print(text if rank == 0 else f"[rank {rank}] {text}", flush=True)


def make_guard(args):
    rank, _ = rank_and_world()
    kw = {}
    if args.guard_headroom_mib and rank == max(args.grow_rank, 0):
        with memguard.Monitor(no_gpu=True) as m:
            m.sample()
            rss = m.reading()["process_tree"]["rss_bytes"]
        kw["ram_budget"] = rss + args.guard_headroom_mib * MIB
    return memguard.Guard(no_gpu=True, **kw)


def loader(args):
    rank, world = rank_and_world()
    preload = None
    if args.preload_mib:
        preload = torch.ones(args.preload_mib * MIB // 4 // 1024, 1024)  # float32 rows of 4 KiB
    n = args.batches * args.batch * world
    ds = Images(n, args.img, preload)
    sampler = None
    if world > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(ds, world, rank, shuffle=False)
    kw = {}
    if args.workers:
        kw = dict(num_workers=args.workers, multiprocessing_context=args.mp_context,
                  worker_init_fn=touch_preload)
    return DataLoader(ds, batch_size=args.batch, sampler=sampler, **kw)


def train(args):
    rank, world = rank_and_world()
    torch.manual_seed(0)
    loading = []
    if args.load_mib or args.load_seconds:
        keep(loading, args.load_mib)
        say(f"loading data ({args.load_mib} MiB, {args.load_seconds} s)")
        time.sleep(args.load_seconds)
    guard = make_guard(args)
    data = loader(args)
    model = Net()
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    grows = args.grow_mib and args.grow_rank in (-1, rank)
    kept = []
    for epoch in range(args.epochs):
        guard.epoch_start(epoch)
        for i, (x, y) in enumerate(data):
            guard.train_batch(i)
            if guard.should_stop():
                say(f"stop at epoch {epoch} batch {i}: {guard.stop_reason}")
                del kept[:], loading[:]
                guard.emergency_save(lambda p: torch.save(
                    {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "epoch": epoch, "batch": i}, p), epoch, directory=args.out_dir)
            opt.zero_grad()
            bce_dice(model(x), y).backward()
            opt.step()
            if args.report_tree and epoch == 0 and i == args.batches // 2:
                report_tree()
            if grows and epoch >= args.grow_from_epoch and \
                    len(kept) * args.grow_mib < args.grow_max_mib:
                keep(kept, args.grow_mib)
            if args.batch_sleep:
                time.sleep(args.batch_sleep)
        say(f"epoch {epoch} done")
    guard.close()
    say("Training finished")
    return 0


def spawned_rank(rank, args, world):
    dist.init_process_group("gloo", init_method="file://" +
                            os.path.join(os.path.abspath(args.out_dir), "..", "rendezvous"),
                            rank=rank, world_size=world)
    sys.exit(train(args))


def main():
    args = parse_args()
    if args.mp_spawn:
        import torch.multiprocessing as mp
        mp.spawn(spawned_rank, args=(args, args.mp_spawn), nprocs=args.mp_spawn)
        return 0
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun
        dist.init_process_group("gloo")
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
