"""C++ MoE gating (csrc/moe_gate.cpp): ``moe_gate`` (score + biased top-k choice + renormalised weights)
and ``moe_gate_hash`` (hash routing), same contract as flaggems/deepseek/moe_gate.py. fp32 math per row
(vectorised score polynomials, one-pass top-k); the choice equals the fp64 reference's except where two
biased scores tie within fp32 rounding.

The wrappers are on the decode hot path (a few µs per call matter at T = 1): cheap attribute checks only,
no allocation beyond the two outputs, no ``.item()``."""
from __future__ import annotations

import torch

from ._ext import DTYPE_CODES, dcode, lib, require_cpu

SCORE_FUNCS = ("sqrtsoftplus", "sigmoid", "softmax")
_FUNC = {f: i for i, f in enumerate(SCORE_FUNCS)}
_F32, _I64, _I32 = torch.float32, torch.int64, torch.int32
_get_threads = torch.get_num_threads


def _logits(op, logits, score_func):
    if logits.dim() != 2:
        raise ValueError(f"{op} (cpp): logits must be [T, E], got {tuple(logits.shape)}")
    func = _FUNC.get(score_func)
    if func is None:
        raise ValueError(f"{op} (cpp): score_func must be one of {SCORE_FUNCS}, got {score_func!r}")
    code = DTYPE_CODES.get(logits.dtype)
    if code is None:
        dcode(logits.dtype, op, "logits")  # raises
    if logits.stride(1) != 1 and logits.shape[1] > 1:
        logits = logits.contiguous()
    return logits, code, func


def moe_gate_cpp(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    op = "moe_gate"
    if not logits.is_cpu or (bias is not None and not bias.is_cpu):
        require_cpu(op, logits=logits, bias=bias)
    logits, code, func = _logits(op, logits, score_func)
    T, E = logits.shape
    topk = int(topk)
    if not 1 <= topk <= E:
        raise ValueError(f"{op} (cpp): topk must be in [1, E={E}], got {topk}")
    bptr = 0
    if bias is not None:
        if bias.dtype != _F32 or bias.dim() != 1 or bias.shape[0] != E:
            raise ValueError(f"{op} (cpp): bias must be float32 [E={E}], got {bias.dtype} {tuple(bias.shape)}")
        if bias.stride(0) != 1 and E > 1:
            bias = bias.contiguous()
        bptr = bias.data_ptr()
    w = torch.empty(T, topk, dtype=_F32)
    idx = torch.empty(T, topk, dtype=_I64)
    if T:
        lib().moe_gate(logits.data_ptr(), code, T, E, logits.stride(0), bptr, topk, func, float(route_scale),
                       0, 0, 0, 0, 0, 0, w.data_ptr(), idx.data_ptr(), max(1, _get_threads()))
    return w, idx


def moe_gate_hash_cpp(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    op = "moe_gate_hash"
    if not (logits.is_cpu and tid2eid.is_cpu and input_ids.is_cpu):
        require_cpu(op, logits=logits, tid2eid=tid2eid, input_ids=input_ids)
    logits, code, func = _logits(op, logits, score_func)
    T, E = logits.shape
    if tid2eid.dim() != 2 or tid2eid.dtype not in (_I32, _I64):
        raise ValueError(f"{op} (cpp): tid2eid must be int32/int64 [vocab, k], got {tid2eid.dtype} "
                         f"{tuple(tid2eid.shape)}")
    if input_ids.dtype not in (_I32, _I64) or input_ids.numel() != T:
        raise ValueError(f"{op} (cpp): input_ids must hold T={T} int32/int64 ids, got {input_ids.dtype} "
                         f"{tuple(input_ids.shape)}")
    V, k = tid2eid.shape
    ids = input_ids.reshape(-1)
    if ids.stride(0) != 1 and T > 1:
        ids = ids.contiguous()
    tab = tid2eid if (k <= 1 or tid2eid.stride(1) == 1) else tid2eid.contiguous()
    w = torch.empty(T, k, dtype=_F32)
    idx = torch.empty(T, k, dtype=_I64)
    if T:
        bad = lib().moe_gate(logits.data_ptr(), code, T, E, logits.stride(0), 0, k, func, float(route_scale),
                             tab.data_ptr(), tab.element_size(), tab.stride(0), ids.data_ptr(),
                             ids.element_size(), V, w.data_ptr(), idx.data_ptr(), max(1, _get_threads()))
        if bad:
            raise ValueError(f"{op} (cpp): {bad} token(s) have an input id outside [0, vocab={V}) or "
                             f"tid2eid[input_id] outside [0, E={E})")
    return w, idx
