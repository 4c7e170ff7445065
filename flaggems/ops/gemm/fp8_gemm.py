"""DeepSeek-V4 ``fp8_gemm``: block-scaled FP8 GEMM, C[M, N] = A · Bᵀ.

Inputs::

    A   float8_e4m3fn [..., K]  (M = numel / K rows)     a_s [..., ceil(K/128)]          fp32 or float8_e8m0fnu
    B   float8_e4m3fn [N, K]                             b_s [ceil(N/128), ceil(K/128)]  fp32 or float8_e8m0fnu

Per k-block kb of 128 (a separate fp32 accumulator, DeepSeek's "2x accumulation precision")::

    P  = A[:, kb] · B[:, kb]ᵀ                  (exact products, fp32 accumulation)
    C += P · a_s[m, kb] · b_s[n // 128, kb]
    out = C cast to out_dtype (default torch.get_default_dtype())

This is ``_scaled_mm``'s BlockWise 1x128 x 128x128 recipe with B given as [N, K]: a plan of the GEMM kernel
(flaggems/ops/gemm/kernel.py) with both scales applied per 128-block partial product. K need not be a multiple
of 128 (the last block is masked to zero). E8M0 bytes decode as 2^(byte - 127), 255 = NaN.

Three code paths, chosen from the vendor's capabilities (:func:`choose_mode`):

* ``dot_scaled`` (capability ``dot_scaled``, both scales E8M0): ``tl.dot_scaled`` with each per-128 scale
  repeated over its four 32-element MX groups, accumulating into C (block-scaled MMA on sm_100+).
* ``fp8`` (capability ``fp8``): FP8 ``tl.dot`` per k-block, scales applied to the fp32 partial.
* ``dequant``: e4m3 bits decoded with integer ops to fp16 in registers (exact), fp16 ``tl.dot`` with fp32
  accumulation, scales applied to the fp32 partial. Runs on hardware without any FP8 support.
"""
from __future__ import annotations

import torch

from ...formats import AS_LOADED, E4M3, E4M3_BYTES, E8M0, dequant_ref
from ...registry import custom_op, implement
from .lowp import (GEMM_SCHEMA, MODES, QBLOCK, SCALE_DTYPES, a_scales_f64, block_product_ref_f64, block_scale,
                   capability, check_a_scales, check_operands, check_out_dtype, gemm_fake, run)
from .plan import PER_BLOCK, PRE_DOT, Plan, Tiles

__all__ = ["fp8_gemm_triton", "fp8_gemm_ref", "fp8_gemm_ref_f64", "choose_mode", "MODES", "QBLOCK"]

TILES = Tiles("fp8_gemm", {"": [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "num_warps": 4, "num_stages": 3}]},
              [{"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 128}], shrink="MN", device_shrink="M")


_capability = capability          # module-level so tests can patch the capability lookup


def choose_mode(a_s: torch.Tensor, b_s: torch.Tensor, use_dot_scaled=None, use_fp8=None) -> str:
    """The kernel path: ``use_*`` None = decided from ``flaggems.vendor().capabilities``."""
    if use_dot_scaled is None:
        use_dot_scaled = _capability("dot_scaled")
    if use_fp8 is None:
        use_fp8 = _capability("fp8")
    e8m0 = a_s.dtype == E8M0 and b_s.dtype == E8M0
    if use_dot_scaled and e8m0:
        return "dot_scaled"
    return "fp8" if use_fp8 else "dequant"


def _check(a, a_s, b, b_s, out_dtype=None):
    op = "fp8_gemm"
    check_operands(op, a, a_s, b, {E4M3}, b_s, SCALE_DTYPES)
    N, K = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"{op}: a.shape[-1] ({a.shape[-1]}) must equal b.shape[1] (K = {K})")
    check_a_scales(op, a, a_s)
    want_b = (-(-N // QBLOCK), -(-K // QBLOCK))
    if tuple(b_s.shape) != want_b:
        raise ValueError(f"{op}: b_s must have shape {want_b} (one scale per 128x128 block of b), "
                         f"got {tuple(b_s.shape)}")
    check_out_dtype(op, out_dtype)


def plan(a_s2, b_s, mode: str) -> Plan:
    """The GEMM plan of one fp8_gemm path (a_s2: the activation scales as [M, ceil(K/128)])."""
    at = PRE_DOT if mode == "dot_scaled" else PER_BLOCK     # dot_scaled reads the 128-block scales as MX scales
    fmt = E4M3_BYTES if mode == "dequant" else AS_LOADED
    return Plan(TILES, "block_1x128_128x128", block_scale(a_s2, QBLOCK, 1, at), block_scale(b_s, QBLOCK, QBLOCK, at),
                a_fmt=fmt, b_fmt=fmt, dot=torch.float16 if mode == "dequant" else None,
                dot_scaled=mode == "dot_scaled")


def fp8_gemm_triton(a, a_s, b, b_s, out_dtype=None, *, use_dot_scaled=None, use_fp8=None,
                    out=None, check=True):
    if check:
        _check(a, a_s, b, b_s, out_dtype)
    mode = choose_mode(a_s, b_s, use_dot_scaled, use_fp8)
    return run(lambda a_s2: plan(a_s2, b_s, mode), a, a_s, b, out_dtype, out)


def fp8_gemm_ref_f64(a, a_s, b, b_s):
    """C in fp64: per 128-block partial products P, C = sum_kb P · a_s[m, kb] · b_s[n // 128, kb]."""
    N, K = b.shape
    sb = dequant_ref(b_s).repeat_interleave(QBLOCK, dim=0)[:N]                 # [N, kb]
    return block_product_ref_f64(a.reshape(-1, K), b, a_scales_f64(a, a_s), sb, QBLOCK).view(*a.shape[:-1], N)


def fp8_gemm_ref(a, a_s, b, b_s, out_dtype=None):
    """Reference fp8_gemm: the fp64 result of :func:`fp8_gemm_ref_f64` cast to out_dtype."""
    _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return fp8_gemm_ref_f64(a, a_s, b, b_s).to(out_dtype)


custom_op("flaggems::fp8_gemm", GEMM_SCHEMA, reference=fp8_gemm_ref, fake=gemm_fake, check=_check)


# the dequantise path decodes fp8/fp4 bytes itself: vendors without fp8/fp4 hardware still run it
@implement("flaggems::fp8_gemm", kind="triton", decodes=("fp8", "fp4"), dtypes={E4M3, E8M0, torch.float32})
def _impl(a, a_s, b, b_s, out_dtype=None):
    return fp8_gemm_triton(a, a_s, b, b_s, out_dtype, check=False)  # the custom op's check ran
