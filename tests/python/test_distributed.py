"""Guard under torch.distributed: a real two-process gloo group on the CPU
(_dist_rank.py, two subprocesses meeting through init_method file://) where
only rank 1 wants to stop, by its own critical check or by a stop file only
it sees. Both ranks must stop at the same step, rank 0 must print the banner
with "Reason: [rank 1] ...", rank 1 its critical line prefixed "[rank 1] ",
exactly one emergency_epoch1.pth must exist, acknowledged, both ranks exit
75, and a step without a stop costs one all-reduce."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import _support

try:
    import torch
except ImportError:  # the tests need Debian's /usr/bin/python3 with python3-torch
    torch = None

RANK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_dist_rank.py")
DEADLINE_S = 60


def run_ranks(cmds, env, timeout):
    """Runs the commands side by side, each in its own session; returns
    [(status, stdout, stderr)]. Past ``timeout`` every one is killed and the
    test fails."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, env=env) for c in cmds]
    end = time.monotonic() + timeout
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, end - time.monotonic()))
            results.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ranks still running after {timeout} s")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    return results


@unittest.skipIf(torch is None, "torch is not importable (use /usr/bin/python3)")
class TestTwoRanks(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mg-dist-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out = os.path.join(self.dir, "out")
        os.mkdir(self.out)
        self.ack = os.path.join(self.dir, "ack")

    def ranks(self, mode):
        init = os.path.join(self.dir, "init")
        cmds = [[_support.PYTHON, RANK_SCRIPT, str(r), "2", init, self.out, mode]
                for r in (0, 1)]
        env = _support.env(MEMGUARD_ACK_FILE=self.ack, OMP_NUM_THREADS="1")
        return run_ranks(cmds, env, DEADLINE_S)

    def check_stop(self, results, step, reason_re):
        (rc0, out0, err0), (rc1, out1, err1) = results
        both = f"rank 0:\n{out0}{err0}\nrank 1:\n{out1}{err1}"
        self.assertEqual((rc0, rc1), (75, 75), both)
        self.assertIn(f"rank 0 stops at step {step}: [rank 1] ", out0, both)
        self.assertIn(f"rank 1 stops at step {step}: ", out1, both)
        # Rank 0: the banner, with the reason from rank 1; rank 1: no banner.
        self.assertRegex(out0, r"\nReason: \[rank 1\] (\u26a0\ufe0f|\[!\]) " + reason_re + "\n")
        self.assertIn("Emergency save complete: ", out0)
        self.assertNotIn("Emergency stop", out1)
        self.assertEqual(os.listdir(self.out), ["emergency_epoch1.pth"])
        self.assertEqual(torch.load(os.path.join(self.out, "emergency_epoch1.pth"))["step"],
                         step)
        with open(self.ack) as f:
            self.assertEqual(f.read(), os.path.join(self.out, "emergency_epoch1.pth") + "\n")
        # Each step: the fake gradient sync and should_stop's one all-reduce;
        # the reason's broadcast only once, on the step that stops.
        for rank, out in ((0, out0), (1, out1)):
            self.assertIn(f"rank {rank} collectives: all_reduce={2 * (step + 1)} "
                          "broadcast_object_list=1", out)
        return out0, out1

    def test_rank1_critical(self):
        out0, out1 = self.check_stop(self.ranks("budget"), 20,
                                     r"RAM usage high: [0-9.]+% \([0-9.]+GB/[0-9.]+GB\)")
        m = re.search(r"rank 0 stops at step 20: \[rank 1\] (RAM usage high: .*)\n", out0)
        self.assertTrue(m, out0)
        self.assertIn(f"rank 1 stops at step 20: {m.group(1)}\n", out1)
        self.assertRegex(out1, r"\[rank 1\] \[Batch 20\] \S+ RAM usage high: ")
        self.assertNotIn("[Batch 20]", out0)

    def test_rank1_stop_file(self):
        reason = "RAM usage high: 99.0% (1.98GB/2.0GB)"
        out0, out1 = self.check_stop(self.ranks("file"), 13, re.escape(reason))
        self.assertIn(f"rank 0 stops at step 13: [rank 1] {reason}\n", out0)
        self.assertIn(f"rank 1 stops at step 13: {reason}\n", out1)


if __name__ == "__main__":
    unittest.main()
