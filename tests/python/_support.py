"""Shared by the Python tests: where the build is, and running a command with
a time limit that leaves no process behind.

MEMGUARD_LIBRARY and MEMGUARD_CLI come from tests/python/test_python.c (ctest); run
by hand, they default to build/libmemguard.so and build/memguard.
"""
import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ["MEMGUARD_LIBRARY"] = os.path.abspath(
    os.environ.get("MEMGUARD_LIBRARY") or os.path.join(ROOT, "build", "libmemguard.so"))
CLI = os.path.abspath(os.environ.get("MEMGUARD_CLI") or os.path.join(ROOT, "build", "memguard"))
EXAMPLE = os.path.join(ROOT, "examples", "pytorch", "train_unet.py")
PYTHON = "/usr/bin/python3"  # Debian's, the one with python3-torch


def env(**extra):
    """The test environment for a child: the package on PYTHONPATH, the
    library, an English UTF-8 locale, plus ``extra`` (None removes)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.path.join(ROOT, "python")
    e["LC_ALL"] = "C.UTF-8"
    e.pop("MEMGUARD_STOP_FILE", None)
    e.pop("MEMGUARD_STOP_SIGNAL", None)
    for k, v in extra.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def run(cmd, timeout=60, **kw):
    """subprocess.run with a time limit; the child gets its own session, and
    on timeout SIGTERM (memguard run forwards it to its command), then
    SIGKILL to the whole group. Returns CompletedProcess (text)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        raise AssertionError(f"timed out after {timeout} s: {cmd}\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)
