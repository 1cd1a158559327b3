"""One rank of test_distributed.py's two-process gloo group on the CPU.

    _dist_rank.py RANK WORLD INIT_FILE OUT_DIR MODE

Trains nothing: each step is one all-reduce standing for DDP's gradient
sync, then Guard.train_batch (checks every 10th step) and Guard.should_stop
(every step, as a trainer must call it on every rank). Only rank 1 is ever
in trouble:

- MODE "budget": rank 1's Guard has a RAM budget of its own RSS + 96 MiB
  and rank 1 keeps 192 MiB (touched) from step 12: its check at step 20 is
  critical; rank 0 cannot go critical (thresholds at 100 %).
- MODE "file": rank 1 alone watches a stop file (stop.rank1 beside
  OUT_DIR), which it writes itself at step 13 in memguard run's format with
  the reason STOP_REASON.

Each rank prints "rank R stops at step S: REASON" and the number of
collectives it ran, then calls emergency_save (rank 0 saves, acknowledges
and prints the banner). Exit status 75 after the stop, 3 if the loop ran to
its end without one.
"""
import os
import sys

import torch
import torch.distributed as dist

import memguard

STOP_REASON = "RAM usage high: 99.0% (1.98GB/2.0GB)"
STEPS = 60


def counting(name, counts):
    """Wraps torch.distributed.NAME so that each call adds one to
    counts[name] (memguard looks the function up at each call)."""
    real = getattr(dist, name)

    def wrapper(*args, **kw):
        counts[name] += 1
        return real(*args, **kw)

    setattr(dist, name, wrapper)


def make_guard(rank, mode, stop_file):
    if rank == 0:
        return memguard.Guard(no_gpu=True, warn_ram=1.0, stop_ram=1.0, stop_file="")
    if mode == "budget":
        with memguard.Monitor(no_gpu=True) as m:
            m.sample()
            rss = m.reading()["process_tree"]["rss_bytes"]
        return memguard.Guard(no_gpu=True, ram_budget=rss + (96 << 20), stop_file="")
    return memguard.Guard(no_gpu=True, warn_ram=1.0, stop_ram=1.0,
                          stop_file=stop_file)


def main():
    rank, world, init_file, out_dir, mode = sys.argv[1:6]
    rank, world = int(rank), int(world)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    stop_file = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "stop.rank1")
    guard = make_guard(rank, mode, stop_file)
    counts = {"all_reduce": 0, "broadcast_object_list": 0}
    counting("all_reduce", counts)
    counting("broadcast_object_list", counts)
    hog = None
    for step in range(STEPS):
        dist.all_reduce(torch.ones(4))
        if rank == 1 and mode == "budget" and step == 12:
            hog = b"\x01" * (192 << 20)
        if rank == 1 and mode == "file" and step == 13:
            with open(stop_file, "w") as f:
                f.write(f"memguard stop request\n{STOP_REASON}\n")
        guard.train_batch(step)
        if guard.should_stop():
            print(f"rank {rank} stops at step {step}: {guard.stop_reason}", flush=True)
            print(f"rank {rank} collectives: all_reduce={counts['all_reduce']} "
                  f"broadcast_object_list={counts['broadcast_object_list']}", flush=True)
            del hog
            guard.emergency_save(lambda p: torch.save({"step": step}, p), epoch=1,
                                 directory=out_dir)
    print(f"rank {rank} ran to the end", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
