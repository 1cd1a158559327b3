#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Torch side of tests/unet/app/test_unet_guard.c (the trainer's memory guard).

  unet_guard_check.py load FILE [KIND [EPOCH_DONE [BATCH]]]
      torch.load(FILE), builds unet_ref.UNet from the file's "config" and
      loads "model" with strict=True; checks resume.kind == KIND and
      epoch == EPOCH_DONE and resume.batch == BATCH when given ("-" skips).
      Prints "OK epoch=E batch=B kind=K".
  unet_guard_check.py equal A B
      Every tensor of "model" and of "optimizer" state bitwise equal
      (torch.equal, same dtype and shape), same param_groups, same epoch.
  unet_guard_check.py loaddir DIR
      Every DIR/*.pth loads (strict); other names only *.pth.tmp.* and
      curves.svg.tmp.* strays, metrics.csv and curves.svg. Prints "OK pth=N
      tmp=T".
  unet_guard_check.py make-sd OUT IN_CH BASE DEPTH SEED
      torch.save(UNet(IN_CH, BASE, DEPTH).state_dict(), OUT), weights only.
  unet_guard_check.py batch FILE
      Runs FILE's lines "LABEL<TAB>COMMAND ARGS" in one process.
Exit status 0 only when everything matched; a missing torch is exit 3.
"""
import os
import sys

try:
    import torch
except Exception as e:  # noqa: BLE001
    print(f"unet_guard_check.py: cannot import torch ({e})", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet  # noqa: E402


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def load(path):
    return torch.load(path, map_location="cpu")


def cmd_load(args):
    d = load(args[0])
    if not isinstance(d, dict) or "model" not in d or "config" not in d:
        fail(f"{args[0]}: not a checkpoint dict with model and config")
    c = d["config"]
    net = UNet(int(c["in_ch"]), int(c["base"]), int(c["depth"]))
    net.load_state_dict(d["model"], strict=True)
    r = d.get("resume", {})
    if len(args) > 1 and args[1] != "-" and r.get("kind") != args[1]:
        fail(f"kind {r.get('kind')!r} != {args[1]!r}")
    if len(args) > 2 and args[2] != "-" and int(d["epoch"]) != int(args[2]):
        fail(f"epoch {d['epoch']} != {args[2]}")
    if len(args) > 3 and args[3] != "-" and int(r.get("batch", -1)) != int(args[3]):
        fail(f"batch {r.get('batch')} != {args[3]}")
    if "optimizer" in d:
        st = d["optimizer"]["state"]
        if len(st) and len(st) != len(list(net.parameters())):
            fail(f"optimizer state for {len(st)} of {len(list(net.parameters()))} parameters")
    print(f"OK epoch={int(d['epoch'])} batch={int(r.get('batch', -1))} kind={r.get('kind')}")


def same(a, b, what):
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        fail(f"{what}: not tensors")
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
        diff = (a.double() - b.double()).abs().max().item() if a.shape == b.shape else "shape"
        fail(f"{what}: differs (max abs diff {diff})")


def cmd_equal(args):
    a, b = load(args[0]), load(args[1])
    ma, mb = a["model"], b["model"]
    if list(ma.keys()) != list(mb.keys()):
        fail("model keys differ")
    for k in ma:
        same(ma[k], mb[k], f"model.{k}")
    oa, ob = a["optimizer"], b["optimizer"]
    if oa["param_groups"] != ob["param_groups"]:
        fail("optimizer param_groups differ")
    if sorted(oa["state"].keys()) != sorted(ob["state"].keys()):
        fail("optimizer state keys differ")
    n = 0
    for i in oa["state"]:
        for k in oa["state"][i]:
            va, vb = oa["state"][i][k], ob["state"][i][k]
            if isinstance(va, torch.Tensor):
                same(va, vb, f"optimizer.state[{i}].{k}")
            elif va != vb:
                fail(f"optimizer.state[{i}].{k}: {va} != {vb}")
            n += 1
    if a["epoch"] != b["epoch"]:
        fail(f"epoch {a['epoch']} != {b['epoch']}")
    print(f"OK {len(ma)} model tensors, {n} optimizer entries equal")


def cmd_loaddir(args):
    """Every name ending in .pth loads as a checkpoint; counts strays. A
    killed run leaves its .lock (free again: the kernel dropped the flock)."""
    names = sorted(os.listdir(args[0]))
    pth = [n for n in names if n.endswith(".pth")]
    tmp = [n for n in names if ".pth.tmp." in n or n.startswith("curves.svg.tmp.")]
    other = [n for n in names if n not in pth and n not in tmp
             and n not in ("metrics.csv", "curves.svg", ".lock")]
    if other:
        fail(f"unexpected names {other}")
    for n in pth:
        try:
            d = load(os.path.join(args[0], n))
            c = d["config"]
            UNet(int(c["in_ch"]), int(c["base"]), int(c["depth"])).load_state_dict(d["model"])
        except Exception as e:  # noqa: BLE001
            fail(f"{n} does not load: {e}")
    print(f"OK pth={len(pth)} tmp={len(tmp)}")


def cmd_make_sd(args):
    out, in_ch, base, depth, seed = args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4])
    torch.manual_seed(seed)
    net = UNet(in_ch, base, depth)
    torch.save(net.state_dict(), out)
    print("OK")


CMDS = {"load": cmd_load, "loaddir": cmd_loaddir, "equal": cmd_equal, "make-sd": cmd_make_sd}


def run(words):
    try:
        CMDS[words[0]](words[1:])
        return True
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {' '.join(words)}: {e}")
        return False


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "batch":
        # One command per line: "LABEL<TAB>COMMAND ARGS..."; every line is
        # run (one torch start-up for all), "LABEL: OK ..." or "FAIL".
        ok = True
        with open(sys.argv[2]) as f:
            for line in f:
                if not line.strip():
                    continue
                label, _, cmd = line.rstrip("\n").partition("\t")
                print(f"{label}: ", end="", flush=True)
                ok = run(cmd.split()) and ok
        sys.exit(0 if ok else 1)
    sys.exit(0 if run(sys.argv[1:]) else 1)


if __name__ == "__main__":
    main()
