"""DeepSeek-V4 ``fp8_gemm``: block-scaled FP8 GEMM, C[M, N] = A · Bᵀ.

Inputs::

    A   float8_e4m3fn [..., K]  (M = numel / K rows)     a_s [..., ceil(K/128)]          fp32 or float8_e8m0fnu
    B   float8_e4m3fn [N, K]                             b_s [ceil(N/128), ceil(K/128)]  fp32 or float8_e8m0fnu

Per k-block kb of 128 (a separate fp32 accumulator, DeepSeek's "2x accumulation precision")::

    P  = A[:, kb] · B[:, kb]ᵀ                  (exact products, fp32 accumulation)
    C += P · a_s[m, kb] · b_s[n // 128, kb]
    out = C cast to out_dtype (default torch.get_default_dtype())

K need not be a multiple of 128 (the last block is masked to zero). E8M0 bytes decode as 2^(byte - 127),
255 = NaN.

Three code paths, one kernel (constexpr ``MODE``), chosen from the vendor's capabilities:

* ``dot_scaled`` (capability ``dot_scaled``, both scales E8M0): ``tl.dot_scaled`` with each per-128 scale
  repeated over its four 32-element MX groups, accumulating into C (block-scaled MMA on sm_100+).
* ``fp8`` (capability ``fp8``): FP8 ``tl.dot`` per k-block, scales applied to the fp32 partial.
* ``dequant``: e4m3 bits decoded with integer ops to fp16 in registers (exact), fp16 ``tl.dot`` with fp32
  accumulation, scales applied to the fp32 partial. Runs on hardware without any FP8 support.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from flaggems.runtime.checks import check_same_device, check_tensor
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.formats import e4m3_to_f32, e8m0_to_f32, e8m0_to_float_ref

QBLOCK = 128
# fp8_gemm and fp4_gemm share one op signature: C[..., N] = A[..., K] · B[N, K]ᵀ with block scales
GEMM_SCHEMA = "(Tensor a, Tensor a_s, Tensor b, Tensor b_s, ScalarType? out_dtype=None) -> Tensor"


def gemm_fake(a, a_s, b, b_s, out_dtype=None):
    """Meta kernel of the scaled GEMMs: output in out_dtype (default: torch's default dtype)."""
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return a.new_empty((*a.shape[:-1], b.shape[0]), dtype=out_dtype)
MODES = ("dequant", "fp8", "dot_scaled")
_SCALE_DTYPES = {torch.float32, torch.float8_e8m0fnu}
_OUT_DTYPES = {torch.bfloat16, torch.float16, torch.float32}


@triton.jit
def _fp8_gemm_kernel(a_ptr, as_ptr, b_ptr, bs_ptr, c_ptr, M, N, K,
                     stride_am, stride_ak, stride_asm, stride_ask, stride_bn, stride_bk,
                     stride_bsn, stride_bsk, stride_cm, stride_cn,
                     A_S_E8M0: tl.constexpr, B_S_E8M0: tl.constexpr, MODE: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    offs_m64 = offs_m.to(tl.int64)
    offs_n64 = offs_n.to(tl.int64)
    a_ptrs = a_ptr + offs_m64[:, None] * stride_am + offs_k[None, :] * stride_ak     # [BM, BK]
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n64[None, :] * stride_bn     # [BK, BN]
    as_ptrs = as_ptr + offs_m64 * stride_asm
    bs_ptrs = bs_ptr + (offs_n64 // 128) * stride_bsn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, BLOCK_K)):
        k0 = kb * BLOCK_K
        kmask = (k0 + offs_k) < K
        a = tl.load(a_ptrs + k0 * stride_ak, mask=mask_m[:, None] & kmask[None, :], other=0)
        b = tl.load(b_ptrs + k0 * stride_bk, mask=kmask[:, None] & mask_n[None, :], other=0)
        if A_S_E8M0:
            sa = tl.load(as_ptrs + kb * stride_ask, mask=mask_m, other=127)
        else:
            sa = tl.load(as_ptrs + kb * stride_ask, mask=mask_m, other=1.0)
        if B_S_E8M0:
            sb = tl.load(bs_ptrs + kb * stride_bsk, mask=mask_n, other=127)
        else:
            sb = tl.load(bs_ptrs + kb * stride_bsk, mask=mask_n, other=1.0)
        if MODE == 2:
            # MX: one E8M0 scale per 32 elements along K; a 128-block's scale covers 4 groups.
            sa_mx = tl.broadcast_to(sa[:, None], (BLOCK_M, BLOCK_K // 32))
            sb_mx = tl.broadcast_to(sb[:, None], (BLOCK_N, BLOCK_K // 32))
            acc = tl.dot_scaled(a, sa_mx, "e4m3", b, sb_mx, "e4m3", acc)
        else:
            if MODE == 1:
                p = tl.dot(a.to(tl.float8e4nv, bitcast=True), b.to(tl.float8e4nv, bitcast=True),
                           out_dtype=tl.float32)
            else:
                p = tl.dot(e4m3_to_f32(a).to(tl.float16), e4m3_to_f32(b).to(tl.float16),
                           out_dtype=tl.float32)
            if A_S_E8M0:
                fa = e8m0_to_f32(sa)
            else:
                fa = sa
            if B_S_E8M0:
                fb = e8m0_to_f32(sb)
            else:
                fb = sb
            acc += p * fa[:, None] * fb[None, :]

    c_ptrs = c_ptr + offs_m64[:, None] * stride_cm + offs_n64[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


# ----------------------------------------------------------------------------------------------------
def _capability(flag: str) -> bool:
    from flaggems.vendors import active

    return bool(getattr(active().capabilities, flag, False))


def choose_mode(a_s: torch.Tensor, b_s: torch.Tensor, use_dot_scaled=None, use_fp8=None) -> str:
    """The kernel path: ``use_*`` None = decided from ``flaggems.vendor().capabilities``."""
    if use_dot_scaled is None:
        use_dot_scaled = _capability("dot_scaled")
    if use_fp8 is None:
        use_fp8 = _capability("fp8")
    e8m0 = a_s.dtype == torch.float8_e8m0fnu and b_s.dtype == torch.float8_e8m0fnu
    if use_dot_scaled and e8m0:
        return "dot_scaled"
    return "fp8" if use_fp8 else "dequant"


def _blocks(M: int, N: int) -> tuple[int, int, int, int]:
    if interpreting():
        return max(16, min(next_pow2(M), 128)), max(16, min(next_pow2(N), 256)), 4, 1
    block_m = 16 if M <= 16 else (32 if M <= 32 else 64)
    return block_m, 128, 4, 3


def _check(a, a_s, b, b_s, out_dtype=None):
    op = "fp8_gemm"
    check_tensor(op, "a", a, {torch.float8_e4m3fn})
    check_tensor(op, "a_s", a_s, _SCALE_DTYPES)
    check_tensor(op, "b", b, {torch.float8_e4m3fn}, dim=2)
    check_tensor(op, "b_s", b_s, _SCALE_DTYPES, dim=2)
    check_same_device(op, a=a, a_s=a_s, b=b, b_s=b_s)
    if a.dim() < 1:
        raise ValueError(f"{op}: a must be [..., K], got a 0-d tensor")
    N, K = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"{op}: a.shape[-1] ({a.shape[-1]}) must equal b.shape[1] (K = {K})")
    kb = -(-K // QBLOCK)
    want = (*a.shape[:-1], kb)
    if tuple(a_s.shape) != want:
        raise ValueError(f"{op}: a_s must have shape {want} (one scale per row and 128 elements of K), "
                         f"got {tuple(a_s.shape)}")
    want_b = (-(-N // QBLOCK), kb)
    if tuple(b_s.shape) != want_b:
        raise ValueError(f"{op}: b_s must have shape {want_b} (one scale per 128x128 block of b), "
                         f"got {tuple(b_s.shape)}")
    if out_dtype is not None and out_dtype not in _OUT_DTYPES:
        raise TypeError(f"{op}: out_dtype must be bfloat16, float16 or float32, got {out_dtype}")


def fp8_gemm_triton(a, a_s, b, b_s, out_dtype=None, *, use_dot_scaled=None, use_fp8=None,
                   out=None, check=True):
    if check:
        _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    N, K = b.shape
    mode = choose_mode(a_s, b_s, use_dot_scaled, use_fp8)
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
    b_e8m0 = b_s.dtype == torch.float8_e8m0fnu
    as_arg = as2.view(torch.uint8) if a_e8m0 else as2
    bs_arg = b_s.view(torch.uint8) if b_e8m0 else b_s
    a_u8, b_u8 = a2.view(torch.uint8), b.view(torch.uint8)
    bm, bn, warps, stages = _blocks(M, N)
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    with device_guard(a):
        _fp8_gemm_kernel[grid](a_u8, as_arg, b_u8, bs_arg, c, M, N, K,
                               a_u8.stride(0), a_u8.stride(1), as_arg.stride(0), as_arg.stride(1),
                               b_u8.stride(0), b_u8.stride(1), bs_arg.stride(0), bs_arg.stride(1),
                               c.stride(0), c.stride(1),
                               A_S_E8M0=a_e8m0, B_S_E8M0=b_e8m0, MODE=MODES.index(mode),
                               BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=QBLOCK, num_warps=warps, num_stages=stages)
    return c.view(*a.shape[:-1], N)


def _scale_f64(s: torch.Tensor) -> torch.Tensor:
    return (e8m0_to_float_ref(s) if s.dtype == torch.float8_e8m0fnu else s.float()).double()


def fp8_gemm_ref_f64(a, a_s, b, b_s):
    """C in fp64: per 128-block partial products P, C = sum_kb P · a_s[m, kb] · b_s[n // 128, kb]."""
    N, K = b.shape
    kb = -(-K // QBLOCK)
    pad = kb * QBLOCK - K
    M = math.prod(a.shape[:-1])
    a2 = torch.nn.functional.pad(a.reshape(M, K).double(), (0, pad)).view(M, kb, QBLOCK)
    b2 = torch.nn.functional.pad(b.double(), (0, pad)).view(N, kb, QBLOCK)
    p = torch.einsum("mkc,nkc->mnk", a2, b2)                                  # [M, N, kb]
    sa = _scale_f64(a_s).reshape(M, kb)                                     # [M, kb]
    sb = _scale_f64(b_s).repeat_interleave(QBLOCK, dim=0)[:N]                 # [N, kb]
    return (p * sa[:, None, :] * sb[None, :, :]).sum(-1).view(*a.shape[:-1], N)


def fp8_gemm_ref(a, a_s, b, b_s, out_dtype=None):
    """Reference fp8_gemm: the fp64 result of :func:`fp8_gemm_ref_f64` cast to out_dtype."""
    _check(a, a_s, b, b_s, out_dtype)
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    return fp8_gemm_ref_f64(a, a_s, b, b_s).to(out_dtype)


def _impl(a, a_s, b, b_s, out_dtype=None):
    return fp8_gemm_triton(a, a_s, b, b_s, out_dtype, check=False)  # the registry ran _check


def _register():
    from flaggems.registry import custom_op, implement

    custom_op("flaggems::fp8_gemm", GEMM_SCHEMA, reference=fp8_gemm_ref, fake=gemm_fake, check=_check)
    # the dequantise path decodes fp8/fp4 bytes itself: vendors without fp8/fp4 hardware still run it
    implement("flaggems::fp8_gemm", kind="triton", decodes=("fp8", "fp4"),
              dtypes={torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float32})(_impl)


_register()
