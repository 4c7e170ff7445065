"""Accuracy-testing helpers for flaggems kernels, usable by vendors to validate a device.

- :data:`TOLERANCES` per dtype, with the absolute part scaled by the reduction length;
- :func:`reference` upcasts inputs for a reference computation (fp64 where the vendor has it);
- :func:`assert_close` compares against a reference and says which element failed and by how much;
- :func:`poisoned` / :func:`poison` make output buffers full of NaN / sentinels so unwritten elements show;
- :mod:`flaggems.testing.strategies`: hypothesis strategies for shapes, strides and dtypes;
- :func:`count_syncs` (:mod:`flaggems.testing.syncs`): device->host reads issued by flaggems code;
- :mod:`flaggems.testing.simdevice`: the simulated ``fgsim`` PrivateUse1 device (no kernels of its own).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .syncs import SyncCounter, count_syncs, uncounted  # noqa: F401


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float


# rtol from the dtype's precision (bf16 8 bits, fp16 11 bits); atol per unit of reduction length.
TOLERANCES = {
    torch.bfloat16: Tol(1.6e-2, 1e-2),
    torch.float16: Tol(1e-3, 1e-3),
    torch.float32: Tol(1.3e-6, 1e-5),
    torch.float64: Tol(1e-12, 1e-12),
}
for _name, _tol in (("float8_e4m3fn", Tol(1.25e-1, 1e-1)), ("float8_e5m2", Tol(2.5e-1, 2e-1))):
    if hasattr(torch, _name):
        TOLERANCES[getattr(torch, _name)] = _tol


def tolerance(dtype: torch.dtype, reduce_len: int = 1) -> Tol:
    """rtol/atol for results of ``dtype`` that summed ``reduce_len`` terms (error grows ~ sqrt(n))."""
    base = TOLERANCES.get(dtype)
    if base is None:
        if not dtype.is_floating_point:
            return Tol(0.0, 0.0)
        raise KeyError(f"no tolerance defined for {dtype}")
    return Tol(base.rtol, base.atol * max(1.0, math.sqrt(max(1, reduce_len))))


def reference_dtype(device_type: str = "cpu") -> torch.dtype:
    from ..vendors import active as vendor

    v = vendor()
    if device_type != v.device_type or v.capabilities.fp64:
        return torch.float64
    return torch.float32


def reference(t, dtype: Optional[torch.dtype] = None):
    """Upcast a tensor for the reference computation (fp64 where available); non-floats pass through."""
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        return t.detach().to(dtype or reference_dtype(t.device.type))
    return t


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill ``t`` with a value no kernel would write by accident (NaN for floats, a sentinel for ints)."""
    if t.is_floating_point() or t.is_complex():
        return t.fill_(float("nan"))
    if t.dtype is torch.bool:
        return t.fill_(True)
    return t.fill_(torch.iinfo(t.dtype).max)


def poisoned(shape, dtype, device="cpu") -> torch.Tensor:
    return poison(torch.empty(shape, dtype=dtype, device=device))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: Optional[torch.dtype] = None,
                 reduce_len: int = 1, rtol: Optional[float] = None, atol: Optional[float] = None,
                 equal_nan: bool = True, msg: str = "") -> None:
    """Compare ``actual`` with a (higher-precision) reference, tolerances taken from ``dtype``.

    ``expected`` is first rounded to ``dtype`` (what a perfect kernel returns, overflow included), then both
    are compared in fp64. On failure the message names the worst element and the distance.
    """
    if not isinstance(actual, torch.Tensor):
        raise TypeError(f"actual must be a tensor, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"{msg} shape mismatch: actual {tuple(actual.shape)} vs expected {tuple(expected.shape)}")
    dtype = dtype or actual.dtype
    if not dtype.is_floating_point:
        if not torch.equal(actual.cpu(), expected.to(actual.dtype).cpu()):
            bad = (actual.cpu() != expected.to(actual.dtype).cpu()).nonzero()
            i = tuple(bad[0].tolist())
            raise AssertionError(f"{msg} {bad.shape[0]} of {actual.numel()} elements differ; first at {i}: "
                                 f"actual {actual[i].item()} expected {expected[i].item()}")
        return
    tol = tolerance(dtype, reduce_len)
    rtol = tol.rtol if rtol is None else rtol
    atol = tol.atol if atol is None else atol
    a = actual.detach().cpu().to(torch.float64)
    # the best a kernel can do is the reference correctly rounded to its dtype (overflow to inf included)
    e = expected.detach().cpu().to(dtype).to(torch.float64)
    if a.numel() == 0:
        return
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    diff = (a - e).abs()
    bound = atol + rtol * e.abs()
    same_inf = (a == e)  # equal infinities (and exact matches)
    # an infinite reference makes the bound infinite too: only the same infinity may match it
    ok = ((diff <= bound) & torch.isfinite(e)) | same_inf
    ok = ok | (nan_a & nan_e) if equal_nan else ok & ~nan_a
    ok = ok & ~(nan_a ^ nan_e)
    if bool(ok.all()):
        return
    bad = (~ok).nonzero()
    excess = torch.where(ok, torch.zeros_like(diff), torch.nan_to_num(diff - bound, nan=math.inf, posinf=math.inf))
    worst = tuple(int(i) for i in (excess == excess.max()).nonzero()[0].tolist())
    raise AssertionError(
        f"{msg} {bad.shape[0]} of {a.numel()} elements outside rtol={rtol:g} atol={atol:g} ({dtype}, "
        f"reduce_len={reduce_len}); worst at index {worst}: actual {a[worst].item()!r} expected {e[worst].item()!r} "
        f"(|diff| {diff[worst].item():.3g}); first bad index {tuple(bad[0].tolist())}")


def run_gems(fn, *args, served=(), kind=None, **kwargs):
    """Call ``fn`` under ``use_gems()`` + ``record()`` and assert each op in ``served`` was served by
    flaggems (optionally by implementation ``kind``) and never fell back. Returns (result, report).

    This is how a test proves it exercised our kernel rather than the native fallback.
    """
    from ..api import use_gems
    from ..record import record

    with use_gems():
        with record() as rep:
            out = fn(*args, **kwargs)
    for op in served:
        row = rep._find(op)
        by = dict(row["served"])
        assert by, f"{op} was not served by flaggems: fallback {dict(row['fallback'])}"
        if kind is not None:
            assert kind in by, f"{op} served by {by}, expected {kind}"
        assert not row["fallback"], f"{op} also fell back: {dict(row['fallback'])}"
    return out, rep
