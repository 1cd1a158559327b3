"""setup.py at the checkout's root: `pip install .` builds the same package
as `pip install ./python`, by running python/setup.py (the one copy of the
build: libmemguard with CMake, inside the package)."""

import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "python", "setup.py"),
               run_name="__main__")
