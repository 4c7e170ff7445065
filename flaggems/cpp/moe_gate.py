"""C++ MoE gating (csrc/moe_gate.cpp): ``moe_gate`` (score + biased top-k choice + renormalised weights)
and ``moe_gate_hash`` (hash routing), same contract as flaggems/deepseek/moe_gate.py. fp32 math per row
(vectorised score polynomials, one-pass top-k); the choice equals the fp64 reference's except where two
biased scores tie within fp32 rounding.

The implementations are on the decode hot path (a few µs per call matter at T = 1): the op's check has
validated the arguments, so they only arrange the layout, allocate the two outputs and call the kernel. The
hash gate's value check is the kernel's own count of bad tokens (returned with the call, no torch reduction,
no ``.item()``): host memory makes the eager error free here.
"""
from __future__ import annotations

import torch

from flaggems.deepseek.checked import checked
from flaggems.deepseek.moe_gate import (OP, OP_HASH, SCORE_FUNCS, hash_value_error, moe_gate_check,
                                       moe_gate_hash_check)
from flaggems.registry import implement

from ._ext import DTYPE_CODES, FLOATS, INDEX, lib, require_cpu

_FUNC = {f: i for i, f in enumerate(SCORE_FUNCS)}
_F32, _I64 = torch.float32, torch.int64
_empty = torch.empty
_get_threads = torch.get_num_threads


@implement(OP, kind="cpp", dtypes=FLOATS)
def _moe_gate_cpp(logits, bias, topk, score_func="sqrtsoftplus", route_scale=1.0):
    """The C++ kernel (the op's check has run)."""
    if not logits.is_cpu or (bias is not None and not bias.is_cpu):
        require_cpu("moe_gate", logits=logits, bias=bias)
    T, E = logits.shape
    if logits.stride(1) != 1 and E > 1:
        logits = logits.contiguous()
    bptr = 0
    if bias is not None:
        if bias.stride(0) != 1 and E > 1:
            bias = bias.contiguous()
        bptr = bias.data_ptr()
    w = _empty(T, topk, dtype=_F32, device=logits.device)
    idx = _empty(T, topk, dtype=_I64, device=logits.device)
    if T:
        lib().moe_gate(logits.data_ptr(), DTYPE_CODES[logits.dtype], T, E, logits.stride(0), bptr, topk,
                       _FUNC[score_func], route_scale, w.data_ptr(), idx.data_ptr(), _get_threads())
    return w, idx


@implement(OP_HASH, kind="cpp", dtypes=FLOATS | INDEX)
def _moe_gate_hash_cpp(logits, tid2eid, input_ids, score_func="sqrtsoftplus", route_scale=1.0):
    """The C++ kernel for hash routing (the op's check has run). A token whose input id or table entry is out of
    range gets index -1 and NaN weights in the kernel, which counts them; any count raises ValueError here."""
    if not (logits.is_cpu and tid2eid.is_cpu and input_ids.is_cpu):
        require_cpu("moe_gate_hash", logits=logits, tid2eid=tid2eid, input_ids=input_ids)
    T, E = logits.shape
    if logits.stride(1) != 1 and E > 1:
        logits = logits.contiguous()
    V, k = tid2eid.shape
    ids = input_ids if input_ids.dim() == 1 else input_ids.reshape(-1)  # a view op costs ~1 µs at T = 1
    if ids.stride(0) != 1 and T > 1:
        ids = ids.contiguous()
    tab = tid2eid if (k <= 1 or tid2eid.stride(1) == 1) else tid2eid.contiguous()
    w = _empty(T, k, dtype=_F32, device=logits.device)
    idx = _empty(T, k, dtype=_I64, device=logits.device)
    if T:
        bad_ids, bad_rows = lib().moe_gate_hash(
            logits.data_ptr(), DTYPE_CODES[logits.dtype], T, E, logits.stride(0), k, _FUNC[score_func],
            route_scale, tab.data_ptr(), tab.element_size(), tab.stride(0), V, ids.data_ptr(), ids.element_size(),
            w.data_ptr(), idx.data_ptr(), _get_threads())
        if bad_rows:
            raise hash_value_error(bad_ids, bad_rows, V, E)
    return w, idx


moe_gate_cpp = checked(moe_gate_check, _moe_gate_cpp)
moe_gate_hash_cpp = checked(moe_gate_hash_check, _moe_gate_hash_cpp)
