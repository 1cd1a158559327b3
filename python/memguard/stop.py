"""The trainer's side of ``memguard run``: a flag-only signal handler, the
stop file and its reason, the stop event on Windows, and the acknowledgement
of a good save.

``memguard run`` puts these in its command's environment: MEMGUARD_STOP_FILE
(a path that appears when memory turns critical), MEMGUARD_ACK_FILE (where
the trainer acknowledges a good save), MEMGUARD_STOP_SIGNAL (the number of
the checkpoint signal: SIGUSR1 by default on Linux, SIGBREAK (21) on
Windows) and MEMGUARD_SUPERVISOR_PID; on Windows also MEMGUARD_STOP_EVENT
(the name of a manual-reset event memguard sets with the stop file) and
MEMGUARD_ARMED_EVENT (a name prefix, see below). The signal goes only to the
processes of the command's tree that can take it; the others (a torchrun
agent, a bash wrapper, spawned DataLoader workers) learn of the request from
the file, so a trainer checks both. The stop file is text: line 1 is exactly
``memguard stop request``, line 2 the reason in English without a marker
(``RAM usage high: 88.5% (1.77GB/2.0GB)``), possibly absent.

StopRequest installs a Python handler that only sets a flag (saving inside a
handler is what hangs, Lightning #21406), checks the flag, then the event,
then the file, when asked, and reads the file's reason once a request is
seen. acknowledge() writes the acknowledgement. Nothing here saves, prints
or exits: Guard does that.

Windows has no SIGUSR1; memguard run asks with the file and the event, and
sends CTRL_BREAK_EVENT (SIGBREAK) to the command's process group only when
every process of the run has said it survives one, because its default
action ends a process unsaved. A process says so by creating the event
"<MEMGUARD_ARMED_EVENT>-<its pid>" and keeping it open: StopRequest does
once its SIGBREAK handler is installed (closed again by close()), and
ignore_stop_signal() does for a worker that ignores SIGBREAK (kept until the
worker exits).

Process-wide state: the signal disposition itself (Python only lets the main
thread set it), the flag the handler writes, which lives on the StopRequest
object the handler closes over, and on Windows the armed events of
ignore_stop_signal(). close() restores the previous handler. Outside the
main thread no handler is installed and only the file (and the event) can
ask.
"""

import ctypes
import os
import signal
import stat
import sys
import threading

from ._lib import MemguardError, MG_EINVAL

STOP_FILE_ENV = "MEMGUARD_STOP_FILE"
STOP_SIGNAL_ENV = "MEMGUARD_STOP_SIGNAL"
ACK_FILE_ENV = "MEMGUARD_ACK_FILE"
STOP_EVENT_ENV = "MEMGUARD_STOP_EVENT"      # memguard.h MG_ENV_STOP_EVENT (Windows)
ARMED_EVENT_ENV = "MEMGUARD_ARMED_EVENT"    # memguard.h MG_ENV_ARMED_EVENT (Windows)
STOP_FILE_HEADER = "memguard stop request"  # memguard.h MG_STOP_FILE_HEADER
STOP_FILE_READ_MAX = 4096                   # bytes read of a stop file, as mg_stop_reason

_SYNCHRONIZE = 0x00100000   # the access right WaitForSingleObject needs
_WAIT_OBJECT_0 = 0


def _default_signal():
    """The checkpoint signal memguard run sends by default here: SIGUSR1,
    or SIGBREAK on Windows (which has no SIGUSR1); None if neither."""
    for name in ("SIGUSR1", "SIGBREAK"):
        if hasattr(signal, name):
            return getattr(signal, name)
    return None


def _signal_from_env(env):
    text = env.get(STOP_SIGNAL_ENV, "")
    if not text:
        return _default_signal()
    try:
        signo = int(text)
    except ValueError:
        signo = -1
    valid = set(signal.valid_signals()) - {getattr(signal, "SIGKILL", -1),
                                           getattr(signal, "SIGSTOP", -1)}
    if signo not in valid:
        raise MemguardError(MG_EINVAL, f"{STOP_SIGNAL_ENV}={text!r}: expected the number "
                            "of a catchable signal, such as 10 (SIGUSR1 on Linux)")
    return signo


def _printable(text):
    """``text`` with control characters (a terminal's escape sequences
    included) replaced by U+FFFD, since the reason is printed verbatim."""
    return "".join("\ufffd" if (ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0) else c
                   for c in text)


def parse_stop_file(data):
    """The reason in a stop file's bytes ``data``: line 2, decoded as UTF-8
    (bad bytes become U+FFFD, so do control characters), stripped. None when
    line 1 is not exactly the header, or line 2 is absent or blank."""
    header = STOP_FILE_HEADER.encode() + b"\n"
    if not data.startswith(header):
        return None
    line = data[len(header):].split(b"\n", 1)[0]
    text = _printable(line.decode("utf-8", "replace")).strip()
    return text or None


def read_stop_reason(path):
    """The reason of the stop file at ``path`` (see parse_stop_file), reading
    at most 4 KiB of a regular file. None when there is no file, it is not a
    regular file (a FIFO planted there must not hang the trainer), or it
    cannot be read."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return parse_stop_file(os.read(fd, STOP_FILE_READ_MAX))
    except OSError:
        return None
    finally:
        os.close(fd)


def acknowledge(checkpoint_path, env=None):
    """Tells ``memguard run`` that ``checkpoint_path`` is durably saved: writes
    its absolute path and a newline to MEMGUARD_ACK_FILE, through
    ``<ack>.tmp.<pid>`` (O_EXCL | O_NOFOLLOW, mode 0600; a stale entry of that
    name is unlinked first, never followed) and os.replace, so memguard run
    never reads half of it. Call it after the save, from the one process that
    saved. Returns the acknowledgement's path, or None when MEMGUARD_ACK_FILE
    is not set (not under memguard run). OSError propagates; the temporary
    is removed then."""
    env = os.environ if env is None else env
    ack = env.get(ACK_FILE_ENV, "")
    if not ack:
        return None
    text = os.path.abspath(os.fspath(checkpoint_path)) + "\n"
    tmp = f"{ack}.tmp.{os.getpid()}"
    try:
        os.unlink(tmp)  # ours by name: a leftover of this pid
    except FileNotFoundError:
        pass
    # O_BINARY: Windows would write the newline as CRLF in text mode.
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_BINARY", 0))
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, ack)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return ack


class Kernel32Events:
    """The two Windows events of the protocol, through kernel32 (ctypes).
    ``kernel32``: a ctypes.WinDLL("kernel32") or a stand-in with the same
    four functions (tests on other systems)."""

    def __init__(self, kernel32):
        k = kernel32
        HANDLE, DWORD, BOOL = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        k.OpenEventW.restype = HANDLE
        k.OpenEventW.argtypes = [DWORD, BOOL, ctypes.c_wchar_p]
        k.CreateEventW.restype = HANDLE
        k.CreateEventW.argtypes = [ctypes.c_void_p, BOOL, BOOL, ctypes.c_wchar_p]
        k.WaitForSingleObject.restype = DWORD
        k.WaitForSingleObject.argtypes = [HANDLE, DWORD]
        k.CloseHandle.restype = BOOL
        k.CloseHandle.argtypes = [HANDLE]
        self.k = k

    def open_stop(self, name):
        """A handle to the stop event ``name`` for waiting, or None."""
        if not name:
            return None
        return self.k.OpenEventW(_SYNCHRONIZE, False, name) or None

    def is_set(self, handle):
        return bool(handle) and self.k.WaitForSingleObject(handle, 0) == _WAIT_OBJECT_0

    def arm(self, prefix):
        """Creates the set event "<prefix>-<pid>" that tells memguard run this
        process survives CTRL_BREAK; a handle to keep open, or None."""
        if not prefix:
            return None
        return self.k.CreateEventW(None, True, True, f"{prefix}-{os.getpid()}") or None

    def close(self, handle):
        if handle:
            self.k.CloseHandle(handle)


def _windows_events():
    """Kernel32Events on Windows, else None (no events to look at)."""
    if sys.platform != "win32":
        return None
    return Kernel32Events(ctypes.WinDLL("kernel32", use_last_error=True))


_worker_armed = []  # handles ignore_stop_signal() keeps open until the process exits


class StopRequest:
    """Has someone (memguard run, or any process with our PID) asked this
    process to checkpoint and stop?

    ``signo``: the signal to catch; None = MEMGUARD_STOP_SIGNAL, else SIGUSR1
    (SIGBREAK on Windows); 0 = none (stop file, and event, only).
    ``stop_file``: None = MEMGUARD_STOP_FILE. On Windows the stop event
    MEMGUARD_STOP_EVENT is looked at too, and once a SIGBREAK handler is in
    place this process is armed (see the module's text). ``events``: for
    tests, a Kernel32Events over a stand-in (default: kernel32 on Windows,
    none elsewhere).
    """

    def __init__(self, signo=None, stop_file=None, env=None, events=None):
        env = os.environ if env is None else env
        if signo is None:
            signo = _signal_from_env(env)
        elif isinstance(signo, bool) or not isinstance(signo, int) or signo < 0:
            raise MemguardError(MG_EINVAL, f"stop_signal {signo!r}: expected a signal "
                                "number, or 0 for none")
        self.stop_file = stop_file if stop_file is not None else (env.get(STOP_FILE_ENV) or None)
        self.signalled = False  # written by the handler, read by requested()
        self.file_reason = None  # the stop file's reason, once a request was seen
        self.signo = None
        self._previous = None
        self._events = events if events is not None else _windows_events()
        self.stop_event = None  # MEMGUARD_STOP_EVENT where events exist
        self._event = None      # its handle, once opened
        if self._events:
            self.stop_event = env.get(STOP_EVENT_ENV) or None
            self._event = self._events.open_stop(self.stop_event)
        self._armed = None
        if signo and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signo, self._on_signal)
            self.signo = signo
            if self._events and signo == getattr(signal, "SIGBREAK", None):
                self._armed = self._events.arm(env.get(ARMED_EVENT_ENV))

    def _on_signal(self, signo, frame):
        # Only the flag: the loop saves at its next batch boundary.
        self.signalled = True

    def _event_set(self):
        return self._event is not None and self._events.is_set(self._event)

    def requested(self):
        """True once the signal arrived, the stop event is set, or the stop
        file exists (one stat). On a request, the stop file's reason is read
        into ``file_reason`` (until it has one: the file comes before the
        signal and the event)."""
        asked = (self.signalled or self._event_set()
                 or (bool(self.stop_file) and os.path.exists(self.stop_file)))
        if asked and self.file_reason is None:
            self.file_reason = read_stop_reason(self.stop_file)
        return asked

    def reason(self):
        """The stop file's reason text when it gave one, else "signal N",
        "stop event NAME" or "stop file PATH"; None when nobody asked."""
        if not self.requested():
            return None
        if self.file_reason:
            return self.file_reason
        if self.signalled:
            return f"signal {self.signo}"
        if self._event_set():
            return f"stop event {self.stop_event}"
        return f"stop file {self.stop_file}"

    def close(self):
        """Restores the previous handler of the signal, disarms, lets go of
        the stop event. Idempotent."""
        if self._events:
            self._events.close(self._armed)  # disarmed before the handler goes
            self._events.close(self._event)
        self._armed = self._event = None
        if self.signo is not None and self._previous is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(self.signo, self._previous)
        self.signo = None
        self._previous = None


def ignore_stop_signal(worker_id=None, env=None, events=None):
    """A DataLoader ``worker_init_fn`` that makes the worker ignore the
    checkpoint signal (MEMGUARD_STOP_SIGNAL, else SIGUSR1; SIGBREAK on
    Windows).

    Linux: not needed under this memguard run: it signals only processes
    that catch the signal, so spawned or forkserver workers (which start
    with the default disposition) are never signalled, and forked workers
    inherit the trainer's flag-only handler. Kept for compatibility, and for
    supervisors that signal a whole process group, where the signal's
    default action would kill the workers.

    Windows: CTRL_BREAK_EVENT reaches the whole process group, workers
    included, and memguard run sends it only when every process of the run
    is armed; a worker that ignores SIGBREAK is, so call this in every
    worker (or use num_workers=0), else the request comes by the file and
    the event alone. ``env`` / ``events``: for tests, as StopRequest's."""
    env = os.environ if env is None else env
    env_sig = env.get(STOP_SIGNAL_ENV, "")
    signo = int(env_sig) if env_sig.isdigit() else _default_signal()
    if signo:
        signal.signal(signo, signal.SIG_IGN)
    events = events if events is not None else _windows_events()
    if events and signo == getattr(signal, "SIGBREAK", None):
        handle = events.arm(env.get(ARMED_EVENT_ENV))
        if handle:
            _worker_armed.append(handle)
