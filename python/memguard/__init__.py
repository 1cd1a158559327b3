"""memguard: the seed's memory monitor for PyTorch training loops, over libmemguard.

    import memguard
    is_safe, warning = memguard.check_memory_safety(0.90, 0.85)
    memguard.system_resource_check()
    guard = memguard.Guard(ram_budget="8G")        # see memguard.guard
    memguard.acknowledge(path)                     # a good save, to memguard run

The shared library is found through $MEMGUARD_LIBRARY, next to this package,
under the install prefix, or by the dynamic linker (memguard._lib.find_library);
importing the package makes a relative $MEMGUARD_LIBRARY absolute.
Units: fractions are 0..1 (or strings such as "90%"), sizes are bytes (or
strings such as "8G", binary units), times are seconds unless named _ms.
"""

from ._lib import MG_EXIT_MEMSTOP, MemguardError, find_library, parse_frac, parse_size
from .checkpoint import atomic_save
from .guard import Guard
from .monitor import Level, Monitor, check_memory_safety, system_resource_check
from .stop import StopRequest, acknowledge, ignore_stop_signal, read_stop_reason

__version__ = "0.1.0"

__all__ = [
    "MG_EXIT_MEMSTOP", "MemguardError", "find_library", "parse_frac", "parse_size",
    "atomic_save", "Guard", "Level", "Monitor", "check_memory_safety",
    "system_resource_check", "StopRequest", "acknowledge", "ignore_stop_signal",
    "read_stop_reason",
]
