"""examples/pytorch/train_unet.py with Debian's python3-torch on the CPU:
a short run, an emergency stop by the Guard's own budget and by
`memguard run --ram-budget`, exit status 75, and resume; --restart at a
smaller batch, and --on-memory shrink going on in the same process."""
import json
import os
import re
import shutil
import tempfile
import unittest

import _support

try:
    import torch
except ImportError:  # the tests need Debian's /usr/bin/python3 with python3-torch
    torch = None

# Tiny and fast: 32x32 images, batch 2, 30 images -> 12 train batches/epoch.
SMALL = ["--img-size", "32", "--batch", "2", "--num-images", "30", "--epochs", "2"]
# 16 MiB kept per train batch (~0.2 GiB an epoch): RSS (~0.25 GiB after
# the first batch) passes 88 % of a 600 MiB budget in the second or third
# epoch, and memguard run's hard limit (97 %) is 3 batches further, so the
# trainer reaches its next batch boundary long before.
LEAK = ["--leak-mb", "16", "--epochs", "3"]


@unittest.skipIf(torch is None, "torch is not importable (use /usr/bin/python3)")
class TestExample(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mg-pytest-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def example(self, *args, supervise=None, timeout=90):
        cmd = [_support.PYTHON, _support.EXAMPLE, "--out-dir", self.dir, *SMALL, *args]
        if supervise:
            cmd = [_support.CLI, "run", *supervise, "--", *cmd]
        return _support.run(cmd, timeout=timeout, env=_support.env(), cwd=self.dir)

    def checkpoint(self, name):
        return torch.load(os.path.join(self.dir, name), map_location="cpu")

    def test_short_run(self):
        r = self.example()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("System Resource Check", r.stdout)
        self.assertIn("Automatic memory monitor enabled", r.stdout)
        self.assertIn("Epoch 1: train loss", r.stdout)
        ck = self.checkpoint("last.pth")
        self.assertEqual((ck["epoch"], ck["next_epoch"]), (1, 2))
        self.assertFalse([f for f in os.listdir(self.dir) if "emergency" in f or ".tmp." in f])

    def test_clear_errors(self):
        r = self.example("--warn-gpu", "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("train_unet.py: warn_gpu 2.0: value out of range", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        cmd = [_support.PYTHON, _support.EXAMPLE, "--out-dir", self.dir, *SMALL]
        r = _support.run(cmd, timeout=60, cwd=self.dir,
                         env=_support.env(MEMGUARD_LIBRARY="/nonexistent/libmemguard.so"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("MEMGUARD_LIBRARY='/nonexistent/libmemguard.so': no such file", r.stderr)

    def assert_emergency(self, r):
        """Exit 75, the banner, a complete emergency_epochN.pth; returns
        (file name, N)."""
        self.assertEqual(r.returncode, 75, r.stdout + r.stderr)
        self.assertIn("Emergency stop", r.stdout)
        m = re.search(r"Emergency save complete: .*/(emergency_epoch([0-9]+)\.pth)\n", r.stdout)
        self.assertTrue(m, r.stdout)
        name, epoch = m.group(1), int(m.group(2))
        self.assertIn(f"Current epoch: {epoch}", r.stdout)
        self.assertFalse([f for f in os.listdir(self.dir) if ".tmp." in f])
        ck = self.checkpoint(name)
        self.assertEqual(ck["epoch"], epoch)
        self.assertEqual(ck["next_epoch"], epoch)
        self.assertIn("enc.0.0.weight", ck["model"])
        # Adam has taken steps before the stop: its state is not empty.
        self.assertTrue(ck["optimizer"]["state"])
        return name, epoch

    def test_guard_budget_stops_then_resume(self):
        r = self.example("--ram-budget", "600M", *LEAK)
        name, epoch = self.assert_emergency(r)
        self.assertIn("RAM usage high", r.stdout)
        self.assertIn("Reason: ", r.stdout)
        r = self.example("--resume", os.path.join(self.dir, name), "--epochs", "3")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"Resumed from {os.path.join(self.dir, name)}: epoch {epoch}", r.stdout)
        self.assertNotIn(f"Epoch {epoch - 1}:", r.stdout)
        self.assertIn(f"Epoch {epoch}: train loss", r.stdout)
        self.assertIn("Training finished", r.stdout)
        self.assertEqual(self.checkpoint("last.pth")["next_epoch"], 3)

    def test_memguard_run_budget_stops(self):
        # memguard run samples the tree's PSS, at intervals of up to a second
        # or two on a loaded machine, while this leak runs at up to 1 GB/s:
        # the stop threshold (30 % of 2000M, ~22 batches in) lies 1.3 GiB
        # below the hard limit, more than the 5 epochs can leak, so a late
        # sample delays the stop but cannot turn it into a kill.
        r = self.example("--leak-mb", "16", "--epochs", "5",
                         supervise=["--ram-budget", "2000M", "--warn-ram", "0.25",
                                    "--stop-ram", "0.3", "--grace", "30"])
        name, _ = self.assert_emergency(r)
        self.assertIn("asking pid", r.stderr)
        # The trainer acknowledged the save: memguard run names the file.
        self.assertIn(f"saved {os.path.join(self.dir, name)} and stopped (exit 75)", r.stderr)
        # The reason memguard run wrote in the stop file is the banner's.
        m = re.search(r"critical: (RAM (?:usage high|filling fast): [^;]*);", r.stderr)
        self.assertTrue(m, r.stderr)
        self.assertRegex(r.stdout, r"\nReason: \S+ " + re.escape(m.group(1)) + "\n")

    def test_memguard_run_restart_smaller_batch(self):
        # 80 MiB per image held during each step: at batch 4 (~0.25 GiB +
        # 320 MiB) past 88 % of 600M, at batch 2 (+160 MiB) below warn.
        # memguard run stops the first start, the example saves, and
        # --restart starts it again with MEMGUARD_RESUME: it resumes one
        # size down the seed's table and finishes.
        r = self.example("--batch", "4", "--act-mb", "80", "--epochs", "2",
                         supervise=["--ram-budget", "600M", "--restart", "2", "--grace", "30"],
                         timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        name = os.path.join(self.dir, "emergency_epoch0.pth")
        self.assertIn(f"saved {name} and stopped (exit 75)", r.stderr)
        self.assertIn(f"restart 1 of 2: MEMGUARD_RESUME={name}", r.stderr)
        self.assertIn("memguard run restart 1: batch 2", r.stdout)
        self.assertIn(f"Resumed from {name}: epoch 0", r.stdout)
        self.assertIn("Training finished", r.stdout)
        self.assertEqual(self.checkpoint("last.pth")["config"]["BATCH"], 2)
        self.assertEqual(self.checkpoint("last.pth")["next_epoch"], 2)

    def test_memguard_run_shrink_in_process(self):
        # The same pressure as above, with --on-memory shrink: the example
        # saves, answers "continuing" and redoes the epoch at batch 2 in the
        # same process; memguard run logs "continue" and never stops it.
        log = os.path.join(self.dir, "run.jsonl")
        r = self.example("--batch", "4", "--act-mb", "80", "--epochs", "2", "--on-memory",
                         "shrink", supervise=["--ram-budget", "600M", "--grace", "30", "--log",
                                              log], timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        name = os.path.join(self.dir, "emergency_epoch0.pth")
        self.assertIn(f"[memguard] batch 4 -> 2: continuing ({name} saved)", r.stdout)
        self.assertIn(f"saved {name} and continues (batch 4 -> 2)", r.stderr)
        self.assertNotIn("Emergency stop", r.stdout)
        self.assertIn("Training finished", r.stdout)
        with open(log, encoding="utf-8") as f:
            events = [json.loads(line)["event"] for line in f]
        self.assertEqual(events.count("request"), 1, events)
        self.assertEqual(events.count("continue"), 1, events)
        self.assertNotIn("term", events)
        self.assertNotIn("ack", events)
        self.assertEqual(self.checkpoint("emergency_epoch0.pth")["config"]["BATCH"], 4)
        self.assertEqual(self.checkpoint("last.pth")["config"]["BATCH"], 2)
        self.assertEqual(self.checkpoint("last.pth")["next_epoch"], 2)

    def test_own_budget_shrink_then_stop_at_batch_1(self):
        # The Guard's own budget, far too small for any batch: it shrinks
        # 2 -> 1 in the process, then stops with 75 at batch 1 (the seed's
        # table ends there), the checkpoint saved.
        r = self.example("--ram-budget", "100M", "--on-memory", "shrink")
        self.assertIn("[memguard] batch 2 -> 1: continuing (", r.stdout)
        self.assertEqual(r.stdout.count(": continuing ("), 1, r.stdout)
        self.assertEqual(r.returncode, 75, r.stdout + r.stderr)
        self.assertIn("Emergency stop", r.stdout)
        self.assertIn(f"Emergency save complete: {self.dir}/emergency_epoch0.pth", r.stdout)
        ck = self.checkpoint("emergency_epoch0.pth")
        self.assertEqual((ck["config"]["BATCH"], ck["next_epoch"]), (1, 0))

    def test_bad_on_memory(self):
        r = self.example("--on-memory", "grow")
        self.assertEqual(r.returncode, 2)
        self.assertIn("argument --on-memory: invalid choice: 'grow'", r.stderr)


if __name__ == "__main__":
    unittest.main()
