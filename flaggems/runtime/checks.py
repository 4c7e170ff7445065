"""Argument checks shared by every kernel wrapper: one wording for "bad input", naming the argument.

Custom ops run these in their ``check`` (before dispatch, on real and fake tensors alike), so the
implementations behind them (Triton, C++) trust their inputs and never re-check.
"""
from __future__ import annotations

import torch


def is_fake(t: torch.Tensor) -> bool:
    try:
        from torch._subclasses.fake_tensor import is_fake as _is_fake
    except ImportError:  # pragma: no cover
        return t.device.type == "meta"
    return _is_fake(t) or t.device.type == "meta"


def values_checkable(t: torch.Tensor) -> bool:
    """Whether a value check (min/max of an index tensor) is free of a device sync.

    Only host tensors qualify: on an accelerator the kernels mask out-of-range indices instead,
    because a `.item()` per call would stall the decode loop.
    """
    return t.device.type == "cpu" and not is_fake(t) and t.numel() > 0


def check_tensor(op: str, name: str, t, dtypes=None, dim=None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        allowed = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
        raise TypeError(f"{op}: {name} must have dtype in {{{allowed}}}, got {t.dtype}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{op}: {name} must be {dim}-D, got shape {tuple(t.shape)}")


def check_same_device(op: str, **tensors) -> None:
    devs = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devs.values())) > 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {devs}")
