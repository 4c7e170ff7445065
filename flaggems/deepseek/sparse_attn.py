"""DeepSeek-V4 sparse attention over gathered top-k KV rows (MQA with K = V), with an attention sink.

For batch b, query m, head h, with I = topk_idxs[b, m, :] and J = {j : 0 <= I_j < n} (index -1 = skip):

    s_j    = softmax_scale * (q[b,m,h,:] . kv[b, I_j, :])                 (fp32, j in J)
    o[b,m,h,:] = sum_{j in J} exp(s_j) * kv[b, I_j, :] / (sum_{j in J} exp(s_j) + exp(attn_sink[h]))

The sink is a virtual logit with a zero value: it only enlarges the denominator. A row with no valid
index returns zeros (never NaN). Output dtype = q dtype; kv must have q's dtype.

Non-finite values follow the torch formulation of that formula, softmax(cat([s_J, sink]))[:|J|] @ kv[I_J]
(the model's eager path): a NaN score (NaN in q or in a gathered kv row) or a NaN sink makes the head's output
NaN; a +inf logit (score or sink) too (torch's softmax: inf - inf); a -inf score only drops its term; an
inf in a gathered kv row reaches the output through p·kv in IEEE arithmetic (0·inf = NaN); a skipped index
(-1) contributes nothing, whatever its kv row holds.

Kernel: one program per (query, block of heads); it walks the K indices in blocks, gathers the rows,
and keeps an online softmax (running max / sum) in fp32. As in the reference TileLang kernel the
unnormalised probabilities are cast to the kv dtype before the P.kv product (tensor-core path on GPU).
Indices outside [0, n) are masked (skipped) in the kernel, so a bad index can never read out of
bounds; on host tensors the check additionally rejects them with a ValueError.
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
from flaggems.runtime.checks import check_same_device, check_tensor, values_checkable

OP = "flaggems::sparse_attn"
SCHEMA = "(Tensor q, Tensor kv, Tensor attn_sink, Tensor topk_idxs, float softmax_scale) -> Tensor"
MAX_HEAD_DIM = 1024
_FLOATS = (torch.bfloat16, torch.float16, torch.float32)


def sparse_attn_check(q, kv, attn_sink, topk_idxs, softmax_scale):
    op = "sparse_attn"
    check_tensor(op, "q", q, _FLOATS, 4)
    check_tensor(op, "kv", kv, _FLOATS, 3)
    check_tensor(op, "attn_sink", attn_sink, (torch.float32,), 1)
    check_tensor(op, "topk_idxs", topk_idxs, (torch.int32, torch.int64), 3)
    check_same_device(op, q=q, kv=kv, attn_sink=attn_sink, topk_idxs=topk_idxs)
    b, m, h, d = q.shape
    if kv.dtype != q.dtype:
        raise TypeError(f"sparse_attn: kv dtype {kv.dtype} must equal q dtype {q.dtype}")
    if kv.shape[0] != b or kv.shape[2] != d:
        raise ValueError(f"sparse_attn: kv must be [b={b}, n, d={d}], got {tuple(kv.shape)}")
    if attn_sink.shape[0] != h:
        raise ValueError(f"sparse_attn: attn_sink must be [h={h}], got {tuple(attn_sink.shape)}")
    if topk_idxs.shape[0] != b or topk_idxs.shape[1] != m:
        raise ValueError(f"sparse_attn: topk_idxs must be [b={b}, m={m}, K], got {tuple(topk_idxs.shape)}")
    if d > MAX_HEAD_DIM:
        raise ValueError(f"sparse_attn: head dim d={d} exceeds the supported maximum {MAX_HEAD_DIM}")
    if not isinstance(softmax_scale, numbers.Real) or isinstance(softmax_scale, bool) \
            or not math.isfinite(float(softmax_scale)):
        raise TypeError(f"sparse_attn: softmax_scale must be a finite float, got {softmax_scale!r}")
    if values_checkable(topk_idxs):
        n = kv.shape[1]
        lo, hi = int(topk_idxs.min()), int(topk_idxs.max())
        if lo < -1 or hi >= n:
            raise ValueError(f"sparse_attn: topk_idxs values must be in [-1, n={n}), got range [{lo}, {hi}]")


def sparse_attn_ref(q, kv, attn_sink, topk_idxs, softmax_scale):
    """Pure-torch reference in fp64 (indices outside [0, n) are skipped like -1)."""
    b, m, h, d = q.shape
    n, k = kv.shape[1], topk_idxs.shape[2]
    idx = topk_idxs.long()
    valid = (idx >= 0) & (idx < n)
    qf = q.double()
    if n == 0 or k == 0:
        g = qf.new_zeros((b, m, k, d))
    else:
        g = kv.double()[torch.arange(b, device=kv.device)[:, None, None], idx.clamp(0, n - 1)]
    g = torch.where(valid[..., None], g, 0.0)            # a skipped index gathers nothing (not row 0)
    s = torch.einsum("bmhd,bmkd->bmhk", qf, g) * float(softmax_scale)
    s = s.masked_fill(~valid[:, :, None, :], float("-inf"))
    sink = attn_sink.double().view(1, 1, h, 1).expand(b, m, h, 1)
    p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :k]
    o = torch.einsum("bmhk,bmkd->bmhd", p, g)
    return torch.where(valid.any(dim=-1)[:, :, None, None], o, 0.0).to(q.dtype)


def _sparse_attn_fake(q, kv, attn_sink, topk_idxs, softmax_scale):
    return q.new_empty(q.shape)


custom_op(OP, SCHEMA, reference=sparse_attn_ref, fake=_sparse_attn_fake, check=sparse_attn_check)


@triton.jit
def _sparse_attn_kernel(
    q_ptr, kv_ptr, sink_ptr, idx_ptr, o_ptr,
    M, H, D, N, K, scale, s_sink,
    s_qb, s_qm, s_qh, s_qd,
    s_kb, s_kn, s_kd,
    s_ib, s_im, s_ik,
    s_ob, s_om, s_oh, s_od,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, IEEE: tl.constexpr,
):
    pid = tl.program_id(0)
    b = (pid // M).to(tl.int64)
    m = (pid % M).to(tl.int64)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    h_mask = offs_h < H
    d_mask = offs_d < D

    q = tl.load(q_ptr + b * s_qb + m * s_qm + offs_h[:, None] * s_qh + offs_d[None, :] * s_qd,
                mask=h_mask[:, None] & d_mask[None, :], other=0.0)
    sink = tl.load(sink_ptr + offs_h * s_sink, mask=h_mask, other=float("-inf")).to(tl.float32)

    m_i = tl.full([BLOCK_H], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    n_valid = 0
    idx_base = idx_ptr + b * s_ib + m * s_im
    kv_base = kv_ptr + b * s_kb
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        idx = tl.load(idx_base + offs_k * s_ik, mask=offs_k < K, other=-1)
        # Anything outside [0, n) is skipped, not clamped: a bad index must never become a real row.
        valid = (idx >= 0) & (idx < N)
        n_valid += tl.sum(valid.to(tl.int32), axis=0)
        row = tl.where(valid, idx, 0).to(tl.int64)
        kv = tl.load(kv_base + row[:, None] * s_kn + offs_d[None, :] * s_kd,
                     mask=valid[:, None] & d_mask[None, :], other=0.0)
        if IEEE:
            s = tl.dot(q, tl.trans(kv), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(kv))
        s = tl.where(valid[None, :], s * scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # While a row has seen no valid index its max is -inf; exp(-inf - -inf) would be NaN, so the
        # exponent base falls back to 0 (every term is then exp(-inf) = 0).
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if IEEE:
            pv = tl.dot(p.to(kv.dtype), kv, input_precision="ieee")
        else:
            pv = tl.dot(p.to(kv.dtype), kv)
        acc = acc * alpha[:, None] + pv
        m_i = m_new

    # The sink joins the max as in torch's softmax over [scores, sink]: a +inf sink gives inf - inf = NaN, a NaN
    # one NaN, and all -inf logits NaN (exp(-inf - -inf)). acc and l_i are relative to m_i (or to 0 while
    # m_i = -inf, where both are 0 up to 0·kv terms, and a = exp(-inf - m2) = 0 keeps them out).
    m2 = tl.maximum(m_i, sink)
    a = tl.exp(m_i - m2)
    denom = l_i * a + tl.exp(sink - m2)
    # No valid index at all: the output is defined as 0 (whatever the sink).
    out = tl.where(n_valid > 0, acc * (a / denom)[:, None], 0.0)
    tl.store(o_ptr + b * s_ob + m * s_om + offs_h[:, None] * s_oh + offs_d[None, :] * s_od,
             out.to(o_ptr.dtype.element_ty), mask=h_mask[:, None] & d_mask[None, :])


def _config(h: int, d: int, k: int, dtype: torch.dtype) -> dict:
    """BLOCK_H, BLOCK_K and num_warps (config key "sparse_attn"); BLOCK_D always covers the head dim."""
    block_d = max(16, next_pow2(d))
    if interpreting():
        # One program per query with every head and a wide index block: few programs, few iterations.
        default = {"BLOCK_H": max(16, next_pow2(h)), "BLOCK_K": max(16, min(256, next_pow2(k))), "num_warps": 4}
    else:
        default = {"BLOCK_H": 16 if h <= 16 else 32 if block_d <= 256 else 16,
                   "BLOCK_K": 64 if block_d <= 128 else 32 if block_d <= 512 else 16,
                   "num_warps": 4 if block_d <= 128 else 8}
    return launch_config("sparse_attn", dtype, default)


@implement(OP, kind="triton", dtypes={torch.bfloat16, torch.float16, torch.float32, torch.int32, torch.int64})
def _sparse_attn_triton(q, kv, attn_sink, topk_idxs, softmax_scale):
    """The Triton launcher (the op's check has run). Any strides are accepted."""
    b, m, h, d = q.shape
    n, k = kv.shape[1], topk_idxs.shape[2]
    out = torch.empty((b, m, h, d), dtype=q.dtype, device=q.device)
    if out.numel() == 0:
        return out
    cfg = _config(h, d, k, q.dtype)
    grid = (b * m, triton.cdiv(h, cfg["BLOCK_H"]))
    with device_guard(q):
        _sparse_attn_kernel[grid](
            q, kv, attn_sink, topk_idxs, out,
            m, h, d, n, k, float(softmax_scale), attn_sink.stride(0),
            *q.stride(), *kv.stride(), *topk_idxs.stride(), *out.stride(),
            BLOCK_H=cfg["BLOCK_H"], BLOCK_D=max(16, next_pow2(d)), BLOCK_K=cfg["BLOCK_K"],
            IEEE=q.dtype == torch.float32, **split_launch_options(cfg)[1],
        )
    return out


sparse_attn_triton = checked(sparse_attn_check, _sparse_attn_triton)
