"""flaggems: a hardware-agnostic operator library for PyTorch.

``import flaggems; flaggems.enable()`` routes torch's ATen ops (at the active vendor's dispatch key) and the
DeepSeek-V4 kernels (``torch.ops.flaggems.*``) to flaggems' Triton and C++ implementations.
"""
from __future__ import annotations

import contextlib
import os as _os
from typing import Iterable, List, Optional

from ._version import __version__
from . import vendors as _vendors
from .runtime import interpreter as _interpreter

# Vendor selection comes first: the cpu vendor must switch Triton to interpret mode before any kernel module
# applies @triton.jit (the mode is fixed at decoration time).
_PLUGIN = _vendors.select()
if _PLUGIN.interpret:
    _interpreter.enable_interpreter()


def vendor() -> "_vendors.VendorPlugin":
    """The active vendor plugin (name, device type, dispatch key, capability flags)."""
    return _vendors.active()


from . import record as _record_mod  # noqa: E402
from . import registry  # noqa: E402

_prefer = _os.environ.get("FLAGGEMS_IMPL") or None
if _prefer is not None and _prefer not in registry.KINDS:
    raise ValueError(f"FLAGGEMS_IMPL={_prefer!r}: expected one of {registry.KINDS}")
registry._PREFER_ENV = _prefer

from . import ops  # noqa: E402,F401  (declares the ATen implementations)
from . import deepseek  # noqa: E402,F401  (declares the flaggems:: custom ops and their Triton impls)
from . import cpp  # noqa: E402,F401  (C++ impls; a missing extension raises at first use)

registry._set_vendor(_PLUGIN)

record = _record_mod.record
Report = _record_mod.Report
prefer_impl = registry.prefer_impl
RegistrationError = registry.RegistrationError

__all__ = ["enable", "disable", "use_gems", "registered_ops", "vendor", "record", "Report", "prefer_impl",
           "RegistrationError", "__version__"]


def enable(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None) -> None:
    """Route ATen ops to flaggems at the active vendor's dispatch key.

    ``include``/``exclude`` take ATen names: ``"mm"`` is every overload of mm, ``"mm.out"`` one overload
    (``"aten::mm.out"`` also works). Unknown names raise ``ValueError`` with close matches.
    """
    registry.apply(include, exclude)


def disable() -> None:
    """Restore every patched ATen op to its native kernel."""
    registry.remove()


@contextlib.contextmanager
def use_gems(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None):
    """Enable flaggems in a block; on exit (also on exceptions) restore exactly the previous state."""
    prev = registry.current_config()
    registry.apply(include, exclude)
    try:
        yield
    finally:
        if prev is None:
            registry.remove()
        else:
            registry.apply(prev.include, prev.exclude)


def registered_ops() -> List[str]:
    """Sorted ``aten::name.overload`` strings currently patched (empty when disabled)."""
    return sorted(registry.patched())
