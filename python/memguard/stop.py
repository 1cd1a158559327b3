"""The trainer's side of ``memguard run``: a flag-only signal handler and the
stop file.

``memguard run`` puts two things in its command's environment:
MEMGUARD_STOP_FILE (a path that appears when memory turns critical) and
MEMGUARD_STOP_SIGNAL (the number of the checkpoint signal, SIGUSR1 by default,
sent to the whole process group at the same moment). StopRequest installs a
Python handler that only sets a flag (saving inside a handler is what hangs,
Lightning #21406) and checks the flag, then the file, when asked.

Process-wide state: the signal disposition itself (Python only lets the main
thread set it), plus the flag the handler writes, which lives on the
StopRequest object the handler closes over. close() restores the previous
handler. Outside the main thread no handler is installed and only the file
can ask.
"""

import os
import signal
import threading

from ._lib import MemguardError, MG_EINVAL

STOP_FILE_ENV = "MEMGUARD_STOP_FILE"
STOP_SIGNAL_ENV = "MEMGUARD_STOP_SIGNAL"


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
        self.signo = None
        self._previous = None
        if signo and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signo, self._on_signal)
            self.signo = signo

    def _on_signal(self, signo, frame):
        # Only the flag: the loop saves at its next batch boundary.
        self.signalled = True

    def requested(self):
        """True once the signal arrived or the stop file exists (one stat)."""
        if self.signalled:
            return True
        return bool(self.stop_file) and os.path.exists(self.stop_file)

    def reason(self):
        """"signal N", "stop file PATH" or None."""
        if self.signalled:
            return f"signal {self.signo}"
        if self.stop_file and os.path.exists(self.stop_file):
            return f"stop file {self.stop_file}"
        return None

    def close(self):
        """Restores the previous handler of the signal. Idempotent."""
        if self.signo is not None and self._previous is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(self.signo, self._previous)
        self.signo = None
        self._previous = None


def ignore_stop_signal(worker_id=None):
    """A DataLoader ``worker_init_fn``: the workers share the trainer's
    process group, so they get the checkpoint signal too; SIGUSR1's default
    action would kill them. This makes them ignore it (the main process
    saves)."""
    env_sig = os.environ.get(STOP_SIGNAL_ENV, "")
    signo = int(env_sig) if env_sig.isdigit() else getattr(signal, "SIGUSR1", None)
    if signo:
        signal.signal(signo, signal.SIG_IGN)
