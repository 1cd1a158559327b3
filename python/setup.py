"""setup.py: the pip build of the memguard package.

`pip install ./python` (and `pip install .` at the checkout's root, whose
setup.py runs this file) builds libmemguard with CMake from this checkout
and puts it inside the package as memguard/libmemguard.so.0, where
memguard._lib.find_library looks first: `import memguard` then works in any
venv or conda environment with no environment variable. It builds the
library alone (MG_LIBRARY_ONLY: no programs, tests or man pages), in a
temporary folder that is removed afterwards, as are setuptools' own build
folders, so the checkout is left as it was.

It needs a C compiler and cmake (Debian: build-essential, cmake) and, with
Debian's setuptools and wheel, no network:

    pip install --no-build-isolation ./python

An editable install (pip install -e) is not supported: from a source tree,
use PYTHONPATH=python and MEMGUARD_LIBRARY=build/libmemguard.so instead.
"""

import atexit
import os
import re
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def version():
    """The project's version: CMakeLists.txt's project() line, the one copy."""
    path = os.path.join(ROOT, "CMakeLists.txt")
    if not os.path.isfile(path):
        raise SystemExit(f"memguard: {path} not found: the package is built from a memguard "
                         "checkout (python/ beside src/, include/ and CMakeLists.txt)")
    with open(path, encoding="utf-8") as f:
        return re.search(r"project\(memguard VERSION ([0-9.]+)", f.read()).group(1)


def cmake(args):
    exe = shutil.which("cmake")
    if not exe:
        raise SystemExit("memguard: building libmemguard needs cmake and a C compiler "
                         "(Debian: apt-get install cmake build-essential)")
    subprocess.run([exe] + args, check=True)


class BuildWithLibrary(build_py):
    """build_py, then libmemguard built and copied into the package."""

    def run(self):
        super().run()
        with tempfile.TemporaryDirectory(prefix="memguard-cmake-") as build:
            cmake(["-S", ROOT, "-B", build, "-DMG_LIBRARY_ONLY=ON", "-DMG_TESTS=OFF",
                   "-DCMAKE_BUILD_TYPE=Release"])
            cmake(["--build", build, "--target", "memguard", "-j", str(os.cpu_count() or 1)])
            dest = os.path.join(self.build_lib, "memguard", "libmemguard.so.0")
            shutil.copyfile(os.path.realpath(os.path.join(build, "libmemguard.so")), dest)
            os.chmod(dest, 0o755)


class BinaryDistribution(Distribution):
    """The wheel holds a shared library: tag it for this platform."""

    def has_ext_modules(self):
        return True


# setuptools' build and egg-info folders go to a temporary folder, not into
# the checkout (pip builds in place).
_scratch = tempfile.mkdtemp(prefix="memguard-setup-")
atexit.register(shutil.rmtree, _scratch, True)

setup(
    name="memguard",
    version=version(),
    description="The seed's memory monitor for PyTorch training loops, over libmemguard: "
                "GPU memory, RAM, cgroup limits and the process tree",
    license="MIT",
    python_requires=">=3.8",
    packages=["memguard"],
    package_dir={"memguard": os.path.join(os.path.relpath(HERE), "memguard")},
    cmdclass={"build_py": BuildWithLibrary},
    distclass=BinaryDistribution,
    zip_safe=False,
    options={"build": {"build_base": os.path.join(_scratch, "build")},
             "egg_info": {"egg_base": _scratch}},
)
