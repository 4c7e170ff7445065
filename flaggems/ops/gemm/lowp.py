"""What DeepSeek-V4's two low-precision GEMMs (``fp8_gemm``, ``fp4_gemm``) share: one op signature, the launch,
argument checks, block scales as the GEMM plan reads them, and the fp64 block-product reference.

    C[..., N] = A[..., K] · B[N, K]ᵀ,  A e4m3 with a scale per row and 128 elements of K (fp32 or e8m0),
    C = sum over K blocks kb of  (A[:, kb] · B[:, kb]ᵀ) · a_s(m, kb) · b_s(n, kb)       (fp32 accumulation)
    out = C cast to out_dtype (default torch.get_default_dtype())
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ...formats import E4M3, E8M0, dequant_ref, scale_format
from ...runtime.checks import check_same_device, check_tensor
from .plan import Plan, Scale, launch

QBLOCK = 128                                   # activation scale block along K (and fp8 weight block)
GEMM_SCHEMA = "(Tensor a, Tensor a_s, Tensor b, Tensor b_s, ScalarType? out_dtype=None) -> Tensor"
SCALE_DTYPES = frozenset({torch.float32, E8M0})
OUT_DTYPES = frozenset({torch.bfloat16, torch.float16, torch.float32})
MODES = ("dequant", "fp8", "dot_scaled")


def gemm_fake(a, a_s, b, b_s, out_dtype=None):
    """Meta kernel of the scaled GEMMs: output in out_dtype (default: torch's default dtype)."""
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return a.new_empty((*a.shape[:-1], b.shape[0]), dtype=out_dtype)


def capability(flag: str) -> bool:
    from ...vendors import active

    return bool(getattr(active().capabilities, flag, False))


def check_operands(op, a, a_s, b, b_dtypes, b_s, b_s_dtypes) -> None:
    check_tensor(op, "a", a, {E4M3})
    check_tensor(op, "a_s", a_s, SCALE_DTYPES)
    check_tensor(op, "b", b, b_dtypes, dim=2)
    check_tensor(op, "b_s", b_s, b_s_dtypes, dim=2)
    check_same_device(op, a=a, a_s=a_s, b=b, b_s=b_s)
    if a.dim() < 1:
        raise ValueError(f"{op}: a must be [..., K], got a 0-d tensor")


def check_a_scales(op, a, a_s) -> None:
    want = (*a.shape[:-1], -(-a.shape[-1] // QBLOCK))
    if tuple(a_s.shape) != want:
        raise ValueError(f"{op}: a_s must have shape {want} (one scale per row and 128 elements of K), "
                         f"got {tuple(a_s.shape)}")


def check_out_dtype(op, out_dtype) -> None:
    if out_dtype is not None and out_dtype not in OUT_DTYPES:
        raise TypeError(f"{op}: out_dtype must be bfloat16, float16 or float32, got {out_dtype}")


def run(make_plan: Callable[[torch.Tensor], Plan], a, a_s, b, out_dtype=None, out=None) -> torch.Tensor:
    """C[..., N] = A · Bᵀ through the GEMM kernel with ``make_plan(a_s as [M, ceil(K / 128)])``, into a new
    tensor or the caller's [..., N] buffer of out_dtype (tests poison it)."""
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    N = b.shape[0]
    M = math.prod(a.shape[:-1])
    if out is None:
        c = torch.empty((M, N), dtype=out_dtype, device=a.device)
    elif out.dtype != out_dtype or tuple(out.shape) != (*a.shape[:-1], N):
        raise ValueError(f"out must be {(*a.shape[:-1], N)} {out_dtype}, got {tuple(out.shape)} {out.dtype}")
    else:
        c = out.view(M, N)
    launch(make_plan(a_s.reshape(M, a_s.shape[-1])), a.reshape(M, a.shape[-1]).unsqueeze(0), b.t().unsqueeze(0),
           c.unsqueeze(0))
    return c.view(*a.shape[:-1], N)


def block_scale(s: torch.Tensor, group: int, div: int, at: int) -> Scale:
    """2-D block scales s[r // div, k // group] (fp32 or e8m0, any strides) as the GEMM plan reads them."""
    t = s.view(torch.uint8) if s.dtype == E8M0 else s
    return Scale(t, t.stride(0), t.stride(1), div, fmt=scale_format(s.dtype), group=group, at=at)


def block_product_ref_f64(a, w, sa, sb, block: int) -> torch.Tensor:
    """sum_kb (A[:, kb] · W[:, kb]ᵀ) * sa[m, kb] * sb[n, kb] in fp64 for a [M, K], w [N, K] (K blocks of
    ``block``, the last zero-padded), sa [M, kb], sb [N, kb]."""
    M, K = a.shape
    N = w.shape[0]
    kg = -(-K // block)
    pad = kg * block - K
    a3 = torch.nn.functional.pad(a.double(), (0, pad)).view(M, kg, block)
    w3 = torch.nn.functional.pad(w.double(), (0, pad)).view(N, kg, block)
    p = torch.einsum("mkc,nkc->mnk", a3, w3)                                 # [M, N, kg]
    return (p * sa.double()[:, None, :] * sb.double()[None, :, :]).sum(-1)


def a_scales_f64(a, a_s) -> torch.Tensor:
    """a_s as fp64 [M, ceil(K / 128)] (M = rows of a)."""
    return dequant_ref(a_s).reshape(math.prod(a.shape[:-1]), a_s.shape[-1])
