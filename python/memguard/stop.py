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
seen. acknowledge() writes the acknowledgement; continue_after() answers a
memory request with "saved and continuing" instead, where memguard run takes
that answer (MEMGUARD_CONTINUE_FILE; the stop file's third line is "request
N memory", memguard.h "Continuing instead of stopping"). Nothing here saves,
prints or exits: Guard does that.

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
CONTINUE_FILE_ENV = "MEMGUARD_CONTINUE_FILE"  # memguard.h MG_ENV_CONTINUE_FILE
STOP_FILE_HEADER = "memguard stop request"  # memguard.h MG_STOP_FILE_HEADER
CONTINUE_FILE_HEADER = "memguard continue"  # memguard.h MG_CONTINUE_FILE_HEADER
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


def parse_request(data):
    """The request line of a stop file's bytes ``data`` (line 3, "request N
    memory" or "request N stop"): (N, True for memory). (0, False) when
    there is none: an old memguard run, or not a stop file."""
    header = STOP_FILE_HEADER.encode() + b"\n"
    lines = data[len(header):].split(b"\n") if data.startswith(header) else []
    words = lines[1].split(b" ") if len(lines) > 1 else []
    if len(words) != 3 or words[0] != b"request" or not words[1].isdigit() \
            or int(words[1]) == 0:
        return 0, False
    return int(words[1]), words[2] == b"memory"


def _read_stop_file(path):
    """At most 4 KiB of the regular file at ``path``: bytes, or None when
    there is no file, it is not a regular file (a FIFO planted there must
    not hang the trainer), or it cannot be read."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, STOP_FILE_READ_MAX)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stop_reason(path):
    """The reason of the stop file at ``path`` (see parse_stop_file), reading
    at most 4 KiB of a regular file. None when there is no file, it is not a
    regular file (a FIFO planted there must not hang the trainer), or it
    cannot be read."""
    data = _read_stop_file(path)
    return None if data is None else parse_stop_file(data)


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
    _replace_with(ack, os.path.abspath(os.fspath(checkpoint_path)) + "\n")
    return ack


def _replace_with(path, text):
    """Writes ``text`` to ``path`` through ``<path>.tmp.<pid>`` (O_EXCL |
    O_NOFOLLOW, mode 0600; a stale entry of that name is unlinked first,
    never followed), fsync and os.replace, so a reader never sees half of
    it. OSError propagates; the temporary is removed then."""
    tmp = f"{path}.tmp.{os.getpid()}"
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
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        self.continue_file = env.get(CONTINUE_FILE_ENV) or None
        self.signalled = False  # written by the handler, read by requested()
        self.file_reason = None  # the stop file's reason, once a request was seen
        self.answered = 0  # the request answered by continue_after(), 0: none
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
        asked = (self.signalled or (not self.answered and self._event_set())
                 or self._file_asks())
        if asked and self.file_reason is None:
            self.file_reason = read_stop_reason(self.stop_file)
        return asked

    def _file_asks(self):
        """The stop file is there, and is not the request answered (which
        stays until memguard run takes the answer; the event too)."""
        if not self.stop_file or not os.path.exists(self.stop_file):
            return False
        return not self.answered or self._request()[0] != self.answered

    def _request(self):
        data = _read_stop_file(self.stop_file)
        return (0, False) if data is None else parse_request(data)

    def may_continue(self):
        """Whether the pending request may be answered with continue_after():
        a memguard run that takes that answer (MEMGUARD_CONTINUE_FILE) asked
        for memory ("request N memory"). False for a manual request, an old
        memguard run, a bare signal, or no request (memguard.h,
        mg_stop_may_continue)."""
        n, memory = self._request() if self.continue_file else (0, False)
        return n != 0 and memory and n != self.answered

    def continue_after(self, checkpoint_path, note=None):
        """Answers the pending memory request with "saved ``checkpoint_path``
        and continuing" (``note``: one line for memguard run's log, e.g.
        "batch 8 -> 6"): writes MEMGUARD_CONTINUE_FILE atomically; from then
        on requested() is False until a new request (another number, or the
        signal again). Call it after the save, once the footprint is smaller.
        MemguardError(MG_EINVAL) when may_continue() is False or a text is
        not one line; OSError from the write propagates."""
        n, memory = self._request() if self.continue_file else (0, False)
        path = os.path.abspath(os.fspath(checkpoint_path))
        note = "" if note is None else str(note)
        if not n or not memory or n == self.answered:
            raise MemguardError(MG_EINVAL, "no memory request of a memguard run that takes "
                                "\"continuing\" is pending: save, acknowledge and stop")
        if any(c in text for text in (path, note) for c in "\r\n"):
            raise MemguardError(MG_EINVAL, "continue_after: the path and the note must be "
                                "one line each")
        _replace_with(self.continue_file, f"{CONTINUE_FILE_HEADER}\nrequest {n}\n"
                      f"checkpoint {path}\nnote {note}\n")
        self.answered = n
        self.signalled = False  # a signal from now on is a new request's
        self.file_reason = None

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
