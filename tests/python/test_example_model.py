"""The UNet of examples/pytorch/train_unet.py is the parity reference's,
tests/py/unet_ref.py (the model unet-train matches): the example is a
standalone script a user copies, so it keeps its own definition, and this
proves the two agree. For several sizes: the same module tree (every
module's repr, which names its kind and settings), the same parameter and
buffer names, order and shapes, and, with the example's weights loaded into
the reference (strict), bitwise the same logits, loss and gradients in
train mode, and the same logits in eval mode (running statistics)."""
import importlib.util
import os
import sys
import unittest

import _support

try:
    import torch
except ImportError:  # the tests need Debian's /usr/bin/python3 with python3-torch
    torch = None

SIZES = [dict(in_ch=3, base=16, depth=4),  # the example's default, unet-train's too
         dict(in_ch=3, base=8, depth=2),
         dict(in_ch=1, base=4, depth=1),
         dict(in_ch=4, base=6, depth=3)]


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@unittest.skipIf(torch is None, "torch is not importable (use /usr/bin/python3)")
class TestExampleModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # the example's module body: imports (memguard among them), CFG and
        # definitions; main() runs only as a script
        cls.ex = load("train_unet_example", _support.EXAMPLE)
        sys.path.insert(0, os.path.join(_support.ROOT, "tests", "py"))
        import unet_ref
        cls.ref = unet_ref

    def pair(self, size, seed):
        torch.manual_seed(seed)
        ex = self.ex.UNet(**size)
        ref = self.ref.UNet(**size)
        ref.load_state_dict(ex.state_dict(), strict=True)
        return ex, ref

    def test_default_is_the_reference_default(self):
        self.assertEqual(str(self.ex.UNet()), str(self.ref.UNet()))

    def test_same_modules_and_parameters(self):
        for size in SIZES:
            with self.subTest(**size):
                ex, ref = self.ex.UNet(**size), self.ref.UNet(**size)
                self.assertEqual([(n, repr(m)) for n, m in ex.named_modules()],
                                 [(n, repr(m)) for n, m in ref.named_modules()])
                self.assertEqual([(k, tuple(v.shape)) for k, v in ex.state_dict().items()],
                                 [(k, tuple(v.shape)) for k, v in ref.state_dict().items()])
                self.assertEqual([n for n, _ in ex.named_parameters()],
                                 [n for n, _ in ref.named_parameters()])

    def test_same_outputs_loss_and_gradients(self):
        for i, size in enumerate(SIZES):
            with self.subTest(**size):
                ex, ref = self.pair(size, seed=i)
                side = 2 ** size["depth"] * 3
                x = torch.randn(2, size["in_ch"], side, side)
                y = (torch.rand(2, 1, side, side) > 0.5).float()
                out_ex, out_ref = ex(x), ref(x)
                self.assertTrue(torch.equal(out_ex, out_ref))
                loss_ex = self.ex.bce_dice_loss(out_ex, y)
                loss_ref = self.ref.bce_dice_loss(out_ref, y)
                self.assertTrue(torch.equal(loss_ex, loss_ref))
                loss_ex.backward()
                loss_ref.backward()
                for (n, a), (_, b) in zip(ex.named_parameters(), ref.named_parameters()):
                    self.assertTrue(torch.equal(a.grad, b.grad), n)
                # the train-mode pass moved the running statistics alike
                for (n, a), (_, b) in zip(ex.named_buffers(), ref.named_buffers()):
                    self.assertTrue(torch.equal(a, b), n)
                ex.eval()
                ref.eval()
                with torch.no_grad():
                    self.assertTrue(torch.equal(ex(x), ref(x)))

    def test_a_different_model_is_told_apart(self):
        """The checks above can fail: one changed setting shows."""
        ex, ref = self.ex.UNet(base=8, depth=2), self.ref.UNet(base=8, depth=3)
        self.assertNotEqual([(n, repr(m)) for n, m in ex.named_modules()],
                            [(n, repr(m)) for n, m in ref.named_modules()])
        a, b = self.pair(dict(in_ch=3, base=8, depth=2), seed=0)
        with torch.no_grad():
            b.out.bias.add_(1e-3)
        x = torch.randn(1, 3, 8, 8)
        self.assertFalse(torch.equal(a(x), b(x)))


if __name__ == "__main__":
    unittest.main()
