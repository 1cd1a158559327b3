"""The PyTorch side of tests/unet/app/test_unet_train.c: checks unet-train's
checkpoints and predictions against torch (tests/py/unet_ref.py). Run with
/usr/bin/python3 (Debian's torch 1.13, CPU). Every command prints one line
of JSON on stdout (the last line) and exits 0 when it could do its job,
even if what it found is wrong: the C test judges the numbers. Exit 3 with
{"error": ...} when it could not (torch missing, unreadable file).

    check_ckpt.py ckpt FILE
        torch.load, load_state_dict(strict=True) into UNet(config), the
        optimizer entry into torch.optim.Adam(...).load_state_dict and one
        step with it, and the weights_only rules: every pickle opcode and
        GLOBAL against torch 2.x's weights_only whitelist (our own walk with
        pickletools), torch 1.13's weights_only=True on the file (it refuses
        BINFLOAT, "Unsupported operand 71"), and on a copy with every
        BINFLOAT replaced by NONE (which must then load: so BINFLOAT is the
        only thing 1.13 objects to).
    check_ckpt.py predict FILE IMGDIR LOGITS.npy [--img-size S]
        eval-mode logits of FILE (ours, a bare state_dict or {"model": ...})
        on the PNGs of IMGDIR (sorted by name, decoded here: bytes / 255,
        no resize: they must already be SxS) against LOGITS.npy.
    check_ckpt.py torch-save DIR --in-ch C --base W --depth D --size S --seed N
        a UNet trained two Adam steps on random data, saved by torch as
        DIR/bare.pth (model.state_dict()) and DIR/full.pth ({"model",
        "optimizer", "epoch"}).
    check_ckpt.py write-images DIR N SIZE CH SEED [--w W --h H]
        N PNGs (8-bit gray for CH 1, RGB for CH 3), img_00.png ..., with
        every PNG row filter type used.
"""
import argparse
import io
import json
import os
import pickletools
import re
import struct
import sys
import zipfile
import zlib


def out(d, code=0):
    print(json.dumps(d))
    sys.stdout.flush()
    sys.exit(code)


try:
    import numpy as np
    import torch
except Exception as e:  # the C test turns this into a clear failure
    out({"error": "torch/numpy not importable by %s: %s" % (sys.executable, e)}, 3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet, bce_dice_loss  # noqa: E402

# ---- weights_only rules (torch 2.x main; 1.13 is the same without BINFLOAT) ----
WO_OPCODES = {
    "GLOBAL", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE",
    "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT",
    "LONG1", "PROTO", "STOP",
}
WO_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2"}
STORAGE_RE = re.compile(r"^torch [A-Za-z0-9]*Storage$")


def pickle_of(path):
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith("/data.pkl")]
        if len(names) != 1:
            raise ValueError("%s: %d data.pkl records" % (path, len(names)))
        return names[0], z.read(names[0])


def walk(pkl):
    """Opcodes and globals of a pickle, judged against the whitelist."""
    ops, bad_ops, globs, bad_globs = {}, [], [], []
    proto = None
    spans = []  # (pos, end) of each BINFLOAT, for the float-free copy
    prev = None
    for op, arg, pos in pickletools.genops(pkl):
        if prev is not None and prev[0] == "BINFLOAT":
            spans.append((prev[1], pos))
        ops[op.name] = ops.get(op.name, 0) + 1
        if op.name not in WO_OPCODES and op.name not in bad_ops:
            bad_ops.append(op.name)
        if op.name == "PROTO":
            proto = arg
        if op.name == "GLOBAL":
            globs.append(arg)
            if arg not in WO_GLOBALS and not STORAGE_RE.match(arg) and arg not in bad_globs:
                bad_globs.append(arg)
        prev = (op.name, pos)
    return ops, bad_ops, sorted(set(globs)), bad_globs, proto, spans


def without_floats(path, dst):
    """A copy of the zip whose pickle has NONE in place of every BINFLOAT."""
    name, pkl = pickle_of(path)
    spans = walk(pkl)[5]
    buf, last = bytearray(), 0
    for a, b in spans:
        buf += pkl[last:a] + b"N"
        last = b
    buf += pkl[last:]
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = bytes(buf) if info.filename == name else zin.read(info.filename)
            zout.writestr(info.filename, data)
    return len(spans)


def state_dict_of(ck):
    if isinstance(ck, dict) and "model" in ck:
        return ck["model"]
    return ck


def cfg_of(ck, sd):
    """(in_ch, base, depth, img_size or None): the config entry when there is
    one, else what the state_dict's shapes say."""
    w = sd["enc.0.0.weight"]
    depth = len({k.split(".")[1] for k in sd if k.startswith("enc.")})
    inferred = (int(w.shape[1]), int(w.shape[0]), depth)
    c = ck.get("config") if isinstance(ck, dict) else None
    if c:
        return (int(c["in_ch"]), int(c["base"]), int(c["depth"]), int(c["img_size"])), inferred
    return inferred + (None,), inferred


def cmd_ckpt(a):
    r = {"torch": torch.__version__}
    ck = torch.load(a.file, map_location="cpu")
    r["keys"] = sorted(ck.keys())
    sd = ck["model"]
    (C, W, D, S), inferred = cfg_of(ck, sd)
    r["config"] = {k: v for k, v in ck.get("config", {}).items()
                   if isinstance(v, (int, float, str, bool))}
    r["config_matches_shapes"] = (C, W, D) == inferred
    r["epoch"] = ck.get("epoch")
    model = UNet(C, W, D)
    try:
        res = model.load_state_dict(sd, strict=True)
        r["strict_load"] = not res.missing_keys and not res.unexpected_keys
    except Exception as e:
        r["strict_load"] = False
        r["strict_error"] = str(e)[:300]
    r["n_state"] = len(sd)
    r["n_params"] = len(list(model.parameters()))
    r["finite"] = all(bool(torch.isfinite(v.float()).all()) for v in sd.values())
    # The optimizer entry, into a real Adam, then one real step with it.
    opt = torch.optim.Adam(model.parameters(), lr=0.5)
    try:
        opt.load_state_dict(ck["optimizer"])
        g = opt.param_groups[0]
        r["opt_load"] = True
        r["opt_lr"] = g["lr"]
        r["opt_betas"] = list(g["betas"])
        r["opt_eps"] = g["eps"]
        r["opt_state_n"] = len(opt.state)
        ok = True
        steps = set()
        for p in model.parameters():
            s = opt.state.get(p)
            if s is None or s["exp_avg"].shape != p.shape or s["exp_avg_sq"].shape != p.shape \
                    or bool((s["exp_avg_sq"] < 0).any()):
                ok = False
                continue
            steps.add(float(s["step"]))
        r["opt_state_shapes_ok"] = ok
        r["opt_steps"] = sorted(steps)
        torch.manual_seed(0)
        x = torch.rand(2, C, S, S)
        t = (torch.rand(2, 1, S, S) > 0.5).float()
        model.train()
        loss = bce_dice_loss(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        r["opt_step_ok"] = bool(torch.isfinite(loss)) and all(
            bool(torch.isfinite(p).all()) for p in model.parameters())
    except Exception as e:
        r["opt_load"] = False
        r["opt_error"] = str(e)[:300]
    # weights_only: our own walk against the 2.x whitelist.
    _, pkl = pickle_of(a.file)
    ops, bad_ops, globs, bad_globs, proto, spans = walk(pkl)
    r.update(opcodes=ops, bad_opcodes=bad_ops, globals=globs, bad_globals=bad_globs,
             proto=proto, n_binfloat=len(spans))
    # torch's own weights_only loader on the file (1.13 refuses BINFLOAT)...
    try:
        torch.load(a.file, map_location="cpu", weights_only=True)
        r["wo_load"] = True
    except Exception as e:
        r["wo_load"] = False
        msg = str(e) or repr(e)
        r["wo_error"] = msg[msg.find("WeightsUnpickler error:"):][:200]
        r["wo_refuses_binfloat"] = "Unsupported operand 71" in str(e)
    # ... and on a copy without floats, which must then load and match.
    tmp = a.file + ".nofloat.pth"
    try:
        without_floats(a.file, tmp)
        ck2 = torch.load(tmp, map_location="cpu", weights_only=True)
        same = all(torch.equal(ck2["model"][k], v) for k, v in sd.items())
        r["wo_nofloat_load"] = same and len(ck2["model"]) == len(sd)
    except Exception as e:
        r["wo_nofloat_load"] = False
        r["wo_nofloat_error"] = str(e).splitlines()[-1][-200:] if str(e) else repr(e)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    out(r)


# ---- PNG, by hand (no PIL here) ----
def png_write(path, px):
    """px: uint8 (h, w) gray or (h, w, 3) RGB; rows cycle through filters 0-4."""
    h, w = px.shape[:2]
    ch = 1 if px.ndim == 2 else px.shape[2]
    bpp = ch
    rows = px.reshape(h, w * ch).astype(np.int32)
    raw = bytearray()
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        cur = rows[y]
        ft = y % 5
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if ft == 0:
            f = cur
        elif ft == 1:
            f = cur - left
        elif ft == 2:
            f = cur - prev
        elif ft == 3:
            f = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            f = cur - pred
        raw.append(ft)
        raw += bytes((f & 0xFF).astype(np.uint8))
        prev = cur

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if ch == 1 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def png_read(path):
    """8-bit gray or RGB, non-interlaced PNG -> uint8 (h, w, ch)."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, hdr = 8, b"", None
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        t = d[pos + 4:pos + 8]
        if t == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", d[pos + 8:pos + 8 + n])
        elif t == b"IDAT":
            idat += d[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h, depth, ctype, _, _, inter = hdr
    if depth != 8 or ctype not in (0, 2) or inter:
        raise ValueError("%s: only 8-bit gray/RGB non-interlaced here" % path)
    ch = 1 if ctype == 0 else 3
    raw = zlib.decompress(idat)
    stride = w * ch
    img = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        f = list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        cur = [0] * stride
        for i in range(stride):
            a = cur[i - ch] if i >= ch else 0
            b = int(prev[i])
            c = int(prev[i - ch]) if i >= ch else 0
            if ft == 0:
                pr = 0
            elif ft == 1:
                pr = a
            elif ft == 2:
                pr = b
            elif ft == 3:
                pr = (a + b) // 2
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                raise ValueError("%s: bad filter %d" % (path, ft))
            cur[i] = (f[i] + pr) & 0xFF
        img[y] = cur
        prev = img[y]
    return img.astype(np.uint8).reshape(h, w, ch)


def cmd_write_images(a):
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.RandomState(a.seed)
    w = a.w or a.size
    h = a.h or a.size
    yy, xx = np.mgrid[0:h, 0:w]
    names = []
    for i in range(a.n):
        base = 60 + 40 * np.sin(xx / (3.0 + i) + i) * np.cos(yy / 5.0)
        shape = ((xx - rng.randint(w)) ** 2 + (yy - rng.randint(h)) ** 2) < (w * h) // 8
        img = base + 120 * shape
        chans = [img + rng.randint(0, 40, size=img.shape) + 25 * c for c in range(a.ch)]
        px = np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)
        if a.ch == 1:
            px = px[..., 0]
        name = "img_%02d.png" % i
        png_write(os.path.join(a.dir, name), px)
        names.append(name)
    out({"written": names, "w": w, "h": h, "ch": a.ch})


def cmd_predict(a):
    ck = torch.load(a.file, map_location="cpu")
    sd = state_dict_of(ck)
    (C, W, D, S), _ = cfg_of(ck, sd)
    if a.img_size:
        S = a.img_size
    if not S:
        out({"error": "no image size: give --img-size"}, 3)
    model = UNet(C, W, D)
    model.load_state_dict(sd, strict=True)
    model.eval()
    names = sorted(n for n in os.listdir(a.imgdir)
                   if not n.startswith(".") and n.lower().endswith(".png"))
    xs = []
    for n in names:
        px = png_read(os.path.join(a.imgdir, n))
        if px.shape[:2] != (S, S) or px.shape[2] != C:
            out({"error": "%s is %s, expected %dx%dx%d" % (n, px.shape, S, S, C)}, 3)
        xs.append(torch.from_numpy(px.astype(np.float32) / np.float32(255)).permute(2, 0, 1))
    x = torch.stack(xs)
    with torch.no_grad():
        ref = model(x).numpy()
    got = np.load(a.logits)
    r = {"n": len(names), "shape": list(got.shape), "torch_shape": list(ref.shape),
         "dtype": str(got.dtype), "in_ch": C, "base": W, "depth": D, "size": S}
    if got.shape == ref.shape:
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        r["max_abs_diff"] = float(diff.max()) if np.isfinite(diff).all() else float("inf")
        r["max_abs"] = float(np.abs(ref).max())
        r["rel"] = r["max_abs_diff"] / max(r["max_abs"], 1e-12)
        # Masks at the model size agree wherever torch is not on the edge.
        r["pos_frac"] = float((ref > 0).mean())
    out(r)


def cmd_torch_save(a):
    os.makedirs(a.dir, exist_ok=True)
    torch.manual_seed(a.seed)
    model = UNet(a.in_ch, a.base, a.depth)
    with torch.no_grad():  # non-trivial BN affine parameters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):  # moves the weights and the running statistics
        x = torch.rand(2, a.in_ch, a.size, a.size)
        t = (torch.rand(2, 1, a.size, a.size) > 0.7).float()
        loss = bce_dice_loss(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    sd = model.state_dict()
    torch.save(sd, os.path.join(a.dir, "bare.pth"))
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 2},
               os.path.join(a.dir, "full.pth"))
    out({"saved": ["bare.pth", "full.pth"], "n_state": len(sd), "torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ckpt")
    p.add_argument("file")
    p = sub.add_parser("predict")
    p.add_argument("file")
    p.add_argument("imgdir")
    p.add_argument("logits")
    p.add_argument("--img-size", type=int, default=0)
    p = sub.add_parser("torch-save")
    p.add_argument("dir")
    p.add_argument("--in-ch", type=int, default=3)
    p.add_argument("--base", type=int, default=8)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("write-images")
    p.add_argument("dir")
    p.add_argument("n", type=int)
    p.add_argument("size", type=int)
    p.add_argument("ch", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("--w", type=int, default=0)
    p.add_argument("--h", type=int, default=0)
    a = ap.parse_args()
    try:
        {"ckpt": cmd_ckpt, "predict": cmd_predict, "torch-save": cmd_torch_save,
         "write-images": cmd_write_images}[a.cmd](a)
    except SystemExit:
        raise
    except Exception as e:
        out({"error": "%s: %s" % (type(e).__name__, e)}, 3)


if __name__ == "__main__":
    main()
