#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch reference for the trainer's non-convolution ops (parity tests).

Called by tests/unet/cpu/test_ops_bn.c, test_ops_pool.c, test_ops_loss.c and
test_adam.c as

    /usr/bin/python3 ref_ops.py OP IN OUT ARGS...

IN holds the op's inputs as raw little-endian float32, concatenated in the
order each op below reads them (NCHW for activations); OUT receives the
results as raw little-endian float64 (float32 tensors widen exactly), in the
order each op writes them. It computes with torch 1.13's own modules and
optimizer, so the C side is compared with what PyTorch really does, on one
thread. It does not test anything itself; the C tests compare.

Exit status 3 (with a message) when torch cannot be imported.
"""
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the C test turns this into a failure
    sys.stderr.write(f"ref_ops.py: cannot import torch/numpy ({e}); "
                     "install python3-torch (scripts/setup.sh)\n")
    sys.exit(3)


def bce_dice_loss(logits, target, eps=1.0):
    """Verbatim from research/torch_unet_ref.py: the loss the C trainer must
    reproduce (Dice smoothing 1, Dice averaged over the batch)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    denom = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    dice = 1.0 - (2.0 * inter + eps) / (denom + eps)
    return bce + dice.mean(), bce, dice.mean()


class Reader:
    def __init__(self, path):
        self.a = np.fromfile(path, dtype="<f4")
        self.i = 0

    def take(self, *shape):
        n = int(np.prod(shape))
        v = self.a[self.i:self.i + n]
        if v.size != n:
            raise SystemExit(f"ref_ops.py: input too short ({self.a.size} floats)")
        self.i += n
        return torch.from_numpy(v.copy()).reshape(shape)


def op_bn(r, args):
    C, B, H, W = (int(v) for v in args[:4])
    x = r.take(B, C, H, W)
    gamma, beta, rm, rv = r.take(C), r.take(C), r.take(C), r.take(C)
    dy = r.take(B, C, H, W)
    # Saved statistics exactly as torch stores them for its backward.
    _, save_mean, save_invstd = torch.native_batch_norm(
        x, gamma, beta, rm.clone(), rv.clone(), True, 0.1, 1e-5)
    bn = nn.BatchNorm2d(C)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        bn.running_mean.copy_(rm)
        bn.running_var.copy_(rv)
    bn.train()
    xg = x.clone().requires_grad_(True)
    y = F.relu(bn(xg))
    y.backward(dy)
    bn.eval()
    with torch.no_grad():
        ye = F.relu(bn(x))
    return [y, xg.grad, bn.weight.grad, bn.bias.grad, save_mean, save_invstd,
            bn.running_mean, bn.running_var,
            bn.num_batches_tracked.to(torch.float64), ye]


def op_pool(r, args):
    C, B, H, W = (int(v) for v in args[:4])
    x = r.take(B, C, H, W)
    dy = r.take(B, C, H // 2, W // 2)
    xg = x.clone().requires_grad_(True)
    y = F.max_pool2d(xg, 2)
    y.backward(dy)
    return [y, xg.grad]


def op_loss(r, args):
    N, H, W = (int(v) for v in args[:3])
    logits = r.take(N, 1, H, W)
    target = r.take(N, 1, H, W)
    lg = logits.clone().requires_grad_(True)
    loss, bce, dice = bce_dice_loss(lg, target)
    loss.backward()
    return [loss.detach(), bce.detach(), dice.detach(), lg.grad]


def op_adam(r, args):
    n, steps = int(args[0]), int(args[1])
    lr, b1, b2, eps, wd = (float(v) for v in args[2:7])
    p = nn.Parameter(r.take(n))
    opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    for _ in range(steps):
        p.grad = r.take(n)
        opt.step()
    st = opt.state[p]
    return [p.detach(), st["exp_avg"], st["exp_avg_sq"], st["step"].to(torch.float64)]


def main():
    if len(sys.argv) < 4:
        raise SystemExit("usage: ref_ops.py bn|pool|loss|adam IN OUT ARGS...")
    torch.set_num_threads(1)
    op, inp, out, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    fn = {"bn": op_bn, "pool": op_pool, "loss": op_loss, "adam": op_adam}[op]
    res = fn(Reader(inp), args)
    flat = np.concatenate([t.detach().to(torch.float64).reshape(-1).numpy() for t in res])
    flat.astype("<f8").tofile(out)


if __name__ == "__main__":
    main()
