"""Monitor: one libmemguard context; sampling, classifying and the seed's texts.

A Monitor owns an ``mg_ctx`` (open /proc files, NVML when present), the last
snapshot and verdict as opaque buffers, and the hysteresis state. It reads and
formats; it never prints, signals or exits (Guard does that). Not thread-safe,
like the context under it: use one per thread.

Also here: the seed's two module-level calls, ``check_memory_safety()`` and
``system_resource_check()``, which each use a short-lived Monitor.
"""

import ctypes
import enum
import json
import sys

from . import _lib
from ._lib import MemguardError, parse_frac, parse_size
from . import _torch


_WARN_EMOJI = "\u26a0\ufe0f"  # the warning sign of libmemguard's texts (report.c)


class Level(enum.IntEnum):
    """mg_level: what a sample means."""

    SAFE = 0
    WARN = 1
    CRITICAL = 2


def _lang_code(lang):
    if lang in (None, "auto"):
        return _lib.MG_LANG_AUTO
    if lang in ("en", "ja"):
        return _lib.MG_LANG_EN if lang == "en" else _lib.MG_LANG_JA
    raise MemguardError(_lib.MG_EINVAL, f"lang {lang!r}: expected 'en', 'ja' or None")


def text_opts(stream=None, lang=None):
    """mg_text_opts for ``stream`` (default sys.stdout): the language from the
    locale (or ``lang`` 'en'/'ja'), emoji when the locale is UTF-8 and the
    stream's terminal can show them."""
    stream = sys.stdout if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    t = _lib.library().mg_text_opts_from_env(fd)
    if lang is not None:
        t.lang = _lang_code(lang)
    return t


class Monitor:
    """A libmemguard context with the seed's defaults.

    Thresholds are used fractions in (0, 1] (floats or strings such as
    "90%"); warn must not exceed stop. ``ram_budget``, ``min_free_ram`` and
    ``min_free_gpu`` are bytes (int) or sizes such as "8G". ``ram_budget``
    judges the process tree's memory (rooted at ``pid``, default this
    process; PSS, so pages shared by forked workers count once) against that
    many bytes, as ``memguard check --ram-budget`` does.
    ``no_gpu`` skips NVML. ``lang`` is 'en', 'ja' or None (from the locale).
    ``predict`` (default True): a resource already at warn whose measured
    growth would fill it within ``predict_lead`` seconds (default 3, or
    what note_save() sets) is critical at once, so the checkpoint starts
    before the stop threshold; False: thresholds only.
    """

    def __init__(self, warn_gpu=0.90, stop_gpu=0.92, warn_ram=0.85, stop_ram=0.88,
                 ram_budget=None, min_free_ram=None, min_free_gpu=None,
                 check_train_every=10, check_eval_every=15, no_gpu=False, pid=0,
                 lang=None, predict=True, predict_lead=None):
        lib = _lib.library()
        cfg = _lib.Config()
        cfg.warn_gpu_frac = parse_frac(warn_gpu, "warn_gpu")
        cfg.stop_gpu_frac = parse_frac(stop_gpu, "stop_gpu")
        cfg.warn_ram_frac = parse_frac(warn_ram, "warn_ram")
        cfg.stop_ram_frac = parse_frac(stop_ram, "stop_ram")
        if ram_budget is not None:
            cfg.ram_budget_bytes = parse_size(ram_budget, "ram_budget")
        if min_free_ram is not None:
            cfg.min_free_ram_bytes = parse_size(min_free_ram, "min_free_ram")
        if min_free_gpu is not None:
            cfg.min_free_gpu_bytes = parse_size(min_free_gpu, "min_free_gpu")
        for name, every in (("check_train_every", check_train_every),
                            ("check_eval_every", check_eval_every)):
            if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every < 2 ** 32:
                raise MemguardError(_lib.MG_EINVAL, f"{name} {every!r}: expected a whole "
                                    "number of batches >= 1")
            setattr(cfg, name, every)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
            raise MemguardError(_lib.MG_EINVAL, f"pid {pid!r}: expected a process id, "
                                "or 0 for this process")
        cfg.pid = pid
        cfg.no_gpu = bool(no_gpu)
        cfg.no_predict = not predict
        if predict_lead is not None:
            cfg.predict_lead_ms = _lead_ms(predict_lead, "predict_lead")
        cfg.lang = _lang_code(lang)
        self._lang = lang
        err = ctypes.c_int(0)
        ctx = lib.mg_create(ctypes.byref(cfg), ctypes.byref(err))
        if not ctx:
            if err.value == _lib.MG_ECONFIG:
                msg = ctypes.create_string_buffer(512)
                lib.mg_config_check(ctypes.byref(cfg), msg, len(msg))
                raise MemguardError(err.value, f"{msg.value.decode()}: "
                                    f"{_lib.strerror(err.value)}")
            raise _lib.error(err.value, "mg_create")
        self._lib = lib
        self._ctx = ctx
        self._snap = ctypes.create_string_buffer(lib.mg_snapshot_size())
        self._verdict = ctypes.create_string_buffer(lib.mg_verdict_size())
        # mg_policy_state is one mg_level (an int): the hysteresis memory.
        self._state = ctypes.c_int(0)
        self._sampled = False
        self.level = Level.SAFE  # of the last classify()

    # -- lifetime ---------------------------------------------------------------
    def close(self):
        """Frees the context (closes its files, unloads NVML). Idempotent."""
        if getattr(self, "_ctx", None):
            self._lib.mg_destroy(self._ctx)
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _need_ctx(self):
        if not self._ctx:
            raise MemguardError(_lib.MG_EINVAL, "this Monitor is closed")
        return self._ctx

    # -- readings ---------------------------------------------------------------
    @property
    def config(self):
        """The resolved configuration as a dict (fractions, bytes, batches)."""
        c = self._lib.mg_ctx_config(self._need_ctx()).contents
        return {name: getattr(c, name) for name, _ in _lib.Config._fields_
                if not name.startswith("log") and not isinstance(getattr(c, name), bytes)
                and getattr(c, name) is not None}

    def set_trainer_memory(self, allocated_bytes, reserved_bytes):
        """The trainer's own GPU figures (torch.cuda.memory_allocated /
        memory_reserved, bytes), shown by the reports from the next sample."""
        self._lib.mg_set_trainer_memory(self._need_ctx(), int(allocated_bytes),
                                        int(reserved_bytes))

    def note_save(self, seconds):
        """A checkpoint save took ``seconds``: from now on the prediction
        acts when memory would be full sooner than twice that plus one
        second (mg_predict_lead_ms), the time a save under pressure needs."""
        ms = _seconds_ms(seconds, "note_save seconds", 0)
        lead = self._lib.mg_predict_lead_ms(ms)
        rc = self._lib.mg_set_predict_lead_ms(self._need_ctx(), lead)
        if rc < 0:
            raise _lib.error(rc, "mg_set_predict_lead_ms")

    def sample(self):
        """Takes one sample and classifies it (with hysteresis). Returns the
        Level; the details are in reading() and the texts."""
        ctx = self._need_ctx()
        rc = self._lib.mg_sample(ctx, self._snap)
        if rc < 0:
            raise _lib.error(rc, "mg_sample")
        self._sampled = True
        level = self._lib.mg_classify(self._lib.mg_ctx_config(ctx), self._snap,
                                      ctypes.byref(self._state), self._verdict)
        self.level = Level(level)
        return self.level

    def _need_sample(self):
        if not self._sampled:
            self.sample()

    def reading(self):
        """The last sample as a dict, the schema of ``memguard check --json``
        (bytes, fractions 0..1, None for anything unknown)."""
        self._need_sample()
        text = _lib.call_text(self._lib.mg_format_json,
                              self._lib.mg_ctx_config(self._need_ctx()), self._snap,
                              self._verdict)
        return json.loads(text)

    # -- texts --------------------------------------------------------------------
    def _opts(self, stream):
        return text_opts(stream, self._lang)

    def system_check_text(self, stream=None):
        """The seed's "System Resource Check" block for the last sample."""
        self._need_sample()
        t = self._opts(stream)
        return _lib.call_text(self._lib.mg_format_system_check, self._snap, ctypes.byref(t))

    def banner_text(self, stream=None):
        """The monitoring banner: thresholds, check cadence, emergency action."""
        t = self._opts(stream)
        return _lib.call_text(self._lib.mg_format_banner,
                              self._lib.mg_ctx_config(self._need_ctx()), ctypes.byref(t))

    def warning_text(self, batch=-1, stream=None):
        """The seed's warning line for the last verdict, e.g. "[Batch 50] ⚠️
        GPU usage high: 91.2% (10.94GB/12.0GB)\\n"; batch < 0 omits the
        prefix."""
        self._need_sample()
        t = self._opts(stream)
        return _lib.call_text(self._lib.mg_format_warning, self._verdict, ctypes.byref(t),
                              int(batch))

    def reason_text(self):
        """The last verdict's reason without marker, prefix or newline, e.g.
        "RAM usage high: 88.5% (1.77GB/2.0GB)", in the Monitor's language;
        None when the last sample was safe."""
        self._need_sample()
        t = self._opts(None)
        t.emoji = False  # the plain marker, "[!] ", which is cut off below
        line = _lib.call_text(self._lib.mg_format_warning, self._verdict, ctypes.byref(t),
                              -1).strip()
        if line.startswith("[!]"):
            line = line[3:].lstrip()
        return line or None

    def marker(self, stream=None):
        """The warning marker the texts use on ``stream``: "⚠️", or "[!]"
        where emoji cannot be shown."""
        return _WARN_EMOJI if self._opts(stream).emoji else "[!]"

    def emergency_text(self, epoch, saved_path, with_reason=True, stream=None, reason=None):
        """The seed's emergency banner: reason, epoch, saved file (None: "not
        saved"). The reason is the last verdict's (left out when
        ``with_reason`` is false), or ``reason`` when given: a text printed
        verbatim after "Reason: ", marker included (e.g. "[rank 1] ⚠️ RAM
        usage high: ..."); "" leaves the line out."""
        t = self._opts(stream)
        path = None if saved_path is None else str(saved_path).encode()
        if reason is not None:
            return _lib.call_text(self._lib.mg_format_emergency_text,
                                  reason.encode("utf-8", "replace"),
                                  ctypes.byref(t), int(epoch), path)
        v = self._verdict if (with_reason and self._sampled) else None
        return _lib.call_text(self._lib.mg_format_emergency, v, ctypes.byref(t), int(epoch),
                              path)

    def emergency_failed_text(self, epoch, path, error, reason="", stream=None):
        """The emergency banner of a save that failed (libmemguard's: "not
        saved", "Exiting WITHOUT a checkpoint"), then the line it cannot
        know: "Emergency save FAILED: PATH: ERROR"."""
        ja = self._opts(stream).lang == _lib.MG_LANG_JA
        return (self.emergency_text(epoch, None, stream=stream, reason=reason or "") +
                f"{'緊急保存失敗' if ja else 'Emergency save FAILED'}: {path}: {error}\n")

    def check_memory_safety(self, threshold_gpu=0.90, threshold_ram=0.85):
        """The seed's call on this context; see memguard.check_memory_safety."""
        g = parse_frac(threshold_gpu, "threshold_gpu")
        r = parse_frac(threshold_ram, "threshold_ram")
        ok = ctypes.c_bool(False)
        buf = ctypes.create_string_buffer(1024)
        rc = self._lib.mg_check_memory_safety(self._need_ctx(), g, r, ctypes.byref(ok),
                                              buf, len(buf))
        if rc < 0:
            raise _lib.error(rc, "mg_check_memory_safety")
        if ok.value:
            return True, None
        return False, buf.value.decode("utf-8", "replace")


def _seconds_ms(seconds, name, lowest):
    """Seconds (int or float) as whole milliseconds >= lowest, or a
    MemguardError naming ``name``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not lowest / 1000.0 <= seconds <= 7 * 86400:
        raise MemguardError(_lib.MG_EINVAL, f"{name} {seconds!r}: expected seconds "
                            f"from {lowest / 1000.0:g} to a week")
    return max(lowest, int(round(seconds * 1000.0)))


def _lead_ms(seconds, name):
    return _seconds_ms(seconds, name, 1)


def check_memory_safety(threshold_gpu=0.90, threshold_ram=0.85, **monitor_options):
    """The seed's call: ``is_safe, warning = check_memory_safety(0.90, 0.85)``.

    Samples once. ``is_safe`` is False when any GPU's used fraction or RAM's
    used fraction is at or above its threshold (0..1, or "90%"); ``warning``
    is then the seed's text, e.g. "⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)",
    and None when safe (the seed's code returned ``True, None``).
    ``monitor_options`` go to Monitor (e.g. ram_budget="8G", no_gpu=True).
    Opens and closes a context per call (NVML init included); in a loop,
    keep a Monitor or a Guard instead.
    """
    g = parse_frac(threshold_gpu, "threshold_gpu")
    r = parse_frac(threshold_ram, "threshold_ram")
    with Monitor(**monitor_options) as m:
        return m.check_memory_safety(g, r)


def system_resource_check(file=None, **monitor_options):
    """Prints the seed's "System Resource Check" block to ``file`` (default
    stdout) and returns the reading as a dict. When torch is importable and
    CUDA is available, torch's allocated / reserved bytes of the current
    device are included."""
    file = sys.stdout if file is None else file
    with Monitor(**monitor_options) as m:
        mem = _torch.cuda_memory(import_torch=True)
        if mem is not None:
            m.set_trainer_memory(*mem)
        m.sample()
        print(m.system_check_text(file), end="", file=file, flush=True)
        return m.reading()
