"""Runtime helpers shared by the kernels: interpreter state, device guards, launch configs, tuning.

Layering inside: ``interpreter`` and ``device`` (where kernels run) <- ``config_cache`` <- ``autotune``
(choosing configs) <- this package's ``config``. Nothing here imports the registry or the ops.
"""
from __future__ import annotations

from .device import device_guard, device_name, interpreting, next_pow2, planning_as_device  # noqa: F401
from .interpreter import install_fixup, interpreter_requested  # noqa: F401
from .autotune import candidates


def config(kernel: str, default: dict) -> dict:
    """The first tuned config the vendor declares for ``kernel``, else ``default`` (no timing)."""
    return candidates(kernel, [default])[0]
