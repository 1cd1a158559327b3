"""Guard without torch: cadence, warn line and its rate limit, critical,
the memguard run protocol (signal, stop file), emergency_save."""
import io
import os
import signal
import tempfile
import unittest

import _support  # noqa: F401  (puts the package on sys.path)
import memguard


def guard(**kw):
    kw.setdefault("no_gpu", True)
    kw.setdefault("lang", "en")
    kw.setdefault("stop_signal", 0)
    kw.setdefault("stop_file", "")
    return memguard.Guard(file=io.StringIO(), **kw)


class TestCadence(unittest.TestCase):
    def test_seed_cadence(self):
        g = guard(banner=False)
        calls = []
        sample = g.monitor.sample
        g.monitor.sample = lambda: calls.append(1) or sample()
        g.epoch_start(0)
        self.assertEqual(len(calls), 1)
        for i in range(31):
            self.assertEqual(g.train_batch(i), memguard.Level.SAFE)
        self.assertEqual(len(calls), 1 + 4)       # batches 0, 10, 20, 30
        for i in range(31):
            g.eval_batch(i)
        self.assertEqual(len(calls), 1 + 4 + 3)   # batches 0, 15, 30
        g.close()

    def test_banner(self):
        g = guard(ram_budget="8G")
        text = g.file.getvalue()
        self.assertIn("warn at 90%, emergency stop at 92%", text)
        self.assertIn("every 10 batches", text)
        self.assertIn("every 15 batches", text)
        g.close()


class TestPrediction(unittest.TestCase):
    def test_options_reach_the_config(self):
        g = guard(banner=False)
        self.assertEqual(g.monitor.config["predict_lead_ms"], 3000)
        self.assertFalse(g.monitor.config["no_predict"])
        g.close()
        g = guard(banner=False, predict=False, predict_lead=0.5)
        self.assertTrue(g.monitor.config["no_predict"])
        self.assertEqual(g.monitor.config["predict_lead_ms"], 500)
        g.close()
        for bad in (0, -1, "3", True, float("nan"), 8 * 86400):
            with self.assertRaises(memguard.MemguardError) as cm:
                guard(banner=False, predict_lead=bad)
            self.assertIn("predict_lead", str(cm.exception))

    def test_timed_save_sets_the_lead(self):
        g = guard(banner=False)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "last.pth")

            def slow_save(p):
                import time
                time.sleep(0.3)
                with open(p, "wb") as f:
                    f.write(b"ckpt")

            self.assertEqual(g.save(slow_save, path), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"ckpt")
            self.assertEqual(sorted(os.listdir(d)), ["last.pth"])
        lead = g.monitor.config["predict_lead_ms"]
        self.assertGreaterEqual(lead, 1600)   # 2 x >= 300 ms + 1 s
        self.assertLess(lead, 4000)
        with self.assertRaises(memguard.MemguardError):
            g.monitor.note_save(-1)
        g.close()


class TestRestart(unittest.TestCase):
    def test_suggest_batch_follows_the_seed_table(self):
        s = memguard.Guard.suggest_batch
        self.assertEqual([s(b) for b in (8, 7, 6, 5, 4, 3, 2, 1)], [6, 6, 4, 4, 2, 2, 1, 1])
        self.assertEqual([s(b) for b in (9, 16, 32, 100)], [8, 12, 24, 75])
        for bad in (0, -2, 2.0, "4", True, None):
            with self.assertRaises(memguard.MemguardError):
                s(bad)

    def test_resume_path_and_attempt_from_the_environment(self):
        g = guard(banner=False)
        old = {k: os.environ.get(k) for k in ("MEMGUARD_RESUME", "MEMGUARD_ATTEMPT")}
        try:
            with tempfile.TemporaryDirectory() as d:
                ck = os.path.join(d, "emergency_epoch3.pth")
                os.environ["MEMGUARD_RESUME"] = ck
                os.environ["MEMGUARD_ATTEMPT"] = "2"
                self.assertIsNone(g.resume_path)   # named, but not there
                with open(ck, "wb") as f:
                    f.write(b"x")
                self.assertEqual(g.resume_path, ck)
                self.assertEqual(g.attempt, 2)
                os.environ["MEMGUARD_ATTEMPT"] = "two"
                self.assertEqual(g.attempt, 0)
            del os.environ["MEMGUARD_RESUME"]
            self.assertIsNone(g.resume_path)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            g.close()


class TestLevels(unittest.TestCase):
    def test_warn_line_rate_limited(self):
        g = guard(warn_ram="0.1%", stop_ram=1.0, banner=False)
        self.assertEqual(g.train_batch(50), memguard.Level.WARN)
        g.train_batch(60)
        g.eval_batch(15)
        lines = g.file.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^\[Batch 50\] .*RAM usage high: [0-9.]+% "
                                   r"\([0-9.]+GB/[0-9.]+GB\)$")
        self.assertFalse(g.should_stop())
        g.close()

    def test_warn_line_repeats_when_due(self):
        g = guard(warn_ram="0.1%", stop_ram=1.0, warn_every_s=0, banner=False)
        for i in (0, 10, 20):
            g.train_batch(i)
        self.assertEqual(len(g.file.getvalue().splitlines()), 3)
        g.close()

    def test_critical_stops(self):
        g = guard(ram_budget="1M", banner=False)
        self.assertFalse(g.should_stop())
        self.assertEqual(g.epoch_start(4), memguard.Level.CRITICAL)
        self.assertTrue(g.should_stop())
        self.assertRegex(g.stop_reason, r"^RAM usage high: [0-9.]+% \(")
        self.assertIn("RAM usage high", g.file.getvalue())
        g.close()

    def test_bad_arguments(self):
        for kw, text in [(dict(warn_every_s=-1), "warn_every_s -1"),
                         (dict(stop_signal=-2), "stop_signal -2"),
                         (dict(ram_budget="lots"), "ram_budget 'lots'")]:
            with self.assertRaises(memguard.MemguardError, msg=kw) as cm:
                guard(**kw)
            self.assertIn(text, str(cm.exception))


class TestRunProtocol(unittest.TestCase):
    def test_signal_sets_flag_only(self):
        before = signal.getsignal(signal.SIGUSR1)
        g = guard(stop_signal=signal.SIGUSR1, banner=False)
        self.assertFalse(g.should_stop())
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertTrue(g.should_stop())
        self.assertEqual(g.stop_reason, f"signal {int(signal.SIGUSR1)}")
        g.close()
        self.assertEqual(signal.getsignal(signal.SIGUSR1), before)

    def test_signal_from_environment(self):
        s = memguard.StopRequest(env={"MEMGUARD_STOP_SIGNAL": str(int(signal.SIGUSR2))})
        self.assertEqual(s.signo, signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)
        self.assertTrue(s.requested())
        s.close()

    def test_bad_signal_in_environment(self):
        for text in ("USR1", "9", "0", "999"):
            with self.assertRaises(memguard.MemguardError) as cm:
                memguard.StopRequest(env={"MEMGUARD_STOP_SIGNAL": text})
            self.assertIn(f"MEMGUARD_STOP_SIGNAL={text!r}", str(cm.exception))

    def test_stop_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "stop")
            s = memguard.StopRequest(signo=0, env={"MEMGUARD_STOP_FILE": path})
            self.assertFalse(s.requested())
            open(path, "w").close()
            self.assertTrue(s.requested())
            self.assertEqual(s.reason(), f"stop file {path}")
            s.close()


class TestEmergencySave(unittest.TestCase):
    def test_saves_atomically_and_exits_75(self):
        with tempfile.TemporaryDirectory() as d:
            g = guard(ram_budget="1M", banner=False)
            g.epoch_start(7)
            self.assertTrue(g.should_stop())
            seen = []

            def save(path):
                seen.append(path)
                self.assertFalse(os.path.exists(os.path.join(d, "emergency_epoch7.pth")))
                with open(path, "wb") as f:
                    f.write(b"checkpoint")

            with self.assertRaises(SystemExit) as cm:
                g.emergency_save(save, directory=d)
            self.assertEqual(cm.exception.code, memguard.MG_EXIT_MEMSTOP)
            self.assertEqual(cm.exception.code, 75)
            self.assertEqual(os.path.dirname(seen[0]), d)
            self.assertEqual(os.listdir(d), ["emergency_epoch7.pth"])
            with open(os.path.join(d, "emergency_epoch7.pth"), "rb") as f:
                self.assertEqual(f.read(), b"checkpoint")
            text = g.file.getvalue()
            self.assertIn("Emergency stop", text)
            self.assertIn("Reason: ", text)
            self.assertIn("Current epoch: 7", text)
            self.assertIn("emergency_epoch7.pth", text)

    def test_failed_save_leaves_nothing_and_raises(self):
        with tempfile.TemporaryDirectory() as d:
            g = guard(banner=False)

            def save(path):
                with open(path, "wb") as f:
                    f.write(b"half")
                raise OSError(28, "No space left on device")

            with self.assertRaises(OSError):
                g.emergency_save(save, 3, directory=d)
            self.assertEqual(os.listdir(d), [])
            text = g.file.getvalue()
            path = os.path.join(d, "emergency_epoch3.pth")
            self.assertIn(f"Emergency save FAILED: {path}: [Errno 28] No space left on device\n",
                          text)
            self.assertIn("Exiting WITHOUT a checkpoint", text)
            self.assertIn("Current epoch: 3", text)
            self.assertNotIn("Exiting safely", text)
            self.assertNotIn("Emergency save complete", text)
            g.close()

    def test_no_exit(self):
        with tempfile.TemporaryDirectory() as d:
            g = guard(banner=False)
            path = g.emergency_save(lambda p: open(p, "w").close(), 2, directory=d,
                                    exit=False)
            self.assertEqual(path, os.path.join(d, "emergency_epoch2.pth"))
            self.assertNotIn("Reason:", g.file.getvalue())


if __name__ == "__main__":
    unittest.main()
