"""Dense matmul family: C = alpha * (A @ B) + beta * bias.

mm: C[M,N] = A[M,K] B[K,N]; bmm: batched; addmm: beta*self + alpha*(A@B) with self broadcast to [M,N].
Tiled Triton GEMM with an fp32 accumulator (fp64 for fp64), any strides (transposed operands are read in
place), grouped tile ordering for L2 reuse, K masked so it need not be a multiple of the tile. fp32 inputs use
IEEE products unless torch allows TF32 on the device (``torch.backends.cuda.matmul.allow_tf32``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ... import runtime
from ...registry import implement
from ...runtime import autotune
from .. import elementwise as ew

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_DEFAULTS = [{"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}]


@triton.jit
def _mm_kernel(a_ptr, b_ptr, c_ptr, bias_ptr, M, N, K,
               sab, sam, sak, sbb, sbk, sbn, scb, scm, scn, sbias_b, sbias_m, sbias_n,
               alpha, beta,
               HAS_BIAS: tl.constexpr, SCALE: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    # grouped ordering: GROUP_M row-tiles share each column tile while it is hot in L2
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_base = a_ptr + batch * sab + rm[:, None].to(tl.int64) * sam
    b_base = b_ptr + batch * sbb + rn[None, :].to(tl.int64) * sbn
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a = tl.load(a_base + kk[None, :].to(tl.int64) * sak, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_base + kk[:, None].to(tl.int64) * sbk, mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
    if SCALE:
        acc = acc * alpha
    cmask = (rm[:, None] < M) & (rn[None, :] < N)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + batch * sbias_b + rm[:, None].to(tl.int64) * sbias_m
                       + rn[None, :].to(tl.int64) * sbias_n, mask=cmask, other=0.0)
        acc = acc + bias.to(ACC) * beta
    c = c_ptr + batch * scb + rm[:, None].to(tl.int64) * scm + rn[None, :].to(tl.int64) * scn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=cmask)


def _precision(dtype: torch.dtype) -> str:
    if dtype is torch.float32 and not runtime.interpreting():
        if torch.backends.cuda.matmul.allow_tf32:
            return "tf32"
    return "ieee"


def _launch(a, b, c, bias=None, alpha=1.0, beta=1.0):
    """c[bt] = alpha * a[bt] @ b[bt] (+ beta * bias[bt]); tensors are 3-D [B, ., .] (strides may be 0)."""
    B, M, K = a.shape
    N = b.shape[2]
    if c.numel() == 0:
        return c
    acc = torch.float64 if a.dtype is torch.float64 else torch.float32
    has_bias = bias is not None and beta != 0
    bias_t = bias if has_bias else c
    bias_strides = (bias.stride(0), bias.stride(1), bias.stride(2)) if has_bias else (0, 0, 0)
    key = (autotune.bucket(M), autotune.bucket(N), autotune.bucket(K), str(a.dtype))

    def run(cfg):
        meta, opts = autotune.split_launch_options(cfg)
        if runtime.interpreting():
            # fewer, larger programs: the interpreter pays per program, not per FLOP
            meta = dict(meta, BLOCK_M=min(meta["BLOCK_M"], max(16, triton.next_power_of_2(M))),
                        BLOCK_N=min(meta["BLOCK_N"], max(16, triton.next_power_of_2(N))),
                        BLOCK_K=min(meta["BLOCK_K"], max(16, triton.next_power_of_2(K))))
        grid = (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]), B)
        with runtime.device_guard(a):
            _mm_kernel[grid](a, b, c, bias_t, M, N, K,
                             a.stride(0), a.stride(1), a.stride(2), b.stride(0), b.stride(1), b.stride(2),
                             c.stride(0), c.stride(1), c.stride(2), *bias_strides,
                             float(alpha), float(beta),
                             HAS_BIAS=has_bias, SCALE=alpha != 1, ACC=ew.tl_dtype(acc),
                             PRECISION=_precision(a.dtype), **meta, **opts)

    if K == 0:
        # empty inner dim: A@B is zeros, the bias term still applies
        c.zero_()
        if has_bias:
            c.add_(bias.expand_as(c) * beta if beta != 1 else bias.expand_as(c))
        return c
    run(autotune.choose("mm", key, autotune.candidates("mm", _DEFAULTS), run))
    return c


def _supports_mm(a, b, *, out=None):
    if a.dim() != 2 or b.dim() != 2:
        return "operands must be 2-D"
    if a.dtype != b.dtype:
        return "mixed dtypes"  # torch raises: let it
    if a.shape[1] != b.shape[0]:
        return "shape mismatch"
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0], b.shape[1])):
        return "out dtype/shape"
    return None


@implement("aten::mm.default", kind="triton", dtypes=FLOAT, supports=_supports_mm)
def mm(a, b):
    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    _launch(a.unsqueeze(0), b.unsqueeze(0), c.unsqueeze(0))
    return c


@implement("aten::mm.out", kind="triton", dtypes=FLOAT, supports=_supports_mm)
def mm_out(a, b, *, out):
    _launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0))
    return out


def _supports_bmm(a, b, *, out=None):
    if a.dim() != 3 or b.dim() != 3 or a.dtype != b.dtype:
        return "operands must be 3-D of one dtype"
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        return "shape mismatch"
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0], a.shape[1], b.shape[2])):
        return "out dtype/shape"
    return None


@implement("aten::bmm.default", kind="triton", dtypes=FLOAT, supports=_supports_bmm)
def bmm(a, b):
    c = torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device=a.device)
    return _launch(a, b, c)


@implement("aten::bmm.out", kind="triton", dtypes=FLOAT, supports=_supports_bmm)
def bmm_out(a, b, *, out):
    return _launch(a, b, out)


def _bias_reason(bias, dtype, shape):
    """Why ``bias`` cannot be the beta-scaled term of an addmm-style op with output ``shape`` (None if it can)."""
    if bias.dtype != dtype or bias.dim() > len(shape):
        return "bias dtype/rank"
    try:
        if torch.broadcast_shapes(bias.shape, shape) != tuple(shape):
            return "bias shape"
    except RuntimeError:
        return "bias shape"
    return None


def _scalars_ok(alpha, beta):
    if isinstance(alpha, complex) or isinstance(beta, complex):
        return "complex scalars"
    return None


def _supports_addmm(bias, a, b, *, beta=1, alpha=1, out=None):
    r = _supports_mm(a, b)
    if r:
        return r
    r = _bias_reason(bias, a.dtype, (a.shape[0], b.shape[1])) or _scalars_ok(alpha, beta)
    if r:
        return r
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0], b.shape[1])):
        return "out dtype/shape"
    return None


def _addmm(bias, a, b, beta, alpha, c):
    M, N = a.shape[0], b.shape[1]
    bias3 = bias.expand(M, N).unsqueeze(0)
    return _launch(a.unsqueeze(0), b.unsqueeze(0), c.unsqueeze(0), bias3, alpha=alpha, beta=beta)


@implement("aten::addmm.default", kind="triton", dtypes=FLOAT, supports=_supports_addmm)
def addmm(bias, a, b, *, beta=1, alpha=1):
    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    _addmm(bias, a, b, beta, alpha, c)
    return c


@implement("aten::addmm.out", kind="triton", dtypes=FLOAT, supports=_supports_addmm)
def addmm_out(bias, a, b, *, beta=1, alpha=1, out):
    if out.data_ptr() == bias.data_ptr() and (beta != 0):
        # out aliases the bias (addmm_ style): compute into a temporary to avoid read-after-write races
        tmp = torch.empty_like(out)
        _addmm(bias, a, b, beta, alpha, tmp)
        return out.copy_(tmp)
    _addmm(bias, a, b, beta, alpha, out)
    return out


# ----------------------------------------------------------------------------------------------------------
# the rest of the dense family: what matmul / einsum / linear reach at the device key besides mm/bmm/addmm
# (matmul 2-D x 1-D -> mv, 1-D x 1-D -> dot; baddbmm / addbmm / addmv from user code and backward formulas)



def _supports_mv(a, v, *, out=None):
    if a.dim() != 2 or v.dim() != 1 or a.dtype != v.dtype:
        return "mv takes a 2-D matrix and a 1-D vector of one dtype"
    if a.shape[1] != v.shape[0]:
        return "shape mismatch"
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0],)):
        return "out dtype/shape"
    return None


def _mv(a, v, out):
    _launch(a.unsqueeze(0), v.view(1, -1, 1), out.view(1, -1, 1))
    return out


@implement("aten::mv.default", kind="triton", dtypes=FLOAT, supports=_supports_mv)
def mv(a, v):
    return _mv(a, v, torch.empty((a.shape[0],), dtype=a.dtype, device=a.device))


@implement("aten::mv.out", kind="triton", dtypes=FLOAT, supports=_supports_mv)
def mv_out(a, v, *, out):
    return _mv(a, v, out)


def _supports_dot(x, y, *, out=None):
    if x.dim() != 1 or y.dim() != 1 or x.dtype != y.dtype:
        return "dot takes two 1-D tensors of one dtype"
    if x.shape[0] != y.shape[0]:
        return "size mismatch"
    if out is not None and (out.dtype != x.dtype or out.dim() != 0):
        return "out dtype/shape"
    return None


def _dot(x, y, out):
    _launch(x.view(1, 1, -1), y.view(1, -1, 1), out.view(1, 1, 1))
    return out


@implement(["aten::dot.default", "aten::vdot.default"], kind="triton", dtypes=FLOAT, supports=_supports_dot)
def dot(x, y):
    return _dot(x, y, torch.empty((), dtype=x.dtype, device=x.device))


@implement(["aten::dot.out", "aten::vdot.out"], kind="triton", dtypes=FLOAT, supports=_supports_dot)
def dot_out(x, y, *, out):
    return _dot(x, y, out)


def _supports_addmv(bias, a, v, *, beta=1, alpha=1, out=None):
    r = _supports_mv(a, v) or _scalars_ok(alpha, beta)
    if r:
        return r
    r = _bias_reason(bias, a.dtype, (a.shape[0],))
    if r:
        return r
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0],)):
        return "out dtype/shape"
    return None


def _addmv(bias, a, v, beta, alpha, out):
    M = a.shape[0]
    _launch(a.unsqueeze(0), v.view(1, -1, 1), out.view(1, M, 1), bias.expand(M).view(1, M, 1),
            alpha=alpha, beta=beta)
    return out


@implement("aten::addmv.default", kind="triton", dtypes=FLOAT, supports=_supports_addmv)
def addmv(bias, a, v, *, beta=1, alpha=1):
    return _addmv(bias, a, v, beta, alpha, torch.empty((a.shape[0],), dtype=a.dtype, device=a.device))


@implement("aten::addmv.out", kind="triton", dtypes=FLOAT, supports=_supports_addmv)
def addmv_out(bias, a, v, *, beta=1, alpha=1, out):
    if beta != 0 and out.data_ptr() == bias.data_ptr():
        tmp = torch.empty_like(out)
        return out.copy_(_addmv(bias, a, v, beta, alpha, tmp))
    return _addmv(bias, a, v, beta, alpha, out)


def _supports_baddbmm(bias, b1, b2, *, beta=1, alpha=1, out=None):
    r = _supports_bmm(b1, b2) or _scalars_ok(alpha, beta)
    if r:
        return r
    shape = (b1.shape[0], b1.shape[1], b2.shape[2])
    r = _bias_reason(bias, b1.dtype, shape)
    if r:
        return r
    if out is not None and (out.dtype != b1.dtype or tuple(out.shape) != shape):
        return "out dtype/shape"
    return None


def _baddbmm(bias, b1, b2, beta, alpha, out):
    return _launch(b1, b2, out, bias.expand(out.shape), alpha=alpha, beta=beta)


@implement("aten::baddbmm.default", kind="triton", dtypes=FLOAT, supports=_supports_baddbmm)
def baddbmm(bias, b1, b2, *, beta=1, alpha=1):
    out = torch.empty((b1.shape[0], b1.shape[1], b2.shape[2]), dtype=b1.dtype, device=b1.device)
    return _baddbmm(bias, b1, b2, beta, alpha, out)


@implement("aten::baddbmm.out", kind="triton", dtypes=FLOAT, supports=_supports_baddbmm)
def baddbmm_out(bias, b1, b2, *, beta=1, alpha=1, out):
    if beta != 0 and out.data_ptr() == bias.data_ptr():
        tmp = torch.empty_like(out)
        return out.copy_(_baddbmm(bias, b1, b2, beta, alpha, tmp))
    return _baddbmm(bias, b1, b2, beta, alpha, out)


def _supports_addbmm(bias, b1, b2, *, beta=1, alpha=1, out=None):
    r = _supports_bmm(b1, b2) or _scalars_ok(alpha, beta)
    if r:
        return r
    shape = (b1.shape[1], b2.shape[2])
    r = _bias_reason(bias, b1.dtype, shape)
    if r:
        return r
    if out is not None and (out.dtype != b1.dtype or tuple(out.shape) != shape):
        return "out dtype/shape"
    return None


def _addbmm(bias, b1, b2, beta, alpha, out):
    # sum_b b1[b] @ b2[b] is one GEMM over the concatenated contraction dim [M, B*K] x [B*K, N]
    B, M, K = b1.shape
    a = b1.permute(1, 0, 2).reshape(M, B * K)
    b = b2.reshape(B * K, b2.shape[2])
    _launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), bias.expand(out.shape).unsqueeze(0),
            alpha=alpha, beta=beta)
    return out


@implement("aten::addbmm.default", kind="triton", dtypes=FLOAT, supports=_supports_addbmm)
def addbmm(bias, b1, b2, *, beta=1, alpha=1):
    out = torch.empty((b1.shape[1], b2.shape[2]), dtype=b1.dtype, device=b1.device)
    return _addbmm(bias, b1, b2, beta, alpha, out)


@implement("aten::addbmm.out", kind="triton", dtypes=FLOAT, supports=_supports_addbmm)
def addbmm_out(bias, b1, b2, *, beta=1, alpha=1, out):
    if beta != 0 and out.data_ptr() == bias.data_ptr():
        tmp = torch.empty_like(out)
        return out.copy_(_addbmm(bias, b1, b2, beta, alpha, tmp))
    return _addbmm(bias, b1, b2, beta, alpha, out)
