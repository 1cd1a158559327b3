#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""make_seeds.py: writes the seed corpora under fuzz/corpus/<harness>/.

Run by hand from the repository root (the seeds are checked in; CI never
runs this): /usr/bin/python3 fuzz/tools/make_seeds.py. It needs Debian's
python3-torch (torch.save's own checkpoints), build/unet-train (a real
checkpoint of the trainer, from scripts/build.sh), and cc with libpng and
libjpeg (fuzz/tools/make_image_seeds.c writes the images). Every seed is
small (a few KiB; the one real checkpoint pickle is 16 KiB) and the
layouts follow each harness's header comment. Existing seeds are replaced,
but for the regress-* inputs of fixed crashes.
"""
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def corpus(name):
    """The seed folder of a harness, emptied but for its regress-* inputs
    (crashes once found, fuzz/crashes/README.md)."""
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("regress-"):
            os.remove(os.path.join(d, f))
    return d


def put(d, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_parse: a selector byte ('0'..'7' pick the target), then text ----

def parse_seeds():
    d = corpus("fuzz_parse")
    texts = {
        "0": ["0.9", "90%", "9e-1", "1", "100%"],
        "1": ["512MiB", "8G", "1.5G", "4096", "1T", "64kB"],
        "2": ["16", "0", "18446744073709551615"],
        "3": ["60", "1.5s", "500ms", "2m", "1h"],
        "4": [" 12345 kB", "4294967295\n", "100 (python) S 1"],
        "5": ["anon 1\nfile 2\ninactive_file 4096\nhierarchical_memory_limit 9223372036854771712\n"],
    }
    n = 0
    for sel, items in texts.items():
        for t in items:
            put(d, "%s-%02d" % (sel, n), sel + t)
            n += 1
    for fx in ("proc-v2", "proc-v1", "proc-garbage", "proc-truncated"):
        with open(os.path.join(FIXTURES, fx, "meminfo"), "rb") as f:
            put(d, "6-" + fx, b"6" + f.read())
    for fx in ("proc-v2", "proc-v1docker"):
        with open(os.path.join(FIXTURES, fx, "pressure", "memory"), "rb") as f:
            put(d, "7-" + fx, b"7" + f.read())


# ---- fuzz_probe: "== path" sections made from the fixture trees ----------

def tree_sections(top, prefix, max_file=2048):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames + [x for x in dirnames if os.path.islink(os.path.join(dirpath, x))]):
            path = os.path.join(dirpath, name)
            rel = prefix + "/" + os.path.relpath(path, top)
            if os.path.islink(path):
                out.append(b"== %s -> %s\n" % (rel.encode(), os.readlink(path).encode()))
                continue
            with open(path, "rb") as f:
                body = f.read()
            if len(body) > max_file:
                continue
            if body and not body.endswith(b"\n"):
                body += b"\n"  # the next header must start a line
            out.append(b"== %s\n" % rel.encode() + body)
    return b"".join(out)


def probe_seeds():
    d = corpus("fuzz_probe")
    pairs = [("proc-v2", "cg-v2-limit", b""), ("proc-v2", "cg-v2-max", b""),
             ("proc-v2", "cg-v2-nested", b""), ("proc-v1", "cg-v1-hier", b""),
             ("proc-v1", "cg-v1-limited", b""), ("proc-v1", "cg-v1-unlimited", b""),
             ("proc-v1", "cg-hybrid", b""), ("proc-v1docker", "cg-v1docker", b""),
             ("proc-tree", "cg-v2-limit", b"budget=64M descendants=100\n"),
             ("proc-treescan", "cg-missing", b"budget=2M pid=100\n"),
             ("proc-garbage", "cg-v2-limit", b""), ("proc-truncated", "cg-v2-limit", b"")]
    for proc, cg, opts in pairs:
        data = opts + tree_sections(os.path.join(FIXTURES, proc), "proc") + \
            tree_sections(os.path.join(FIXTURES, cg), "cg")
        put(d, "%s+%s" % (proc, cg), data)


# ---- fuzz_runlog: event byte, t_ms, strings, snapshot (see the harness) ---

def lstr(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def snapshot(gpus=1, cg_path="/user.slice/user-1000.slice/session-2.scope"):
    u64 = lambda v: struct.pack("<Q", v)
    f64 = lambda v: struct.pack("<d", v)
    fixed = lambda s, n: s.encode().ljust(n, b"\0")[:n]
    b = bytes([0xFF]) + u64(123456) + u64(85) + bytes([1])
    b += u64(8 << 30) + u64(7 << 30) + u64(1 << 30) + f64(0.875) + u64(32 << 30)
    b += u64(2 << 30) + u64(1 << 30) + bytes([1])
    b += fixed(cg_path, 256) + fixed("/user.slice", 256) + u64(8 << 30) + u64(7 << 30)
    b += u64(4242) + bytes([5]) + u64(6 << 30) + u64(5 << 30) + f64(1.25) + f64(0.0)
    b += bytes([0, gpus])
    for i in range(gpus):
        b += fixed("NVIDIA GeForce RTX 3060", 96) + fixed("GPU-5d1f%04d-aaaa" % i, 96)
        b += bytes([1]) + u64(12 << 30) + u64(1 << 30) + f64(0.9166)
    return b + u64(10 << 30) + u64(11 << 30)


def runlog_seeds():
    d = corpus("fuzz_runlog")
    t = struct.pack("<Q", 1500)
    argv = ["python3", "train.py", "--epochs", "5", "caf\u00e9 \u65e5\u672c.py", 'say "hi"\\']
    put(d, "start", bytes([0]) + t + bytes([len(argv)]) + b"".join(lstr(a) for a in argv))
    reason = "RAM usage high: 87.5% (7.00GB/8.00GB)"
    stop = "/run/user/1000/memguard-Ab12Cd/stop"
    put(d, "warn", bytes([1]) + t + lstr(reason) + lstr(stop) + snapshot())
    put(d, "request", bytes([2]) + t + lstr(reason) + lstr(stop) + snapshot(2))
    put(d, "kill", bytes([3]) + t + lstr("RAM 97.5% >= hard limit 97.0%") + lstr("") +
        snapshot(0))
    put(d, "ack", bytes([4]) + t + lstr("/home/u/runs/a/emergency_epoch3.pth"))
    put(d, "sample", bytes([5]) + t + lstr("") + lstr("") + snapshot(1, "/docker/\u00e9t\u00e9"))
    put(d, "quote", bytes([6, 40]) + lstr("\u26a0\ufe0f GPU usage high: \"91.2%\" \\ x"))


# ---- fuzz_ini --------------------------------------------------------------

def ini_seeds():
    d = corpus("fuzz_ini")
    put(d, "train.ini", "# the seed's CFG\n[train]\nIMG_SIZE = 256\nbatch = 8\nepochs = 50\n"
        "lr = 1e-3\nbeta1 = 0.9\nbeta2=0.999\neps = 1e-8\nweight_decay = 0\n"
        "val_split = 0.2\nflip = true\nseed = 42\nbase = 16\ndepth = 4\nin_ch = 3\n")
    put(d, "paths.ini", "; folders\ndata = \"data/\"\nout = 'runs/a'\nresume = runs/a/last.pth\n"
        "checkpoint = runs/a/best.pth\ninput = imgs\nlogits = out.npy\nthreads = 2\n"
        "progress = lines\n")
    put(d, "guard.ini", "warn_gpu = 90%\nstop_gpu = 0.92\nwarn_ram = 85%\nstop_ram = 0.88\n"
        "check_train = 10\ncheck_eval = 15\nram_budget = 8G\nno_watcher = no\n"
        "synthetic = 240\nbatch = auto\n")
    put(d, "bad.ini", "img_size 256\nfoo = bar\n")


# ---- .pth: torch.save's checkpoints and zipfile-made ones ----------------

def torch_checkpoints():
    import torch
    out = {}

    def save(name, obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        out[name] = buf.getvalue()

    sd = collections.OrderedDict()
    sd["enc.0.0.weight"] = torch.ones(2, 1, 3, 3) * 0.5
    sd["enc.0.1.running_mean"] = torch.zeros(2)
    sd["enc.0.1.num_batches_tracked"] = torch.tensor(7)
    save("state_dict", sd)
    save("dtypes", {"f64": torch.ones(2, dtype=torch.float64),
                    "f16": torch.arange(3, dtype=torch.float16),
                    "bf16": torch.ones(2, dtype=torch.bfloat16),
                    "i64": torch.tensor([1, -2]), "i32": torch.tensor([3], dtype=torch.int32),
                    "i16": torch.tensor([4], dtype=torch.int16),
                    "i8": torch.tensor([-5], dtype=torch.int8),
                    "u8": torch.tensor([6], dtype=torch.uint8),
                    "b": torch.tensor([True, False])})
    shared = torch.ones(4)
    save("scalars", {"epoch": 3, "lr": 1e-3, "name": "unet", "ok": True, "none": None,
                     "list": [1, 2.5, "x", (3, 4)], "big": 2 ** 40, "neg": -7,
                     "a": shared, "view": shared[1:3], "opt": {"state": {0: {"step": 4}},
                     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0]}]}})
    save("parameter", {"p": torch.nn.Parameter(torch.ones(2, 2))})
    save("noncontig", {"t": torch.ones(2, 3).t()})
    return out


def zipfile_checkpoints():
    out = {}
    pk = pickle.dumps(collections.OrderedDict([("a", 1), ("b", [None, True, 2.5])]), protocol=2)
    for name, z64, comment in (("zipfile_stored", False, b""),
                               ("zipfile_zip64", True, b"comment"),):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.comment = comment
            for entry, data in (("ckpt/data.pkl", pk), ("ckpt/version", b"3\n")):
                with z.open(entry, "w", force_zip64=z64) as f:
                    f.write(data)
        out[name] = buf.getvalue()
    return out


def unet_train_checkpoint():
    exe = os.path.join(ROOT, "build", "unet-train")
    if not os.access(exe, os.X_OK):
        print("make_seeds: no build/unet-train, no trainer checkpoint seed", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exe, "--synthetic", "4", "--epochs", "1", "--base", "8", "--depth", "1",
                        "--img-size", "8", "--batch", "2", "--threads", "1",
                        "--out", os.path.join(tmp, "run")], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        with open(os.path.join(tmp, "run", "last.pth"), "rb") as f:
            return f.read()


def pickle_seed(zbytes):
    """The pickle harness's layout: K, K storage sizes, data.pkl."""
    z = zipfile.ZipFile(io.BytesIO(zbytes))
    names = z.namelist()
    pkl = z.read([n for n in names if n.endswith("/data.pkl")][0])
    sizes = {}
    for n in names:
        parts = n.split("/")
        if len(parts) == 3 and parts[1] == "data":
            sizes[parts[2]] = z.getinfo(n).file_size
    keys = [str(i) for i in range(len(sizes))]
    if sorted(sizes) != sorted(keys) or len(keys) > 255:
        return None  # storages not named 0..K-1
    return bytes([len(keys)]) + b"".join(struct.pack("<I", sizes[k]) for k in keys) + pkl


def pth_seeds():
    dz, dp = corpus("fuzz_pth_zip"), corpus("fuzz_pickle")
    ckpts = dict(torch_checkpoints())
    ckpts.update(zipfile_checkpoints())
    for name, data in ckpts.items():
        put(dz, name + ".pth", data)
    trainer = unet_train_checkpoint()
    if trainer:
        ckpts["unet_train"] = trainer
    for name, data in ckpts.items():
        seed = pickle_seed(data)
        if seed:
            put(dp, name, seed)
    # bare pickles with no storages at all
    for i, obj in enumerate(([], {"k": (1, 2, 3)}, [[[[[1]]]]], {1: "int key"})):
        put(dp, "plain-%d" % i, bytes([0]) + pickle.dumps(obj, protocol=2))


# ---- fuzz_image: fuzz/tools/make_image_seeds.c -----------------------------

def image_seeds():
    d = corpus("fuzz_image")
    src = os.path.join(ROOT, "fuzz", "tools", "make_image_seeds.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "make_image_seeds")
        subprocess.run(["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-o", exe, src,
                        "-lpng", "-ljpeg"], check=True)
        subprocess.run([exe, d], check=True)


def main():
    parse_seeds()
    probe_seeds()
    runlog_seeds()
    ini_seeds()
    pth_seeds()
    image_seeds()
    total = 0
    for dirpath, _, files in os.walk(CORPUS):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    print("make_seeds: %d bytes of seeds under %s" % (total, CORPUS))


if __name__ == "__main__":
    main()
