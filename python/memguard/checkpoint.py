"""Saving a file so that its final name only ever holds a complete file.

The same recipe as libmemguard's mg_atomic (which writes bytes; here the
user's save function writes by path, e.g. torch.save): save to
"<name>.tmp.<pid>" in the same folder, fsync it, rename it over the target,
fsync the folder. A crash at any moment leaves the old file or the new one,
plus at worst a stray temporary. Nothing large is allocated here.
"""

import os
import sys


def _fsync_flags(directory, platform=sys.platform):
    """os.open flags to fsync a file or folder, or None when it cannot be
    done: Windows cannot open a folder, and its fsync (FlushFileBuffers)
    fails on a file opened read-only (errno 13), so a file is opened for
    writing there (never created or truncated). Linux fsyncs read-only."""
    if directory:
        return os.O_RDONLY | os.O_DIRECTORY if hasattr(os, "O_DIRECTORY") else None
    if platform == "win32":
        return os.O_RDWR | getattr(os, "O_BINARY", 0)
    return os.O_RDONLY


def _fsync_path(path, directory=False):
    flags = _fsync_flags(directory)
    if flags is None:
        return
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(save_fn, path):
    """Calls ``save_fn(tmp_path)``, then makes ``path`` hold what it wrote,
    durably. On any failure the temporary is removed, ``path`` is untouched,
    and the exception propagates. Returns ``path``."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        save_fn(tmp)
        if not os.path.isfile(tmp):
            raise FileNotFoundError(f"the save function wrote nothing at {tmp!r}")
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_path(os.path.dirname(os.path.abspath(path)), directory=True)
    return path
