"""flaggems: a hardware-agnostic operator library for PyTorch.

``import flaggems; flaggems.enable()`` routes torch's ATen ops (at the active vendor's dispatch key) and the
DeepSeek-V4 kernels (``torch.ops.flaggems.*``) to flaggems' Triton and C++ implementations.
"""
from __future__ import annotations

import contextlib
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


_vendors.set_active(_PLUGIN)

from . import registry  # noqa: E402
from . import record as _record_mod  # noqa: E402
from . import ops  # noqa: E402,F401  (declares the ATen implementations)
from . import deepseek  # noqa: E402,F401  (declares the flaggems:: custom ops and their Triton impls)
from . import cpp  # noqa: E402,F401  (C++ impls; a missing extension raises at first use)

registry.seal()  # every built-in op is declared: bind the vendor's deny list and overrides

from .api import disable, enable, registered_ops, use_gems  # noqa: E402

record = _record_mod.record
Report = _record_mod.Report
prefer_impl = registry.prefer_impl
RegistrationError = registry.RegistrationError

__all__ = ["enable", "disable", "use_gems", "registered_ops", "vendor", "record", "Report", "prefer_impl",
           "RegistrationError", "__version__"]
