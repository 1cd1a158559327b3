"""The memguard run protocol on the trainer's side, without a supervisor: the
stop file's reason (missing, empty, one line, huge, binary, not a regular
file), the acknowledgement file (content, mode, atomic rename, a planted
symlink not followed, nothing acknowledged after a failed save), the
"continuing" answer to a memory request (its text, when it is allowed, and
that the answered request no longer counts while a new one does), the banner's
Reason line, and a relative MEMGUARD_LIBRARY after a chdir. Real files in a
temporary folder; the chdir case runs in a child process."""
import contextlib
import io
import os
import stat
import tempfile
import threading
import unittest

import _support
import memguard
from memguard import _lib

HEADER = b"memguard stop request\n"
REASON = "RAM usage high: 88.5% (1.77GB/2.0GB)"


def guard(**kw):
    kw.setdefault("no_gpu", True)
    kw.setdefault("lang", "en")
    kw.setdefault("stop_signal", 0)
    kw.setdefault("banner", False)
    return memguard.Guard(file=io.StringIO(), **kw)


class Tmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


class TestStopFileReason(Tmp):
    def test_missing_file(self):
        self.assertIsNone(memguard.read_stop_reason(os.path.join(self.dir, "none")))
        self.assertIsNone(memguard.read_stop_reason(None))
        s = memguard.StopRequest(signo=0, stop_file=os.path.join(self.dir, "none"))
        self.assertFalse(s.requested())
        self.assertIsNone(s.reason())

    def test_empty_file_asks_without_reason(self):
        path = self.write("stop", b"")
        self.assertIsNone(memguard.read_stop_reason(path))
        s = memguard.StopRequest(signo=0, stop_file=path)
        self.assertTrue(s.requested())
        self.assertEqual(s.reason(), f"stop file {path}")

    def test_header_only(self):
        for data in (HEADER, HEADER + b"\n", HEADER + b"   \n", HEADER[:-1]):
            path = self.write("stop", data)
            self.assertIsNone(memguard.read_stop_reason(path), data)

    def test_reason_line(self):
        for tail in (b"", b"\n", b"\nanything after line 2\n"):
            path = self.write("stop", HEADER + REASON.encode() + tail)
            self.assertEqual(memguard.read_stop_reason(path), REASON)

    def test_header_must_be_exact(self):
        for data in (b"Memguard stop request\n" + REASON.encode(),
                     b" memguard stop request\n" + REASON.encode(),
                     b"memguard stop request \n" + REASON.encode(),
                     REASON.encode()):
            path = self.write("stop", data)
            self.assertIsNone(memguard.read_stop_reason(path), data)

    def test_huge_file_reads_4k(self):
        path = self.write("stop", HEADER + b"x" * (1 << 20) + b"\n")
        reason = memguard.read_stop_reason(path)
        self.assertEqual(reason, "x" * (4096 - len(HEADER)))

    def test_huge_file_cut_inside_a_character(self):
        # 4096 - 22 header bytes - "a" = 4073: the 2037th two-byte character
        # is cut after its first byte.
        path = self.write("stop", HEADER + b"a" + "é".encode() * 3000)
        reason = memguard.read_stop_reason(path)
        self.assertEqual(reason, "a" + "é" * 2036 + "\ufffd")

    def test_binary_reason(self):
        path = self.write("stop", HEADER + b"RAM \xff\xfe high\x1b[31m red\x00\x07\r\n")
        reason = memguard.read_stop_reason(path)
        self.assertEqual(reason, "RAM \ufffd\ufffd high\ufffd[31m red\ufffd\ufffd\ufffd")
        for c in reason:
            self.assertTrue(c.isprintable(), repr(c))

    def test_utf8_reason(self):
        text = "GPU使用率が危険: 91.2% (10.94GB/12.0GB)"
        path = self.write("stop", HEADER + text.encode() + b"\n")
        self.assertEqual(memguard.read_stop_reason(path), text)

    def test_fifo_and_directory_do_not_hang(self):
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        done = []
        t = threading.Thread(target=lambda: done.append(memguard.read_stop_reason(fifo)),
                             daemon=True)
        t.start()
        t.join(5)
        self.assertEqual(done, [None])
        self.assertIsNone(memguard.read_stop_reason(self.dir))

    def test_stop_request_reads_reason_once_asked(self):
        path = os.path.join(self.dir, "stop")
        s = memguard.StopRequest(signo=0, stop_file=path)
        self.assertFalse(s.requested())
        self.assertIsNone(s.file_reason)
        self.write("stop", HEADER + REASON.encode() + b"\n")
        self.assertTrue(s.requested())
        self.assertEqual(s.file_reason, REASON)
        self.assertEqual(s.reason(), REASON)
        s.close()


class TestGuardReason(Tmp):
    def test_stop_file_reason_in_banner(self):
        path = self.write("stop", HEADER + REASON.encode() + b"\n")
        g = guard(stop_file=path)
        self.assertTrue(g.should_stop())
        self.assertEqual(g.stop_reason, REASON)
        out = g.emergency_save(lambda p: open(p, "w").close(), 4, directory=self.dir,
                               exit=False)
        text = g.file.getvalue()
        marker = "[!]" if not _lib.library().mg_text_opts_from_env(-1).emoji else "\u26a0\ufe0f"
        self.assertIn(f"Reason: {marker} {REASON}\n", text)
        self.assertIn(f"Emergency save complete: {out}\n", text)
        self.assertIn("Exiting safely", text)

    def test_no_emoji_marker(self):
        path = self.write("stop", HEADER + REASON.encode() + b"\n")
        g = guard(stop_file=path)
        g.monitor._opts = lambda stream: _lib.TextOpts(_lib.MG_LANG_EN, False)
        g.should_stop()
        g.emergency_save(lambda p: open(p, "w").close(), 4, directory=self.dir, exit=False)
        text = g.file.getvalue()
        self.assertIn(f"Reason: [!] {REASON}\n", text)
        self.assertNotIn("\u26a0", text)

    def test_stop_file_without_reason_still_has_reason_line(self):
        path = self.write("stop", HEADER)
        g = guard(stop_file=path)
        self.assertTrue(g.should_stop())
        g.emergency_save(lambda p: open(p, "w").close(), 1, directory=self.dir, exit=False)
        self.assertIn(f"stop file {path}\n", g.file.getvalue())
        self.assertIn("Reason: ", g.file.getvalue())

    def test_own_critical_reason(self):
        g = guard(ram_budget="1M", stop_file="")
        g.epoch_start(2)
        self.assertTrue(g.should_stop())
        self.assertRegex(g.stop_reason, r"^RAM usage high: [0-9.]+% \([0-9.]+GB/[0-9.]+GB\)$")
        g.emergency_save(lambda p: open(p, "w").close(), directory=self.dir, exit=False)
        self.assertRegex(g.file.getvalue(), r"\nReason: \S+ RAM usage high: [0-9.]+% ")


class TestAcknowledge(Tmp):
    def ack_env(self):
        return {"MEMGUARD_ACK_FILE": os.path.join(self.dir, "ack")}

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_not_under_memguard_run(self):
        self.assertIsNone(memguard.acknowledge("x.pth", env={}))
        self.assertIsNone(memguard.acknowledge("x.pth", env={"MEMGUARD_ACK_FILE": ""}))
        self.assertEqual(os.listdir(self.dir), [])

    def test_writes_absolute_path_mode_0600(self):
        env = self.ack_env()
        old = os.getcwd()
        os.chdir(self.dir)
        try:
            ack = memguard.acknowledge("emergency_epoch3.pth", env=env)
        finally:
            os.chdir(old)
        self.assertEqual(ack, env["MEMGUARD_ACK_FILE"])
        self.assertEqual(self.read(ack), os.path.join(self.dir, "emergency_epoch3.pth") + "\n")
        self.assertEqual(stat.S_IMODE(os.stat(ack).st_mode), 0o600)
        self.assertEqual(os.listdir(self.dir), ["ack"])

    def test_replaces_an_older_ack(self):
        env = self.ack_env()
        self.write("ack", b"/old/path.pth\n")
        memguard.acknowledge("/new/emergency_epoch1.pth", env=env)
        self.assertEqual(self.read(env["MEMGUARD_ACK_FILE"]), "/new/emergency_epoch1.pth\n")

    def test_planted_symlink_not_followed(self):
        env = self.ack_env()
        victim = os.path.join(self.dir, "victim")
        existing = self.write("existing", b"keep me\n")
        tmp = f"{env['MEMGUARD_ACK_FILE']}.tmp.{os.getpid()}"
        for target in (victim, existing):
            os.symlink(target, tmp)
            memguard.acknowledge("/ckpt/emergency_epoch2.pth", env=env)
            self.assertFalse(os.path.lexists(tmp))
            self.assertFalse(os.path.islink(env["MEMGUARD_ACK_FILE"]))
            self.assertEqual(self.read(env["MEMGUARD_ACK_FILE"]), "/ckpt/emergency_epoch2.pth\n")
        self.assertFalse(os.path.exists(victim))
        self.assertEqual(self.read(existing), "keep me\n")

    def test_missing_folder_raises_and_leaves_nothing(self):
        env = {"MEMGUARD_ACK_FILE": os.path.join(self.dir, "gone", "ack")}
        with self.assertRaises(FileNotFoundError):
            memguard.acknowledge("/x.pth", env=env)
        self.assertEqual(os.listdir(self.dir), [])

    def set_env_ack(self):
        ack = os.path.join(self.dir, "ack")
        old = os.environ.get("MEMGUARD_ACK_FILE")
        os.environ["MEMGUARD_ACK_FILE"] = ack
        self.addCleanup(lambda: os.environ.pop("MEMGUARD_ACK_FILE") if old is None
                        else os.environ.__setitem__("MEMGUARD_ACK_FILE", old))
        return ack

    def test_emergency_save_acknowledges(self):
        ack = self.set_env_ack()
        out = os.path.join(self.dir, "out")
        os.mkdir(out)

        def save(p):
            self.assertFalse(os.path.exists(ack))  # never before the save
            with open(p, "wb") as f:
                f.write(b"ckpt")

        g = guard(ram_budget="1M", stop_file="")
        g.epoch_start(5)
        self.assertTrue(g.should_stop())
        with self.assertRaises(SystemExit) as cm:
            g.emergency_save(save, directory=out)
        self.assertEqual(cm.exception.code, 75)
        self.assertEqual(self.read(ack), os.path.join(out, "emergency_epoch5.pth") + "\n")
        self.assertEqual(sorted(os.listdir(self.dir)), ["ack", "out"])

    def test_failed_save_is_not_acknowledged(self):
        ack = self.set_env_ack()
        g = guard(ram_budget="1M", stop_file="")
        g.epoch_start(6)

        def save(p):
            with open(p, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")

        with self.assertRaises(OSError):
            g.emergency_save(save, directory=self.dir)
        self.assertFalse(os.path.exists(ack))
        self.assertEqual(os.listdir(self.dir), [])
        text = g.file.getvalue()
        path = os.path.join(self.dir, "emergency_epoch6.pth")
        self.assertIn(f"Emergency save FAILED: {path}: [Errno 28] No space left on device",
                      text)
        self.assertRegex(text, r"Reason: \S+ RAM usage high")
        self.assertIn("Exiting WITHOUT a checkpoint", text)
        self.assertNotIn("Exiting safely", text)

    def test_failed_ack_still_exits_75(self):
        ack = self.set_env_ack()
        os.mkdir(ack)  # os.replace of a file onto a folder fails
        g = guard(stop_file="")
        err = io.StringIO()
        with self.assertRaises(SystemExit) as cm, contextlib.redirect_stderr(err):
            g.emergency_save(lambda p: open(p, "w").close(), 1, directory=self.dir)
        self.assertEqual(cm.exception.code, 75)
        self.assertIn("memguard: could not acknowledge "
                      f"{os.path.join(self.dir, 'emergency_epoch1.pth')} to memguard run: ",
                      err.getvalue())
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "emergency_epoch1.pth")))
        self.assertFalse([f for f in os.listdir(self.dir) if ".tmp." in f])


class TestContinue(Tmp):
    """Answering a memory request with "saved and continuing" (memguard.h,
    "Continuing instead of stopping"), as unet-train --on-memory shrink
    does through mg_stop_continue."""

    def stop(self, n, kind="memory", cont=True):
        path = self.write("stop", HEADER + REASON.encode() + f"\nrequest {n} {kind}\n".encode())
        env = {"MEMGUARD_CONTINUE_FILE": os.path.join(self.dir, "cont")} if cont else {}
        return path, memguard.StopRequest(signo=0, stop_file=path, env=env)

    def test_request_line(self):
        parse = memguard.stop.parse_request
        self.assertEqual(parse(HEADER + b"r\nrequest 3 memory\n"), (3, True))
        self.assertEqual(parse(HEADER + b"r\nrequest 12 stop\n"), (12, False))
        self.assertEqual(parse(HEADER + b"r\nrequest 4 memory"), (4, True))
        for bad in (HEADER + b"r\n", HEADER + b"r\nrequest 0 memory\n",
                    HEADER + b"r\nrequest  3 memory\n", HEADER + b"r\nrequest x memory\n",
                    b"other\nr\nrequest 3 memory\n", b""):
            self.assertEqual(parse(bad), (0, False), bad)

    def test_answer_and_the_next_request(self):
        path, s = self.stop(3)
        self.assertTrue(s.requested())
        self.assertTrue(s.may_continue())
        s.continue_after(os.path.join(self.dir, "e.pth"), "batch 8 -> 6")
        with open(os.path.join(self.dir, "cont"), encoding="utf-8") as f:
            self.assertEqual(f.read(), f"memguard continue\nrequest 3\ncheckpoint "
                             f"{os.path.join(self.dir, 'e.pth')}\nnote batch 8 -> 6\n")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, "cont")).st_mode), 0o600)
        # The answered request stays until memguard run takes the answer.
        self.assertFalse(s.requested())
        self.assertFalse(s.may_continue())
        with self.assertRaises(memguard.MemguardError):
            s.continue_after("e.pth")
        # memguard run took it and asks again: request 4 counts.
        self.write("stop", HEADER + b"RAM usage high: 90%\nrequest 4 memory\n")
        self.assertTrue(s.requested())
        self.assertEqual(s.reason(), "RAM usage high: 90%")
        self.assertTrue(s.may_continue())
        self.assertEqual(sorted(os.listdir(self.dir)), ["cont", "stop"])

    def test_must_stop(self):
        # A manual request, an older memguard run (no request line), or one
        # that does not take the answer: stop as before.
        for n, kind, cont in ((5, "stop", True), (5, "memory", False)):
            _, s = self.stop(n, kind, cont)
            self.assertTrue(s.requested())
            self.assertFalse(s.may_continue())
            with self.assertRaises(memguard.MemguardError):
                s.continue_after("e.pth")
        self.write("stop", HEADER + REASON.encode() + b"\n")
        s = memguard.StopRequest(signo=0, stop_file=os.path.join(self.dir, "stop"),
                                 env={"MEMGUARD_CONTINUE_FILE": os.path.join(self.dir, "c2")})
        self.assertTrue(s.requested())
        self.assertFalse(s.may_continue())
        self.assertFalse(os.path.exists(os.path.join(self.dir, "c2")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cont")))

    def test_note_must_be_one_line(self):
        _, s = self.stop(2)
        with self.assertRaises(memguard.MemguardError):
            s.continue_after("e.pth", "two\nlines")
        self.assertTrue(s.requested())
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cont")))

    def test_guard_own_critical_may_continue(self):
        g = guard(ram_budget=1 << 20)  # far over: critical at the first check
        g.check()
        self.assertTrue(g.should_stop())
        self.assertTrue(g.may_continue())
        g.continue_after(os.path.join(self.dir, "e.pth"), "batch 4 -> 2")
        self.assertFalse(g.should_stop())
        self.assertIn("[memguard] batch 4 -> 2: continuing (", g.file.getvalue())
        self.assertIsNone(g.stop_reason)
        g.check()  # still over: it says so again
        self.assertTrue(g.should_stop())
        g.close()

    def test_guard_without_a_stop(self):
        g = guard()
        self.assertFalse(g.should_stop())
        self.assertFalse(g.may_continue())
        g.close()


class TestRelativeLibrary(Tmp):
    def test_absolute_library_env(self):
        env = {"MEMGUARD_LIBRARY": "build/libmemguard.so"}
        _lib.absolute_library_env(env, cwd="/src")
        self.assertEqual(env["MEMGUARD_LIBRARY"], "/src/build/libmemguard.so")
        env = {"MEMGUARD_LIBRARY": "/abs/libmemguard.so"}
        _lib.absolute_library_env(env, cwd="/src")
        self.assertEqual(env["MEMGUARD_LIBRARY"], "/abs/libmemguard.so")
        env = {}
        _lib.absolute_library_env(env, cwd="/src")
        self.assertEqual(env, {})

    def test_relative_path_survives_chdir(self):
        lib = os.environ["MEMGUARD_LIBRARY"]
        rel = os.path.relpath(lib, _support.ROOT)
        self.assertFalse(os.path.isabs(rel))
        # The script moves away before it first uses the library, and so
        # does a spawned child (it inherits the environment, not the cwd).
        code = f"""
import multiprocessing as mp, os, sys
import memguard

def child(q):
    os.chdir({self.dir!r})
    q.put((os.environ["MEMGUARD_LIBRARY"], memguard.check_memory_safety(1.0, 1.0, no_gpu=True)))

if __name__ == "__main__":
    os.chdir({self.dir!r})
    print(os.environ["MEMGUARD_LIBRARY"])
    print(memguard.check_memory_safety(1.0, 1.0, no_gpu=True))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    print(q.get(timeout=30))
    p.join(30)
    sys.exit(p.exitcode)
"""
        script = self.write("chdir.py", code.encode())
        r = _support.run([_support.PYTHON, script], timeout=60, cwd=_support.ROOT,
                         env=_support.env(MEMGUARD_LIBRARY=rel))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], os.path.join(_support.ROOT, rel))
        self.assertEqual(lines[1], "(True, None)")
        self.assertEqual(lines[2], repr((os.path.join(_support.ROOT, rel), (True, None))))


if __name__ == "__main__":
    unittest.main()
