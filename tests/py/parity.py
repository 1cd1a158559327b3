"""Parity oracle for unet-train: one training step of the reference model on
tensors exchanged as raw little-endian files, so the C side needs no
checkpoint code to compare.

    /usr/bin/python3 parity.py init DIR --seed S --batch B --size H --in-ch C --base W --depth D
        writes DIR/params/<name>.bin (every state_dict entry; float32, or int64
        for num_batches_tracked), DIR/x.bin (B,C,H,H) and DIR/t.bin (B,1,H,H)
    /usr/bin/python3 parity.py step DIR --lr LR --wd WD [--steps N]
        loads them, runs N training steps (train mode, Adam), writes
        DIR/out/logits.bin (of the first step's forward), DIR/out/loss.txt (one loss per
        step), DIR/out/grad/<name>.bin (gradients of the first step) and
        DIR/out/after/<name>.bin (state_dict after the first step); the same run
        in float64 writes DIR/out/grad64/ and DIR/out/after64/ (as float32
        files): the "truth" that tells float32 rounding (PyTorch's own) from
        a real difference
    /usr/bin/python3 parity.py eval DIR
        eval-mode logits of the loaded params on x: DIR/out/eval_logits.bin
    /usr/bin/python3 parity.py bf16 DIR
        one training step of the loaded params under
        torch.autocast("cpu", dtype=torch.bfloat16) (float32 parameters):
        DIR/out/bf16/logits.bin, DIR/out/bf16/loss.txt and
        DIR/out/bf16/grad/<name>.bin, the oracle of --precision bf16; and
        per convolution module M, what autocast fed it and got from it:
        DIR/out/bf16/layers/M/{x,y,dy,dx}.bin (NCHW; no dx for the input
        layer), listed in DIR/out/bf16/layers.txt as "M Ci Co H W" (H, W:
        of x)
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet, bce_dice_loss  # noqa: E402


def save(path, t):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = t.detach().cpu().contiguous().numpy()
    a.astype(a.dtype.newbyteorder("<")).tofile(path)


def load_into(model, d):
    sd = model.state_dict()
    for k, v in sd.items():
        dtype = np.int64 if v.dtype == torch.int64 else np.float32
        a = np.fromfile(os.path.join(d, "params", k + ".bin"), dtype=dtype)
        v.copy_(torch.from_numpy(a.reshape(v.shape)))


def read_cfg(d):
    with open(os.path.join(d, "cfg.txt")) as f:
        return dict(line.split() for line in f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["init", "step", "eval", "bf16"])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--in-ch", type=int, default=3)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = a.dir
    if a.cmd == "init":
        torch.manual_seed(a.seed)
        m = UNet(a.in_ch, a.base, a.depth)
        # Non-trivial BN affine parameters and running stats, so parity
        # covers them too.
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.endswith(".weight") and p.dim() == 1:
                    p.uniform_(0.5, 1.5)
                elif name.endswith(".bias"):
                    p.uniform_(-0.2, 0.2)
        for k, v in m.state_dict().items():
            save(os.path.join(d, "params", k + ".bin"), v)
        x = torch.rand(a.batch, a.in_ch, a.size, a.size)
        t = (torch.rand(a.batch, 1, a.size, a.size) > 0.6).float()
        save(os.path.join(d, "x.bin"), x)
        save(os.path.join(d, "t.bin"), t)
        with open(os.path.join(d, "cfg.txt"), "w") as f:
            for k in ("batch", "size", "in_ch", "base", "depth"):
                f.write(f"{k} {getattr(a, k)}\n")
        return
    c = read_cfg(d)
    B, S, C, W, D = (int(c[k]) for k in ("batch", "size", "in_ch", "base", "depth"))
    m = UNet(C, W, D)
    load_into(m, d)
    x = torch.from_numpy(np.fromfile(os.path.join(d, "x.bin"), np.float32).reshape(B, C, S, S))
    t = torch.from_numpy(np.fromfile(os.path.join(d, "t.bin"), np.float32).reshape(B, 1, S, S))
    if a.cmd == "eval":
        m.eval()
        with torch.no_grad():
            save(os.path.join(d, "out", "eval_logits.bin"), m(x))
        return
    if a.cmd == "bf16":
        out = os.path.join(d, "out", "bf16")
        m.train()
        seen = []

        def hooks(name):
            lay = os.path.join(out, "layers", name)

            def fwd(mod, inp, outp):
                seen.append((name, inp[0].shape[1], outp.shape[1], inp[0].shape[2],
                             inp[0].shape[3]))
                save(os.path.join(lay, "x.bin"), inp[0].float())
                save(os.path.join(lay, "y.bin"), outp.float())

            def bwd(mod, gin, gout):
                save(os.path.join(lay, "dy.bin"), gout[0].float())
                if gin[0] is not None:
                    save(os.path.join(lay, "dx.bin"), gin[0].float())
            return fwd, bwd

        for name, mod in m.named_modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                f, b = hooks(name)
                mod.register_forward_hook(f)
                mod.register_full_backward_hook(b)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = m(x)
            loss = bce_dice_loss(logits, t)
        loss.backward()
        with open(os.path.join(out, "layers.txt"), "w") as f:
            for row in seen:
                f.write(" ".join(str(v) for v in row) + "\n")
        save(os.path.join(out, "logits.bin"), logits.float())
        for name, p in m.named_parameters():
            save(os.path.join(out, "grad", name + ".bin"), p.grad.float())
        with open(os.path.join(out, "loss.txt"), "w") as f:
            f.write(f"{loss.item():.9g}\n")
        return
    def train(dtype, tag):
        mm = UNet(C, W, D)
        load_into(mm, d)
        mm = mm.to(dtype)
        mm.train()
        opt = torch.optim.Adam(mm.parameters(), lr=a.lr, weight_decay=a.wd)
        xx, tt = x.to(dtype), t.to(dtype)
        losses = []
        for step in range(a.steps):
            opt.zero_grad()
            logits = mm(xx)
            loss = bce_dice_loss(logits, tt)
            loss.backward()
            if step == 0:
                if tag == "":
                    save(os.path.join(d, "out", "logits.bin"), logits)
                for name, p in mm.named_parameters():
                    save(os.path.join(d, "out", "grad" + tag, name + ".bin"), p.grad.float())
            losses.append(loss.item())
            opt.step()
            if step == 0:
                for k, v in mm.state_dict().items():
                    v = v if v.dtype == torch.int64 else v.float()
                    save(os.path.join(d, "out", "after" + tag, k + ".bin"), v)
        return losses

    losses = train(torch.float32, "")
    train(torch.float64, "64")
    with open(os.path.join(d, "out", "loss.txt"), "w") as f:
        f.write("\n".join(f"{v:.9g}" for v in losses) + "\n")


if __name__ == "__main__":
    main()
