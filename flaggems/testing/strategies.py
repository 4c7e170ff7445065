"""Hypothesis strategies for kernel tests: shapes (with edge sizes), non-contiguous layouts, dtypes."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def sides(max_side: int = 67):
    """Sizes biased to edges: 1, odd, powers of two and their neighbours, plus anything up to max_side."""
    edges = [s for s in (1, 2, 3, 7, 16, 17, 31, 32, 33, 63, 64, 65) if s <= max_side]
    return st.one_of(st.sampled_from(edges), st.integers(1, max_side))


def shapes(min_dims: int = 1, max_dims: int = 4, max_side: int = 33, allow_empty: bool = False):
    side = st.one_of(sides(max_side), st.just(0)) if allow_empty else sides(max_side)
    return st.lists(side, min_size=min_dims, max_size=max_dims).map(tuple)


def float_dtypes(include_fp64: bool = False):
    from ..vendors import active as vendor

    caps = vendor().capabilities
    out = [torch.float32, torch.float16]
    if caps.bf16:
        out.append(torch.bfloat16)
    if include_fp64 and caps.fp64:
        out.append(torch.float64)
    return st.sampled_from(out)


@st.composite
def layouts(draw, shape):
    """How to lay a tensor of ``shape`` out: 'contiguous', 'transposed' (a permutation) or 'strided' (a slice)."""
    kinds = ["contiguous", "strided"] + (["transposed"] if len(shape) >= 2 else [])
    return draw(st.sampled_from(kinds))


def make_tensor(shape, dtype, layout: str = "contiguous", device="cpu", generator=None, low=-3.0, high=3.0):
    """Fresh random values (never zeros) of ``shape`` in the given layout; the values are what they are."""
    shape = tuple(shape)

    def rand(s):
        if dtype.is_floating_point:
            t = torch.empty(s, dtype=torch.float32).uniform_(low, high, generator=generator)
        else:
            t = torch.randint(int(low), int(high) + 1, s, generator=generator)
        return t.to(dtype=dtype, device=device)

    if layout == "contiguous":
        return rand(shape)
    if layout == "transposed":
        perm = list(range(len(shape)))[::-1]
        base = rand(tuple(shape[p] for p in perm))
        return base.permute(*perm)
    if layout == "strided":
        big = rand(tuple(s * 2 for s in shape))
        return big[tuple(slice(None, None, 2) for _ in shape)]
    raise ValueError(f"unknown layout {layout!r}")
