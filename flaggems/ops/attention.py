"""Scaled dot-product attention forward (flash attention): O = softmax(Q K^T * scale + mask) V, and its logsumexp.

One Triton kernel serves the ATen SDPA entry points:

- ``aten::_scaled_dot_product_flash_attention_for_cpu`` (what ``F.scaled_dot_product_attention`` reaches on
  CPU): float ``attn_mask`` of the query's dtype (or fp32 for half queries), 2-D or 4-D and broadcast to
  [B, H, L, S]; GQA (key/value with H / g heads, query head h reads kv head h // g); logsumexp in the
  computation dtype, shape [B, H, L] over a [B, L, H] buffer (torch's layout).
- ``aten::_scaled_dot_product_flash_attention`` (CUDA flash-attn, fp16/bf16): no mask, fp32 logsumexp [B, H, L], the
  rng_state / unused outputs as uint64 tensors; ``return_debug_mask=True`` and causal with L != S (flash-attn
  aligns that bottom-right) go to the native kernel.
- ``aten::_scaled_dot_product_efficient_attention`` (CUDA mem-efficient): float ``attn_bias`` of the query's
  dtype, value head dim may differ, logsumexp [B, H, ceil(L/32)*32] padded with +inf (or [B, H, 0]),
  output in a [B, L, H, Ev] buffer, philox seed/offset as int64 scalars.

Kernel: one program per (BLOCK_M query rows, batch*head); online softmax over BLOCK_N key blocks in the
natural-log domain (an exp2 rewrite would overflow ``finfo.min`` additive masks to -inf), fp32 accumulation,
head dims padded to the next power of two with masks, sequence tails masked, causal blocks above the diagonal
skipped, int64 offsets, any strides (transposed layouts are read in place). Causal is top-left aligned (key j
is visible to query i iff j <= i), as torch's ``is_causal``. Rows with no visible key return 0 and the op's
logsumexp convention (CPU: 0; mem-efficient: -inf). ``dropout_p`` must be 0, else the native kernel runs.

``sdpa_ref`` is the pure-torch reference (upcast math) used by the tests.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32})
MAX_HEAD_DIM = 256
_HALF = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------------------------------------------
# reference

def sdpa_ref(q, k, v, attn_mask=None, is_causal=False, scale=None, dtype=torch.float64):
    """(out, lse) of attention in ``dtype`` math. q [B, H, L, E], k [B, Hk, S, E], v [B, Hk, S, Ev] (H % Hk == 0).

    ``attn_mask``: bool (True = attend) or additive float, broadcastable to [B, H, L, S]. Causal is top-left.
    Rows with no visible key give out 0 and lse -inf (callers map lse to their op's convention).
    """
    q, k, v = (t.detach().to(dtype) for t in (q, k, v))
    H, Hk = q.shape[1], k.shape[1]
    if H != Hk:
        k = k.repeat_interleave(H // Hk, dim=1)
        v = v.repeat_interleave(H // Hk, dim=1)
    L, S = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    if attn_mask is not None:
        if attn_mask.dtype is torch.bool:
            s = s.masked_fill(~attn_mask, float("-inf"))
        else:
            s = s + attn_mask.to(dtype)
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    m = s.amax(-1, keepdim=True) if S else torch.full(s.shape[:-1] + (1,), float("-inf"), dtype=dtype)
    m_safe = torch.where(torch.isinf(m) & (m < 0), torch.zeros_like(m), m)
    p = torch.exp(s - m_safe)
    denom = p.sum(-1, keepdim=True)
    out = (p @ v) / torch.where(denom == 0, torch.ones_like(denom), denom)
    lse = (m_safe + torch.log(denom)).squeeze(-1)
    return out, lse


# --------------------------------------------------------------------------------------------------------------
# kernel

@triton.jit
def _attn_fwd_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, o_ptr, lse_ptr,
                     H, KV_GROUP, L, S, E, EV,
                     sqb, sqh, sql, sqe, skb, skh, sks, ske, svb, svh, svs, sve,
                     smb, smh, sml, sms, sob, soh, sol, soe, slb, slh, sll,
                     scale, empty_lse,
                     HAS_MASK: tl.constexpr, MASK_BOOL: tl.constexpr, CAUSAL: tl.constexpr,
                     WRITE_LSE: tl.constexpr, PRECISION: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = bh % H
    hk = (h // KV_GROUP).to(tl.int64)
    h = h.to(tl.int64)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rm64 = rm.to(tl.int64)
    rd = tl.arange(0, BLOCK_D).to(tl.int64)
    rdv = tl.arange(0, BLOCK_DV).to(tl.int64)
    rn0 = tl.arange(0, BLOCK_N)
    m_ok = rm < L
    d_ok = rd < E
    dv_ok = rdv < EV

    q = tl.load(q_ptr + b * sqb + h * sqh + rm64[:, None] * sql + rd[None, :] * sqe,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    k_base = k_ptr + b * skb + hk * skh
    v_base = v_ptr + b * svb + hk * svh
    mask_base = mask_ptr + b * smb + h * smh + rm64[:, None] * sml

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)

    hi = S
    if CAUSAL:
        # top-left causal: the last row of this block sees keys < (pid_m + 1) * BLOCK_M
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M)
    for start in range(0, hi, BLOCK_N):
        rn = start + rn0
        rn64 = rn.to(tl.int64)
        n_ok = rn < S
        # K^T tile [BLOCK_D, BLOCK_N] read through strides (no transpose copy)
        kt = tl.load(k_base + rn64[None, :] * sks + rd[:, None] * ske, mask=d_ok[:, None] & n_ok[None, :], other=0.0)
        s = tl.dot(q, kt, input_precision=PRECISION, out_dtype=tl.float32) * scale
        if HAS_MASK:
            mvals = tl.load(mask_base + rn64[None, :] * sms, mask=m_ok[:, None] & n_ok[None, :], other=0)
            if MASK_BOOL:
                s = tl.where(mvals != 0, s, float("-inf"))
            else:
                s = s + mvals.to(tl.float32)
        keep = n_ok[None, :]
        if CAUSAL:
            keep = keep & (rn[None, :] <= rm[:, None])
        s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # rows with nothing visible yet keep max -inf: shift by 0 so exp gives 0, never nan
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + rn64[:, None] * svs + rdv[None, :] * sve, mask=n_ok[:, None] & dv_ok[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION, out_dtype=tl.float32)
        m_i = m_new

    empty = l_i == 0.0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    tl.store(o_ptr + b * sob + h * soh + rm64[:, None] * sol + rdv[None, :] * soe,
             out.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & dv_ok[None, :])
    if WRITE_LSE:
        lse = tl.where(empty, empty_lse, m_i + tl.log(tl.where(empty, 1.0, l_i)))
        tl.store(lse_ptr + b * slb + h * slh + rm64 * sll, lse.to(lse_ptr.dtype.element_ty), mask=m_ok)


def _blocks(L: int, S: int, D: int, DV: int):
    cfg = runtime.config("attention", {})
    if runtime.interpreting():
        # the interpreter pays per program and per loop iteration, not per FLOP: few, large tiles
        bm = min(max(16, triton.next_power_of_2(L)), cfg.get("BLOCK_M", 128))
        bn = min(max(16, triton.next_power_of_2(S)), cfg.get("BLOCK_N", 256))
        return bm, bn, {}
    big = max(D, DV) > 128
    bm = cfg.get("BLOCK_M", 64 if big else 128)
    bn = cfg.get("BLOCK_N", 32 if big else 64)
    bm = min(bm, max(16, triton.next_power_of_2(L)))
    opts = {"num_warps": cfg.get("num_warps", 8 if max(D, DV) > 64 else 4), "num_stages": cfg.get("num_stages", 2)}
    return bm, bn, opts


def attention_into(q, k, v, out, lse=None, attn_mask=None, is_causal=False, scale=None, empty_lse=0.0):
    """out[b, h] = softmax(q[b, h] k[b, h // g]^T * scale + mask) v[b, h // g]; lse[b, h] its logsumexp.

    q [B, H, L, E], k [B, Hk, S, E], v [B, Hk, S, Ev] with H % Hk == 0; ``attn_mask`` bool (True = attend) or
    additive, broadcastable to [B, H, L, S]; ``out`` [B, H, L, Ev] and ``lse`` [B, H, L] with any strides.
    """
    B, H, L, E = q.shape
    Hk, S, EV = k.shape[1], k.shape[2], v.shape[3]
    if out.numel() == 0 and (lse is None or lse.numel() == 0):
        return out, lse
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    if attn_mask is not None:
        m4 = attn_mask.expand(B, H, L, S)
        m_strides = m4.stride()
    else:
        m4, m_strides = q, (0, 0, 0, 0)
    lse_t = lse if lse is not None else out
    l_strides = lse.stride() if lse is not None else (0, 0, 0)
    bm, bn, opts = _blocks(L, S, E, EV)
    bd = max(16, triton.next_power_of_2(E))
    bdv = max(16, triton.next_power_of_2(EV))
    grid = (triton.cdiv(L, bm), B * H)
    with runtime.device_guard(q):
        _attn_fwd_kernel[grid](
            q, k, v, m4, out, lse_t, H, H // Hk, L, S, E, EV,
            *q.stride(), *k.stride(), *v.stride(), *m_strides, *out.stride(), *l_strides,
            scale, float(empty_lse),
            HAS_MASK=attn_mask is not None, MASK_BOOL=attn_mask is not None and attn_mask.dtype is torch.bool,
            CAUSAL=bool(is_causal), WRITE_LSE=lse is not None, PRECISION="ieee",
            BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd, BLOCK_DV=bdv, **opts)
    return out, lse


def flash_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """(out, lse): out like q (dtype and layout), lse fp32 [B, H, L]; rows with no visible key give 0 / -inf."""
    B, H, L, _ = q.shape
    out = torch.empty(B, H, L, v.shape[3], dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, L, dtype=torch.float32, device=q.device)
    return attention_into(q, k, v, out, lse, attn_mask, is_causal, scale, empty_lse=float("-inf"))


# --------------------------------------------------------------------------------------------------------------
# ATen entry points

def _check_shapes(q, k, v, same_heads=False, same_value_dim=True):
    """A reason for the native kernel (None if our kernel takes these shapes). Inconsistent shapes the native
    kernel would read out of bounds on are raised here as RuntimeError."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "q/k/v must be 4-D"  # torch raises its own error
    if not (q.dtype == k.dtype == v.dtype):
        return "mixed dtypes"
    if q.shape[-1] != k.shape[-1] or (same_value_dim and v.shape[-1] != q.shape[-1]):
        return "head dims differ"
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        return f"head dim > {MAX_HEAD_DIM}"
    B, H = q.shape[0], q.shape[1]
    if k.shape[0] != B or v.shape[0] != B or k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
        raise RuntimeError(f"scaled_dot_product_attention: inconsistent shapes query {tuple(q.shape)}, "
                           f"key {tuple(k.shape)}, value {tuple(v.shape)}")
    if same_heads and k.shape[1] != H:
        return "key/value heads differ from query heads"
    if k.shape[1] == 0 or H % k.shape[1] != 0:
        raise RuntimeError(f"scaled_dot_product_attention: number of query heads {H} is not a multiple of the "
                           f"number of key/value heads {k.shape[1]}")
    return None


def _check_mask(mask, q, k, dtypes, dims=(2, 4)):
    if mask is None:
        return None
    if mask.dtype not in dtypes:
        return f"mask dtype {mask.dtype} not accepted for {q.dtype} queries"
    if mask.dim() not in dims:
        return f"mask must have {' or '.join(map(str, dims))} dims"
    full = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    try:
        if tuple(torch.broadcast_shapes(mask.shape, full)) != full:
            return "mask not broadcastable to [B, H, L, S]"
    except RuntimeError:
        return "mask not broadcastable to [B, H, L, S]"
    if mask.device != q.device:
        return "mask on another device"
    return None


def _supports_cpu(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    if dropout_p != 0:
        return "dropout_p > 0"
    r = _check_shapes(query, key, value)
    if r:
        return r
    accepted = (query.dtype, torch.float32) if query.dtype in _HALF else (query.dtype,)
    return _check_mask(attn_mask, query, key, accepted)


@implement("aten::_scaled_dot_product_flash_attention_for_cpu.default", kind="triton", dtypes=FLOAT,
           supports=_supports_cpu)
def sdpa_flash_for_cpu(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    B, H, L, _ = query.shape
    # torch: output like the query (dense permutations kept), logsumexp [B, H, L] over a [B, L, H] buffer
    out = torch.empty_like(query)
    lse = torch.empty(B, L, H, dtype=ew.compute_dtype(query.dtype), device=query.device).transpose(1, 2)
    if key.shape[2] == 0:  # torch's own kernel divides by zero here; no keys: out 0, lse 0 (its masked-row value)
        return out.zero_(), lse.zero_()
    return attention_into(query, key, value, out, lse, attn_mask, is_causal, scale, empty_lse=0.0)


def _supports_flash(query, key, value, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None):
    if dropout_p != 0:
        return "dropout_p > 0"
    if return_debug_mask:
        return "return_debug_mask"
    r = _check_shapes(query, key, value)
    if r:
        return r
    if is_causal and query.shape[2] != key.shape[2]:
        return "causal with L != S (flash-attn aligns it bottom-right)"
    if key.shape[2] == 0:
        return "no keys"
    return None


if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention"):
    # flash-attn takes fp16/bf16 only: fp32 goes to the native kernel (which raises on CUDA)
    @implement("aten::_scaled_dot_product_flash_attention.default", kind="triton", dtypes=_HALF,
               supports=_supports_flash)
    def sdpa_flash(query, key, value, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None):
        B, H, L, _ = query.shape
        S = key.shape[2]
        out = torch.empty_like(query)
        lse = torch.empty(B, H, L, dtype=torch.float32, device=query.device)
        attention_into(query, key, value, out, lse, None, is_causal, scale, empty_lse=float("inf"))
        # no dropout: the rng state is never read by the backward; torch's layout (uint64 [2] and [])
        rng_state = torch.zeros(2, dtype=torch.uint64, device=query.device)
        unused = torch.zeros((), dtype=torch.uint64, device=query.device)
        debug = torch.empty(0, dtype=query.dtype, device=query.device)
        # cum_seq_q / cum_seq_k are undefined tensors for dense (non-nested) inputs, as in torch
        return out, lse, None, None, L, S, rng_state, unused, debug


def _supports_efficient(query, key, value, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *,
                        scale=None):
    if dropout_p != 0:
        return "dropout_p > 0"
    r = _check_shapes(query, key, value, same_heads=True, same_value_dim=False)
    if r:
        return r
    if key.shape[2] == 0:
        return "no keys"
    return _check_mask(attn_bias, query, key, (query.dtype,), dims=(1, 2, 3, 4))


if hasattr(torch.ops.aten, "_scaled_dot_product_efficient_attention"):
    @implement("aten::_scaled_dot_product_efficient_attention.default", kind="triton", dtypes=FLOAT,
               supports=_supports_efficient)
    def sdpa_efficient(query, key, value, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *,
                       scale=None):
        B, H, L, _ = query.shape
        EV = value.shape[3]
        # torch: output in a [B, L, H, Ev] buffer; logsumexp [B, H, ceil(L/32)*32] padded with +inf
        out = torch.empty(B, L, H, EV, dtype=query.dtype, device=query.device).transpose(1, 2)
        lse_len = triton.cdiv(L, 32) * 32 if compute_log_sumexp else 0
        lse = torch.full((B, H, lse_len), float("inf"), dtype=torch.float32, device=query.device)
        attention_into(query, key, value, out, lse[:, :, :L] if compute_log_sumexp else None, attn_bias,
                       is_causal, scale, empty_lse=float("-inf"))
        seed = torch.zeros((), dtype=torch.int64)
        offset = torch.zeros((), dtype=torch.int64)
        return out, lse, seed, offset
