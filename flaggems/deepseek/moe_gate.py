"""DeepSeek-V4 MoE gate: score function, biased expert choice, unbiased renormalised weights.

    flaggems::moe_gate(Tensor logits, Tensor? bias, int topk, str score_func="sqrtsoftplus",
                       float route_scale=1.0) -> (Tensor weights, Tensor indices)
    flaggems::moe_gate_hash(Tensor logits, Tensor tid2eid, Tensor input_ids, str score_func="sqrtsoftplus",
                            float route_scale=1.0) -> (Tensor weights, Tensor indices)

logits [T, E] (fp32 / bf16 / fp16, computed in fp32), bias [E] fp32 or None. With x = logits.float():

    s   = sqrt(softplus(x))          ("sqrtsoftplus", softplus with torch's threshold-20 rule)
        | sigmoid(x)                 ("sigmoid")
        | softmax(x, dim=-1)         ("softmax")
    idx = top-k of (s + bias)        (moe_gate; bias changes the choice only; ties -> lower expert id)
        | tid2eid[input_ids]         (moe_gate_hash; hash routing, no bias, no top-k)
    w   = s.gather(-1, idx);  w /= w.sum(-1)  unless score_func == "softmax";  w *= route_scale

weights [T, k] fp32; indices [T, k] **int64** for both ops (torch.topk's dtype, which the non-hash model
path produces; the hash path's int32 table values are widened). Choice order: descending biased score.

Non-finite values follow torch (the model's ``topk`` and arithmetic): a NaN biased score (a NaN logit or bias)
ranks above every number, as in torch.topk / a descending sort, NaNs among themselves by lower expert id; the
weights are IEEE arithmetic of the formula, so a chosen NaN score makes the token's weights NaN (renormalised
score functions) while a NaN bias only moves the choice.

Hash routing with an input id outside [0, vocab) or a table entry outside [0, E): the token's indices are -1
and its weights NaN (no out-of-bounds read). Where the values live in host memory (the C++ kernel, the Triton
interpreter) the call then raises ValueError, with no torch reduction on the good path (the C++ kernel counts
bad tokens, the interpreter path looks only at its own output); on an accelerator nothing is read back, as
torch's own device kernels assert on the device instead of syncing.

Kernel: one program per block of tokens holding full [tokens, E] rows; k rounds of "NaN first, else max;
lowest index among them; retire it" pick the experts (k is a runtime loop, so no recompile per k). NaN is
found explicitly: a GPU's max drops NaN operands while the interpreter's propagates them.
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

OP = "flaggems::moe_gate"
OP_HASH = "flaggems::moe_gate_hash"
SCHEMA = ("(Tensor logits, Tensor? bias, int topk, str score_func=\"sqrtsoftplus\", float route_scale=1.0) "
          "-> (Tensor, Tensor)")
SCHEMA_HASH = ("(Tensor logits, Tensor tid2eid, Tensor input_ids, str score_func=\"sqrtsoftplus\", "
               "float route_scale=1.0) -> (Tensor, Tensor)")
SCORE_FUNCS = ("sqrtsoftplus", "sigmoid", "softmax")
MAX_EXPERTS = 4096
_FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def _check_common(op, logits, score_func, route_scale):
    # Runs before every call (decode hot path): exact-type tests first, the general ones only when they fail.
    check_tensor(op, "logits", logits, _FLOATS, 2)
    if score_func not in SCORE_FUNCS or type(score_func) is not str:
        raise ValueError(f"{op}: score_func must be one of {SCORE_FUNCS}, got {score_func!r}")
    if type(route_scale) is not float and (not isinstance(route_scale, numbers.Real) or isinstance(route_scale, bool)) \
            or not math.isfinite(route_scale):
        raise TypeError(f"{op}: route_scale must be a finite float, got {route_scale!r}")
    if logits.shape[1] > MAX_EXPERTS:
        raise ValueError(f"{op}: at most {MAX_EXPERTS} experts are supported, got E={logits.shape[1]}")


def _same_device(op, **tensors):
    # The common case (all on the host) without building device objects.
    if not all(t.is_cpu for t in tensors.values()):
        check_same_device(op, **tensors)


def moe_gate_check(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    """Every argument rule of moe_gate; all static (shapes, dtypes, devices, Python values): no tensor is read."""
    op = "moe_gate"
    _check_common(op, logits, score_func, route_scale)
    E = logits.shape[1]
    if bias is not None:
        check_tensor(op, "bias", bias, (torch.float32,), 1)
        _same_device(op, logits=logits, bias=bias)
        if bias.shape[0] != E:
            raise ValueError(f"moe_gate: bias must be [E={E}], got {tuple(bias.shape)}")
    if type(topk) is not int and (not isinstance(topk, numbers.Integral) or isinstance(topk, bool)):
        raise TypeError(f"moe_gate: topk must be an int, got {topk!r}")
    if not 1 <= topk <= E:
        raise ValueError(f"moe_gate: topk must be in [1, E={E}], got {topk}")


def moe_gate_hash_check(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    """Every static argument rule of moe_gate_hash. The values of input_ids and tid2eid are checked by the
    kernels (see the module docstring): no torch reduction, no host read here."""
    op = "moe_gate_hash"
    _check_common(op, logits, score_func, route_scale)
    check_tensor(op, "tid2eid", tid2eid, (torch.int32, torch.int64), 2)
    check_tensor(op, "input_ids", input_ids, (torch.int32, torch.int64))
    _same_device(op, logits=logits, tid2eid=tid2eid, input_ids=input_ids)
    T, E = logits.shape
    if input_ids.numel() != T:
        raise ValueError(f"moe_gate_hash: input_ids must hold T={T} token ids, got shape {tuple(input_ids.shape)}")
    if tid2eid.shape[1] < 1 or tid2eid.shape[1] > E:
        raise ValueError(f"moe_gate_hash: tid2eid must be [vocab, k] with 1 <= k <= E={E}, "
                         f"got {tuple(tid2eid.shape)}")


def hash_value_error(bad_ids: int, bad_experts: int, V: int, E: int) -> ValueError:
    """The error both kinds raise where the kernel found bad values in host memory (counts of tokens)."""
    if bad_ids:
        return ValueError(f"moe_gate_hash: input_ids must be in [0, vocab={V}), got {bad_ids} token id(s) "
                          f"outside it")
    return ValueError(f"moe_gate_hash: tid2eid[input_ids] must be expert ids in [0, E={E}), got {bad_experts} "
                      f"token(s) routed outside it")


def _scores_ref(logits, score_func):
    x = logits.double()
    if score_func == "softmax":
        return x.softmax(dim=-1)
    if score_func == "sigmoid":
        return x.sigmoid()
    return torch.nn.functional.softplus(x).sqrt()


def _weights_ref(s, idx, score_func, route_scale):
    w = s.gather(-1, idx)
    if score_func != "softmax":
        w = w / w.sum(dim=-1, keepdim=True)
    return (w * route_scale).float()


def moe_gate_ref(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    """Pure-torch reference (fp64). Choice by a stable descending sort: NaN first (as torch.topk ranks it), ties
    to the lower expert id."""
    s = _scores_ref(logits, score_func)
    choose = s + bias.double() if bias is not None else s
    idx = torch.sort(choose, dim=-1, descending=True, stable=True).indices[:, :topk]
    return _weights_ref(s, idx, score_func, route_scale), idx.to(torch.int64)


def moe_gate_hash_ref(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    """Pure-torch reference for hash routing (fp64), bad ids handled as the kernels do (-1 / NaN rows, and
    ValueError when the values are in host memory)."""
    s = _scores_ref(logits, score_func)
    V, E = tid2eid.shape[0], s.shape[1]
    ids = input_ids.reshape(-1).long()
    id_ok = (ids >= 0) & (ids < V)
    idx = tid2eid[ids.clamp(0, max(V - 1, 0))].long() if V else ids.new_zeros((ids.numel(), tid2eid.shape[1]))
    ok = id_ok & ((idx >= 0) & (idx < E)).all(dim=-1)
    idx = torch.where(ok[:, None], idx, -1)
    w = _weights_ref(s, idx.clamp(min=0), score_func, route_scale)
    w = torch.where(ok[:, None], w, float("nan"))
    if values_checkable(ok) and not bool(ok.all()):
        raise hash_value_error(int((~id_ok).sum()), int((~ok).sum()), V, E)
    return w, idx


def _moe_gate_fake(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    T = logits.shape[0]
    return (logits.new_empty((T, topk), dtype=torch.float32), logits.new_empty((T, topk), dtype=torch.int64))


def _moe_gate_hash_fake(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    T, K = logits.shape[0], tid2eid.shape[1]
    return (logits.new_empty((T, K), dtype=torch.float32), logits.new_empty((T, K), dtype=torch.int64))


custom_op(OP, SCHEMA, reference=moe_gate_ref, fake=_moe_gate_fake, check=moe_gate_check)
custom_op(OP_HASH, SCHEMA_HASH, reference=moe_gate_hash_ref, fake=_moe_gate_hash_fake, check=moe_gate_hash_check)


@triton.jit
def _log1p(y):
    # log1p without libdevice (unusable in the interpreter): exact for tiny y where log(1 + y) is 0.
    u = 1.0 + y
    return tl.where(u == 1.0, y, tl.log(u) * (y / (u - 1.0)))


@triton.jit
def _scores(x, e_mask, FUNC: tl.constexpr):
    if FUNC == 0:
        # softplus as torch: x above 20 passes through; below, log1p(exp(x)) computed without overflow.
        sp = tl.maximum(x, 0.0) + _log1p(tl.exp(-tl.abs(x)))
        s = tl.sqrt(tl.where(x > 20.0, x, sp))
    elif FUNC == 1:
        s = tl.sigmoid(x)
    else:
        xm = tl.where(e_mask, x, float("-inf"))
        ex = tl.exp(xm - tl.max(xm, axis=1)[:, None])
        s = ex / tl.sum(ex, axis=1)[:, None]
    return tl.where(e_mask, s, 0.0)


@triton.jit
def _row_scores(logit_ptr, T, E, s_lt, s_le, BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, FUNC: tl.constexpr):
    """This program's token rows (int64), their mask, the expert columns [1, BLOCK_E] and the fp32 scores
    (0 outside [0, E))."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < T
    cols = tl.arange(0, BLOCK_E)[None, :]
    e_mask = t_mask[:, None] & (cols < E)
    rows = offs_t.to(tl.int64)
    x = tl.load(logit_ptr + rows[:, None] * s_lt + cols * s_le, mask=e_mask, other=0.0).to(tl.float32)
    return rows, t_mask, cols, _scores(x, e_mask, FUNC)


@triton.jit
def _moe_gate_kernel(
    logit_ptr, bias_ptr, w_ptr, i_ptr,
    T, E, topk, route_scale,
    s_lt, s_le, s_bias, s_wt, s_it,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, TOPK_P: tl.constexpr,
    FUNC: tl.constexpr, HAS_BIAS: tl.constexpr,
):
    rows, t_mask, cols, s = _row_scores(logit_ptr, T, E, s_lt, s_le, BLOCK_T, BLOCK_E, FUNC)
    choose = s
    if HAS_BIAS:
        choose = s + tl.load(bias_ptr + cols * s_bias, mask=cols < E, other=0.0)

    kcol = tl.arange(0, TOPK_P)[None, :]
    w_acc = tl.zeros([BLOCK_T, TOPK_P], tl.float32)
    i_acc = tl.zeros([BLOCK_T, TOPK_P], tl.int32)
    avail = (cols < E) & (rows >= 0)[:, None]
    for k in range(topk):
        # torch.topk's order: NaN above every number, then descending value; lowest expert id among equals.
        # NaN is tested explicitly (a GPU max ignores NaN operands, the interpreter's returns NaN).
        is_nan = avail & (choose != choose)
        any_nan = tl.max(is_nan.to(tl.int32), axis=1) > 0
        best = tl.max(tl.where(avail & (choose == choose), choose, float("-inf")), axis=1)
        hit = tl.where(any_nan[:, None], is_nan, avail & (choose == best[:, None]))
        # Some available column always matches (best is their maximum, -inf included), so idx < E.
        idx = tl.min(tl.where(hit, cols, BLOCK_E), axis=1)
        sel = cols == idx[:, None]
        w_k = tl.sum(tl.where(sel, s, 0.0), axis=1)
        avail = avail & (sel == 0)
        w_acc = tl.where(kcol == k, w_k[:, None], w_acc)
        i_acc = tl.where(kcol == k, idx[:, None], i_acc)
    if FUNC != 2:
        w_acc = w_acc / tl.sum(w_acc, axis=1)[:, None]
    w_acc = w_acc * route_scale
    out_mask = t_mask[:, None] & (kcol < topk)
    tl.store(w_ptr + rows[:, None] * s_wt + kcol, w_acc, mask=out_mask)
    tl.store(i_ptr + rows[:, None] * s_it + kcol, i_acc.to(tl.int64), mask=out_mask)


@triton.jit
def _moe_gate_hash_kernel(
    logit_ptr, tab_ptr, ids_ptr, w_ptr, i_ptr,
    T, E, K, V, route_scale,
    s_lt, s_le, s_tv, s_tk, s_ids, s_wt, s_it,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, K_P: tl.constexpr, FUNC: tl.constexpr,
):
    rows, t_mask, cols, s = _row_scores(logit_ptr, T, E, s_lt, s_le, BLOCK_T, BLOCK_E, FUNC)

    tok = tl.load(ids_ptr + rows * s_ids, mask=t_mask, other=-1).to(tl.int64)
    tok_ok = t_mask & (tok >= 0) & (tok < V)
    offs_k = tl.arange(0, K_P)
    k_mask = tok_ok[:, None] & (offs_k < K)[None, :]
    # Range-checked at the table's own width: an int64 entry must not wrap into [0, E) when narrowed.
    eid = tl.load(tab_ptr + tl.where(tok_ok, tok, 0)[:, None] * s_tv + offs_k[None, :] * s_tk,
                  mask=k_mask, other=0).to(tl.int64)
    bad_eid = k_mask & ((eid < 0) | (eid >= E))
    # A bad input id or table entry poisons the token's row (-1 / NaN), never an out-of-bounds read.
    row_ok = tok_ok & (tl.sum(bad_eid.to(tl.int32), axis=1) == 0)
    idx = tl.where(row_ok[:, None], eid, -1).to(tl.int32)
    w = tl.zeros([BLOCK_T, K_P], tl.float32)
    for k in range(K):
        idx_k = tl.sum(tl.where(offs_k[None, :] == k, idx, 0), axis=1)
        w_k = tl.sum(tl.where(cols == idx_k[:, None], s, 0.0), axis=1)
        w = tl.where(offs_k[None, :] == k, w_k[:, None], w)
    if FUNC != 2:
        w = w / tl.sum(w, axis=1)[:, None]
    w = tl.where(row_ok[:, None], w * route_scale, float("nan"))
    out_mask = t_mask[:, None] & (offs_k < K)[None, :]
    tl.store(w_ptr + rows[:, None] * s_wt + offs_k[None, :], w, mask=out_mask)
    tl.store(i_ptr + rows[:, None] * s_it + offs_k[None, :], idx.to(tl.int64), mask=out_mask)


def _func_id(score_func):
    return SCORE_FUNCS.index(score_func)


def _config(kernel: str, T: int, E: int, dtype: torch.dtype) -> dict:
    """BLOCK_T (tokens per program) and num_warps, config key "moe_gate" / "moe_gate_hash"; a program always
    holds whole [tokens, E] rows."""
    block_e = max(16, next_pow2(E))
    if interpreting():
        block_t = max(1, min(next_pow2(T), (1 << 16) // block_e))
    else:
        block_t = max(1, min(16, 4096 // block_e))
    return launch_config(kernel, dtype, {"BLOCK_T": block_t, "num_warps": 4})


@implement(OP, kind="triton", dtypes=set(_FLOATS))
def _moe_gate_triton(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    """The Triton launcher (the op's check has run). Returns (weights fp32 [T,k], indices int64 [T,k])."""
    T, E = logits.shape
    w = torch.empty((T, topk), dtype=torch.float32, device=logits.device)
    idx = torch.empty((T, topk), dtype=torch.int64, device=logits.device)
    if T == 0:
        return w, idx
    cfg = _config("moe_gate", T, E, logits.dtype)
    with device_guard(logits):
        _moe_gate_kernel[(triton.cdiv(T, cfg["BLOCK_T"]),)](
            logits, bias if bias is not None else logits, w, idx,
            T, E, int(topk), float(route_scale),
            logits.stride(0), logits.stride(1), bias.stride(0) if bias is not None else 0, w.stride(0), idx.stride(0),
            BLOCK_T=cfg["BLOCK_T"], BLOCK_E=max(16, next_pow2(E)), TOPK_P=next_pow2(topk),
            FUNC=_func_id(score_func), HAS_BIAS=bias is not None, **split_launch_options(cfg)[1],
        )
    return w, idx


@implement(OP_HASH, kind="triton", dtypes=set(_FLOATS) | {torch.int32, torch.int64})
def _moe_gate_hash_triton(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    """The Triton launcher for hash routing (the op's check has run)."""
    T, E = logits.shape
    V, K = tid2eid.shape
    w = torch.empty((T, K), dtype=torch.float32, device=logits.device)
    idx = torch.empty((T, K), dtype=torch.int64, device=logits.device)
    if T == 0:
        return w, idx
    ids = input_ids.reshape(-1)
    cfg = _config("moe_gate_hash", T, E, logits.dtype)
    with device_guard(logits):
        _moe_gate_hash_kernel[(triton.cdiv(T, cfg["BLOCK_T"]),)](
            logits, tid2eid, ids, w, idx,
            T, E, K, V, float(route_scale),
            logits.stride(0), logits.stride(1), tid2eid.stride(0), tid2eid.stride(1), ids.stride(0),
            w.stride(0), idx.stride(0),
            BLOCK_T=cfg["BLOCK_T"], BLOCK_E=max(16, next_pow2(E)), K_P=next_pow2(K), FUNC=_func_id(score_func),
            **split_launch_options(cfg)[1],
        )
    if interpreting():
        # Host memory: the kernel's poisoned rows (index -1) become the eager ValueError. A device never reads
        # back (its rows stay -1 / NaN), and only a bad row costs more than this one look at the output.
        bad = idx[:, 0] < 0
        if bad.any():
            ids64 = ids.long()
            raise hash_value_error(int(((ids64 < 0) | (ids64 >= V)).sum()), int(bad.sum()), V, E)
    return w, idx


moe_gate_triton = checked(moe_gate_check, _moe_gate_triton)
moe_gate_hash_triton = checked(moe_gate_hash_check, _moe_gate_hash_triton)
