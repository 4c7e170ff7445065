"""DeepSeek-V4 ``fp4_gemm``: FP8 activations x FP4 (MXFP4) weights, C[M, N] = A · Bᵀ.

Inputs::

    A   float8_e4m3fn [..., K]                      a_s [..., ceil(K/128)]  fp32 or float8_e8m0fnu
    B   packed e2m1 [N, K/2] (float4_e2m1fn_x2, or   b_s [N, ceil(K/32)]     float8_e8m0fnu
        int8 / uint8 as in the checkpoint): element 2j in the low nibble, 2j+1 in the high nibble

Semantics (DeepSeek kernel.py), per k-block kb of 32 (fp32 accumulation)::

    P  = A[:, kb] · B[:, kb]ᵀ
    C += P · a_s[m, kb // 4] · b_s[n, kb]
    out = C cast to out_dtype (default torch.get_default_dtype())

That is 1x128-scaled fp8 activations times MX (1x32 e8m0) e2m1 weights: a plan of the GEMM kernel
(flaggems/ops/gemm/kernel.py) with the activation scales applied per 128-block partial product. K must be even
(packing) but need not be a multiple of 32 or 128 (masked). e2m1 codes: bit 3 sign, codes 0..7 =
{0, 0.5, 1, 1.5, 2, 3, 4, 6}. E8M0 bytes decode as 2^(byte - 127), 255 = NaN.

Three code paths, chosen from the vendor's capabilities (:func:`choose_mode`):

* ``dot_scaled`` (capability ``dot_scaled``): per 128-block, ``tl.dot_scaled(A, None, "e4m3", B, b_s,
  "e2m1")`` applies the MX weight scales inside the (block-scaled) MMA; the partial is then scaled by a_s.
* ``fp8`` (capability ``fp8``, no dot_scaled): TileLang's scheme - per 32-block the fp4 tile is decoded to
  e4m3 in registers (exact), FP8 ``tl.dot``, then C += P · a_s · b_s.
* ``dequant``: per 128-block both operands are decoded with integer ops in registers, the weight scale is
  folded into the weight (q · 2^e is exact in bf16 for e8m0 exponents in [-126, 126]), bf16 ``tl.dot``
  (exact products, fp32 accumulation), then C += P · a_s.  No FP8/FP4 hardware needed.

The three paths differ from each other only in fp32 summation order.
"""
from __future__ import annotations

import torch

from ...formats import AS_LOADED, E2M1_PAIRS, E4M3, E4M3_BYTES, E8M0, dequant_ref, unpack_fp4_ref
from ...registry import custom_op, implement
from .lowp import (GEMM_SCHEMA, MODES, QBLOCK, a_scales_f64, block_product_ref_f64, block_scale,
                   capability, check_a_scales, check_operands, check_out_dtype, gemm_fake, run)
from .plan import PER_BLOCK, PRE_DOT, Plan, Tiles

__all__ = ["fp4_gemm_triton", "fp4_gemm_ref", "fp4_gemm_ref_f64", "choose_mode", "MODES", "A_BLOCK", "B_BLOCK"]

A_BLOCK = QBLOCK  # activation scale block along K
B_BLOCK = 32      # weight (MX) scale block along K
_B_DTYPES = {torch.float4_e2m1fn_x2, torch.int8, torch.uint8}
# the fp8 path steps one MX group (32) per partial product
TILES = Tiles("fp4_gemm", {
    "": [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "num_warps": 4, "num_stages": 3}],
    "float8_e4m3fn": [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32, "num_warps": 4, "num_stages": 2}],
}, [{"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 128}], shrink="MN", device_shrink="M")

_capability = capability          # module-level so tests can patch the capability lookup


def choose_mode(use_dot_scaled=None, use_fp8=None) -> str:
    """The kernel path: ``use_*`` None = decided from ``flaggems.vendor().capabilities``."""
    if use_dot_scaled is None:
        use_dot_scaled = _capability("dot_scaled")
    if use_dot_scaled:
        return "dot_scaled"
    if use_fp8 is None:
        use_fp8 = _capability("fp8")
    return "fp8" if use_fp8 else "dequant"


def _check(a, a_s, b, b_s, out_dtype=None):
    op = "fp4_gemm"
    check_operands(op, a, a_s, b, _B_DTYPES, b_s, {E8M0})
    N, KH = b.shape
    K = a.shape[-1]
    if K != 2 * KH:
        raise ValueError(f"{op}: b must be [N, K/2] (two fp4 values per byte along K); a.shape[-1] = {K} "
                         f"but b.shape[1] = {KH}")
    check_a_scales(op, a, a_s)
    want_b = (N, -(-K // B_BLOCK))
    if tuple(b_s.shape) != want_b:
        raise ValueError(f"{op}: b_s must have shape {want_b} (one E8M0 scale per row and 32 elements of K), "
                         f"got {tuple(b_s.shape)}")
    check_out_dtype(op, out_dtype)


def plan(a_s2, b_s, mode: str) -> Plan:
    """The GEMM plan of one fp4_gemm path (a_s2: the activation scales as [M, ceil(K/128)])."""
    b_at = PER_BLOCK if mode == "fp8" else PRE_DOT      # fp8: one weight scale per 32-block partial product
    dot = {"dequant": torch.bfloat16, "fp8": torch.float8_e4m3fn}.get(mode)
    return Plan(TILES, "fp8_1x128_mxfp4", block_scale(a_s2, A_BLOCK, 1, PER_BLOCK), block_scale(b_s, B_BLOCK, 1, b_at),
                a_fmt=E4M3_BYTES if mode == "dequant" else AS_LOADED, b_fmt=E2M1_PAIRS, dot=dot,
                dot_scaled=mode == "dot_scaled")


def fp4_gemm_triton(a, a_s, b, b_s, out_dtype=None, *, use_dot_scaled=None, use_fp8=None,
                    out=None, check=True):
    if check:
        _check(a, a_s, b, b_s, out_dtype)
    mode = choose_mode(use_dot_scaled, use_fp8)
    return run(lambda a_s2: plan(a_s2, b_s, mode), a, a_s, b, out_dtype, out)


def fp4_gemm_ref_f64(a, a_s, b, b_s):
    """C in fp64: per 32-block partial products P, C = sum_kb P · a_s[m, kb // 4] · b_s[n, kb]."""
    N = b.shape[0]
    K = a.shape[-1]
    kg = -(-K // B_BLOCK)
    sa = a_scales_f64(a, a_s).repeat_interleave(A_BLOCK // B_BLOCK, dim=1)[:, :kg]      # [M, kg]
    return block_product_ref_f64(a.reshape(-1, K), unpack_fp4_ref(b), sa, dequant_ref(b_s), B_BLOCK).view(
        *a.shape[:-1], N)


def fp4_gemm_ref(a, a_s, b, b_s, out_dtype=None):
    """Reference fp4_gemm: the fp64 result of :func:`fp4_gemm_ref_f64` cast to out_dtype."""
    _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return fp4_gemm_ref_f64(a, a_s, b, b_s).to(out_dtype)


custom_op("flaggems::fp4_gemm", GEMM_SCHEMA, reference=fp4_gemm_ref, fake=gemm_fake, check=_check)


# the dequantise path decodes fp8/fp4 bytes itself: vendors without fp8/fp4 hardware still run it
@implement("flaggems::fp4_gemm", kind="triton", decodes=("fp8", "fp4"),
           dtypes={E4M3, E8M0, torch.float32} | _B_DTYPES)
def _impl(a, a_s, b, b_s, out_dtype=None):
    return fp4_gemm_triton(a, a_s, b, b_s, out_dtype, check=False)  # the custom op's check ran
