"""Guard: the seed's monitor for a training loop.

    guard = memguard.Guard()                    # prints the monitoring banner
    for epoch in range(start, epochs):
        guard.epoch_start(epoch)
        for i, batch in enumerate(train_loader):
            guard.train_batch(i)                # checks every 10th batch
            ...train step...
            if guard.should_stop():
                guard.emergency_save(lambda p: torch.save(state(), p), epoch)

Checks run at the seed's cadence (every epoch start, every 10th train batch,
every 15th eval batch) against two thresholds per resource: warn prints the
seed's warning line (rate-limited), critical (confirmed by a second sample)
makes should_stop() true. should_stop() is also true once ``memguard run``
asked for a checkpoint (signal or stop file), and is agreed across ranks
under torch.distributed, with the reason of the lowest rank that wants to
stop. A stop for memory may instead be survived in the same process: save,
go on at a smaller batch, and call continue_after() where may_continue()
says so (memguard run then logs "continue" and goes back to watching).
emergency_save() writes emergency_epochN.pth atomically, acknowledges
it to memguard run (MEMGUARD_ACK_FILE), prints the seed's emergency banner
with the reason and exits with 75. A save that fails says so, and where,
and lets the exception through.

Texts go to rank 0's output only, except a critical warning line, which
every rank prints (prefixed "[rank N] " on the others).
"""

import os
import sys
import time

from . import _lib, _torch
from .checkpoint import atomic_save
from .monitor import Level, Monitor
from .stop import StopRequest, acknowledge

MG_EXIT_MEMSTOP = _lib.MG_EXIT_MEMSTOP

RESUME_ENV = "MEMGUARD_RESUME"    # memguard.h MG_ENV_RESUME
ATTEMPT_ENV = "MEMGUARD_ATTEMPT"  # memguard.h MG_ENV_ATTEMPT

# The seed's table of batch sizes, one step down after each stop for memory.
SEED_BATCHES = (8, 6, 4, 2, 1)


class Guard:
    """The seed's monitor with its defaults.

    Thresholds are used fractions (0..1 or "90%"): ``warn_gpu`` 0.90,
    ``stop_gpu`` 0.92, ``warn_ram`` 0.85, ``stop_ram`` 0.88. ``ram_budget``:
    bytes or "8G", judged against this process tree's memory (shared pages
    once: PSS, as memguard run counts it). Cadence in
    batches: ``check_train_every`` 10, ``check_eval_every`` 15.
    ``warn_every_s``: seconds between two repeats of the warning line while
    the level stays at warn (a new warning after safe prints at once).
    ``stop_signal`` / ``stop_file``: see StopRequest (default: memguard run's
    environment). ``banner``: print the monitoring banner now. ``file``:
    where the texts go (default sys.stdout). Other keywords go to Monitor.
    """

    def __init__(self, warn_gpu=0.90, stop_gpu=0.92, warn_ram=0.85, stop_ram=0.88,
                 ram_budget=None, check_train_every=10, check_eval_every=15,
                 warn_every_s=30.0, stop_signal=None, stop_file=None, banner=True,
                 file=None, **monitor_options):
        if isinstance(warn_every_s, bool) or not isinstance(warn_every_s, (int, float)) \
                or not warn_every_s >= 0:
            raise _lib.MemguardError(_lib.MG_EINVAL, f"warn_every_s {warn_every_s!r}: "
                                     "expected seconds >= 0")
        self.monitor = Monitor(warn_gpu=warn_gpu, stop_gpu=stop_gpu, warn_ram=warn_ram,
                               stop_ram=stop_ram, ram_budget=ram_budget,
                               check_train_every=check_train_every,
                               check_eval_every=check_eval_every, **monitor_options)
        self.check_train_every = check_train_every
        self.check_eval_every = check_eval_every
        self.warn_every_s = float(warn_every_s)
        self.file = file
        self.epoch = 0
        self.level = Level.SAFE       # of the last check
        self.critical = False         # a confirmed critical check happened
        self._critical_reason = None  # its reason text, e.g. "RAM usage high: ..."
        self._agreed = None           # (source rank or None, reason) once should_stop said yes
        self._last_warn_s = None      # time.monotonic() of the last warning line
        self._stop = StopRequest(stop_signal, stop_file)
        if banner:
            self._print(self.monitor.banner_text(self._out()))

    # -- output ---------------------------------------------------------------
    def _out(self):
        return sys.stdout if self.file is None else self.file

    def _print(self, text, every_rank=False):
        """Writes ``text`` on rank 0 (or outside torch.distributed); with
        ``every_rank``, on the other ranks too, each line prefixed
        "[rank N] "."""
        rank = _torch.distributed_rank()
        if rank not in (None, 0):
            if not every_rank:
                return  # one copy of every text, from rank 0
            text = "".join(f"[rank {rank}] {line}" for line in text.splitlines(True))
        out = self._out()
        out.write(text)
        out.flush()

    # -- checks ---------------------------------------------------------------
    def check(self, batch=-1):
        """One check now: sample (with torch's CUDA figures when in use),
        classify, confirm a critical one with a second sample, print the
        warning line when due. Returns the Level."""
        mem = _torch.cuda_memory()
        if mem is not None:
            self.monitor.set_trainer_memory(*mem)
        level = self.monitor.sample()
        if level == Level.CRITICAL:
            level = self.monitor.sample()  # one re-read to confirm
        now = time.monotonic()
        if level == Level.CRITICAL:
            self.critical = True
            self._critical_reason = self.monitor.reason_text()
            self._print(self.monitor.warning_text(batch, self._out()), every_rank=True)
        elif level == Level.WARN:
            due = (self.level == Level.SAFE or self._last_warn_s is None
                   or now - self._last_warn_s >= self.warn_every_s)
            if due:
                self._print(self.monitor.warning_text(batch, self._out()))
                self._last_warn_s = now
        self.level = level
        return level

    def epoch_start(self, epoch):
        """Checks at the start of epoch ``epoch`` (remembered for the
        emergency file's name). Returns the Level."""
        self.epoch = int(epoch)
        return self.check(-1)

    def train_batch(self, batch_idx):
        """Checks when ``batch_idx`` is a multiple of check_train_every (10).
        Returns the Level of the latest check."""
        if batch_idx % self.check_train_every == 0:
            return self.check(batch_idx)
        return self.level

    def eval_batch(self, batch_idx):
        """Checks when ``batch_idx`` is a multiple of check_eval_every (15).
        Returns the Level of the latest check."""
        if batch_idx % self.check_eval_every == 0:
            return self.check(batch_idx)
        return self.level

    def should_stop(self):
        """True after a confirmed critical check, or once memguard run asked
        (signal or stop file). Cheap: a flag and one stat(). Under
        torch.distributed it is also one all-reduce, so every rank must call
        it at the same step; all get the same answer, and when it is yes, the
        reason of the lowest rank that wanted to stop (one more collective,
        on that path only)."""
        want = self.critical or self._stop.requested()
        rank = _torch.distributed_rank()
        if rank is None:
            if want:
                self._agreed = (None, self._local_reason())
            return want
        src = _torch.lowest_rank_with(want)
        if src is None:
            return False
        reason = _torch.broadcast_text(self._local_reason() if src == rank else None, src)
        self._agreed = (None if src == rank else src, reason)
        return True

    def _local_reason(self):
        """This process's own reason to stop: the critical check's text, else
        memguard run's (the stop file's reason, or "signal N" / "stop file
        PATH"), else None."""
        if self.critical:
            return self._critical_reason or "memory"
        return self._stop.reason()

    @property
    def stop_reason(self):
        """Why should_stop() is true here, as text without a marker: the
        critical check's reason ("RAM usage high: 88.5% (1.77GB/2.0GB)"),
        the reason memguard run wrote in the stop file, or "signal N" /
        "stop file PATH" when it gave none; under torch.distributed the
        agreed one, prefixed "[rank N] " when it came from another rank.
        None while nobody asked."""
        src, reason = self._agreed or (None, self._local_reason())
        if reason is None:
            return None
        return reason if src is None else f"[rank {src}] {reason}"

    def _banner_reason(self):
        """The banner's reason line after "Reason: ": "[rank N] " when it
        came from another rank, the marker, the text; "" when there is no
        stop."""
        src, reason = self._agreed or (None, self._local_reason())
        if reason is None:
            return ""
        prefix = "" if src is None else f"[rank {src}] "
        return f"{prefix}{self.monitor.marker(self._out())} {reason}"

    # -- restarts (memguard run --restart N) --------------------------------------
    @property
    def resume_path(self):
        """The checkpoint ``memguard run --restart`` says to resume from
        (MEMGUARD_RESUME), when that file exists; else None."""
        path = os.environ.get(RESUME_ENV)
        return path if path and os.path.isfile(path) else None

    @property
    def attempt(self):
        """Which start this is under ``memguard run --restart``
        (MEMGUARD_ATTEMPT): 0 the first, 1.. the restarts; 0 outside."""
        value = os.environ.get(ATTEMPT_ENV, "")
        return int(value) if value.isdigit() else 0

    @staticmethod
    def suggest_batch(current):
        """The batch to resume with after a stop for memory: the next
        smaller size of the seed's table 8 -> 6 -> 4 -> 2 -> 1, and above 8
        three quarters of ``current`` (the table's first step)."""
        if isinstance(current, bool) or not isinstance(current, int) or current < 1:
            raise _lib.MemguardError(_lib.MG_EINVAL, f"suggest_batch {current!r}: expected "
                                     "a batch size >= 1")
        if current > SEED_BATCHES[0]:
            return max(SEED_BATCHES[0], current * 3 // 4)
        return next((b for b in SEED_BATCHES if b < current), 1)

    # -- continuing at a smaller footprint (instead of stopping) ----------------
    def may_continue(self):
        """After should_stop() said yes: whether this stop is for memory and
        may be answered by saving, making the footprint smaller (a smaller
        batch) and continue_after(), instead of emergency_save(): the
        Guard's own critical check, or a memory request of a memguard run
        that takes that answer. False for a manual request (SIGUSR1 to
        memguard run, or a bare signal) and for an older memguard run: stop
        then. Under torch.distributed every rank must call it at the same
        step; all get the same answer (one all-reduce)."""
        requested = self._stop.requested()
        objects = requested and not self._stop.may_continue()
        if _torch.distributed_rank() is None:
            return not objects and (requested or self.critical)
        # A rank that saw nothing itself does not object.
        return _torch.lowest_rank_with(objects) is None

    def continue_after(self, path, note=None):
        """Goes on after a save at ``path`` that may_continue() allowed:
        answers memguard run's pending memory request with "saved ``path``
        and continuing" (``note``, one line for its log and this output,
        e.g. "batch 8 -> 6"), forgets the critical check, and prints
        "[memguard] NOTE: continuing (PATH saved)". Call it once the
        footprint is smaller; if memory is still critical at the next check,
        should_stop() says so again. MemguardError(MG_EINVAL) when there is
        no such request to answer (stop instead)."""
        if self._stop.requested():
            self._stop.continue_after(path, note)
        self.critical = False
        self._critical_reason = None
        self._agreed = None
        self.level = Level.SAFE
        what = f"{note}: continuing" if note else "continuing"
        self._print(f"[memguard] {what} ({os.fspath(path)} saved)\n")

    # -- checkpoints ------------------------------------------------------------
    def save(self, save_fn, path):
        """atomic_save(save_fn, path), timed: the time it took tells the
        prediction how early a fast fill must be acted on (Monitor.note_save),
        so the emergency save, the same size, finishes before memory runs
        out. Returns ``path``."""
        t0 = time.monotonic()
        atomic_save(save_fn, path)
        self.monitor.note_save(time.monotonic() - t0)
        return path

    # -- the emergency ----------------------------------------------------------
    def emergency_save(self, save_fn, epoch=None, directory=".", exit=True):
        """Frees caches, calls ``save_fn(path)`` on a temporary file next to
        ``directory``/emergency_epochN.pth, fsyncs it, renames it into place,
        fsyncs the folder, acknowledges it to memguard run (see
        memguard.acknowledge), prints the seed's emergency banner with the
        reason and exits with 75 (MG_EXIT_MEMSTOP) through SystemExit, so
        ``finally`` blocks run.

        ``epoch``: N, default the one given to epoch_start(). Under
        torch.distributed only rank 0 saves, acknowledges and prints; all
        ranks wait for it and exit. ``exit=False`` returns the path instead
        of exiting. If ``save_fn`` fails, the output says "Emergency save
        FAILED: PATH: ERROR", nothing is left at the final name, nothing is
        acknowledged, and the exception propagates (exit status is not 75:
        there is no good checkpoint).
        """
        epoch = self.epoch if epoch is None else int(epoch)
        path = os.path.join(os.fspath(directory), f"emergency_epoch{epoch}.pth")
        _torch.free_cuda_cache()
        reason = self._banner_reason()
        if _torch.distributed_rank() in (None, 0):
            try:
                atomic_save(save_fn, path)
            except BaseException as e:
                self._print(self.monitor.emergency_failed_text(epoch, path, _error_text(e),
                                                               reason, self._out()))
                raise
            self._acknowledge(path)
        self._print(self.monitor.emergency_text(epoch, path, stream=self._out(),
                                                reason=reason))
        _torch.barrier()
        self.close()
        if exit:
            sys.exit(MG_EXIT_MEMSTOP)
        return path

    @staticmethod
    def _acknowledge(path):
        """acknowledge(path); a failure is reported on stderr, not raised:
        the checkpoint is good, only memguard run will not hear of it."""
        try:
            acknowledge(path)
        except OSError as e:
            print(f"memguard: could not acknowledge {path} to memguard run: {e}",
                  file=sys.stderr, flush=True)

    # -- lifetime ---------------------------------------------------------------
    def close(self):
        """Restores the signal handler and frees the context. Idempotent."""
        self._stop.close()
        self.monitor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _error_text(e):
    """An exception as one line: its message, or its type's name when the
    message is empty (e.g. a bare KeyboardInterrupt)."""
    text = str(e).strip().replace("\n", " ")
    return text or type(e).__name__
