"""``torch.fgsim``: the device module torch looks up by the backend's name (like ``torch.cuda``).

torch calls into it for device-generic features (``torch.manual_seed`` seeds every device through
``manual_seed_all``; ``torch.autocast("fgsim")`` asks ``get_amp_supported_dtype``); users and flaggems' runtime use
the rest. State lives in the C++ runtime and is reached through ``torch.ops.fgsim.*``.
"""
from __future__ import annotations

from typing import Union

import torch

DeviceLike = Union[int, str, torch.device, None]


def _index(device: DeviceLike = None) -> int:
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    dev = torch.device(device)
    if dev.type != "fgsim":
        raise ValueError(f"expected an fgsim device, got {dev}")
    return current_device() if dev.index is None else dev.index


def is_available() -> bool:
    return True


def is_initialized() -> bool:
    # the runtime initialises when the library loads; there is no lazy driver start to wait for
    return True


def init() -> None:
    pass


def _lazy_init() -> None:
    pass


def _is_in_bad_fork() -> bool:
    # host memory survives fork(), unlike a driver context
    return False


def device_count() -> int:
    return int(torch.ops.fgsim.device_count())


def current_device() -> int:
    return int(torch.ops.fgsim.current_device())


def set_device(device: DeviceLike) -> None:
    torch.ops.fgsim.set_device(_index(device))


def get_device_name(device: DeviceLike = None) -> str:
    _index(device)
    return "flaggems simulated device (host memory)"


def synchronize(device: DeviceLike = None) -> None:
    """Every fgsim operation completes before it returns, so there is nothing to wait for; the index is checked."""
    idx = _index(device)
    if not 0 <= idx < device_count():
        raise ValueError(f"fgsim device index {idx} out of range (device_count() == {device_count()})")


def memory_allocated(device: DeviceLike = None) -> int:
    """Bytes currently allocated on the device by the simulated device's allocator."""
    return int(torch.ops.fgsim.memory_allocated(_index(device)))


def manual_seed(seed: int) -> None:
    torch.ops.fgsim.manual_seed(current_device(), int(seed))


def manual_seed_all(seed: int) -> None:
    for i in range(device_count()):
        torch.ops.fgsim.manual_seed(i, int(seed))


def initial_seed() -> int:
    return int(torch.ops.fgsim.initial_seed(current_device()))


def get_amp_supported_dtype() -> list:
    return [torch.float16, torch.bfloat16]


class device:
    """``with torch.fgsim.device(1):`` makes device 1 current in the block (a negative index or None: no-op)."""

    def __init__(self, device: DeviceLike):
        self.idx = -1 if device is None else _index(device)
        self.prev = -1

    def __enter__(self):
        self.prev = int(torch.ops.fgsim.exchange_device(self.idx))
        return self

    def __exit__(self, *exc):
        if self.idx >= 0:
            torch.ops.fgsim.set_device(self.prev)
        return False


__all__ = ["is_available", "is_initialized", "init", "device_count", "current_device", "set_device",
           "get_device_name", "synchronize", "memory_allocated", "manual_seed", "manual_seed_all", "initial_seed",
           "get_amp_supported_dtype", "device"]

