"""Loading ``flaggems._C`` (the C++ CPU kernels) and the helpers every wrapper uses.

The extension is built by ``setup.py`` during ``pip install``. If that failed, setup.py left the
compiler's error in ``flaggems/_C_build_error.txt``; :func:`lib` raises :class:`CppExtensionError` with
that text (or with the import error and whether a C++ compiler is on PATH) at the first use of a C++
kernel. There is no silent fallback to a slower path: force the Triton kernels explicitly with
``FLAGGEMS_IMPL=triton`` or ``with flaggems.prefer_impl("triton"):``.
"""
from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import torch

from ..testing.simdevice import DEVICE_TYPE as SIM_DEVICE_TYPE

ERROR_FILE = Path(__file__).resolve().parent.parent / "_C_build_error.txt"

# Device types whose tensors' data pointers are host addresses the C++ kernels may read and write.
HOST_MEMORY_DEVICE_TYPES = frozenset({"cpu", SIM_DEVICE_TYPE})

# must match csrc/common.h enum DType
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
# the float dtypes the kernels read and write (they compute in fp32), and the index dtypes they take
FLOATS = frozenset(DTYPE_CODES)
INDEX = frozenset({torch.int32, torch.int64})

_LIB = None
_ERROR: str | None = None


class CppExtensionError(RuntimeError):
    """flaggems._C is missing or failed to build."""


def _find_compiler() -> str | None:
    names = []
    for var in ("CXX", "CC"):
        v = os.environ.get(var) or sysconfig.get_config_var(var)
        if v:
            names.append(v.split()[0])
    names += ["c++", "g++", "clang++"]
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def _explain(import_error: BaseException | None) -> str:
    how = ("Rebuild with `pip install -e .` (or `python setup.py build_ext --inplace`) in the flaggems "
           "checkout; FLAGGEMS_REQUIRE_CPP=1 makes a failed build stop the install. To run the Triton kernels "
           "instead, set FLAGGEMS_IMPL=triton or use `with flaggems.prefer_impl(\"triton\"):`.")
    if ERROR_FILE.exists():
        text = ERROR_FILE.read_text(errors="replace").strip()
        return f"flaggems C++ kernels are unavailable: building flaggems._C failed.\n{text}\n\n{how}"
    cc = _find_compiler()
    if cc is None:
        why = ("no C++ compiler was found (looked for $CXX, c++, g++, clang++): install one "
               "(e.g. `apt-get install g++`) and reinstall flaggems.")
    else:
        why = f"a C++ compiler is available ({cc}) but the extension was not built or cannot be loaded."
    return f"flaggems C++ kernels are unavailable: cannot import flaggems._C ({import_error!r}); {why}\n{how}"


def lib():
    """The loaded ``flaggems._C`` module; raises CppExtensionError with the reason if unavailable."""
    global _LIB, _ERROR
    if _LIB is not None:
        return _LIB
    if _ERROR is None:
        if ERROR_FILE.exists():  # a stale _C from an older build may still import: the error wins
            _ERROR = _explain(None)
        else:
            try:
                from flaggems import _C  # noqa: PLC0415
                _LIB = _C
                return _LIB
            except ImportError as e:
                _ERROR = _explain(e)
    raise CppExtensionError(_ERROR)


def available() -> bool:
    try:
        lib()
        return True
    except CppExtensionError:
        return False


def error() -> str | None:
    """Why the extension is unavailable (None when it loads)."""
    try:
        lib()
        return None
    except CppExtensionError as e:
        return str(e)


def nthreads() -> int:
    return max(1, torch.get_num_threads())


def ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def dcode(dt: torch.dtype, op: str, name: str) -> int:
    try:
        return DTYPE_CODES[dt]
    except KeyError:
        raise TypeError(f"{op} (cpp): {name} must be float32, bfloat16 or float16, got {dt}") from None


def host_addressable(t: torch.Tensor) -> bool:
    """Whether the C++ kernels can read ``t`` through its data pointer: CPU tensors, and tensors of the
    simulated fgsim device, whose memory is host memory (flaggems/testing/simdevice)."""
    return t.device.type in HOST_MEMORY_DEVICE_TYPES


def require_cpu(op: str, **tensors) -> None:
    """The C++ kernels run on the host: every tensor must live in host-addressable memory."""
    for name, t in tensors.items():
        if t is not None and t.device.type not in HOST_MEMORY_DEVICE_TYPES:
            raise ValueError(f"{op} (cpp): {name} must be in host memory (a cpu or fgsim tensor), "
                             f"got device {t.device}")


def contig(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_contiguous() else t.contiguous()
