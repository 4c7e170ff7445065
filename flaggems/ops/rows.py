"""Rows views for reductions, scans and softmax: a tensor read as rows x[m, n] through its own strides.

rows_view(x, dims):   m = m1*M2 + m2 over the kept dims (coalesced into at most two), n over the reduced dims
                      (coalesced into one); element (m, n) at m1*s1 + m2*s2 + n*sn, else a permuted copy.
rows_layout(t, dim):  t as rows [m1, n, m2] along one dim (outer dims, dim, inner dims), m = m1*M2 + m2.
tile(M, N):           the [BLOCK_M, BLOCK_N] tile of the min/max and any/all row kernels (large under the
                      interpreter, where the cost is per program).
"""
from __future__ import annotations

from typing import List, Sequence

import torch

from .. import runtime

# Under the interpreter the cost is per program: keep tiles large.
MAX_TILE = 16384


def norm_dims(dim, ndim: int) -> List[int]:
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    out = []
    for d in dims:
        wrap = max(ndim, 1)
        if not -wrap <= d < wrap:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-wrap}, {wrap - 1}], but got {d})")
        d = d % wrap
        if d in out:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        out.append(d)
    return [d for d in out if d < ndim] if ndim else []


def _merge(sizes: Sequence[int], strides: Sequence[int]):
    """Coalesce dims (outer to inner) that are contiguous with each other; drop size-1 dims."""
    pairs = [(s, st) for s, st in zip(sizes, strides) if s != 1]
    merged: list = []
    for s, st in pairs:
        if merged and merged[-1][1] == st * s:
            merged[-1] = (merged[-1][0] * s, st)
        else:
            merged.append((s, st))
    return merged


def rows_layout(t: torch.Tensor, dim: int):
    """(M, M2, s1, s2, sn): t viewed as rows [m1, n, m2] along ``dim`` (outer dims, ``dim``, inner dims), or
    None if the outer or the inner dims do not coalesce into one stride each."""
    outer = _merge(t.shape[:dim], t.stride()[:dim])
    inner = _merge(t.shape[dim + 1:], t.stride()[dim + 1:])
    if len(outer) > 1 or len(inner) > 1:
        return None
    m1, s1 = outer[0] if outer else (1, 0)
    m2, s2 = inner[0] if inner else (1, 0)
    return m1 * m2, m2, s1, s2, t.stride(dim) if t.dim() else 0


def rows_view(x: torch.Tensor, dims: List[int]):
    """(x', M, M2, N, s1, s2, sn): x' addressed as rows m = m1*M2 + m2 of N reduced elements,
    element (m, n) at m1*s1 + m2*s2 + n*sn. Kept dims coalesce into at most two and reduced dims into one;
    any other layout is first copied into a contiguous permuted tensor."""
    kept = [d for d in range(x.dim()) if d not in dims]
    M = 1
    for d in kept:
        M *= x.size(d)
    N = 1
    for d in dims:
        N *= x.size(d)
    km = _merge([x.size(d) for d in kept], [x.stride(d) for d in kept])
    rm = _merge([x.size(d) for d in dims], [x.stride(d) for d in dims])
    if M > 0 and (len(km) > 2 or len(rm) > 1):
        return x.permute(kept + dims).contiguous().view(M, N), M, 1, N, N, 0, 1
    km = [(1, 0)] * (2 - len(km)) + km
    (_, s1), (m2, s2) = km
    return x, M, m2, N, s1, s2, (rm[0][1] if rm else 0)


def out_shape(x: torch.Tensor, dims: List[int], keepdim: bool) -> List[int]:
    """The shape of a reduction of ``x`` over ``dims``."""
    return [1 if d in dims else x.size(d) for d in range(x.dim())] if keepdim else \
        [x.size(d) for d in range(x.dim()) if d not in dims]


def tile(M, N):
    block_n = max(1, min(1024, runtime.next_pow2(N)))
    cap = MAX_TILE if runtime.interpreting() else 4096
    block_m = max(1, min(runtime.next_pow2(M), max(1, cap // block_n)))
    return block_m, block_n


def dims_or_reason(x, dim):
    try:
        return norm_dims(dim, x.dim()), None
    except (IndexError, RuntimeError) as e:
        return None, str(e)
