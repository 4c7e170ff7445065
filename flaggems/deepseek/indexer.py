"""DeepSeek-V4 lightning indexer: head-weighted ReLU scores over the compressed keys, then top-k.

    flaggems::indexer_topk(Tensor q, Tensor k, Tensor weights, int topk, int offset=0,
                           int causal_ratio=0, int start_pos=0) -> Tensor

q [B,S,H,D], k [B,T,D] (same float dtype), weights [B,S,H] (fp32, bf16 or fp16). With ρ the rounding to
the dtype the model's torch ops produce (einsum output = q dtype; product and head-sum = promote(q, w)):

    score[b,s,t] = ρ( Σ_h ρ( relu(ρ(q[b,s,h,:] · k[b,t,:])) · w[b,s,h] ) )        (sums in fp32)
    masked       = causal_ratio > 0  and  t >= (start_pos + s + 1) // causal_ratio   → score = -inf
    out[b,s,:]   = top-kk of score[b,s,:] with kk = min(topk, T), sorted by descending score,
                   ties broken by the lower t first; entry = t + offset, or -1 for a masked pick.  (int32)
    NaN (a NaN or Inf·0 in q, k or weights; relu keeps NaN) ranks above every score, as in torch.topk,
    NaNs among themselves by lower t; a masked position is -inf whatever its score.

So with bf16 q/k/weights (the model) the scores are bf16 values, exactly as the model's bf16 einsum.

Mapping onto DeepSeek-V4's Indexer.forward (§3.6), k = indexer kv_cache[:B, :end_pos // ratio]:
    prefill (start_pos = 0): indexer_topk(q, k, w, index_topk, offset=S,   causal_ratio=ratio)
    decode:                  indexer_topk(q, k, w, index_topk, offset=128)            (no mask)
(start_pos only shifts the causal limit; the model itself masks only its start_pos = 0 prefill.)

Kernels: (1) scores, tiled over (query rows x heads) x keys with a tl.dot, masked and stored in an fp32
scratch [B,S,T]; (2) top-kk per query row on int64 keys (order-preserving score bits << 32 | 2^31-1-t),
unique per row, so ordering keys orders by score and then by lower index. On a GPU a running top-kk over
T: each chunk is bitonic-sorted (tl.sort) and merged into the buffer ("sort, keep the first kk"). Under the
interpreter, where tl.sort costs ~1 µs per element per stage, each key's rank (= number of larger keys,
O(T^2) vectorised compares) is its output slot if below kk. Both give exactly the stable-sort order.
"""
from __future__ import annotations

import numbers

import torch
import triton
import triton.language as tl

from flaggems.deepseek.checked import checked
from flaggems.runtime import launch_config
from flaggems.registry import custom_op, implement
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.runtime.autotune import split_launch_options
from flaggems.runtime.checks import check_same_device, check_tensor

OP = "flaggems::indexer_topk"
SCHEMA = ("(Tensor q, Tensor k, Tensor weights, int topk, int offset=0, int causal_ratio=0, "
          "int start_pos=0) -> Tensor")
MAX_TOPK = 4096
_FLOATS = (torch.bfloat16, torch.float16, torch.float32)


def indexer_topk_check(q, k, weights, topk, offset=0, causal_ratio=0, start_pos=0):
    op = "indexer_topk"
    check_tensor(op, "q", q, _FLOATS, 4)
    check_tensor(op, "k", k, _FLOATS, 3)
    check_tensor(op, "weights", weights, _FLOATS, 3)
    check_same_device(op, q=q, k=k, weights=weights)
    B, S, H, D = q.shape
    if k.dtype != q.dtype:
        raise TypeError(f"indexer_topk: k dtype {k.dtype} must equal q dtype {q.dtype}")
    if k.shape[0] != B or k.shape[2] != D:
        raise ValueError(f"indexer_topk: k must be [B={B}, T, D={D}], got {tuple(k.shape)}")
    if tuple(weights.shape) != (B, S, H):
        raise ValueError(f"indexer_topk: weights must be [B={B}, S={S}, H={H}], got {tuple(weights.shape)}")
    for name, v in (("topk", topk), ("offset", offset), ("causal_ratio", causal_ratio), ("start_pos", start_pos)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"indexer_topk: {name} must be an int, got {v!r}")
    if not 0 <= topk <= MAX_TOPK:
        raise ValueError(f"indexer_topk: topk must be in [0, {MAX_TOPK}], got {topk}")
    if causal_ratio < 0 or start_pos < 0:
        raise ValueError(f"indexer_topk: causal_ratio and start_pos must be >= 0, got {causal_ratio}, {start_pos}")
    T = k.shape[1]
    if offset < 0 or offset + T > 2**31 - 1:
        raise ValueError(f"indexer_topk: offset={offset} with T={T} keys does not fit int32 indices")
    if H > 256 or D > 1024:
        raise ValueError(f"indexer_topk: H={H} (max 256) or D={D} (max 1024) too large for the kernel")


def _round_flags(q, weights):
    low = q.dtype != torch.float32
    return low, low and weights.dtype == q.dtype


def indexer_scores_ref(q, k, weights, causal_ratio=0, start_pos=0):
    """Scores with the model's roundings (fp32 accumulation, then rounded where the model's bf16 ops round)."""
    S, T = q.shape[1], k.shape[1]
    round_qk, round_prod = _round_flags(q, weights)
    s = torch.einsum("bshd,btd->bsht", q.float(), k.float())
    if round_qk:
        s = s.to(q.dtype).float()
    prod = s.relu() * weights.float()[..., None]
    if round_prod:
        prod = prod.to(q.dtype).float()
    score = prod.sum(dim=2)
    if round_prod:
        score = score.to(q.dtype).float()
    score = score + 0.0
    if causal_ratio > 0:
        limit = (start_pos + torch.arange(S, device=q.device) + 1) // causal_ratio
        masked = torch.arange(T, device=q.device)[None, :] >= limit[:, None]
        score = score.masked_fill(masked[None], float("-inf"))
    return score


def indexer_topk_ref(q, k, weights, topk, offset=0, causal_ratio=0, start_pos=0):
    """Pure-torch reference; a stable descending sort gives the same tie order (lower t first)."""
    T = k.shape[1]
    kk = min(int(topk), T)
    score = indexer_scores_ref(q, k, weights, causal_ratio, start_pos)
    vals, idx = torch.sort(score, dim=-1, descending=True, stable=True)
    vals, idx = vals[..., :kk], idx[..., :kk]
    return torch.where(torch.isneginf(vals), -1, idx + offset).to(torch.int32)


def _indexer_topk_fake(q, k, weights, topk, offset=0, causal_ratio=0, start_pos=0):
    return q.new_empty((q.shape[0], q.shape[1], min(int(topk), k.shape[1])), dtype=torch.int32)


custom_op(OP, SCHEMA, reference=indexer_topk_ref, fake=_indexer_topk_fake, check=indexer_topk_check)


@triton.jit
def _indexer_score_kernel(
    q_ptr, k_ptr, w_ptr, s_ptr,
    S, H, D, T, n_sblocks, ratio, start_pos,
    s_qb, s_qs, s_qh, s_qd,
    s_kb, s_kt, s_kd,
    s_wb, s_ws, s_wh,
    s_sb, s_ss, s_st,
    BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr,
    ROUND_QK: tl.constexpr, ROUND_PROD: tl.constexpr, CAUSAL: tl.constexpr, IEEE: tl.constexpr,
):
    pid = tl.program_id(0)
    b = (pid // n_sblocks).to(tl.int64)
    offs_s = (pid % n_sblocks) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    s_mask = offs_s < S
    h_mask = offs_h < H
    t_mask = offs_t < T

    q = tl.load(q_ptr + b * s_qb + offs_s[:, None, None].to(tl.int64) * s_qs + offs_h[None, :, None] * s_qh
                + offs_d[None, None, :] * s_qd,
                mask=s_mask[:, None, None] & h_mask[None, :, None] & (offs_d < D)[None, None, :], other=0.0)
    k = tl.load(k_ptr + b * s_kb + offs_t[:, None].to(tl.int64) * s_kt + offs_d[None, :] * s_kd,
                mask=t_mask[:, None] & (offs_d < D)[None, :], other=0.0)
    # (query, head) pairs form the M dimension of one dot, so the head sum stays in registers.
    q2 = tl.reshape(q, [BLOCK_S * BLOCK_H, BLOCK_D])
    if IEEE:
        qk = tl.dot(q2, tl.trans(k), input_precision="ieee")
    else:
        qk = tl.dot(q2, tl.trans(k))
    # Roundings reproduce the model's bf16 einsum / multiply / sum so the top-k sees the same scores.
    if ROUND_QK:
        qk = qk.to(q_ptr.dtype.element_ty).to(tl.float32)
    # relu as torch's: NaN stays NaN (a GPU's plain max would return the 0 operand).
    qk = tl.reshape(tl.maximum(qk, 0.0, propagate_nan=tl.PropagateNan.ALL), [BLOCK_S, BLOCK_H, BLOCK_T])
    w = tl.load(w_ptr + b * s_wb + offs_s[:, None].to(tl.int64) * s_ws + offs_h[None, :] * s_wh,
                mask=s_mask[:, None] & h_mask[None, :], other=0.0).to(tl.float32)
    prod = qk * w[:, :, None]
    if ROUND_PROD:
        prod = prod.to(q_ptr.dtype.element_ty).to(tl.float32)
    score = tl.sum(prod, axis=1)
    if ROUND_PROD:
        score = score.to(q_ptr.dtype.element_ty).to(tl.float32)
    # -0.0 and +0.0 must rank equal in the integer keys of the top-k kernel.
    score = score + 0.0
    if CAUSAL:
        limit = (start_pos + offs_s + 1) // ratio
        score = tl.where(offs_t[None, :] >= limit[:, None], float("-inf"), score)
    tl.store(s_ptr + b * s_sb + offs_s[:, None].to(tl.int64) * s_ss + offs_t[None, :] * s_st, score,
             mask=s_mask[:, None] & t_mask[None, :])


@triton.jit
def _score_keys(sc, offs):
    # One int64 per element, unique per row, ordered by (score, then lower t): the high word is the fp32
    # score with the magnitude bits of negatives flipped (signed-integer order = float order), the low
    # word 2^31-1-t. NaN of either sign gets the largest high word: torch.topk / a descending sort put NaN
    # first (the sign bit of a NaN would otherwise send -NaN below -inf).
    bits = sc.to(tl.int32, bitcast=True)
    ordered = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    ordered = tl.where(sc != sc, 0x7FFFFFFF, ordered)
    return (ordered.to(tl.int64) << 32) | (0x7FFFFFFF - offs).to(tl.int64)


@triton.jit
def _decode_keys(key, T, offset):
    hi = (key >> 32).to(tl.int32)
    t = 0x7FFFFFFF - (key & 0x7FFFFFFF).to(tl.int32)
    neg_inf_key = -2139095041  # 0xFF800000 ^ 0x7FFFFFFF as int32: the key of a masked (-inf) score
    valid = (hi != neg_inf_key) & (t >= 0) & (t < T)
    return tl.where(valid, t + offset, -1)


@triton.jit
def _indexer_topk_sort_kernel(
    s_ptr, o_ptr, R, T, KK, offset,
    s_row, o_row,
    BLOCK_R: tl.constexpr, KB: tl.constexpr, CHUNK: tl.constexpr,
):
    """Running top-KB per row by bitonic sorts (GPU path; tl.sort is very slow in the interpreter)."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_mask = offs_r < R
    rows = offs_r.to(tl.int64)
    # Below every real key (a real key's high word is at least the -inf / -NaN encoding > INT32_MIN).
    pad = tl.full([BLOCK_R, KB], 1, tl.int64) << 63
    best = pad
    for t0 in range(0, T, CHUNK):
        offs = t0 + tl.arange(0, CHUNK)
        inb = r_mask[:, None] & (offs < T)[None, :]
        sc = tl.load(s_ptr + rows[:, None] * s_row + offs[None, :], mask=inb, other=float("-inf"))
        key = tl.where(inb, _score_keys(sc, offs[None, :]), tl.full([BLOCK_R, CHUNK], 1, tl.int64) << 63)
        srt = tl.sort(key, dim=1, descending=True)
        # After a descending sort, block 0 of the [R, CHUNK/KB, KB] view is the maximum over blocks.
        top = tl.max(tl.reshape(srt, [BLOCK_R, CHUNK // KB, KB]), axis=1)
        both = tl.sort(tl.reshape(tl.join(best, top), [BLOCK_R, 2 * KB]), dim=1, descending=True)
        best = tl.max(tl.reshape(both, [BLOCK_R, 2, KB]), axis=1)
    out = tl.where(best != pad, _decode_keys(best, T, offset), -1)
    offs_k = tl.arange(0, KB)
    tl.store(o_ptr + rows[:, None] * o_row + offs_k[None, :], out,
             mask=r_mask[:, None] & (offs_k < KK)[None, :])


@triton.jit
def _indexer_topk_rank_kernel(
    s_ptr, o_ptr, R, T, KK, offset,
    s_row, o_row,
    BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
):
    """Top-KK per row by ranks: rank(i) = #{j : key_j > key_i}; element i goes to slot rank(i) if < KK.

    O(T^2) comparisons but only builtin vectorised ops: the interpreter path."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_mask = offs_r < R
    rows = offs_r.to(tl.int64)
    for i0 in range(0, T, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        in_i = r_mask[:, None] & (offs_i < T)[None, :]
        sc_i = tl.load(s_ptr + rows[:, None] * s_row + offs_i[None, :], mask=in_i, other=float("-inf"))
        key_i = _score_keys(sc_i, offs_i[None, :])
        rank = tl.zeros([BLOCK_R, BLOCK_I], tl.int32)
        for j0 in range(0, T, BLOCK_J):
            offs_j = j0 + tl.arange(0, BLOCK_J)
            in_j = r_mask[:, None] & (offs_j < T)[None, :]
            sc_j = tl.load(s_ptr + rows[:, None] * s_row + offs_j[None, :], mask=in_j, other=float("-inf"))
            key_j = _score_keys(sc_j, offs_j[None, :])
            beats = (key_j[:, None, :] > key_i[:, :, None]) & in_j[:, None, :]
            rank += tl.sum(beats.to(tl.int32), axis=2)
        # Keys are unique per row, so the ranks of a row are a permutation of 0..T-1: each of the
        # first KK slots is written exactly once.
        tl.store(o_ptr + rows[:, None] * o_row + rank, _decode_keys(key_i, T, offset),
                 mask=in_i & (rank < KK))


def _score_config(S: int, H: int, D: int, T: int, dtype: torch.dtype) -> dict:
    """BLOCK_S (query rows), BLOCK_T (keys) and num_warps, config key "indexer_score"; BLOCK_H / BLOCK_D cover
    every head and feature, so BLOCK_S x BLOCK_H is the M dimension of the score dot."""
    block_h, block_d = next_pow2(H), max(16, next_pow2(D))
    if interpreting():
        block_t = max(16, min(256, next_pow2(T)))
        block_s = max(1, min(next_pow2(S), (1 << 20) // (block_h * block_t * max(block_d, 64) // 64)))
    else:
        block_t = 64
        block_s = max(1, 64 // block_h)
    return launch_config("indexer_score", dtype, {"BLOCK_S": block_s, "BLOCK_T": block_t, "num_warps": 4})


def indexer_scores(q, k, weights, causal_ratio=0, start_pos=0):
    """Triton scores [B,S,T] fp32 (holding bf16 values for bf16 inputs), masked with -inf. Launcher of kernel 1."""
    B, S, H, D = q.shape
    T = k.shape[1]
    scores = torch.empty((B, S, T), dtype=torch.float32, device=q.device)
    if scores.numel() == 0:
        return scores
    cfg = _score_config(S, H, D, T, q.dtype)
    block_s, block_t = cfg["BLOCK_S"], cfg["BLOCK_T"]
    n_sb = triton.cdiv(S, block_s)
    round_qk, round_prod = _round_flags(q, weights)
    with device_guard(q):
        _indexer_score_kernel[(B * n_sb, triton.cdiv(T, block_t))](
            q, k, weights, scores,
            S, H, D, T, n_sb, max(causal_ratio, 1), start_pos,
            *q.stride(), *k.stride(), *weights.stride(), *scores.stride(),
            BLOCK_S=block_s, BLOCK_H=next_pow2(H), BLOCK_D=max(16, next_pow2(D)), BLOCK_T=block_t,
            ROUND_QK=round_qk, ROUND_PROD=round_prod, CAUSAL=causal_ratio > 0, IEEE=q.dtype == torch.float32,
            **split_launch_options(cfg)[1],
        )
    return scores


def _topk_from_scores(scores, out, offset, sort):
    """Kernel 2 on a [B,S,T] score scratch into out [B,S,kk] (both contiguous)."""
    T, kk = scores.shape[2], out.shape[2]
    rows = scores.shape[0] * scores.shape[1]
    if sort:
        # config key "indexer_topk_sort": CHUNK keys are sorted per step (at least KB, the kept top-kk)
        kb = max(16, next_pow2(kk))
        chunk = max(kb, 1024) if not interpreting() else max(kb, min(256, next_pow2(T)))
        cfg = launch_config("indexer_topk_sort", scores.dtype,
                            {"BLOCK_R": 1, "CHUNK": chunk, "num_warps": 4 if chunk <= 1024 else 8})
        with device_guard(scores):
            _indexer_topk_sort_kernel[(triton.cdiv(rows, cfg["BLOCK_R"]),)](
                scores, out, rows, T, kk, int(offset), T, kk,
                BLOCK_R=cfg["BLOCK_R"], KB=kb, CHUNK=max(kb, cfg["CHUNK"]), **split_launch_options(cfg)[1],
            )
    else:
        # config key "indexer_topk_rank". Many rows per program and wide tiles: the interpreter pays per tl op,
        # not per element.
        bi = bj = max(16, min(512, next_pow2(T)))
        cfg = launch_config("indexer_topk_rank", scores.dtype,
                            {"BLOCK_R": max(1, min(next_pow2(rows), (1 << 20) // (bi * bj))), "BLOCK_I": bi,
                             "BLOCK_J": bj})
        with device_guard(scores):
            _indexer_topk_rank_kernel[(triton.cdiv(rows, cfg["BLOCK_R"]),)](
                scores, out, rows, T, kk, int(offset), T, kk,
                BLOCK_R=cfg["BLOCK_R"], BLOCK_I=cfg["BLOCK_I"], BLOCK_J=cfg["BLOCK_J"],
                **split_launch_options(cfg)[1],
            )
    return out


@implement(OP, kind="triton", dtypes=set(_FLOATS))
def _indexer_topk_triton(q, k, weights, topk, offset=0, causal_ratio=0, start_pos=0):
    """The Triton launcher (the op's check has run): score kernel, then top-k kernel. Any strides."""
    B, S = q.shape[:2]
    T = k.shape[1]
    kk = min(int(topk), T)
    out = torch.empty((B, S, kk), dtype=torch.int32, device=q.device)
    if out.numel() == 0:
        return out
    scores = indexer_scores(q, k, weights, causal_ratio, start_pos)
    _topk_from_scores(scores, out, offset, sort=not interpreting())
    return out


indexer_topk_triton = checked(indexer_topk_check, _indexer_topk_triton)
