"""Grouped GEMM: ``aten::_grouped_mm`` (and the shared kernels of ``aten::_scaled_grouped_mm``).

Modes (G groups; ``offs`` int32 [G] holds the cumulative group ends, ``start_g = offs[g-1]``, ``start_0 = 0``)::

    2D x 3D  A[M, K]    B[G, K, N]  -> C[M, N]     C[start_g:offs[g]] = A[start_g:offs[g]] @ B[g]     (MoE fwd)
    3D x 2D  A[G, M, K] B[K, N]     -> C[M, N]     C[:, start_g:offs[g]] = A[g] @ B[:, start_g:offs[g]]
    2D x 2D  A[M, K]    B[K, N]     -> C[G, M, N]  C[g] = A[:, start_g:offs[g]] @ B[start_g:offs[g]]  (weight grad)
    3D x 3D  A[G, M, K] B[G, K, N]  -> C[G, M, N]  batched, no offs

fp32 accumulation (IEEE for fp32 inputs unless torch allows TF32), output in the input dtype (torch's only
``out_dtype``). Rows (2Dx3D) / columns (3Dx2D) past ``offs[-1]`` are written as zeros (torch leaves them
uninitialised); an empty group gives zero rows (2Dx3D) or a zero matrix (2Dx2D).

Design (the ROWS and KSPLIT layouts of the GEMM kernel, flaggems/ops/gemm/kernel.py): ``offs`` stays on the
device. The grid is sized from an upper bound on the number of row tiles, ``cdiv(M, BLOCK_M) + min(G, M) + 1``
(every non-empty group adds at most one partial tile, at most min(G, M) groups are non-empty, and group G is the
zero tail), and each program finds its group with an in-kernel prefix sum over the per-group tile counts. Offsets are clamped
to [0, M] in the kernel so every access stays in bounds whatever ``offs`` holds; on host tensors (no device
sync needed) offsets that decrease or pass the row count raise a RuntimeError instead of computing garbage.
Any strides are read in place (row- or column-major weights, transposed views).
"""
from __future__ import annotations

import torch

from ...registry import implement
from ...runtime.checks import values_checkable
from . import dense
from .plan import KSPLIT, ON_ACC, ROWS, Plan, Scale, Tiles, fp8_dot, launch, precision

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32})
_GPU_DEFAULTS = [
    {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3},
    {"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128, "num_warps": 4, "num_stages": 4},
    {"BLOCK_M": 32, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4},
]
# under the interpreter: one large-block config, shrunk to rows per group, N and (per-group) K
_INTERPRETER = [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128}]
ROWS_TILES = Tiles("grouped_mm", {"": _GPU_DEFAULTS}, _INTERPRETER)
KSPLIT_TILES = Tiles("grouped_mm_k", {"": _GPU_DEFAULTS}, _INTERPRETER)


def _plan(tiles: Tiles, layout: int, a, b, sa: Scale = Scale(), sb: Scale = Scale()) -> Plan:
    return Plan(tiles, "rowwise" if sa.t is not None else "", sa, sb,
                dot=fp8_dot(a, b) if a.dtype.itemsize == 1 else None, precision=precision(a.dtype), layout=layout)


def launch_rows(a2, b3, c2, offs, *, sa=None, sa_strides=(0,), sb=None, sb_strides=(0, 0)):
    """c2[R, N] (rows grouped by offs) = a2[R, K] @ b3[G, K, N]; any strides; optional rowwise scales.

    ``sa``: per-row scales read at ``sa[r * sa_strides[0]]``; ``sb``: per-(group, column) scales read at
    ``sb[g * sb_strides[0] + n * sb_strides[1]]`` (fp32).
    """
    scales = {}
    if sa is not None:
        scales = dict(sa=Scale(sa, sa_strides[0], at=ON_ACC),
                      sb=Scale(sb, sb_strides[1], at=ON_ACC, s_batch=sb_strides[0]))
    launch(_plan(ROWS_TILES, ROWS, a2, b3, **scales), a2.unsqueeze(0), b3, c2.unsqueeze(0), offs=offs)
    return c2


def launch_k(a2, b2, c3, offs, *, sa=None, sa_strides=(0, 0), sb=None, sb_strides=(0, 0)):
    """c3[g] = a2[:, K-group g] @ b2[K-group g, :]; optional scales sa[g, m], sb[g, n] (strides given)."""
    scales = {}
    if sa is not None:
        scales = dict(sa=Scale(sa, sa_strides[1], at=ON_ACC, s_batch=sa_strides[0]),
                      sb=Scale(sb, sb_strides[1], at=ON_ACC, s_batch=sb_strides[0]))
    return launch(_plan(KSPLIT_TILES, KSPLIT, a2, b2, **scales), a2.unsqueeze(0), b2.unsqueeze(0), c3, offs=offs)


def out_tensor(a, b, offs, dtype):
    """The output torch would allocate (rows padded to 16 bytes, like create_grouped_gemm_output_tensor)."""
    a2, b2 = a.dim() == 2, b.dim() == 2
    if a2 and b2:
        size = [offs.shape[0], a.shape[0], b.shape[1]]
    elif a2:
        size = [a.shape[0], b.shape[-1]]
    elif b2:
        size = [a.shape[1], b.shape[1]]
    else:
        size = [a.shape[0], a.shape[1], b.shape[-1]]
    align = max(1, 16 // torch.empty((), dtype=dtype).element_size())
    padded = (size[-1] + align - 1) // align * align
    stride = [padded, 1] if len(size) == 2 else [size[1] * padded, padded, 1]
    return torch.empty_strided(size, stride, dtype=dtype, device=a.device)


# whether offs can be checked on the host without a device sync (tests monkeypatch it)
_host_checkable = values_checkable


def check_offs_values(offs: torch.Tensor, bound: int, what: str, op: str = "grouped_mm") -> None:
    """On host tensors (free of a device sync): offsets must be >= 0, non-decreasing and <= ``bound``."""
    if not _host_checkable(offs):
        return
    o = offs.to(torch.int64)
    if bool((o[0] < 0).item()) or (o.numel() > 1 and bool((o[1:] < o[:-1]).any().item())):
        raise RuntimeError(f"{op}: offs must be non-negative and non-decreasing, got {offs.tolist()}")
    last = int(o[-1].item())
    if last > bound:
        raise RuntimeError(f"{op}: offs[-1] = {last} is past the {what} ({bound})")


def run_grouped(a, b, offs, out, *, scales=None, op="grouped_mm"):
    """One grouped product into ``out`` (already allocated). ``scales`` = (sa, sb) rowwise fp32 (not 3D x 3D)."""
    a2, b2 = a.dim() == 2, b.dim() == 2
    sa, sb = scales if scales is not None else (None, None)
    if a2 and not b2:                                   # 2D x 3D: rows of A grouped
        check_offs_values(offs, a.shape[0], "row count of mat_a", op)
        if offs.shape[0] == 0:
            return out.zero_()
        kw = {}
        if sa is not None:                              # sa [M], sb [G, N]
            kw = dict(sa=sa, sa_strides=(sa.stride(0),), sb=sb, sb_strides=(sb.stride(0), sb.stride(1)))
        return launch_rows(a, b, out, offs, **kw)
    if b2 and not a2:                                   # 3D x 2D: columns of B grouped -> transposed problem
        check_offs_values(offs, b.shape[1], "column count of mat_b", op)
        if offs.shape[0] == 0:
            return out.zero_()
        kw = {}
        if sa is not None:                              # sa [G, M] -> per (group, column'), sb [N] -> per row'
            kw = dict(sa=sb, sa_strides=(sb.stride(0),), sb=sa, sb_strides=(sa.stride(0), sa.stride(1)))
        launch_rows(b.t(), a.transpose(1, 2), out.t(), offs, **kw)
        return out
    if a2 and b2:                                       # 2D x 2D: K grouped
        check_offs_values(offs, a.shape[1], "contraction size", op)
        kw = {}
        if sa is not None:                              # sa [G*M], sb [G*N]
            M, N = a.shape[0], b.shape[1]
            kw = dict(sa=sa, sa_strides=(M * sa.stride(0), sa.stride(0)),
                      sb=sb, sb_strides=(N * sb.stride(0), sb.stride(0)))
        return launch_k(a, b, out, offs, **kw)
    # 3D x 3D (unscaled: scaled.py serves the rowwise-scaled batched product itself)
    return dense._launch(a, b, out)


# ----------------------------------------------------------------------------------------------------------
# aten::_grouped_mm

def grouped_mm_ref(a, b, offs=None, bias=None, out_dtype=None):
    """fp64 reference (any mode); rows/columns past offs[-1] are zero (flaggems' definition)."""
    dt = out_dtype or a.dtype
    A, B = a.double(), b.double()
    a2, b2 = a.dim() == 2, b.dim() == 2
    if not a2 and not b2:
        return (A @ B).to(dt)
    ends = [int(x) for x in offs.tolist()]
    starts = [0] + ends[:-1]
    if a2 and b2:
        out = torch.zeros(len(ends), a.shape[0], b.shape[1], dtype=torch.float64)
        for g, (s, e) in enumerate(zip(starts, ends)):
            out[g] = A[:, s:e] @ B[s:e]
    elif a2:
        out = torch.zeros(a.shape[0], b.shape[-1], dtype=torch.float64)
        for g, (s, e) in enumerate(zip(starts, ends)):
            out[s:e] = A[s:e] @ B[g]
    else:
        out = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64)
        for g, (s, e) in enumerate(zip(starts, ends)):
            out[:, s:e] = A[g] @ B[:, s:e]
    return out.to(dt)


def _supports(a, b, offs=None, bias=None, out_dtype=None):
    """None when our kernel takes the call; otherwise the reason (torch's kernel then raises its own error)."""
    if a.dtype != b.dtype:
        return "mixed dtypes"
    if a.dim() not in (2, 3) or b.dim() not in (2, 3):
        return "operands must be 2-D or 3-D"
    if bias is not None:
        return "bias"
    if out_dtype is not None and out_dtype != a.dtype:
        return "out_dtype differs from the input dtype"
    a2, b2 = a.dim() == 2, b.dim() == 2
    if (offs is not None) != (a2 or b2):
        return "offs given iff an operand is 2-D"
    if offs is not None:
        if offs.dim() != 1 or offs.dtype != torch.int32:
            return "offs must be 1-D int32"
        if offs.device != a.device:
            return "offs on another device"
        if a2 and not b2 and offs.shape[0] != b.shape[0]:
            return "batch sizes"
        if b2 and not a2 and offs.shape[0] != a.shape[0]:
            return "batch sizes"
    if not (a2 and b2) and a.shape[-1] != b.shape[-2]:
        return "contraction mismatch"
    if a2 and b2 and a.shape[1] != b.shape[0]:
        return "contraction mismatch"
    if not a2 and not b2 and a.shape[0] != b.shape[0]:
        return "batch sizes"
    return None


@implement("aten::_grouped_mm", kind="triton", dtypes=FLOAT | {torch.int32}, supports=_supports)
def grouped_mm(a, b, offs=None, bias=None, out_dtype=None):
    out = out_tensor(a, b, offs, a.dtype)
    run_grouped(a, b, offs, out)
    return out
