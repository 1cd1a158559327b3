"""The PyTorch UNet that unet-train must match, module for module.

Parameter and buffer names, order and shapes are those of the C trainer's
checkpoints, so `load_state_dict(strict=True)` maps one to one. Used by the
parity tests and the benchmark as the oracle; run with /usr/bin/python3
(Debian's python3-torch 1.13).

Model: blocks of (3x3 conv without bias, BatchNorm2d, ReLU) twice; 2x2 max
pool down; ConvTranspose2d(2, stride 2, with bias) up; concat [skip, up];
1x1 output conv with bias. Loss: BCE-with-logits (mean) + (1 - soft Dice)
averaged over the batch, Dice smoothed by 1.

examples/pytorch/train_unet.py, a standalone script for users, keeps its own
copy of this model and loss; tests/python/test_example_model.py proves the
two are the same (modules, names, shapes, bitwise outputs and gradients).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_ch=3, base=16, depth=4):
        super().__init__()
        ch = [base * 2 ** i for i in range(depth + 1)]
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
            self.dec.append(block(2 * ch[i], ch[i]))
        self.out = nn.Conv2d(ch[0], 1, 1)

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


def bce_dice_loss(logits, target, smooth=1.0):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    denom = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return bce + dice.mean()
