"""Finding and loading libmemguard, and the ctypes mirror of its public header.

This module does the C plumbing only: where the shared library is, the
argument and result types of the functions the binding calls, the two structs
it mirrors field by field (``mg_config``, ``mg_text_opts``), and the
``MemguardError`` raised for a negative ``MG_E*`` code. It keeps no state but
the loaded library handle, which is created once on first use and never
changes (loading a shared library twice would give the same handle anyway).
On import it makes a relative ``$MEMGUARD_LIBRARY`` absolute in os.environ
(absolute_library_env); it changes nothing else outside itself.

``mg_snapshot`` and ``mg_verdict`` are not mirrored: they are opaque buffers
of ``mg_snapshot_size()`` / ``mg_verdict_size()`` bytes, read through
``mg_format_json``, so a change in their layout cannot silently corrupt
Python's view of them.
"""

import ctypes
import ctypes.util
import os
import sys
import sysconfig

# Exit status meaning "stopped for memory after a good checkpoint"
# (memguard.h: MG_EXIT_MEMSTOP; sysexits' EX_TEMPFAIL).
MG_EXIT_MEMSTOP = 75

# memguard.h MG_ERRNO_MAP: the codes are fixed on every platform.
MG_EINVAL = -1
MG_ENOMEM = -2
MG_ENOENT = -4
MG_EPARSE = -5
MG_ERANGE = -7
MG_ECONFIG = -8
MG_ENOSPC = -10
MG_ENOLIB = -12

# mg_lang
MG_LANG_AUTO, MG_LANG_EN, MG_LANG_JA = 0, 1, 2

# mg_ram_source, by value: the names mg_ram_source_name() gives and the JSON
# "source" fields hold. "commit" (Windows' commit charge against its limit)
# came with the Windows port; load() refuses a library whose list differs.
RAM_SOURCES = ("meminfo", "cgroup", "budget", "commit")

LIBRARY_ENV = "MEMGUARD_LIBRARY"


class MemguardError(Exception):
    """A libmemguard call failed, or the binding was given a bad argument.

    ``code`` is the library's negative ``MG_E*`` number (``MG_EINVAL`` for a
    bad argument caught in Python), ``name`` its symbolic name when the
    library is loaded (e.g. ``"MG_ERANGE"``). The message names the argument
    or the file concerned, then the library's own text for the code.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.name = None
        if _lib is not None:
            self.name = _lib.mg_err_name(code).decode()


def strerror(code):
    """The library's text for an ``MG_E*`` code (``mg_strerror``)."""
    return library().mg_strerror(code).decode()


def error(code, what):
    """A MemguardError for ``code`` whose message starts with ``what``."""
    return MemguardError(code, f"{what}: {strerror(code)}")


class Config(ctypes.Structure):
    """Mirror of ``mg_config`` (memguard.h). Zero fields take the seed's
    defaults; fractions are 0..1, sizes bytes, intervals milliseconds."""

    _fields_ = [
        ("warn_gpu_frac", ctypes.c_double),
        ("stop_gpu_frac", ctypes.c_double),
        ("warn_ram_frac", ctypes.c_double),
        ("stop_ram_frac", ctypes.c_double),
        ("min_free_ram_bytes", ctypes.c_uint64),
        ("min_free_gpu_bytes", ctypes.c_uint64),
        ("ram_budget_bytes", ctypes.c_uint64),
        ("check_train_every", ctypes.c_uint),
        ("check_eval_every", ctypes.c_uint),
        ("hysteresis_frac", ctypes.c_double),
        ("min_interval_ms", ctypes.c_uint32),
        ("max_interval_ms", ctypes.c_uint32),
        ("ram_fill_rate_bytes_per_s", ctypes.c_uint64),
        ("swap_fill_rate_bytes_per_s", ctypes.c_uint64),
        ("gpu_fill_rate_bytes_per_s", ctypes.c_uint64),
        ("predict_lead_ms", ctypes.c_uint32),
        ("no_predict", ctypes.c_bool),
        ("pid", ctypes.c_int),
        ("no_gpu", ctypes.c_bool),
        ("skip_sources", ctypes.c_uint),
        ("lang", ctypes.c_int),
        ("proc_root", ctypes.c_char_p),
        ("cgroup_root", ctypes.c_char_p),
        ("nvml_library", ctypes.c_char_p),
        ("visible_devices", ctypes.c_char_p),
        ("log_fn", ctypes.c_void_p),
        ("log_user", ctypes.c_void_p),
        ("log_level", ctypes.c_int),
    ]


class TextOpts(ctypes.Structure):
    """Mirror of ``mg_text_opts``: language (MG_LANG_*) and emoji on/off."""

    _fields_ = [("lang", ctypes.c_int), ("emoji", ctypes.c_bool)]


_P = ctypes.c_void_p
_SZ = ctypes.c_size_t
_BUF = ctypes.c_char_p

# name: (restype, argtypes)
_PROTOTYPES = {
    "mg_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "mg_err_name": (ctypes.c_char_p, [ctypes.c_int]),
    "mg_config_size": (_SZ, []),
    "mg_snapshot_size": (_SZ, []),
    "mg_verdict_size": (_SZ, []),
    "mg_config_check": (ctypes.c_int, [ctypes.POINTER(Config), _BUF, _SZ]),
    "mg_create": (_P, [ctypes.POINTER(Config), ctypes.POINTER(ctypes.c_int)]),
    "mg_destroy": (None, [_P]),
    "mg_ctx_config": (ctypes.POINTER(Config), [_P]),
    "mg_sample": (ctypes.c_int, [_P, _P]),
    "mg_classify": (ctypes.c_int, [ctypes.POINTER(Config), _P, _P, _P]),
    "mg_set_trainer_memory": (None, [_P, ctypes.c_uint64, ctypes.c_uint64]),
    "mg_set_predict_lead_ms": (ctypes.c_int, [_P, ctypes.c_uint32]),
    "mg_predict_lead_ms": (ctypes.c_uint32, [ctypes.c_uint64]),
    "mg_check_memory_safety": (ctypes.c_int, [_P, ctypes.c_double, ctypes.c_double,
                                              ctypes.POINTER(ctypes.c_bool), _BUF, _SZ]),
    "mg_text_opts_from_env": (TextOpts, [ctypes.c_int]),
    "mg_format_system_check": (ctypes.c_int, [_P, ctypes.POINTER(TextOpts), _BUF, _SZ]),
    "mg_format_banner": (ctypes.c_int, [ctypes.POINTER(Config), ctypes.POINTER(TextOpts),
                                        _BUF, _SZ]),
    "mg_format_warning": (ctypes.c_int, [_P, ctypes.POINTER(TextOpts), ctypes.c_long,
                                         _BUF, _SZ]),
    "mg_format_emergency": (ctypes.c_int, [_P, ctypes.POINTER(TextOpts), ctypes.c_long,
                                           ctypes.c_char_p, _BUF, _SZ]),
    "mg_format_emergency_text": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(TextOpts),
                                                ctypes.c_long, ctypes.c_char_p, _BUF, _SZ]),
    "mg_format_json": (ctypes.c_int, [ctypes.POINTER(Config), _P, _P, _BUF, _SZ]),
    "mg_parse_size": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]),
    "mg_parse_frac": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]),
    "mg_ram_source_name": (ctypes.c_char_p, [ctypes.c_int]),
}


def absolute_library_env(env, cwd=None):
    """Makes a relative ``$MEMGUARD_LIBRARY`` in ``env`` absolute, against
    ``cwd`` (default: the current directory), in place. Called on ``os.environ``
    when the package is imported, so that the README's
    ``MEMGUARD_LIBRARY=build/libmemguard.so`` still names the same file after
    the script changes directory, in this process and in the processes it
    starts (spawned DataLoader workers, torch.multiprocessing)."""
    value = env.get(LIBRARY_ENV, "")
    if value and not os.path.isabs(value):
        env[LIBRARY_ENV] = os.path.join(os.getcwd() if cwd is None else cwd, value)


def _library_names(platform=sys.platform):
    if platform == "win32":
        return ["memguard.dll", "libmemguard.dll"]
    if platform == "darwin":
        return ["libmemguard.0.dylib", "libmemguard.dylib"]
    return ["libmemguard.so.0", "libmemguard.so"]


def _prefix_dirs(package_dir, platform=sys.platform):
    """Library folders of the install prefixes, most specific first: the
    ``lib`` folder above this package (PREFIX/lib/pythonX.Y/site-packages/
    memguard), then sys.prefix, sys.base_prefix and /usr/local, each with
    Debian's multiarch subfolder. On Windows the DLL is in the prefix's
    ``bin`` folder instead (where CMake installs a DLL): PREFIX\\bin beside
    the ``lib`` (or ``Lib``) folder above the package, then sys.prefix's and
    sys.base_prefix's ``bin``."""
    windows = platform == "win32"
    dirs = []
    arch = "" if windows else sysconfig.get_config_var("MULTIARCH") or ""
    d = os.path.abspath(package_dir)
    while True:
        parent = os.path.dirname(d)
        if parent == d:
            break
        if os.path.basename(parent).lower() in ("lib", "lib64"):
            if windows:
                dirs.append(os.path.join(os.path.dirname(parent), "bin"))
            else:
                dirs.append(parent)
                if arch:
                    dirs.append(os.path.join(parent, arch))
        d = parent
    prefixes = (sys.prefix, sys.base_prefix) if windows else (sys.prefix, sys.base_prefix,
                                                                "/usr/local")
    for prefix in prefixes:
        for lib in ("bin",) if windows else ("lib", "lib64"):
            dirs.append(os.path.join(prefix, lib))
            if arch:
                dirs.append(os.path.join(prefix, lib, arch))
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_library(env=None, package_dir=None, prefix_dirs=None, use_ldconfig=True,
                 platform=sys.platform):
    """Path (or ldconfig name) of libmemguard, in this order:

    1. ``$MEMGUARD_LIBRARY`` when set: it must exist, nothing else is tried;
    2. next to this package (pip install builds it and puts it there; the
       Windows release zip has libmemguard.dll there);
    3. the install prefix's library folders (``cmake --install`` puts the
       library in PREFIX/lib, on Windows the DLL in PREFIX\\bin, the package
       in PREFIX/lib/python3.X/...);
    4. the dynamic linker's cache (``ctypes.util.find_library``; PATH on
       Windows).

    Raises MemguardError(MG_ENOLIB) listing every place looked at.
    The parameters exist for tests; the defaults are the real environment.
    """
    env = os.environ if env is None else env
    names = _library_names(platform)
    explicit = env.get(LIBRARY_ENV, "")
    if explicit:
        if os.path.isfile(explicit):
            return explicit
        raise MemguardError(MG_ENOLIB, f"{LIBRARY_ENV}={explicit!r}: no such file "
                            f"(it must name {names[-1]} itself, e.g. build/{names[-1]})")
    if package_dir is None:
        package_dir = os.path.dirname(os.path.abspath(__file__))
    if prefix_dirs is None:
        prefix_dirs = _prefix_dirs(package_dir, platform)
    tried = []
    for d in [package_dir] + list(prefix_dirs):
        for name in names:
            path = os.path.join(d, name)
            tried.append(path)
            if os.path.isfile(path):
                return path
    if use_ldconfig:
        found = ctypes.util.find_library("memguard")
        if found:
            return found
        tried.append("the folders on PATH" if platform == "win32"
                     else "the dynamic linker's cache (ldconfig)")
    raise MemguardError(MG_ENOLIB, "libmemguard not found; set " + LIBRARY_ENV +
                        f" to the path of {names[-1]} (the build writes "
                        f"build/{names[-1]}) or install it with `cmake --install`. "
                        "Looked at: " + ", ".join(tried))


def load(path):
    """Loads the library at ``path``, declares the prototypes and checks that
    its mg_config has the size this binding mirrors."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise MemguardError(MG_ENOLIB, f"cannot load libmemguard from {path!r}: {e}") from None
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise MemguardError(MG_ENOLIB, f"{path!r} has no {name}(): not libmemguard, "
                                "or a version older than this binding") from None
        fn.restype = restype
        fn.argtypes = argtypes
    if lib.mg_config_size() != ctypes.sizeof(Config):
        raise MemguardError(MG_ENOLIB, f"{path!r}: mg_config is {lib.mg_config_size()} bytes, "
                            f"this binding expects {ctypes.sizeof(Config)}: versions differ")
    names = tuple(lib.mg_ram_source_name(i).decode() for i in range(len(RAM_SOURCES)))
    if names != RAM_SOURCES:
        raise MemguardError(MG_ENOLIB, f"{path!r}: its RAM sources are {names}, this binding "
                            f"expects {RAM_SOURCES}: versions differ")
    return lib


_lib = None  # the loaded library; set once by library(), never changed after

absolute_library_env(os.environ)


def library():
    """The loaded libmemguard (found and loaded on first call)."""
    global _lib
    if _lib is None:
        _lib = load(find_library())
    return _lib


def call_text(fn, *args):
    """Calls an mg_format_* function with a buffer that grows until the text
    fits (snprintf's rule), and returns the text as str."""
    size = 4096
    while True:
        buf = ctypes.create_string_buffer(size)
        n = fn(*args, buf, size)
        if n < 0:
            raise error(n, fn.__name__)
        if n < size:
            return buf.value.decode("utf-8", "replace")
        size = n + 1


def parse_size(value, what="size"):
    """Bytes from an int or a string such as "8G", "512M", "1.5G" (binary
    units, mg_parse_size). Raises MemguardError naming ``what``."""
    if isinstance(value, bool):
        raise MemguardError(MG_EINVAL, f"{what}: expected bytes or a size such as '8G', "
                            f"got {value!r}")
    if isinstance(value, int):
        if value <= 0 or value >= 2 ** 64:
            raise MemguardError(MG_ERANGE, f"{what} {value}: must be 1 to 2**64-1 bytes")
        return value
    if not isinstance(value, str):
        raise MemguardError(MG_EINVAL, f"{what}: expected bytes or a size such as '8G', "
                            f"got {value!r}")
    out = ctypes.c_uint64()
    rc = library().mg_parse_size(value.encode(), ctypes.byref(out))
    if rc < 0:
        raise MemguardError(rc, f"{what} {value!r}: {strerror(rc)} (expected bytes or a "
                            "number with K, M, G or T, such as '512M' or '8G')")
    return out.value


def parse_frac(value, what="fraction"):
    """A fraction in (0, 1] from a float or a string "0.9" / "90%"
    (mg_parse_frac). Raises MemguardError naming ``what``."""
    if isinstance(value, str):
        out = ctypes.c_double()
        rc = library().mg_parse_frac(value.encode(), ctypes.byref(out))
        if rc < 0:
            raise MemguardError(rc, f"{what} {value!r}: {strerror(rc)} (expected a fraction "
                                "in (0, 1] such as 0.9 or '90%')")
        return out.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if not 0.0 < v <= 1.0:
            raise MemguardError(MG_ERANGE, f"{what} {value!r}: {strerror(MG_ERANGE)} "
                                "(expected a fraction in (0, 1] such as 0.9 or '90%')")
        return v
    raise MemguardError(MG_EINVAL, f"{what}: expected a fraction such as 0.9 or '90%', "
                        f"got {value!r}")
