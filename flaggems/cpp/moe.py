"""C++ MoE gating (csrc/moe_gate.cpp): ``moe_gate`` (score + biased top-k choice + renormalised weights)
and ``moe_gate_hash`` (hash routing), same contract as flaggems/deepseek/moe_gate.py. fp64 math per row."""
from __future__ import annotations

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu

SCORE_FUNCS = ("sqrtsoftplus", "sigmoid", "softmax")


def _logits(op, logits, score_func):
    if logits.dim() != 2:
        raise ValueError(f"{op} (cpp): logits must be [T, E], got {tuple(logits.shape)}")
    if score_func not in SCORE_FUNCS:
        raise ValueError(f"{op} (cpp): score_func must be one of {SCORE_FUNCS}, got {score_func!r}")
    code = dcode(logits.dtype, op, "logits")
    if logits.shape[1] > 1 and logits.stride(1) != 1:
        logits = logits.contiguous()
    return logits, code


def moe_gate_cpp(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    op = "moe_gate"
    require_cpu(op, logits=logits, bias=bias)
    logits, code = _logits(op, logits, score_func)
    T, E = logits.shape
    if not 1 <= int(topk) <= E:
        raise ValueError(f"{op} (cpp): topk must be in [1, E={E}], got {topk}")
    if bias is not None:
        if bias.dtype != torch.float32 or tuple(bias.shape) != (E,):
            raise ValueError(f"{op} (cpp): bias must be float32 [E={E}], got {bias.dtype} {tuple(bias.shape)}")
        bias = contig(bias)
    w = torch.empty((T, topk), dtype=torch.float32)
    idx = torch.empty((T, topk), dtype=torch.int64)
    if T:
        lib().moe_gate(logits.data_ptr(), code, T, E, logits.stride(0), bias.data_ptr() if bias is not None else 0,
                       int(topk), SCORE_FUNCS.index(score_func), float(route_scale), 0, 0, 0, 0, 0, 0,
                       w.data_ptr(), idx.data_ptr(), nthreads())
    return w, idx


def moe_gate_hash_cpp(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    op = "moe_gate_hash"
    require_cpu(op, logits=logits, tid2eid=tid2eid, input_ids=input_ids)
    logits, code = _logits(op, logits, score_func)
    T, E = logits.shape
    if tid2eid.dim() != 2 or tid2eid.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{op} (cpp): tid2eid must be int32/int64 [vocab, k], got {tid2eid.dtype} "
                         f"{tuple(tid2eid.shape)}")
    if input_ids.dtype not in (torch.int32, torch.int64) or input_ids.numel() != T:
        raise ValueError(f"{op} (cpp): input_ids must hold T={T} int32/int64 ids, got {input_ids.dtype} "
                         f"{tuple(input_ids.shape)}")
    V, k = tid2eid.shape
    ids = contig(input_ids.reshape(-1))
    tab = tid2eid if (k <= 1 or tid2eid.stride(1) == 1) else tid2eid.contiguous()
    w = torch.empty((T, k), dtype=torch.float32)
    idx = torch.empty((T, k), dtype=torch.int64)
    if T:
        bad = lib().moe_gate(logits.data_ptr(), code, T, E, logits.stride(0), 0, k, SCORE_FUNCS.index(score_func),
                             float(route_scale), tab.data_ptr(), tab.element_size(), tab.stride(0), ids.data_ptr(),
                             ids.element_size(), V, w.data_ptr(), idx.data_ptr(), nthreads())
        if bad:
            raise ValueError(f"{op} (cpp): {bad} token(s) have an input id outside [0, vocab={V}) or "
                             f"tid2eid[input_id] outside [0, E={E})")
    return w, idx
