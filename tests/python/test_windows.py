"""The binding's Windows paths, run here on Linux: the stop event and the
armed event through a stand-in for kernel32 (the real one, and Windows
Python, cannot run on this machine: the README lists them as not yet
verified on real Windows), SIGBREAK as the checkpoint signal (played by
SIGUSR2, a real signal delivered to this process), the fsync flags of a
checkpoint, and where the DLL is looked for. Real files in a temporary
folder; the handler and the events are restored afterwards."""
import os
import signal
import tempfile
import unittest

import _support  # noqa: F401  (puts the package on sys.path)
import memguard
from memguard import _lib, checkpoint, stop

STOP_EVENT = "Local\\memguard-stop-4242"
ARMED = "Local\\memguard-armed-4242"


class FakeFn:
    """One kernel32 function: records its calls, answers with ``impl``."""

    def __init__(self, impl):
        self.impl = impl
        self.restype = None
        self.argtypes = None

    def __call__(self, *args):
        return self.impl(*args)


class FakeKernel32:
    """Named events as kernel32 keeps them: a name exists while a handle to
    it is open; handles are small integers."""

    def __init__(self):
        self.events = {}    # name -> set?
        self.handles = {}   # handle -> name
        self.next = 100
        self.OpenEventW = FakeFn(self._open)
        self.CreateEventW = FakeFn(self._create)
        self.WaitForSingleObject = FakeFn(self._wait)
        self.CloseHandle = FakeFn(self._close)

    def _new_handle(self, name):
        self.next += 4
        self.handles[self.next] = name
        return self.next

    def _open(self, access, inherit, name):
        assert access == 0x00100000 and not inherit  # SYNCHRONIZE, not inherited
        return self._new_handle(name) if name in self.events else None

    def _create(self, attrs, manual, initial, name):
        self.events.setdefault(name, bool(initial))
        return self._new_handle(name)

    def _wait(self, handle, ms):
        assert ms == 0
        return 0 if self.events[self.handles[handle]] else 0x102  # WAIT_TIMEOUT

    def _close(self, handle):
        name = self.handles.pop(handle)
        if name not in self.handles.values():
            del self.events[name]
        return 1

    def supervisor(self):
        """What memguard run does: creates the stop event, unset."""
        return self._create(None, True, False, STOP_EVENT)


class SigbreakIsUsr2(unittest.TestCase):
    """signal.SIGBREAK exists only on Windows: SIGUSR2 plays it here."""

    def setUp(self):
        self.addCleanup(delattr, signal, "SIGBREAK")
        signal.SIGBREAK = signal.SIGUSR2
        before = signal.getsignal(signal.SIGUSR2)
        self.addCleanup(signal.signal, signal.SIGUSR2, before)
        self.k = FakeKernel32()
        self.events = stop.Kernel32Events(self.k)
        self.env = {"MEMGUARD_STOP_EVENT": STOP_EVENT, "MEMGUARD_ARMED_EVENT": ARMED,
                    "MEMGUARD_STOP_SIGNAL": str(int(signal.SIGUSR2))}


class TestStopEvent(SigbreakIsUsr2):
    def test_event_asks_and_names_itself(self):
        sup = self.k.supervisor()
        s = memguard.StopRequest(env=self.env, events=self.events)
        self.assertFalse(s.requested())
        self.k.events[STOP_EVENT] = True  # SetEvent
        self.assertTrue(s.requested())
        self.assertEqual(s.reason(), f"stop event {STOP_EVENT}")
        s.close()
        self.k._close(sup)
        self.assertEqual(self.k.handles, {})

    def test_file_reason_wins_over_event(self):
        self.k.supervisor()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "stop")
            with open(path, "wb") as f:
                f.write(b"memguard stop request\nRAM usage high: 90.0% (9.00GB/10.0GB)\n")
            self.k.events[STOP_EVENT] = True
            s = memguard.StopRequest(env=dict(self.env, MEMGUARD_STOP_FILE=path),
                                     events=self.events)
            self.assertEqual(s.reason(), "RAM usage high: 90.0% (9.00GB/10.0GB)")
            s.close()

    def test_no_event_without_supervisor(self):
        s = memguard.StopRequest(env=self.env, events=self.events)  # nobody created it
        self.assertFalse(s.requested())
        self.assertIsNone(s.reason())
        s.close()

    def test_armed_while_handler_installed(self):
        s = memguard.StopRequest(env=self.env, events=self.events)
        mine = f"{ARMED}-{os.getpid()}"
        self.assertTrue(self.k.events.get(mine))
        os.kill(os.getpid(), signal.SIGUSR2)  # CTRL_BREAK_EVENT's SIGBREAK
        self.assertTrue(s.requested())
        self.assertEqual(s.reason(), f"signal {int(signal.SIGUSR2)}")
        s.close()
        self.assertNotIn(mine, self.k.events)
        s.close()  # idempotent

    def test_not_armed_without_a_break_handler(self):
        for signo in (0, int(signal.SIGUSR1)):
            s = memguard.StopRequest(signo=signo, env=self.env, events=self.events)
            self.assertNotIn(f"{ARMED}-{os.getpid()}", self.k.events, signo)
            s.close()

    def test_worker_ignores_break_and_is_armed(self):
        before = list(stop._worker_armed)
        self.addCleanup(stop._worker_armed.__setitem__, slice(None), before)
        stop.ignore_stop_signal(3, env=self.env, events=self.events)
        self.assertEqual(signal.getsignal(signal.SIGUSR2), signal.SIG_IGN)
        self.assertTrue(self.k.events.get(f"{ARMED}-{os.getpid()}"))
        self.assertEqual(len(stop._worker_armed), len(before) + 1)

    def test_worker_not_armed_for_another_signal(self):
        env = dict(self.env, MEMGUARD_STOP_SIGNAL=str(int(signal.SIGUSR1)))
        before = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, before)
        stop.ignore_stop_signal(env=env, events=self.events)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_IGN)
        self.assertEqual(self.k.events, {})


class TestDefaults(unittest.TestCase):
    def test_default_signal_here_is_usr1(self):
        self.assertEqual(stop._default_signal(), signal.SIGUSR1)
        self.assertIsNone(stop._windows_events())  # kernel32 only on Windows

    def test_fsync_flags(self):
        self.assertEqual(checkpoint._fsync_flags(False, "linux"), os.O_RDONLY)
        # FlushFileBuffers needs a handle opened for writing.
        self.assertEqual(checkpoint._fsync_flags(False, "win32") & os.O_ACCMODE, os.O_RDWR)
        self.assertEqual(checkpoint._fsync_flags(True, "linux"),
                         os.O_RDONLY | os.O_DIRECTORY)

    def test_fsync_of_a_read_write_open_leaves_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ckpt.pth")
            with open(path, "wb") as f:
                f.write(b"weights")
            fd = os.open(path, checkpoint._fsync_flags(False, "win32"))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"weights")


class TestWindowsLibraryPaths(unittest.TestCase):
    def test_dll_beside_the_package(self):
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "libmemguard.dll"), "w").close()
            self.assertEqual(_lib.find_library(env={}, package_dir=d, prefix_dirs=[],
                                               use_ldconfig=False, platform="win32"),
                             os.path.join(d, "libmemguard.dll"))

    def test_dll_under_prefix_bin(self):
        with tempfile.TemporaryDirectory() as d:
            pkg = os.path.join(d, "Lib", "site-packages", "memguard")
            os.makedirs(pkg)
            os.mkdir(os.path.join(d, "bin"))
            open(os.path.join(d, "bin", "libmemguard.dll"), "w").close()
            self.assertEqual(_lib.find_library(env={}, package_dir=pkg, use_ldconfig=False,
                                               platform="win32"),
                             os.path.join(d, "bin", "libmemguard.dll"))
            self.assertNotIn(os.path.join(d, "Lib"), _lib._prefix_dirs(pkg, "win32"))

    def test_not_found_names_the_dll(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(memguard.MemguardError) as cm:
                _lib.find_library(env={}, package_dir=d, prefix_dirs=[], use_ldconfig=False,
                                  platform="win32")
        self.assertIn("path of libmemguard.dll", str(cm.exception))
        self.assertIn(os.path.join(d, "memguard.dll"), str(cm.exception))


if __name__ == "__main__":
    unittest.main()
