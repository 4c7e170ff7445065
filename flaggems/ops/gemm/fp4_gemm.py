"""DeepSeek-V4 ``fp4_gemm``: FP8 activations x FP4 (MXFP4) weights, C[M, N] = A · Bᵀ.

Inputs::

    A   float8_e4m3fn [..., K]                      a_s [..., ceil(K/128)]  fp32 or float8_e8m0fnu
    B   packed e2m1 [N, K/2] (float4_e2m1fn_x2, or   b_s [N, ceil(K/32)]     float8_e8m0fnu
        int8 / uint8 as in the checkpoint): element 2j in the low nibble, 2j+1 in the high nibble

Semantics (DeepSeek kernel.py), per k-block kb of 32 (fp32 accumulation)::

    P  = A[:, kb] · B[:, kb]ᵀ
    C += P · a_s[m, kb // 4] · b_s[n, kb]
    out = C cast to out_dtype (default torch.get_default_dtype())

K must be even (packing) but need not be a multiple of 32 or 128 (masked). e2m1 codes: bit 3 sign,
codes 0..7 = {0, 0.5, 1, 1.5, 2, 3, 4, 6}. E8M0 bytes decode as 2^(byte - 127), 255 = NaN.

Three code paths, one kernel (constexpr ``MODE``), chosen from the vendor's capabilities:

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

import math

import torch
import triton
import triton.language as tl

from flaggems.runtime.checks import check_same_device, check_tensor
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.formats import e2m1_to_f32, e4m3_to_f32, e8m0_to_f32, e8m0_to_float_ref, unpack_fp4_ref

A_BLOCK = 128   # activation scale block along K
B_BLOCK = 32    # weight (MX) scale block along K
MODES = ("dequant", "fp8", "dot_scaled")
_B_DTYPES = {torch.float4_e2m1fn_x2, torch.int8, torch.uint8}
_OUT_DTYPES = {torch.bfloat16, torch.float16, torch.float32}


@triton.jit
def _unpack_fp4_kn(bp, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
    """[BLOCK_K/2, BLOCK_N] packed bytes (K-major pairs) -> fp32 [BLOCK_K, BLOCK_N], low nibble first."""
    code = bp.to(tl.int32)
    lo = e2m1_to_f32(code & 0xF)
    hi = e2m1_to_f32((code >> 4) & 0xF)
    w = tl.permute(tl.join(lo, hi), (0, 2, 1))          # [BK/2, 2, BN]
    return tl.reshape(w, (BLOCK_K, BLOCK_N))


@triton.jit
def _fp4_gemm_kernel(a_ptr, as_ptr, b_ptr, bs_ptr, c_ptr, M, N, K,
                     stride_am, stride_ak, stride_asm, stride_ask, stride_bn, stride_bk,
                     stride_bsn, stride_bsk, stride_cm, stride_cn,
                     A_S_E8M0: tl.constexpr, MODE: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    offs_kh = tl.arange(0, BLOCK_K // 2)
    offs_g = tl.arange(0, BLOCK_K // 32)
    mask_m = offs_m < M
    mask_n = offs_n < N
    offs_m64 = offs_m.to(tl.int64)
    offs_n64 = offs_n.to(tl.int64)
    KH = K // 2
    KG = tl.cdiv(K, 32)
    a_ptrs = a_ptr + offs_m64[:, None] * stride_am + offs_k[None, :] * stride_ak       # [BM, BK]
    b_ptrs = b_ptr + offs_kh[:, None] * stride_bk + offs_n64[None, :] * stride_bn      # [BK/2, BN]
    as_ptrs = as_ptr + offs_m64 * stride_asm
    bs_ptrs = bs_ptr + offs_n64[:, None] * stride_bsn + offs_g[None, :] * stride_bsk   # [BN, BK/32]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BLOCK_K)):
        k0 = kb * BLOCK_K
        kmask = (k0 + offs_k) < K
        khmask = (k0 // 2 + offs_kh) < KH
        gmask = (k0 // 32 + offs_g) < KG
        a = tl.load(a_ptrs + k0 * stride_ak, mask=mask_m[:, None] & kmask[None, :], other=0)
        bp = tl.load(b_ptrs + (k0 // 2) * stride_bk, mask=khmask[:, None] & mask_n[None, :], other=0)
        sb = tl.load(bs_ptrs + (k0 // 32) * stride_bsk, mask=mask_n[:, None] & gmask[None, :], other=127)
        if A_S_E8M0:
            fa = e8m0_to_f32(tl.load(as_ptrs + (k0 // 128) * stride_ask, mask=mask_m, other=127))
        else:
            fa = tl.load(as_ptrs + (k0 // 128) * stride_ask, mask=mask_m, other=1.0)
        if MODE == 2:
            p = tl.dot_scaled(a, None, "e4m3", bp, sb, "e2m1")
            acc += p * fa[:, None]
        elif MODE == 1:
            # BLOCK_K == 32: one weight scale per column and step
            w = _unpack_fp4_kn(bp, BLOCK_K, BLOCK_N).to(tl.float8e4nv)                 # exact
            p = tl.dot(a.to(tl.float8e4nv, bitcast=True), w, out_dtype=tl.float32)
            fb = e8m0_to_f32(tl.reshape(sb, (BLOCK_N,)))                                # [BN] (one group)
            acc += p * fa[:, None] * fb[None, :]
        else:
            w = _unpack_fp4_kn(bp, BLOCK_K, BLOCK_N)
            fb = tl.trans(e8m0_to_f32(sb))                                              # [BK/32, BN]
            w = tl.reshape(tl.reshape(w, (BLOCK_K // 32, 32, BLOCK_N)) * fb[:, None, :], (BLOCK_K, BLOCK_N))
            p = tl.dot(e4m3_to_f32(a).to(tl.bfloat16), w.to(tl.bfloat16), out_dtype=tl.float32)
            acc += p * fa[:, None]

    c_ptrs = c_ptr + offs_m64[:, None] * stride_cm + offs_n64[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


# ----------------------------------------------------------------------------------------------------
def _capability(flag: str) -> bool:
    from flaggems.vendors import active

    return bool(getattr(active().capabilities, flag, False))


def choose_mode(use_dot_scaled=None, use_fp8=None) -> str:
    """The kernel path: ``use_*`` None = decided from ``flaggems.vendor().capabilities``."""
    if use_dot_scaled is None:
        use_dot_scaled = _capability("dot_scaled")
    if use_dot_scaled:
        return "dot_scaled"
    if use_fp8 is None:
        use_fp8 = _capability("fp8")
    return "fp8" if use_fp8 else "dequant"


def _blocks(M: int, N: int, mode: str) -> tuple[int, int, int, int, int]:
    block_k = B_BLOCK if mode == "fp8" else A_BLOCK
    if interpreting():
        return max(16, min(next_pow2(M), 128)), max(16, min(next_pow2(N), 256)), block_k, 4, 1
    block_m = 16 if M <= 16 else (32 if M <= 32 else 64)
    return block_m, 128, block_k, 4, (2 if mode == "fp8" else 3)


def _check(a, a_s, b, b_s, out_dtype=None):
    op = "fp4_gemm"
    check_tensor(op, "a", a, {torch.float8_e4m3fn})
    check_tensor(op, "a_s", a_s, {torch.float32, torch.float8_e8m0fnu})
    check_tensor(op, "b", b, _B_DTYPES, dim=2)
    check_tensor(op, "b_s", b_s, {torch.float8_e8m0fnu}, dim=2)
    check_same_device(op, a=a, a_s=a_s, b=b, b_s=b_s)
    if a.dim() < 1:
        raise ValueError(f"{op}: a must be [..., K], got a 0-d tensor")
    N, KH = b.shape
    K = a.shape[-1]
    if K != 2 * KH:
        raise ValueError(f"{op}: b must be [N, K/2] (two fp4 values per byte along K); a.shape[-1] = {K} "
                         f"but b.shape[1] = {KH}")
    want = (*a.shape[:-1], -(-K // A_BLOCK))
    if tuple(a_s.shape) != want:
        raise ValueError(f"{op}: a_s must have shape {want} (one scale per row and 128 elements of K), "
                         f"got {tuple(a_s.shape)}")
    want_b = (N, -(-K // B_BLOCK))
    if tuple(b_s.shape) != want_b:
        raise ValueError(f"{op}: b_s must have shape {want_b} (one E8M0 scale per row and 32 elements of K), "
                         f"got {tuple(b_s.shape)}")
    if out_dtype is not None and out_dtype not in _OUT_DTYPES:
        raise TypeError(f"{op}: out_dtype must be bfloat16, float16 or float32, got {out_dtype}")


def fp4_gemm_triton(a, a_s, b, b_s, out_dtype=None, *, use_dot_scaled=None, use_fp8=None,
                   out=None, check=True):
    if check:
        _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    N = b.shape[0]
    K = a.shape[-1]
    mode = choose_mode(use_dot_scaled, use_fp8)
    M = math.prod(a.shape[:-1])
    a2 = a.reshape(M, K)
    as2 = a_s.reshape(M, a_s.shape[-1])
    if out is None:
        c = torch.empty((M, N), dtype=out_dtype, device=a.device)
    else:  # caller-provided [..., N] buffer of out_dtype (tests poison it)
        if out.dtype != out_dtype or tuple(out.shape) != (*a.shape[:-1], N):
            raise ValueError(f"out must be {(*a.shape[:-1], N)} {out_dtype}, got {tuple(out.shape)} {out.dtype}")
        c = out.view(M, N)
    if M == 0 or N == 0:
        return c.view(*a.shape[:-1], N)
    if K == 0:
        return c.zero_().view(*a.shape[:-1], N)
    a_e8m0 = a_s.dtype == torch.float8_e8m0fnu
    as_arg = as2.view(torch.uint8) if a_e8m0 else as2
    a_u8, b_u8, bs_u8 = a2.view(torch.uint8), b.view(torch.uint8), b_s.view(torch.uint8)
    bm, bn, bk, warps, stages = _blocks(M, N, mode)
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    with device_guard(a):
        _fp4_gemm_kernel[grid](a_u8, as_arg, b_u8, bs_u8, c, M, N, K,
                               a_u8.stride(0), a_u8.stride(1), as_arg.stride(0), as_arg.stride(1),
                               b_u8.stride(0), b_u8.stride(1), bs_u8.stride(0), bs_u8.stride(1),
                               c.stride(0), c.stride(1),
                               A_S_E8M0=a_e8m0, MODE=MODES.index(mode),
                               BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages)
    return c.view(*a.shape[:-1], N)


def fp4_gemm_ref_f64(a, a_s, b, b_s):
    """C in fp64: per 32-block partial products P, C = sum_kb P · a_s[m, kb // 4] · b_s[n, kb]."""
    N = b.shape[0]
    K = a.shape[-1]
    kg = -(-K // B_BLOCK)
    pad = kg * B_BLOCK - K
    M = math.prod(a.shape[:-1])
    a2 = torch.nn.functional.pad(a.reshape(M, K).double(), (0, pad)).view(M, kg, B_BLOCK)
    w = torch.nn.functional.pad(unpack_fp4_ref(b).double(), (0, pad)).view(N, kg, B_BLOCK)
    p = torch.einsum("mkc,nkc->mnk", a2, w)                                     # [M, N, kg]
    sa = a_s.reshape(M, a_s.shape[-1])
    sa = (e8m0_to_float_ref(sa) if sa.dtype == torch.float8_e8m0fnu else sa.float()).double()
    sa = sa.repeat_interleave(A_BLOCK // B_BLOCK, dim=1)[:, :kg]               # [M, kg]
    sb = e8m0_to_float_ref(b_s).double()                                       # [N, kg]
    return (p * sa[:, None, :] * sb[None, :, :]).sum(-1).view(*a.shape[:-1], N)


def fp4_gemm_ref(a, a_s, b, b_s, out_dtype=None):
    """Reference fp4_gemm: the fp64 result of :func:`fp4_gemm_ref_f64` cast to out_dtype."""
    _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return fp4_gemm_ref_f64(a, a_s, b, b_s).to(out_dtype)


def _impl(a, a_s, b, b_s, out_dtype=None):
    return fp4_gemm_triton(a, a_s, b, b_s, out_dtype, check=False)  # the registry ran _check


def _register():
    from flaggems.ops.gemm.fp8_gemm import GEMM_SCHEMA, gemm_fake
    from flaggems.registry import custom_op, implement

    custom_op("flaggems::fp4_gemm", GEMM_SCHEMA, reference=fp4_gemm_ref, fake=gemm_fake, check=_check)
    # the dequantise path decodes fp8/fp4 bytes itself: vendors without fp8/fp4 hardware still run it
    implement("flaggems::fp4_gemm", kind="triton", decodes=("fp8", "fp4"),
              dtypes={torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float32} | _B_DTYPES)(_impl)


_register()
