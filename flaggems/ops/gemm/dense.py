"""Dense matmul family: C = alpha * (A @ B) + beta * bias.

mm: C[M,N] = A[M,K] B[K,N]; bmm: batched; addmm: beta*self + alpha*(A@B) with self broadcast to [M,N]; mv, dot,
vdot, addmv, baddbmm, addbmm and the .out overloads. All are the unscaled plan of the GEMM kernel
(flaggems/ops/gemm/kernel.py): fp32 accumulator (fp64 for fp64), any strides (transposed operands are read in
place), K masked so it need not be a multiple of the tile. fp32 inputs use IEEE products unless torch allows
TF32 on the device (``torch.backends.cuda.matmul.allow_tf32``).
"""
from __future__ import annotations

import torch

from ...registry import implement
from .plan import Plan, Tiles, launch, precision

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
TILES = Tiles("mm", {"": [{"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}]})


def _launch(a, b, c, bias=None, alpha=1.0, beta=1.0):
    """c[bt] = alpha * a[bt] @ b[bt] (+ beta * bias[bt]); tensors are 3-D [B, ., .] (strides may be 0)."""
    plan = Plan(TILES, acc=torch.float64 if a.dtype is torch.float64 else torch.float32, precision=precision(a.dtype))
    return launch(plan, a, b, c, bias=bias, alpha=alpha, beta=beta)


def _new(x, shape):
    return torch.empty(shape, dtype=x.dtype, device=x.device)


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


@implement("aten::mm.out", kind="triton", dtypes=FLOAT, supports=_supports_mm)
def mm_out(a, b, *, out):
    _launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0))
    return out


@implement("aten::mm.default", kind="triton", dtypes=FLOAT, supports=_supports_mm)
def mm(a, b):
    return mm_out(a, b, out=_new(a, (a.shape[0], b.shape[1])))


def _supports_bmm(a, b, *, out=None):
    if a.dim() != 3 or b.dim() != 3 or a.dtype != b.dtype:
        return "operands must be 3-D of one dtype"
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        return "shape mismatch"
    if out is not None and (out.dtype != a.dtype or tuple(out.shape) != (a.shape[0], a.shape[1], b.shape[2])):
        return "out dtype/shape"
    return None


@implement("aten::bmm.out", kind="triton", dtypes=FLOAT, supports=_supports_bmm)
def bmm_out(a, b, *, out):
    return _launch(a, b, out)


@implement("aten::bmm.default", kind="triton", dtypes=FLOAT, supports=_supports_bmm)
def bmm(a, b):
    return bmm_out(a, b, out=_new(a, (a.shape[0], a.shape[1], b.shape[2])))


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


def _biased(product_reason, out_shape):
    """Predicate of a ``beta * bias + alpha * product`` op: the product's rule, real scalars, a bias that
    broadcasts to the output, and an ``out`` of the output's dtype and shape."""
    def reason(bias, x, y, *, beta=1, alpha=1, out=None):
        r = product_reason(x, y)
        if r:
            return r
        if isinstance(alpha, complex) or isinstance(beta, complex):
            return "complex scalars"
        shape = out_shape(x, y)
        r = _bias_reason(bias, x.dtype, shape)
        if r:
            return r
        if out is not None and (out.dtype != x.dtype or tuple(out.shape) != shape):
            return "out dtype/shape"
        return None
    return reason


def _biased_out(run):
    """The .out overload of a ``beta * bias + alpha * product`` op."""
    def fn(bias, x, y, *, beta=1, alpha=1, out):
        if beta != 0 and out.data_ptr() == bias.data_ptr():
            # out aliases the bias (addmm_ style): compute into a temporary to avoid read-after-write races
            return out.copy_(run(bias, x, y, beta, alpha, torch.empty_like(out)))
        return run(bias, x, y, beta, alpha, out)
    return fn


def _mm_shape(a, b):
    return (a.shape[0], b.shape[1])


def _addmm(bias, a, b, beta, alpha, out):
    _launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), bias.expand(out.shape).unsqueeze(0), alpha=alpha,
            beta=beta)
    return out


_supports_addmm = _biased(_supports_mm, _mm_shape)


@implement("aten::addmm.default", kind="triton", dtypes=FLOAT, supports=_supports_addmm)
def addmm(bias, a, b, *, beta=1, alpha=1):
    return _addmm(bias, a, b, beta, alpha, _new(a, _mm_shape(a, b)))


addmm_out = implement("aten::addmm.out", kind="triton", dtypes=FLOAT, supports=_supports_addmm)(_biased_out(_addmm))


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
    return _mv(a, v, _new(a, (a.shape[0],)))


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
    return _dot(x, y, _new(x, ()))


@implement(["aten::dot.out", "aten::vdot.out"], kind="triton", dtypes=FLOAT, supports=_supports_dot)
def dot_out(x, y, *, out):
    return _dot(x, y, out)


def _addmv(bias, a, v, beta, alpha, out):
    M = a.shape[0]
    _launch(a.unsqueeze(0), v.view(1, -1, 1), out.view(1, M, 1), bias.expand(M).view(1, M, 1),
            alpha=alpha, beta=beta)
    return out


_supports_addmv = _biased(_supports_mv, lambda a, v: (a.shape[0],))


@implement("aten::addmv.default", kind="triton", dtypes=FLOAT, supports=_supports_addmv)
def addmv(bias, a, v, *, beta=1, alpha=1):
    return _addmv(bias, a, v, beta, alpha, _new(a, (a.shape[0],)))


addmv_out = implement("aten::addmv.out", kind="triton", dtypes=FLOAT, supports=_supports_addmv)(_biased_out(_addmv))


def _baddbmm(bias, b1, b2, beta, alpha, out):
    _launch(b1, b2, out, bias.expand(out.shape), alpha=alpha, beta=beta)
    return out


def _bmm_shape(b1, b2):
    return (b1.shape[0], b1.shape[1], b2.shape[2])


_supports_baddbmm = _biased(_supports_bmm, _bmm_shape)


@implement("aten::baddbmm.default", kind="triton", dtypes=FLOAT, supports=_supports_baddbmm)
def baddbmm(bias, b1, b2, *, beta=1, alpha=1):
    return _baddbmm(bias, b1, b2, beta, alpha, _new(b1, _bmm_shape(b1, b2)))


baddbmm_out = implement("aten::baddbmm.out", kind="triton", dtypes=FLOAT, supports=_supports_baddbmm)(
    _biased_out(_baddbmm))


def _addbmm(bias, b1, b2, beta, alpha, out):
    # sum_b b1[b] @ b2[b] is one GEMM over the concatenated contraction dim [M, B*K] x [B*K, N]
    B, M, K = b1.shape
    a = b1.permute(1, 0, 2).reshape(M, B * K)
    b = b2.reshape(B * K, b2.shape[2])
    return _addmm(bias, a, b, beta, alpha, out)


_supports_addbmm = _biased(_supports_bmm, lambda b1, b2: (b1.shape[1], b2.shape[2]))


@implement("aten::addbmm.default", kind="triton", dtypes=FLOAT, supports=_supports_addbmm)
def addbmm(bias, b1, b2, *, beta=1, alpha=1):
    return _addbmm(bias, b1, b2, beta, alpha, _new(b1, (b1.shape[1], b2.shape[2])))


addbmm_out = implement("aten::addbmm.out", kind="triton", dtypes=FLOAT, supports=_supports_addbmm)(
    _biased_out(_addbmm))
