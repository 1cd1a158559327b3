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
under torch.distributed. emergency_save() writes emergency_epochN.pth
atomically, prints the seed's emergency banner and exits with 75.
"""

import os
import sys
import time

from . import _lib, _torch
from .checkpoint import atomic_save
from .monitor import Level, Monitor
from .stop import StopRequest

MG_EXIT_MEMSTOP = _lib.MG_EXIT_MEMSTOP


class Guard:
    """The seed's monitor with its defaults.

    Thresholds are used fractions (0..1 or "90%"): ``warn_gpu`` 0.90,
    ``stop_gpu`` 0.92, ``warn_ram`` 0.85, ``stop_ram`` 0.88. ``ram_budget``:
    bytes or "8G", judged against this process tree's RSS. Cadence in
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
        self._last_warn_s = None      # time.monotonic() of the last warning line
        self._stop = StopRequest(stop_signal, stop_file)
        if banner:
            self._print(self.monitor.banner_text(self._out()))

    # -- output ---------------------------------------------------------------
    def _out(self):
        return sys.stdout if self.file is None else self.file

    def _print(self, text):
        if _torch.distributed_rank() not in (None, 0):
            return  # one copy of every text, from rank 0
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
            self._print(self.monitor.warning_text(batch, self._out()))
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
        (signal or stop file). Cheap: a flag and one stat(); under
        torch.distributed it is also one all-reduce (MAX), so every rank
        must call it at the same step and all get the same answer."""
        return _torch.all_reduce_max(self.critical or self._stop.requested())

    @property
    def stop_reason(self):
        """Why should_stop() is true here: "memory", "signal N", "stop file
        PATH", or None."""
        return "memory" if self.critical else self._stop.reason()

    # -- the emergency ----------------------------------------------------------
    def emergency_save(self, save_fn, epoch=None, directory=".", exit=True):
        """Frees caches, calls ``save_fn(path)`` on a temporary file next to
        ``directory``/emergency_epochN.pth, fsyncs it, renames it into place,
        fsyncs the folder, prints the seed's emergency banner and exits with
        75 (MG_EXIT_MEMSTOP) through SystemExit, so ``finally`` blocks run.

        ``epoch``: N, default the one given to epoch_start(). Under
        torch.distributed only rank 0 saves and prints; all ranks wait for it
        and exit. ``exit=False`` returns the path instead of exiting. If
        ``save_fn`` fails, the banner says "not saved", nothing is left at
        the final name, and the exception propagates (exit status is not 75:
        there is no good checkpoint).
        """
        epoch = self.epoch if epoch is None else int(epoch)
        path = os.path.join(os.fspath(directory), f"emergency_epoch{epoch}.pth")
        _torch.free_cuda_cache()
        with_reason = self.critical
        try:
            if _torch.distributed_rank() in (None, 0):
                atomic_save(save_fn, path)
        except BaseException:
            self._print(self.monitor.emergency_text(epoch, None, with_reason, self._out()))
            raise
        self._print(self.monitor.emergency_text(epoch, path, with_reason, self._out()))
        _torch.barrier()
        self.close()
        if exit:
            sys.exit(MG_EXIT_MEMSTOP)
        return path

    # -- lifetime ---------------------------------------------------------------
    def close(self):
        """Restores the signal handler and frees the context. Idempotent."""
        self._stop.close()
        self.monitor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
