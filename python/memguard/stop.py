"""The trainer's side of ``memguard run``: a flag-only signal handler, the
stop file and its reason, and the acknowledgement of a good save.

``memguard run`` puts four things in its command's environment:
MEMGUARD_STOP_FILE (a path that appears when memory turns critical),
MEMGUARD_ACK_FILE (where the trainer acknowledges a good save),
MEMGUARD_STOP_SIGNAL (the number of the checkpoint signal, SIGUSR1 by
default) and MEMGUARD_SUPERVISOR_PID. The signal goes only to the processes
of the command's tree that catch it; the others (a torchrun agent, a bash
wrapper, spawned DataLoader workers) learn of the request from the file, so a
trainer checks both. The stop file is text: line 1 is exactly
``memguard stop request``, line 2 the reason in English without a marker
(``RAM usage high: 88.5% (1.77GB/2.0GB)``), possibly absent.

StopRequest installs a Python handler that only sets a flag (saving inside a
handler is what hangs, Lightning #21406), checks the flag, then the file,
when asked, and reads the file's reason once a request is seen.
acknowledge() writes the acknowledgement. Nothing here saves, prints or
exits: Guard does that.

Process-wide state: the signal disposition itself (Python only lets the main
thread set it), plus the flag the handler writes, which lives on the
StopRequest object the handler closes over. close() restores the previous
handler. Outside the main thread no handler is installed and only the file
can ask.
"""

import os
import signal
import stat
import threading

from ._lib import MemguardError, MG_EINVAL

STOP_FILE_ENV = "MEMGUARD_STOP_FILE"
STOP_SIGNAL_ENV = "MEMGUARD_STOP_SIGNAL"
ACK_FILE_ENV = "MEMGUARD_ACK_FILE"
STOP_FILE_HEADER = "memguard stop request"  # memguard.h MG_STOP_FILE_HEADER
STOP_FILE_READ_MAX = 4096                   # bytes read of a stop file, as mg_stop_reason


def _signal_from_env(env):
    text = env.get(STOP_SIGNAL_ENV, "")
    if not text:
        return signal.SIGUSR1 if hasattr(signal, "SIGUSR1") else None
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
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


class StopRequest:
    """Has someone (memguard run, or any process with our PID) asked this
    process to checkpoint and stop?

    ``signo``: the signal to catch; None = MEMGUARD_STOP_SIGNAL, else SIGUSR1;
    0 = none (stop file only). ``stop_file``: None = MEMGUARD_STOP_FILE.
    """

    def __init__(self, signo=None, stop_file=None, env=None):
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
        if signo and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signo, self._on_signal)
            self.signo = signo

    def _on_signal(self, signo, frame):
        # Only the flag: the loop saves at its next batch boundary.
        self.signalled = True

    def requested(self):
        """True once the signal arrived or the stop file exists (one stat).
        On a request, the stop file's reason is read into ``file_reason``
        (until it has one: the file comes before the signal)."""
        asked = self.signalled or (bool(self.stop_file) and os.path.exists(self.stop_file))
        if asked and self.file_reason is None:
            self.file_reason = read_stop_reason(self.stop_file)
        return asked

    def reason(self):
        """The stop file's reason text when it gave one, else "signal N" or
        "stop file PATH"; None when nobody asked."""
        if not self.requested():
            return None
        if self.file_reason:
            return self.file_reason
        if self.signalled:
            return f"signal {self.signo}"
        return f"stop file {self.stop_file}"

    def close(self):
        """Restores the previous handler of the signal. Idempotent."""
        if self.signo is not None and self._previous is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(self.signo, self._previous)
        self.signo = None
        self._previous = None


def ignore_stop_signal(worker_id=None):
    """A DataLoader ``worker_init_fn`` that makes the worker ignore the
    checkpoint signal (MEMGUARD_STOP_SIGNAL, else SIGUSR1).

    Not needed under this memguard run: it signals only processes that
    catch the signal, so spawned or forkserver workers (which start with the
    default disposition) are never signalled, and forked workers inherit the
    trainer's flag-only handler. Kept for compatibility, and for supervisors
    that signal a whole process group, where the signal's default action
    would kill the workers."""
    env_sig = os.environ.get(STOP_SIGNAL_ENV, "")
    signo = int(env_sig) if env_sig.isdigit() else getattr(signal, "SIGUSR1", None)
    if signo:
        signal.signal(signo, signal.SIG_IGN)
