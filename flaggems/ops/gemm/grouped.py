"""Grouped GEMM: ``aten::_grouped_mm`` (and the shared kernels of ``aten::_scaled_grouped_mm``).

Modes (G groups; ``offs`` int32 [G] holds the cumulative group ends, ``start_g = offs[g-1]``, ``start_0 = 0``)::

    2D x 3D  A[M, K]    B[G, K, N]  -> C[M, N]     C[start_g:offs[g]] = A[start_g:offs[g]] @ B[g]     (MoE fwd)
    3D x 2D  A[G, M, K] B[K, N]     -> C[M, N]     C[:, start_g:offs[g]] = A[g] @ B[:, start_g:offs[g]]
    2D x 2D  A[M, K]    B[K, N]     -> C[G, M, N]  C[g] = A[:, start_g:offs[g]] @ B[start_g:offs[g]]  (weight grad)
    3D x 3D  A[G, M, K] B[G, K, N]  -> C[G, M, N]  batched, no offs

fp32 accumulation (IEEE for fp32 inputs unless torch allows TF32), output in the input dtype (torch's only
``out_dtype``). Rows (2Dx3D) / columns (3Dx2D) past ``offs[-1]`` are written as zeros (torch leaves them
uninitialised); an empty group gives zero rows (2Dx3D) or a zero matrix (2Dx2D).

Design: ``offs`` stays on the device. The grid is sized from an upper bound on the number of row tiles,
``cdiv(M, BLOCK_M) + min(G, M) + 1`` (every non-empty group adds at most one partial tile, at most min(G, M)
groups are non-empty, and group G is the zero tail), and each
program finds its group with an in-kernel prefix sum over the per-group tile counts. Offsets are clamped
to [0, M] in the kernel so every access stays in bounds whatever ``offs`` holds; on host tensors (no device
sync needed) offsets that decrease or pass the row count raise a RuntimeError instead of computing garbage.
Any strides are read in place (row- or column-major weights, transposed views).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ... import runtime
from ...registry import implement
from ...runtime import autotune
from .. import elementwise as ew
from . import dense as _mm

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32})
_GPU_DEFAULTS = [
    {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3},
    {"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128, "num_warps": 4, "num_stages": 4},
    {"BLOCK_M": 32, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4},
]


# ----------------------------------------------------------------------------------------------------------
# kernels

@triton.jit
def group_of_tile(offs_ptr, pid, G, R, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr):
    """Virtual row-tile ``pid`` -> (group, first row, end row, live).

    Groups are [offs[g-1], offs[g]) clamped to [0, R]; group G is the tail [offs[G-1], R) (written as zeros).
    Tiles are numbered group after group; ``live`` is False for the spare programs of the upper-bound grid.
    """
    gi = tl.arange(0, BLOCK_G)
    prev = tl.load(offs_ptr + gi - 1, mask=(gi >= 1) & (gi <= G), other=0)
    cur = tl.load(offs_ptr + gi, mask=gi < G, other=0)
    cur = tl.where(gi == G, R, cur)
    start = tl.minimum(tl.maximum(prev, 0), R)
    end = tl.minimum(tl.maximum(cur, 0), R)
    size = tl.where(gi <= G, tl.maximum(end - start, 0), 0)
    tiles = (size + BLOCK_R - 1) // BLOCK_R
    cum = tl.cumsum(tiles, 0)
    total = tl.sum(tiles, 0)
    g = tl.sum((cum <= pid).to(tl.int32), 0)
    sel = gi == g
    t0 = tl.sum(tl.where(sel, cum - tiles, 0), 0)
    r0 = tl.sum(tl.where(sel, start, 0), 0)
    r1 = tl.sum(tl.where(sel, end, 0), 0)
    return g, r0 + (pid - t0) * BLOCK_R, r1, pid < total


@triton.jit
def _gmm_rows_kernel(a_ptr, b_ptr, c_ptr, offs_ptr, sa_ptr, sb_ptr,
                     R, N, K, G,
                     s_ar, s_ak, s_bg, s_bk, s_bn, s_cr, s_cn, s_sar, s_sbg, s_sbn,
                     HAS_SCALE: tl.constexpr, CAST: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
                     BLOCK_G: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C[rows of group g] = A[rows] @ B[g] (rows grouped by offs); optional rowwise scales sa[row] * sb[g, n]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g, r0, r1, live = group_of_tile(offs_ptr, pid_m, G, R, BLOCK_M, BLOCK_G)
    if live:
        rm = r0 + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        mmask = rm < r1
        nmask = rn < N
        rm64 = rm.to(tl.int64)
        rn64 = rn.to(tl.int64)
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
        if g < G:
            a_base = a_ptr + rm64[:, None] * s_ar
            b_base = b_ptr + g.to(tl.int64) * s_bg + rn64[None, :] * s_bn
            for k0 in range(0, K, BLOCK_K):
                kk = k0 + rk
                kmask = kk < K
                a = tl.load(a_base + kk[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & kmask[None, :], other=0.0)
                b = tl.load(b_base + kk[:, None].to(tl.int64) * s_bk, mask=kmask[:, None] & nmask[None, :], other=0.0)
                if CAST:
                    a = a.to(tl.bfloat16)
                    b = b.to(tl.bfloat16)
                acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
            if HAS_SCALE:
                sa = tl.load(sa_ptr + rm64 * s_sar, mask=mmask, other=0.0)
                sb = tl.load(sb_ptr + g.to(tl.int64) * s_sbg + rn64 * s_sbn, mask=nmask, other=0.0)
                acc = acc * sa[:, None] * sb[None, :]
        c = c_ptr + rm64[:, None] * s_cr + rn64[None, :] * s_cn
        tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=mmask[:, None] & nmask[None, :])


@triton.jit
def _gmm_k_kernel(a_ptr, b_ptr, c_ptr, offs_ptr, sa_ptr, sb_ptr,
                  M, N, K,
                  s_am, s_ak, s_bk, s_bn, s_cg, s_cm, s_cn, s_sag, s_sam, s_sbg, s_sbn,
                  HAS_SCALE: tl.constexpr, CAST: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C[g] = A[:, k in group g] @ B[k in group g, :] (K grouped by offs); optional sa[g, m] * sb[g, n]."""
    pid = tl.program_id(0)
    g = tl.program_id(1)
    num_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // num_n
    pid_n = pid % num_n
    k_start = tl.load(offs_ptr + g - 1, mask=g > 0, other=0)
    k_end = tl.load(offs_ptr + g)
    k_start = tl.minimum(tl.maximum(k_start, 0), K)
    k_end = tl.minimum(tl.maximum(k_end, 0), K)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    mmask = rm < M
    nmask = rn < N
    rm64 = rm.to(tl.int64)
    rn64 = rn.to(tl.int64)
    a_base = a_ptr + rm64[:, None] * s_am
    b_base = b_ptr + rn64[None, :] * s_bn
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for k0 in range(k_start, k_end, BLOCK_K):
        kk = k0 + rk
        kmask = kk < k_end
        a = tl.load(a_base + kk[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & kmask[None, :], other=0.0)
        b = tl.load(b_base + kk[:, None].to(tl.int64) * s_bk, mask=kmask[:, None] & nmask[None, :], other=0.0)
        if CAST:
            a = a.to(tl.bfloat16)
            b = b.to(tl.bfloat16)
        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
    if HAS_SCALE:
        g64 = g.to(tl.int64)
        sa = tl.load(sa_ptr + g64 * s_sag + rm64 * s_sam, mask=mmask, other=0.0)
        sb = tl.load(sb_ptr + g64 * s_sbg + rn64 * s_sbn, mask=nmask, other=0.0)
        acc = acc * sa[:, None] * sb[None, :]
    c = c_ptr + g.to(tl.int64) * s_cg + rm64[:, None] * s_cm + rn64[None, :] * s_cn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=mmask[:, None] & nmask[None, :])


# ----------------------------------------------------------------------------------------------------------
# launchers (shared with flaggems.ops.gemm.scaled)

def _p2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _blocks(rows_per_group: float, N: int, K: int, kernel: str):
    """Block config: large blocks under the interpreter (cost ~ programs), tuned candidates on devices."""
    if runtime.interpreting():
        return [{"BLOCK_M": min(64, max(16, _p2(int(rows_per_group) or 1))), "BLOCK_N": min(128, max(16, _p2(N))),
                 "BLOCK_K": min(128, max(16, _p2(K)))}]
    return autotune.candidates(kernel, _GPU_DEFAULTS)


def _cast_needed(a: torch.Tensor, b: torch.Tensor) -> bool:
    """fp8 operands: dot them natively when both share one fp8 type and the vendor has fp8, else via bf16."""
    if a.dtype.itemsize != 1:
        return False
    from ...vendors import active as vendor

    return a.dtype != b.dtype or not vendor().capabilities.fp8


def launch_rows(a2, b3, c2, offs, *, sa=None, sa_strides=(0,), sb=None, sb_strides=(0, 0)):
    """c2[R, N] (rows grouped by offs) = a2[R, K] @ b3[G, K, N]; any strides; optional rowwise scales.

    ``sa``: per-row scales read at ``sa[r * sa_strides[0]]``; ``sb``: per-(group, column) scales read at
    ``sb[g * sb_strides[0] + n * sb_strides[1]]`` (fp32).
    """
    R, K = a2.shape
    G, _, N = b3.shape
    if R == 0 or N == 0:
        return c2
    has_scale = sa is not None
    acc = torch.float32
    key = (autotune.bucket(max(1, R // max(G, 1))), autotune.bucket(N), autotune.bucket(K), str(a2.dtype), has_scale)
    cast = _cast_needed(a2, b3)
    precision = _mm._precision(a2.dtype)
    sa_t = sa if has_scale else c2
    sb_t = sb if has_scale else c2
    bg = _p2(G + 1)

    def run(cfg):
        meta, opts = autotune.split_launch_options(cfg)
        # sum_g cdiv(size_g, BM) <= cdiv(R, BM) + (#non-empty groups) and at most min(G, R) groups are non-empty
        grid = (triton.cdiv(R, meta["BLOCK_M"]) + min(G, R) + 1, triton.cdiv(N, meta["BLOCK_N"]))
        with runtime.device_guard(a2):
            _gmm_rows_kernel[grid](a2, b3, c2, offs, sa_t, sb_t, R, N, K, G,
                                   a2.stride(0), a2.stride(1), b3.stride(0), b3.stride(1), b3.stride(2),
                                   c2.stride(0), c2.stride(1), sa_strides[0], sb_strides[0], sb_strides[1],
                                   HAS_SCALE=has_scale, CAST=cast, ACC=ew.tl_dtype(acc), PRECISION=precision,
                                   BLOCK_G=bg, **meta, **opts)

    cfgs = _blocks(R / max(G, 1), N, K, "grouped_mm")
    run(autotune.choose("grouped_mm", key, cfgs, run))
    return c2


def launch_k(a2, b2, c3, offs, *, sa=None, sa_strides=(0, 0), sb=None, sb_strides=(0, 0)):
    """c3[g] = a2[:, K-group g] @ b2[K-group g, :]; optional scales sa[g, m], sb[g, n] (strides given)."""
    M, K = a2.shape
    N = b2.shape[1]
    G = c3.shape[0]
    if c3.numel() == 0:
        return c3
    has_scale = sa is not None
    key = (autotune.bucket(M), autotune.bucket(N), autotune.bucket(max(1, K // max(G, 1))), str(a2.dtype), has_scale)
    cast = _cast_needed(a2, b2)
    sa_t = sa if has_scale else c3
    sb_t = sb if has_scale else c3

    def run(cfg):
        meta, opts = autotune.split_launch_options(cfg)
        if runtime.interpreting():
            meta = dict(meta, BLOCK_M=min(64, max(16, _p2(M))))
        grid = (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]), G)
        with runtime.device_guard(a2):
            _gmm_k_kernel[grid](a2, b2, c3, offs, sa_t, sb_t, M, N, K,
                                a2.stride(0), a2.stride(1), b2.stride(0), b2.stride(1),
                                c3.stride(0), c3.stride(1), c3.stride(2),
                                sa_strides[0], sa_strides[1], sb_strides[0], sb_strides[1],
                                HAS_SCALE=has_scale, CAST=cast, ACC=tl.float32, PRECISION=_mm._precision(a2.dtype),
                                **meta, **opts)

    cfgs = _blocks(M, N, max(1, K // max(G, 1)), "grouped_mm_k")
    run(autotune.choose("grouped_mm_k", key, cfgs, run))
    return c3


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


def _host_checkable(t: torch.Tensor) -> bool:
    if t.device.type != "cpu" or t.numel() == 0:
        return False
    try:
        from torch._subclasses.fake_tensor import is_fake
        return not is_fake(t)
    except ImportError:  # pragma: no cover
        return True


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
    """Dispatch one grouped product into ``out`` (already allocated). ``scales`` = (sa, sb) rowwise fp32."""
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
    # 3D x 3D
    if sa is None:
        return _mm._launch(a, b, out)
    from . import scaled as _smm
    return _smm.launch_batched_rowwise(a, b, sa, sb, out)


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
