#!/usr/bin/python3
"""train_unet.py: the seed's train_unet_split.py in PyTorch, guarded by memguard.

A UNet for binary segmentation (the reference model of
research/torch_unet_ref.py), a train/validation split, Adam and BCE + Dice,
with the seed's automatic memory monitor at the seed's points: a System
Resource Check and the monitor banner at start, a check at every epoch start,
every 10th train batch and every 15th eval batch, and on danger (or when
`memguard run` asks) an atomic emergency_epochN.pth and exit status 75.
Resume with RESUME = "emergency_epochN.pth" (model, optimizer and epoch).
With ON_MEMORY = "shrink" a stop for memory is survived in the process: the
same file is saved, the loaders are made again one batch size smaller and the
epoch starts over from it (as a resume would); under `memguard run` the
request is answered "continuing" (guard.continue_after), so it logs a
`continue` event instead of waiting for the exit.

    PYTHONPATH=python MEMGUARD_LIBRARY=build/libmemguard.so \
        /usr/bin/python3 examples/pytorch/train_unet.py --epochs 2
    build/memguard run --ram-budget 4G -- /usr/bin/python3 examples/pytorch/train_unet.py
    /usr/bin/python3 examples/pytorch/train_unet.py --resume emergency_epoch1.pth

Data: DATA_DIR with images/ and masks/ holding files of the same names (.npy
arrays HxWx3 and HxW; .png / .jpg too when Pillow is installed), or, with
DATA_DIR None, a synthetic set of random discs, so the script runs anywhere.
Runs on CUDA when available, else on the CPU.
"""
import os

# Debian's torch + OpenBLAS oversubscribe small machines (see torch_unet_ref.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, random_split

import memguard

CFG = {
    "DATA_DIR": None,        # None: synthetic discs
    "NUM_IMAGES": 64,        # synthetic set size
    "IMG_SIZE": 64,          # pixels (a multiple of 16)
    "BATCH": 4,
    "EPOCHS": 3,
    "LR": 1e-3,
    "VAL_SPLIT": 0.2,
    "SEED": 0,
    "RESUME": None,          # e.g. "emergency_epoch42.pth"
    "OUT_DIR": ".",          # emergency_epochN.pth, last.pth, best.pth
    "NUM_WORKERS": 0,        # the seed's advice on Windows: no worker processes
    "PIN_MEMORY": False,     # ...and no pinned memory
    # The seed's thresholds (batch 4 row of its table): warn / stop.
    "WARN_GPU": 0.90, "STOP_GPU": 0.92, "WARN_RAM": 0.85, "STOP_RAM": 0.88,
    "RAM_BUDGET": None,      # e.g. "8G": judge this process tree's memory (PSS) against it
    "ON_MEMORY": "stop",     # "shrink": on a stop for memory, save and go on in this process
                             # one batch size smaller (8 -> 6 -> 4 -> 2 -> 1), redoing the epoch
    "LEAK_MB": 0,            # demo/test only: keep this many MiB per train batch
    "ACT_MB": 0,             # demo/test only: hold this many MiB per image during each
                             # train step (activations: they grow with the batch)
}


# ---- model ------------------------------------------------------------------------
# unet-train's model: the same modules, names and arithmetic as its parity
# reference, tests/py/unet_ref.py (tests/python/test_example_model.py checks
# that they agree). Kept here so that this script stands alone.

def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_ch=3, out_ch=1, base=16, depth=4):
        super().__init__()
        ch = [base * 2 ** i for i in range(depth + 1)]  # 16 32 64 128 256
        self.enc = nn.ModuleList()
        c = in_ch
        for i in range(depth):
            self.enc.append(block(c, ch[i]))
            c = ch[i]
        self.bottleneck = block(ch[depth - 1], ch[depth])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2))
            self.dec.append(block(ch[i] * 2, ch[i]))
        self.out = nn.Conv2d(ch[0], out_ch, 1)

    def forward(self, x):
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([skip, up(x)], dim=1))
        return self.out(x)


def bce_dice_loss(logits, target, eps=1.0):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    denom = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return bce + (1.0 - (2.0 * inter + eps) / (denom + eps)).mean()


# ---- data -----------------------------------------------------------------------------

class Discs(Dataset):
    """Random bright discs on noise; the mask is the disc. Image i is the
    same on every run (seeded by i)."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        s = self.size
        cy, cx = (torch.rand(2, generator=g) * s).tolist()
        r = (0.1 + 0.25 * torch.rand(1, generator=g).item()) * s
        yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float()[None]
        img = 0.3 * torch.rand(3, s, s, generator=g) + 0.6 * mask
        return img, mask


class Folder(Dataset):
    """DATA_DIR/images/NAME and DATA_DIR/masks/NAME, resized to size x size."""

    def __init__(self, root, size):
        self.root, self.size = root, size
        self.names = sorted(os.listdir(os.path.join(root, "images")))
        if not self.names:
            raise SystemExit(f"{root}/images: no images")

    def __len__(self):
        return len(self.names)

    def _load(self, sub, name):
        path = os.path.join(self.root, sub, name)
        if name.endswith(".npy"):
            import numpy as np
            return torch.from_numpy(np.load(path)).float()
        from PIL import Image  # only needed for image files
        import numpy as np
        return torch.from_numpy(np.asarray(Image.open(path))).float()

    def __getitem__(self, i):
        img = self._load("images", self.names[i])
        mask = self._load("masks", self.names[i])
        img = (img if img.dim() == 3 else img[..., None].expand(-1, -1, 3)).permute(2, 0, 1)
        img = img[:3] / (255.0 if img.max() > 1 else 1.0)
        mask = (mask if mask.dim() == 2 else mask[..., 0])[None]
        img = F.interpolate(img[None], size=(self.size,) * 2, mode="bilinear",
                            align_corners=False)[0]
        mask = F.interpolate(mask[None], size=(self.size,) * 2, mode="nearest")[0]
        return img, (mask > 0).float()


def loaders(cfg):
    ds = Folder(cfg["DATA_DIR"], cfg["IMG_SIZE"]) if cfg["DATA_DIR"] else \
        Discs(cfg["NUM_IMAGES"], cfg["IMG_SIZE"])
    n_val = max(1, int(round(len(ds) * cfg["VAL_SPLIT"])))
    train, val = random_split(ds, [len(ds) - n_val, n_val],
                              generator=torch.Generator().manual_seed(cfg["SEED"]))
    # On Linux workers need nothing from memguard: memguard run signals only
    # the processes that catch the signal (this one, through its Guard). On
    # Windows the break reaches the workers too, and goes out only when every
    # process says it survives one: the workers ignore it and say so.
    kw = dict(batch_size=cfg["BATCH"], num_workers=cfg["NUM_WORKERS"],
              pin_memory=cfg["PIN_MEMORY"],
              worker_init_fn=memguard.ignore_stop_signal if sys.platform == "win32" else None)
    return DataLoader(train, shuffle=True, **kw), DataLoader(val, shuffle=False, **kw)


# ---- train / eval: return None when the guard says stop ----------------------------------

def train_epoch(model, loader, opt, device, guard, leak):
    model.train()
    total, n = 0.0, 0
    for batch_idx, (x, y) in enumerate(loader):
        guard.train_batch(batch_idx)          # checks every 10th batch
        if guard.should_stop():               # before this batch takes more memory
            return None
        x, y = x.to(device), y.to(device)
        held = b"\x01" * (CFG["ACT_MB"] * len(x) << 20) if CFG["ACT_MB"] else None
        opt.zero_grad(set_to_none=True)
        loss = bce_dice_loss(model(x), y)
        loss.backward()
        opt.step()
        total += float(loss) * len(x)
        n += len(x)
        if held is not None:
            time.sleep(0.1)  # as long as a real step holds its activations
            del held
        if CFG["LEAK_MB"]:
            leak.append(b"\x01" * (CFG["LEAK_MB"] << 20))
    return total / max(n, 1)


@torch.no_grad()
def eval_epoch(model, loader, device, guard):
    model.eval()
    total, dice, n = 0.0, 0.0, 0
    for batch_idx, (x, y) in enumerate(loader):
        guard.eval_batch(batch_idx)           # checks every 15th batch
        if guard.should_stop():
            return None
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total += float(bce_dice_loss(logits, y)) * len(x)
        p = (logits > 0).float()
        dice += float(((2 * (p * y).sum((1, 2, 3)) + 1) /
                       (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)).sum())
        n += len(x)
    return total / max(n, 1), dice / max(n, 1)


def state(model, opt, epoch, next_epoch, best):
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
            "next_epoch": next_epoch, "best_val_loss": best, "config": dict(CFG)}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for key, value in CFG.items():
        typ = type(value) if value is not None else str
        if typ is bool:
            typ = lambda s: s.lower() in ("1", "true", "yes")  # noqa: E731
        ap.add_argument("--" + key.lower().replace("_", "-"), dest=key, type=typ,
                        default=value, metavar=key, help=f"default {value!r}",
                        choices=("stop", "shrink") if key == "ON_MEMORY" else None)
    CFG.update(vars(ap.parse_args()))


def main():
    parse_args()
    torch.manual_seed(CFG["SEED"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(CFG["OUT_DIR"], exist_ok=True)

    memguard.system_resource_check()
    guard = memguard.Guard(warn_gpu=CFG["WARN_GPU"], stop_gpu=CFG["STOP_GPU"],
                           warn_ram=CFG["WARN_RAM"], stop_ram=CFG["STOP_RAM"],
                           ram_budget=CFG["RAM_BUDGET"])

    # --resume FILE, or the checkpoint `memguard run --restart N` hands over
    # after a stop for memory: then one batch size smaller (8 -> 6 -> 4 -> 2 -> 1)
    resume = CFG["RESUME"] or guard.resume_path
    ckpt = torch.load(resume, map_location=device) if resume else None
    if ckpt is not None and not CFG["RESUME"]:
        CFG["BATCH"] = guard.suggest_batch(ckpt["config"]["BATCH"])
        print(f"memguard run restart {guard.attempt}: batch {CFG['BATCH']}", flush=True)
    train_loader, val_loader = loaders(CFG)
    model = UNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=CFG["LR"])
    start, best = 0, math.inf
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, best = ckpt["next_epoch"], ckpt.get("best_val_loss", math.inf)
        print(f"Resumed from {resume}: epoch {start}", flush=True)

    leak = []  # CFG["LEAK_MB"]: simulated leak for demos and tests
    epoch = start
    while epoch < CFG["EPOCHS"]:
        t0 = time.time()
        guard.epoch_start(epoch)
        result = None
        if not guard.should_stop():
            train_loss = train_epoch(model, train_loader, opt, device, guard, leak)
            if train_loss is not None:
                result = eval_epoch(model, val_loader, device, guard)
        if result is None:  # emergency: save the epoch in progress
            del leak[:]
            save = lambda path: torch.save(state(model, opt, epoch, epoch, best), path)  # noqa
            if CFG["ON_MEMORY"] == "shrink" and CFG["BATCH"] > 1 and guard.may_continue():
                path = guard.save(save, os.path.join(CFG["OUT_DIR"],
                                                     f"emergency_epoch{epoch}.pth"))
                old, CFG["BATCH"] = CFG["BATCH"], guard.suggest_batch(CFG["BATCH"])
                train_loader, val_loader = loaders(CFG)
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # the larger batch's blocks
                guard.continue_after(path, f"batch {old} -> {CFG['BATCH']}")
                continue  # the same epoch again, at the smaller batch
            guard.emergency_save(save, epoch, directory=CFG["OUT_DIR"])  # exits 75
        val_loss, val_dice = result
        print(f"Epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
              f"val dice {val_dice:.4f}, {time.time() - t0:.1f}s", flush=True)
        ckpt = state(model, opt, epoch, epoch + 1, min(best, val_loss))
        # guard.save: atomic, and timed, so a fast fill is acted on early
        # enough for the emergency save to finish (the prediction's lead)
        guard.save(lambda p: torch.save(ckpt, p), os.path.join(CFG["OUT_DIR"], "last.pth"))
        if val_loss < best:
            best = val_loss
            guard.save(lambda p: torch.save(ckpt, p), os.path.join(CFG["OUT_DIR"], "best.pth"))
        epoch += 1
    guard.close()
    print("Training finished", flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except memguard.MemguardError as e:  # no library, or a bad threshold or size
        sys.exit(f"train_unet.py: {e}")
