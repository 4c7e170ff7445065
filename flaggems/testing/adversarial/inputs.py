"""Input builders that adversarial samples are written in.

A sample is Python source (setup lines + one call) evaluated in :data:`NAMESPACE`, so the sample *is* its
minimal repro: ``from flaggems.testing.adversarial.inputs import *`` and paste it. Every builder is seeded
explicitly, so the same source always gives the same tensors.
"""
from __future__ import annotations

import math

import torch

aten = torch.ops.aten
nan, inf = math.nan, math.inf

_FLOAT_RANGE = (-3.0, 3.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def rand(shape, dtype=torch.float32, seed=0, low=None, high=None) -> torch.Tensor:
    """Random values of ``dtype``: floats uniform in [low, high) (default ±3), ints in [low, high] (default
    -3..3, 0..6 for unsigned), bools fair coins."""
    shape = tuple(shape)
    g = _gen(seed)
    if dtype is torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        lo, hi = (_FLOAT_RANGE[0] if low is None else low), (_FLOAT_RANGE[1] if high is None else high)
        if dtype.itemsize == 1:   # fp8: no arithmetic on CPU, only casts
            return (torch.rand(shape, generator=g) * (hi - lo) + lo).to(dtype)
        return (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)
    unsigned = dtype is torch.uint8
    lo = (0 if unsigned else -3) if low is None else int(low)
    hi = (6 if unsigned else 3) if high is None else int(high)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)


def pos(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    """Positive values (for log, sqrt, rsqrt, divisors): floats in [0.25, 4), ints in [1, 4]."""
    if dtype is torch.bool:
        return torch.ones(tuple(shape), dtype=torch.bool)
    return rand(shape, dtype, seed, low=0.25 if dtype.is_floating_point else 1, high=4)


def idx(shape, high, seed=0) -> torch.Tensor:
    """int64 indices in [0, high) (duplicates possible)."""
    return torch.randint(0, max(1, int(high)), tuple(shape), generator=_gen(seed), dtype=torch.int64)


def uidx(n, high, seed=0) -> torch.Tensor:
    """``n`` distinct int64 indices in [0, high): writes through them are deterministic."""
    return torch.randperm(int(high), generator=_gen(seed))[: int(n)]


def uidx_rows(shape, high, seed=0) -> torch.Tensor:
    """A 2-D index whose every row holds distinct values in [0, high) (scatter along dim 1 without races)."""
    rows, cols = shape
    g = _gen(seed)
    out = [torch.randperm(int(high), generator=g)[:cols] for _ in range(rows)]
    return torch.stack(out) if rows else torch.empty((0, cols), dtype=torch.int64)


def mask(shape, seed=0) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=_gen(seed)) > 0.5


def with_value(t: torch.Tensor, value, where="first") -> torch.Tensor:
    """A copy of ``t`` with ``value`` (NaN, ±Inf, ...) written at one position: first, middle or last element
    (of the logical order), or every element ("all")."""
    t = t.clone()
    if t.numel() == 0:
        return t
    flat = t.view(-1) if t.is_contiguous() else None
    if where == "all":
        return t.fill_(value)
    n = t.numel()
    i = {"first": 0, "middle": n // 2, "last": n - 1}[where]
    if flat is not None:
        flat[i] = value
    else:
        t[torch.unravel_index(torch.tensor(i), t.shape)] = value
    return t


def transposed(t: torch.Tensor) -> torch.Tensor:
    """The same values in a column-major layout (last two dims stored swapped)."""
    if t.dim() < 2:
        return strided(t)
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


def strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous view (every other element of a buffer twice as large, offset 1)."""
    if t.dim() == 0:
        return t
    big = torch.zeros(tuple(2 * s + 1 for s in t.shape), dtype=t.dtype)
    view = big[tuple(slice(1, None, 2) for _ in t.shape)]
    view.copy_(t)
    return view


def expanded(t: torch.Tensor, dim=0) -> torch.Tensor:
    """A zero-stride view along ``dim``: row 0 of ``t`` repeated (an expanded, self-overlapping tensor)."""
    if t.dim() == 0 or t.shape[dim] == 0:
        return t
    return t.narrow(dim, 0, 1).expand(t.shape)


def meta(t: torch.Tensor) -> torch.Tensor:
    return t.to("meta")


def poisoned(shape, dtype) -> torch.Tensor:
    """An out= buffer full of values no kernel writes by accident (NaN / dtype max), so unwritten elements show."""
    from .. import poison

    return poison(torch.empty(tuple(shape), dtype=dtype))


def empty_out(dtype) -> torch.Tensor:
    """A 0-element out= buffer: torch resizes it to the result's shape."""
    return torch.empty(0, dtype=dtype)


NAMESPACE = {k: v for k, v in dict(globals()).items() if not k.startswith("_") and k not in ("annotations",)}
__all__ = sorted(k for k in NAMESPACE if k not in ("math",)) + ["torch"]
