"""Fast Walsh-Hadamard transform, natural (Sylvester) order, over the last dimension.

    flaggems::hadamard_transform(Tensor x, float scale=1.0) -> Tensor

    y = (x @ H_n) * scale,    H_n[i, j] = (-1)^popcount(i & j),   n = x.shape[-1] a power of two (1 .. 32768)

computed in fp32 from bf16 / fp16 / fp32 input, returned in x's dtype and shape (contiguous). This is
`fast_hadamard_transform.hadamard_transform` as DeepSeek-V4 uses it (no random signs).

Kernel: one program per block of rows. The ±1 matrix is generated in registers from the parity of
i & j (nothing is loaded). n < 16: broadcast multiply-sum. 16 <= n <= 128: one tl.dot with H_n (entries
exact in bf16/fp16, fp32 accumulation). n >= 256: Sylvester's H_n = H_a ⊗ H_b with n = a·b, so a row viewed
as an a x b matrix X maps to H_a · X · H_b: two tl.dots of size a and b instead of one of size n; the
second one runs on the fp32 intermediate at IEEE precision so nothing is rounded to bf16 or tf32.
"""
from __future__ import annotations

import math
import numbers

import torch
import triton
import triton.language as tl

from flaggems.deepseek.checked import checked
from flaggems.runtime import launch_config
from flaggems.registry import custom_op, implement
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.runtime.autotune import split_launch_options
from flaggems.runtime.checks import check_tensor

OP = "flaggems::hadamard_transform"
SCHEMA = "(Tensor x, float scale=1.0) -> Tensor"
MAX_N = 1 << 15
_FLOATS = (torch.bfloat16, torch.float16, torch.float32)


def hadamard_transform_check(x, scale=1.0):
    op = "hadamard_transform"
    check_tensor(op, "x", x, _FLOATS)
    if x.dim() < 1:
        raise ValueError(f"hadamard_transform: x must have at least 1 dimension, got shape {tuple(x.shape)}")
    n = x.shape[-1]
    if n < 1 or n & (n - 1) or n > MAX_N:
        raise ValueError(f"hadamard_transform: the last dim of x must be a power of two in [1, {MAX_N}], got {n}")
    if not isinstance(scale, numbers.Real) or isinstance(scale, bool) or not math.isfinite(float(scale)):
        raise TypeError(f"hadamard_transform: scale must be a finite float, got {scale!r}")


def hadamard_matrix(n: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Sylvester H_n by repeated Kronecker products (natural order)."""
    h = torch.ones((1, 1), dtype=dtype, device=device)
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=dtype, device=device)
    while h.shape[0] < n:
        h = torch.kron(h2, h)
    return h


def hadamard_transform_ref(x, scale=1.0):
    """Pure-torch reference: fp64 matmul with the explicit Sylvester matrix."""
    h = hadamard_matrix(x.shape[-1], torch.float64, x.device)
    return ((x.double() @ h) * float(scale)).to(x.dtype)


def _hadamard_fake(x, scale=1.0):
    return x.new_empty(x.shape)


custom_op(OP, SCHEMA, reference=hadamard_transform_ref, fake=_hadamard_fake, check=hadamard_transform_check)


@triton.jit
def _hadamard_matrix(N: tl.constexpr, dtype: tl.constexpr):
    v = tl.arange(0, N)[:, None] & tl.arange(0, N)[None, :]
    # Parity of popcount by xor-folding (N <= 2^8 here, so 8 bits suffice).
    v = v ^ (v >> 4)
    v = v ^ (v >> 2)
    v = v ^ (v >> 1)
    return tl.where((v & 1) == 0, 1.0, -1.0).to(dtype)


@triton.jit
def _hadamard_kernel(
    x_ptr, y_ptr, R, scale,
    s_xr, s_xc, s_yr,
    BLOCK_R: tl.constexpr, N: tl.constexpr, A: tl.constexpr, B: tl.constexpr,
    MODE: tl.constexpr, IEEE: tl.constexpr,
):
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rows = offs_r.to(tl.int64)
    offs_n = tl.arange(0, N)
    mask = (offs_r < R)[:, None] & (offs_n < N)[None, :]
    x = tl.load(x_ptr + rows[:, None] * s_xr + offs_n[None, :] * s_xc, mask=mask, other=0.0)
    if MODE == 0:
        h = _hadamard_matrix(N, tl.float32)
        y = tl.sum(x.to(tl.float32)[:, :, None] * h[None, :, :], axis=1)
    elif MODE == 1:
        h = _hadamard_matrix(N, x.dtype)
        if IEEE:
            y = tl.dot(x, h, input_precision="ieee")
        else:
            y = tl.dot(x, h)
    else:
        hb = _hadamard_matrix(B, x.dtype)
        if IEEE:
            z = tl.dot(tl.reshape(x, [BLOCK_R * A, B]), hb, input_precision="ieee")
        else:
            z = tl.dot(tl.reshape(x, [BLOCK_R * A, B]), hb)
        # (H_a X H_b)^T = (X H_b)^T H_a: transpose each row's a x b block and multiply from the right.
        zt = tl.reshape(tl.permute(tl.reshape(z, [BLOCK_R, A, B]), (0, 2, 1)), [BLOCK_R * B, A])
        yt = tl.dot(zt, _hadamard_matrix(A, tl.float32), input_precision="ieee")
        y = tl.reshape(tl.permute(tl.reshape(yt, [BLOCK_R, B, A]), (0, 2, 1)), [BLOCK_R, N])
    y = y * scale
    tl.store(y_ptr + rows[:, None] * s_yr + offs_n[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


def _split(n: int):
    """n = a * b with both factors >= 16 (tl.dot's minimum on GPUs) and as square as possible."""
    b = 1 << ((n.bit_length() - 1) // 2)
    return n // b, b


def _config(r: int, n: int, mode: int, dtype: torch.dtype) -> dict:
    """BLOCK_R (rows per program) and num_warps, config key "hadamard"."""
    per_row = n * (n if mode == 0 else 1)  # the broadcast mode holds an n x n product per row
    if interpreting():
        block_r = max(1, min(next_pow2(r), (1 << 16) // per_row))
    else:
        block_r = 16 if mode == 1 else max(1, min(16, 8192 // per_row))
    return launch_config("hadamard", dtype, {"BLOCK_R": block_r, "num_warps": 4 if n <= 1024 else 8})


@implement(OP, kind="triton", dtypes=set(_FLOATS))
def _hadamard_transform_triton(x, scale=1.0):
    """The Triton launcher (the op's check has run)."""
    n = x.shape[-1]
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    r = x.numel() // n if n else 0
    if r == 0:
        return y
    x2 = x.reshape(r, n)  # a view when the leading dims allow; any row / column stride is fine
    if n < 16:
        mode, a, b = 0, 1, n
    elif n <= 128:
        mode, a, b = 1, 1, n
    else:
        mode, (a, b) = 2, _split(n)
    cfg = _config(r, n, mode, x.dtype)
    with device_guard(x):
        _hadamard_kernel[(triton.cdiv(r, cfg["BLOCK_R"]),)](
            x2, y, r, float(scale), x2.stride(0), x2.stride(1), n,
            BLOCK_R=cfg["BLOCK_R"], N=n, A=a, B=b, MODE=mode, IEEE=x.dtype == torch.float32,
            **split_launch_options(cfg)[1],
        )
    return y


hadamard_transform_triton = checked(hadamard_transform_check, _hadamard_transform_triton)
