#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Torch side of tests/unet/pth/test_pth.c (src/unet/pth_*.c).

  pth_check.py check-written FULL.pth NOFLOAT.pth
      Loads the files test_pth.c wrote: FULL with torch.load (weights_only
      False), NOFLOAT with weights_only=True, and compares them exactly with
      expected() below, which mirrors test_pth.c's make_tree(). Prints OK.
  pth_check.py golden FILE
      Checks FILE is byte for byte the 846-byte golden example of
      research/pytorch-interop.md a.4 (sha256).
  pth_check.py make-torch DIR
      Writes files with torch.save (state_dict, full checkpoint with Adam
      state, views/shared storage/Parameter) plus DIR/<name>.txt: the dump
      test_pth.c must reproduce from its reader (same format as dump()).
      Also writes malformed files for the reader's error table.
Exit status 0 only when everything matched; a missing torch is an error
(exit 3), never a silent pass.
"""
import collections
import hashlib
import os
import struct
import sys
import zipfile
import zlib

try:
    import torch
except Exception as e:  # noqa: BLE001
    print(f"pth_check.py: cannot import torch ({e}); install python3-torch", file=sys.stderr)
    sys.exit(3)

GOLDEN_SHA256 = "786b2d9789a7a1669a582e58092328037b50d2a976858178e0f4da5dfaf572c6"


# ---- the tree test_pth.c writes (keep in sync with make_tree there) --------
def ramp_f32(n, scale, bias):
    return [i * scale + bias for i in range(n)]


def expected(with_floats):
    def f32(shape, scale, bias):
        n = 1
        for d in shape:
            n *= d
        return torch.tensor(ramp_f32(n, scale, bias), dtype=torch.float32).reshape(shape)

    model = collections.OrderedDict()
    model["enc.0.0.weight"] = f32([4, 3, 3, 3], 0.25, -13.0)
    model["enc.0.1.weight"] = f32([4], 1.0, 1.0)
    model["enc.0.1.running_var"] = f32([4], 0.5, 0.125)
    model["enc.0.1.num_batches_tracked"] = torch.tensor(12345678901, dtype=torch.int64)
    model["up.0.weight"] = f32([2, 3, 2, 2], -1.0, 7.0)
    model["empty"] = torch.zeros([0, 3], dtype=torch.float32)
    model["i64"] = torch.tensor([-1, 0, 1, 2**40, -(2**63)], dtype=torch.int64)
    opt = {
        "state": {
            0: {"step": torch.tensor(7.0), "exp_avg": f32([4], 0.1, 0.0),
                "exp_avg_sq": f32([4], 0.01, 0.0)},
            1: {"step": torch.tensor(7.0), "exp_avg": f32([4], -0.1, 0.0),
                "exp_avg_sq": f32([4], 0.02, 0.0)},
        },
        "param_groups": [{
            "betas": (0.9, 0.999) if with_floats else (torch.tensor(0.9), torch.tensor(0.999)),
            "amsgrad": False, "foreach": None, "params": [0, 1],
        }],
    }
    if with_floats:
        opt["param_groups"][0]["lr"] = 0.001
    d = {
        "epoch": 42,
        "model": model,
        "optimizer": opt,
        "config": {"name": "unet-ε", "batch": 4, "neg": -70000, "big": 3000000000,
                   "flag": True},
        "rng": torch.tensor(list(range(0, 250, 10)), dtype=torch.uint8),
        "nested": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], {}, collections.OrderedDict()],
    }
    if with_floats:
        d["loss_hist"] = [0.5, -1.25, 1e-300, float("inf")]
    return d


def same(a, b, path="root"):
    if type(a) is not type(b):
        raise AssertionError(f"{path}: type {type(a).__name__} != {type(b).__name__}")
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            raise AssertionError(f"{path}: tensor {a.dtype} {list(a.shape)} != {b.dtype} {list(b.shape)}")
        return
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            raise AssertionError(f"{path}: keys {list(a.keys())} != {list(b.keys())}")
        for k in a:
            same(a[k], b[k], f"{path}/{k}")
        return
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise AssertionError(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
        return
    if isinstance(a, float):
        if struct.pack("<d", a) != struct.pack("<d", b):
            raise AssertionError(f"{path}: {a!r} != {b!r}")
        return
    if a != b:
        raise AssertionError(f"{path}: {a!r} != {b!r}")


def check_written(full, nofloat):
    got = torch.load(full, map_location="cpu")
    same(got, expected(True))
    got = torch.load(nofloat, map_location="cpu", weights_only=True)
    same(got, expected(False))
    # zip tools check the CRCs that torch ignores
    for f in (full, nofloat):
        with zipfile.ZipFile(f) as z:
            bad = z.testzip()
            if bad:
                raise AssertionError(f"{f}: zipfile CRC error in {bad}")
    print("OK")


# ---- dump format shared with test_pth.c's dump() ---------------------------
def dump(v, path, out):
    if isinstance(v, torch.Tensor):
        b = v.detach().contiguous().numpy().tobytes() if v.numel() else b""
        shape = ",".join(str(d) for d in v.shape)
        dt = str(v.dtype).replace("torch.", "")
        out.append(f"{path} tensor {dt} [{shape}] crc={zlib.crc32(b):08x}")
    elif isinstance(v, bool):
        out.append(f"{path} bool {int(v)}")
    elif isinstance(v, int):
        out.append(f"{path} int {v}")
    elif isinstance(v, float):
        out.append(f"{path} float {struct.unpack('<Q', struct.pack('<d', v))[0]:016x}")
    elif isinstance(v, str):
        out.append(f"{path} str {v}")
    elif v is None:
        out.append(f"{path} none")
    elif isinstance(v, (list, tuple)):
        out.append(f"{path} {'list' if isinstance(v, list) else 'tuple'} {len(v)}")
        for i, x in enumerate(v):
            dump(x, f"{path}[{i}]", out)
    elif isinstance(v, dict):
        out.append(f"{path} {'odict' if isinstance(v, collections.OrderedDict) else 'dict'} {len(v)}")
        for k, x in v.items():
            dump(x, f"{path}/{k}" if isinstance(k, str) else f"{path}/#{k}", out)
    else:
        raise TypeError(f"{path}: {type(v)}")


def save_with_dump(obj, d, name, **kw):
    path = os.path.join(d, name + ".pth")
    torch.save(obj, path, **kw)
    out = []
    dump(torch.load(path, map_location="cpu"), "root", out)
    with open(os.path.join(d, name + ".txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def zip_with_pickle(path, pkl, extra=None, compress=False):
    """A torch-like zip holding a hand-made data.pkl."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for k, v in (extra or {}).items():
            z.writestr("archive/" + k, v)
        z.writestr("archive/version", "3\n")


def make_torch(d):
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(), torch.nn.ConvTranspose2d(8, 4, 2, stride=2),
        torch.nn.Conv2d(4, 1, 1))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
        opt.step()
    save_with_dump(m.state_dict(), d, "torch_sd")
    ckpt = {"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "loss": 0.25, "hist": [1.5, 2.5], "name": "run-1", "big": 2**40, "neg": -5}
    save_with_dump(ckpt, d, "torch_ckpt")
    base = torch.arange(24, dtype=torch.float32)
    views = {"slice": base[6:12], "shared": base.view(4, 6),
             "param": torch.nn.Parameter(torch.ones(2, 2)),
             "f64": torch.tensor([1.5, -2.0], dtype=torch.float64),
             "i32": torch.tensor([[1, -2]], dtype=torch.int32),
             "t3": (1, 2, 3), "flag": True, "none": None}
    save_with_dump(views, d, "torch_views")

    # malformed / refused inputs (expected errors are in test_pth.c)
    torch.save({"t": torch.arange(6.).view(2, 3).t()}, os.path.join(d, "bad_noncontig.pth"))
    torch.save({"a": 1}, os.path.join(d, "bad_proto4.pth"), pickle_protocol=4)
    torch.save({"a": torch.ones(3)}, os.path.join(d, "bad_compressed_src.pth"))
    with zipfile.ZipFile(os.path.join(d, "bad_compressed_src.pth")) as src, \
            zipfile.ZipFile(os.path.join(d, "bad_compressed.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
    zip_with_pickle(os.path.join(d, "bad_global.pth"),
                    b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    zip_with_pickle(os.path.join(d, "bad_opcode.pth"), b"\x80\x02}\x93.")
    zip_with_pickle(os.path.join(d, "bad_memo.pth"), b"\x80\x02}q\x00h\x05.")
    zip_with_pickle(os.path.join(d, "bad_cycle.pth"), b"\x80\x02]q\x00h\x00a.")
    zip_with_pickle(os.path.join(d, "bad_deep.pth"), b"\x80\x02" + b"]" * 100 + b"a" * 99 + b".")
    zip_with_pickle(os.path.join(d, "bad_nostop.pth"), b"\x80\x02}")
    zip_with_pickle(os.path.join(d, "bad_reduce.pth"),
                    b"\x80\x02ctorch\nFloatStorage\n)R.")
    zip_with_pickle(os.path.join(d, "bad_storage_size.pth"),
                    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
                    b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85"
                    b"K\x01\x85\x89)tR.", {"data/0": b"\x00" * 12})
    zip_with_pickle(os.path.join(d, "bad_overrun.pth"),
                    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
                    b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x02K\x04\x85"
                    b"K\x01\x85\x89)tR.", {"data/0": b"\x00" * 16})
    zip_with_pickle(os.path.join(d, "bad_long.pth"), b"\x80\x02\x8a\x09" + b"\x01" * 9 + b".")
    with zipfile.ZipFile(os.path.join(d, "bad_noversion.pth"), "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}.")
    with zipfile.ZipFile(os.path.join(d, "bad_folder.pth"), "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}.")
        z.writestr("other/version", "3\n")
    print("OK")


def golden(path):
    with open(path, "rb") as f:
        data = f.read()
    h = hashlib.sha256(data).hexdigest()
    if h != GOLDEN_SHA256:
        raise AssertionError(f"{path}: sha256 {h} ({len(data)} bytes), want {GOLDEN_SHA256} (846)")
    got = torch.load(path, map_location="cpu")
    assert got["epoch"] == 42 and got["loss"] == 0.5
    assert torch.equal(got["model"]["w"], torch.arange(6.).view(2, 3))
    print("OK")


if __name__ == "__main__":
    try:
        if len(sys.argv) == 4 and sys.argv[1] == "check-written":
            check_written(sys.argv[2], sys.argv[3])
        elif len(sys.argv) == 3 and sys.argv[1] == "golden":
            golden(sys.argv[2])
        elif len(sys.argv) == 3 and sys.argv[1] == "make-torch":
            make_torch(sys.argv[2])
        elif len(sys.argv) == 3 and sys.argv[1] == "load":
            torch.load(sys.argv[2], map_location="cpu")
            print("OK")
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
