"""Small helpers shared by the DeepSeek-V4 kernel modules (argument checks, block choice)."""
from __future__ import annotations

import torch

from flaggems.runtime import device_guard, interpreting  # noqa: F401  (re-exported for the kernels)


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _is_fake(t: torch.Tensor) -> bool:
    try:
        from torch._subclasses.fake_tensor import is_fake
    except ImportError:  # pragma: no cover
        return t.device.type == "meta"
    return is_fake(t)


def values_checkable(t: torch.Tensor) -> bool:
    """Whether a value check (min/max of an index tensor) is free of a device sync.

    Only host tensors qualify: on an accelerator the kernels mask out-of-range indices instead,
    because a `.item()` per call would stall the decode loop.
    """
    return t.device.type == "cpu" and not _is_fake(t) and t.numel() > 0


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


# fp8_gemm and fp4_gemm share one op signature: C[..., N] = A[..., K] · B[N, K]ᵀ with block scales
GEMM_SCHEMA = "(Tensor a, Tensor a_s, Tensor b, Tensor b_s, ScalarType? out_dtype=None) -> Tensor"


def gemm_fake(a, a_s, b, b_s, out_dtype=None):
    """Meta kernel of the scaled GEMMs: output in out_dtype (default: torch's default dtype)."""
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return a.new_empty((*a.shape[:-1], b.shape[0]), dtype=out_dtype)
