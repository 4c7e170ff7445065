"""Where kernels run: interpreter or device, the device guard for a launch, the device's name, block helpers."""
from __future__ import annotations

import contextlib
import functools

from .interpreter import interpreter_requested


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1): block sizes and shape buckets."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


_PLAN_AS_DEVICE = [False]


def interpreting() -> bool:
    """True when Triton kernels run through the interpreter (the cpu vendor), so launchers plan for it
    (large blocks, host-only paths); False on a device, and while :func:`planning_as_device` is active."""
    return not _PLAN_AS_DEVICE[0] and interpreter_requested()


@contextlib.contextmanager
def planning_as_device():
    """Launchers plan as on a device (GPU tiles and branches) while kernels still run through the interpreter:
    how ``flaggems aot`` captures what a vendor would launch."""
    prev = _PLAN_AS_DEVICE[0]
    _PLAN_AS_DEVICE[0] = True
    try:
        yield
    finally:
        _PLAN_AS_DEVICE[0] = prev


def device_guard(tensor):
    """Make ``tensor``'s device current for a launch (no-op for CPU / interpreter)."""
    dev = tensor.device
    if dev.type == "cpu" or dev.index is None:
        return contextlib.nullcontext()
    import torch

    mod = getattr(torch, dev.type, None)
    if mod is not None and hasattr(mod, "device"):
        return mod.device(dev.index)
    return contextlib.nullcontext()


@functools.lru_cache(maxsize=None)
def device_name() -> str:
    from ..vendors import active

    v = active()
    if v.device_type == "cpu":
        import platform

        return f"cpu-{platform.machine()}"
    import torch

    mod = getattr(torch, v.device_type, None)
    try:
        return mod.get_device_name()
    except Exception:
        return v.device_type
