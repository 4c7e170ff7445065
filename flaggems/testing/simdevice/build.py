"""Compiling the simulated device (csrc/*.cpp, torch C++ headers) with ``torch.utils.cpp_extension.load``.

The build is kept out of ``pip install``: it needs torch's headers and ninja, and only the simulated-device tests
and ``--device fgsim`` use it. The shared library is cached per torch version, Python version and checkout under
``$FLAGGEMS_CACHE_DIR/simdevice`` (default ``~/.cache/flaggems/simdevice``); cpp_extension rebuilds it when a
source changes and serialises concurrent builds with a lock file in that directory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("runtime.cpp", "memory_ops.cpp")
LIBRARY_NAME = "flaggems_fgsim"


class SimDeviceBuildError(RuntimeError):
    """The simulated device cannot be compiled here (no C++ compiler, no ninja, or a compile error)."""


def cache_dir() -> Path:
    import torch

    root = os.environ.get("FLAGGEMS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "flaggems")
    # one directory per checkout too: two checkouts sharing one would rebuild over each other's library
    where = hashlib.sha1(str(CSRC).encode()).hexdigest()[:8]
    tag = f"torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}-{where}"
    return Path(root) / "simdevice" / tag


def find_compiler() -> str | None:
    for name in (os.environ.get("CXX"), sysconfig.get_config_var("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name.split()[0]):
            return shutil.which(name.split()[0])
    return None


def _preflight() -> None:
    from torch.utils import cpp_extension

    if find_compiler() is None:
        raise SimDeviceBuildError(
            "the simulated fgsim device is a C++ torch extension and no C++ compiler was found (looked for $CXX, "
            "c++, g++, clang++). Install one (e.g. `apt-get install g++`) and retry.")
    if not cpp_extension.is_ninja_available():
        raise SimDeviceBuildError(
            "the simulated fgsim device is built with torch.utils.cpp_extension, which needs ninja: "
            "`pip install ninja` (it is in flaggems' [test] extra).")


def build(verbose: bool = False) -> tuple[str, float]:
    """Compile (or reuse) the extension and load it into the process; returns (library path, seconds)."""
    from torch.utils import cpp_extension

    _preflight()
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        cpp_extension.load(name=LIBRARY_NAME, sources=[str(CSRC / s) for s in SOURCES],
                           extra_cflags=["-O2"], build_directory=str(out),
                           is_python_module=False, verbose=verbose)
    except Exception as e:  # compile/link errors arrive as RuntimeError/CalledProcessError with the log
        raise SimDeviceBuildError(f"building the simulated fgsim device in {out} failed: {e}") from e
    return str(out / f"{LIBRARY_NAME}.so"), time.perf_counter() - t0
