"""The ``kernels-community/finegrained-fp8`` kernel contract on flaggems' quantised GEMMs.

transformers' ``FP8Linear`` / ``FP8Experts`` (integrations/finegrained_fp8.py) call three entry points::

    matmul_2d(A, B, Bs, block_size, output_dtype=None, activation_scale=None)          C = A · Bᵀ
    matmul_batched(A, B, Bs, expert_ids, block_size, output_dtype=None)               C[s] = A[s] · B[expert_ids[s]]ᵀ
    matmul_grouped(A, B, Bs, offsets, tokens_per_expert, block_size, output_dtype=None)
        rows sorted by expert, expert e owns rows [offsets[e-1], offsets[e])

A is raw activations [..., K] (bf16 / fp16 / fp32), quantised here per row and per group of K; the output
dtype defaults to ``A.dtype``. The weight layout picks the recipe, as the hub kernel's dispatcher does:

* MX: ``B`` int8 [N, K/2] (two e2m1 codes per byte, low nibble first) or e4m3 [N, K] with UE8M0 scales
  ``Bs`` [N, K/32] (``float8_e8m0fnu`` or uint8 bytes). Activations: per 32 of K, ``s = 2^ceil(log2(amax/448))``
  (UE8M0), ``a = e4m3(x / s)``; ``C = Σ_g (A_g·B_gᵀ) · s_a · s_b``. ``activation_scale`` is refused.
* tensor-wide: ``block_size`` None or [N, K], ``Bs`` one scalar: per-row ``s = amax/448`` over all of K.
* block: ``block_size`` [bn, bk], ``Bs`` [ceil(N/bn), ceil(K/bk)] (fp32 or UE8M0): per row and ``bk`` of K
  ``s = amax/448``, or with ``activation_scale`` (static, one scalar) ``a = e4m3(x / As)`` for all of K.
  ``C = Σ_kb (A_kb·B_kbᵀ) · s_a · s_b``.

Implementation: activations through ``flaggems::act_quant``; 128x128 blocks (and any multiple of 128, whose
scales expand exactly onto the 128 grid) and tensor-wide weights through ``flaggems::fp8_gemm``; FP4 MX
weights through ``flaggems::fp4_gemm``, one call per 32-wide phase of each 128 block (fp4_gemm scales
activations per 128; the hub quantises them per 32, so each call sees one phase's activations with that
phase's scales and the four fp32 partials are summed). Other layouts (MXFP8, blocks that are not multiples
of 128) take a dequantise-and-matmul path with the same quantisation (fp32 GEMM): same values, a different
summation order.

Differences from the hub kernel, all below e4m3 resolution or in what the hub leaves undefined:
* ``act_quant`` floors a group's amax at 1e-4 (DeepSeek's kernel) where the hub floors the scale at 1e-12:
  groups whose amax < 1e-4 quantise with a coarser scale (values under ~4e-9 round to 0);
* rows routed to no local expert (``expert_ids[s] >= E``, or rows past ``offsets[-1]``) are 0 here; the hub
  leaves them uninitialised;
* ``matmul_batched`` / ``matmul_grouped`` loop over the experts present (one host sync per call).
Accumulation is fp32 everywhere; results differ from the hub only by fp32 summation order.
"""
from __future__ import annotations

import torch

__all__ = ["matmul_2d", "matmul_batched", "matmul_grouped", "fp8_act_quant"]

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
QB = 128      # flaggems fp8_gemm / fp4_gemm block
MX = 32       # MX scale group along K
_UE8M0 = (E8M0, torch.uint8)


def _ops():
    return torch.ops.flaggems


def _cdiv(a, b):
    return -(-a // b)


def _as_e8m0(s: torch.Tensor) -> torch.Tensor:
    return s.view(E8M0) if s.dtype == torch.uint8 else s


def _scales_f32(s: torch.Tensor) -> torch.Tensor:
    """fp32 values of fp32 or UE8M0 (e8m0 / uint8 bytes) scales."""
    if s.dtype in _UE8M0:
        b = s.view(torch.uint8).to(torch.int32)
        v = torch.exp2(b.double() - 127).float()
        return torch.where(b == 255, torch.full_like(v, float("nan")), v)
    return s.float()


def is_mx(B: torch.Tensor, Bs: torch.Tensor) -> bool:
    """MX layout: int8-packed e2m1 or e4m3 weights with UE8M0 scales, one per row and 32 of (unpacked) K."""
    per_byte = {E4M3: 1, torch.int8: 2}.get(B.dtype)
    return (per_byte is not None and Bs.dtype in _UE8M0 and Bs.dim() == B.dim()
            and Bs.shape[:-1] == B.shape[:-1] and Bs.shape[-1] == B.shape[-1] * per_byte // MX)


def is_tensor_wide(block_size, B: torch.Tensor) -> bool:
    return block_size is None or (block_size[0] == B.shape[-2] and block_size[1] == B.shape[-1])


def fp8_act_quant(x: torch.Tensor, block_size: int = 128):
    """Per-row, per-``block_size`` e4m3 quantisation with fp32 scales ``amax/448`` (the hub's helper)."""
    return _ops().act_quant(x.contiguous(), block_size, None, torch.float32)


# ----------------------------------------------------------------------------------------------------------
# activation quantisation

def _pad_k(x2: torch.Tensor, mult: int) -> torch.Tensor:
    """x2 [M, K] zero-padded along K to a multiple of ``mult`` (zeros change no amax)."""
    K = x2.shape[-1]
    pad = _cdiv(K, mult) * mult - K
    return torch.nn.functional.pad(x2, (0, pad)) if pad else x2


def _quant_rows(x2: torch.Tensor, group: int, ue8m0: bool):
    """(a e4m3 [M, K], s [M, ceil(K/group)]) with the groups of K quantised independently."""
    K = x2.shape[-1]
    xp = _pad_k(x2.contiguous(), group)
    if ue8m0:
        a, s = _ops().act_quant(xp, group, "ue8m0", E8M0)
    else:
        a, s = _ops().act_quant(xp, group, None, torch.float32)
    return a[:, :K].contiguous(), s


def _quant_static(x2: torch.Tensor, act_scale: torch.Tensor):
    """a = e4m3(clamp(x / As)) with one scalar scale (saturating, as the hardware cast)."""
    As = act_scale.reshape(()).float()
    return (x2.float() / As).clamp(-448.0, 448.0).to(E4M3), As


# ----------------------------------------------------------------------------------------------------------
# the GEMM paths

def _expand(s: torch.Tensor, rows: int, cols: int, r_rep: int, c_rep: int) -> torch.Tensor:
    """Block scales repeated r_rep x c_rep times (onto the 128 grid), cut to [rows, cols]; UE8M0 as e8m0."""
    u = s.view(torch.uint8) if s.dtype in _UE8M0 else s
    out = u.repeat_interleave(r_rep, 0).repeat_interleave(c_rep, 1)[:rows, :cols].contiguous()
    return out.view(E8M0) if s.dtype in _UE8M0 else out


def _on_128_grid(block_size) -> bool:
    """Blocks that are multiples of 128 both ways: their scales repeat exactly onto fp8_gemm's 128 grid."""
    return block_size[0] % QB == 0 and block_size[1] % QB == 0


def _fp8_gemm(a, a_s, B, b_s):
    """fp32 C = Σ_kb (A·Bᵀ) · a_s · b_s through flaggems::fp8_gemm (all scales on the 128 grid)."""
    return _ops().fp8_gemm(a, a_s, B, b_s, torch.float32)


def _block_2d(x2, B, Bs, block_size, activation_scale):
    N, K = B.shape
    bn, bk = block_size
    kq = _cdiv(K, QB)
    if activation_scale is not None:
        a, As = _quant_static(x2, activation_scale)
    else:
        a, s = _quant_rows(x2, bk, False)
    if _on_128_grid(block_size):
        a_s = As.expand(x2.shape[0], kq).contiguous() if activation_scale is not None else \
            _expand(s, s.shape[0], kq, 1, bk // QB)
        b_s = _expand(Bs, _cdiv(N, QB), kq, bn // QB, bk // QB)
        return _fp8_gemm(a, a_s, B, b_s)
    # blocks off the 128 grid: dequantise both operands with their own blocks, one fp32 GEMM
    if activation_scale is not None:
        ad = a.float() * As
    else:
        ad = (a.float().view(a.shape[0], -1)) * s.repeat_interleave(bk, 1)[:, :K]
    wd = B.float() * _scales_f32(Bs).repeat_interleave(bn, 0).repeat_interleave(bk, 1)[:N, :K]
    return ad @ wd.t()


def _tensor_2d(x2, B, Bs):
    N, K = B.shape
    a, s = _quant_rows(x2, K, False)                   # one scale per row over all of K
    kq = _cdiv(K, QB)
    a_s = s.expand(s.shape[0], kq).contiguous()
    b_s = _scales_f32(Bs).reshape(1, 1).expand(_cdiv(N, QB), kq).contiguous()
    return _fp8_gemm(a, a_s, B, b_s)


def _mx_2d(x2, B, Bs):
    N = B.shape[0]
    K = x2.shape[-1]
    if K % MX:
        raise ValueError(f"finegrained_fp8 (MX weights): K ({K}) must be a multiple of {MX}")
    a, s32 = _quant_rows(x2, MX, True)                 # UE8M0 per 32 of K
    M = a.shape[0]
    if B.dtype == torch.int8:
        # fp4_gemm applies one activation scale per 128 of K: run one call per 32-wide phase of each 128
        # block, with that phase's activations (others zeroed) and scales, and sum the fp32 partials
        kq = _cdiv(K, QB)
        sp = torch.full((M, kq * 4), 127, dtype=torch.uint8, device=a.device)
        sp[:, : s32.shape[1]] = s32.view(torch.uint8)
        phase = (torch.arange(K, device=a.device) % QB) // MX
        au = a.view(torch.uint8)
        out = None
        for j in range(4):
            if j * MX >= min(K, QB):
                break
            aj = torch.where(phase == j, au, torch.zeros_like(au)).view(E4M3)
            sj = sp[:, j::4].contiguous().view(E8M0)
            part = _ops().fp4_gemm(aj, sj, B, _as_e8m0(Bs), torch.float32)
            out = part if out is None else out + part
        return out
    # MXFP8 weights (e4m3 [N, K], UE8M0 per 32): no flaggems GEMM takes per-row weight scales along K
    ad = a.float() * _scales_f32(s32).repeat_interleave(MX, 1)[:, :K]
    wd = B.float() * _scales_f32(Bs).repeat_interleave(MX, 1)[:, :K]
    return ad @ wd.t()


def _matmul_rows(x2, B, Bs, block_size, activation_scale=None):
    """fp32 [M, N] for activations x2 [M, K] and one weight matrix."""
    if x2.shape[0] == 0:
        return x2.new_zeros((0, B.shape[0]), dtype=torch.float32)
    if is_mx(B, Bs):
        if activation_scale is not None:
            raise NotImplementedError("finegrained_fp8: activation_scale (static activation quantisation) is not "
                                      "supported for MX weights, which quantise activations per 32 of K")
        return _mx_2d(x2, B, Bs)
    if B.dtype != E4M3:
        raise TypeError(f"finegrained_fp8: B must be float8_e4m3fn or int8 (packed FP4 with UE8M0 scales [N, K/32])"
                        f", got {B.dtype} with scales {tuple(Bs.shape)}")
    if is_tensor_wide(block_size, B):
        if activation_scale is not None:
            return _block_2d(x2, B, Bs.reshape(1, 1), list(B.shape), activation_scale)
        return _tensor_2d(x2, B, Bs)
    if len(block_size) != 2:
        raise ValueError(f"finegrained_fp8: block_size must be [block_n, block_k], got {block_size}")
    want = (_cdiv(B.shape[0], block_size[0]), _cdiv(B.shape[1], block_size[1]))
    if tuple(Bs.shape) != want:
        raise ValueError(f"finegrained_fp8: Bs shape {tuple(Bs.shape)} != expected {want} for block_size {block_size}")
    return _block_2d(x2, B, Bs, block_size, activation_scale)


def _check_a(A, K):
    if A.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError(f"finegrained_fp8: A must be bf16, fp16 or fp32 activations, got {A.dtype}")
    if A.shape[-1] != K:
        raise ValueError(f"finegrained_fp8: K mismatch: A has K={A.shape[-1]}, B has K={K}")


def _k_of(B):
    return B.shape[-1] * (2 if B.dtype == torch.int8 else 1)


def matmul_2d(A, B, Bs, block_size, output_dtype=None, activation_scale=None):
    """C [..., N] = A [..., K] · Bᵀ with dynamic (or static, ``activation_scale``) activation quantisation."""
    if B.dim() != 2:
        raise ValueError(f"finegrained_fp8.matmul_2d: B must be 2D [N, K], got shape {tuple(B.shape)}")
    K = _k_of(B)
    _check_a(A, K)
    out = _matmul_rows(A.reshape(-1, K), B, Bs, block_size, activation_scale)
    return out.to(output_dtype or A.dtype).reshape(*A.shape[:-1], B.shape[0])


def _per_expert(A, B, Bs, block_size, output_dtype, rows_of):
    """Run each expert's rows (``rows_of(e)``: index tensor or slice) through the 2D path; others stay 0."""
    if A.dim() != 2 or B.dim() != 3:
        raise ValueError(f"finegrained_fp8: A must be [S, K] and B [E, N, K], got {tuple(A.shape)} and "
                         f"{tuple(B.shape)}")
    _check_a(A, _k_of(B))
    C = A.new_zeros((A.shape[0], B.shape[1]), dtype=output_dtype or A.dtype)
    for e, rows in rows_of():
        C[rows] = _matmul_rows(A[rows], B[e], Bs[e], block_size).to(C.dtype)
    return C


def matmul_batched(A, B, Bs, expert_ids, block_size, output_dtype=None):
    """C[s] = A[s] · B[expert_ids[s]]ᵀ; rows with ``expert_ids[s] >= E`` (EP sentinels) are 0."""
    E = B.shape[0]

    def rows_of():
        ids = expert_ids.reshape(-1)
        for e in torch.unique(ids[(ids >= 0) & (ids < E)]).tolist():
            yield e, (ids == e).nonzero().reshape(-1)

    return _per_expert(A, B, Bs, block_size, output_dtype, rows_of)


def matmul_grouped(A, B, Bs, offsets, tokens_per_expert, block_size, output_dtype=None):
    """Rows sorted by expert: expert e owns rows [offsets[e-1], offsets[e]); rows past offsets[-1] are 0."""
    ends = offsets.reshape(-1).tolist()

    def rows_of():
        start = 0
        for e, end in enumerate(ends):
            if end > start:
                yield e, slice(start, end)
            start = end

    return _per_expert(A, B, Bs, block_size, output_dtype, rows_of)
