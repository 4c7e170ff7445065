"""C++ ``sparse_attn`` (csrc/sparse_attn.cpp): same contract as flaggems/deepseek/sparse_attn.py.

q [b,m,h,d], kv [b,n,d] (same float dtype), attn_sink fp32 [h], topk_idxs int32/int64 [b,m,K]
(-1 or any index outside [0, n) = skip). Any strides for q / kv / topk_idxs as long as the last dim
is contiguous (otherwise a contiguous copy is made). fp32 math, output in q's dtype.
"""
from __future__ import annotations

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu


def _last_contig(t):
    return t if (t.shape[-1] <= 1 or t.stride(-1) == 1) else t.contiguous()


def sparse_attn_cpp(q, kv, attn_sink, topk_idxs, softmax_scale):
    op = "sparse_attn"
    require_cpu(op, q=q, kv=kv, attn_sink=attn_sink, topk_idxs=topk_idxs)
    if q.dim() != 4 or kv.dim() != 3 or topk_idxs.dim() != 3 or attn_sink.dim() != 1:
        raise ValueError(f"{op} (cpp): expected q [b,m,h,d], kv [b,n,d], attn_sink [h], topk_idxs [b,m,K]; got "
                         f"{tuple(q.shape)}, {tuple(kv.shape)}, {tuple(attn_sink.shape)}, {tuple(topk_idxs.shape)}")
    b, m, h, d = q.shape
    n, K = kv.shape[1], topk_idxs.shape[2]
    code = dcode(q.dtype, op, "q")
    if kv.dtype != q.dtype:
        raise TypeError(f"{op} (cpp): kv dtype {kv.dtype} must equal q dtype {q.dtype}")
    if attn_sink.dtype != torch.float32:
        raise TypeError(f"{op} (cpp): attn_sink must be float32, got {attn_sink.dtype}")
    if topk_idxs.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{op} (cpp): topk_idxs must be int32 or int64, got {topk_idxs.dtype}")
    if kv.shape[0] != b or kv.shape[2] != d or attn_sink.shape[0] != h or tuple(topk_idxs.shape[:2]) != (b, m):
        raise ValueError(f"{op} (cpp): inconsistent shapes q {tuple(q.shape)}, kv {tuple(kv.shape)}, "
                         f"attn_sink {tuple(attn_sink.shape)}, topk_idxs {tuple(topk_idxs.shape)}")
    out = torch.empty((b, m, h, d), dtype=q.dtype)
    if out.numel() == 0:
        return out
    q, kv, topk_idxs, sink = _last_contig(q), _last_contig(kv), _last_contig(topk_idxs), contig(attn_sink)
    lib().sparse_attn(q.data_ptr(), kv.data_ptr(), sink.data_ptr(), topk_idxs.data_ptr(), out.data_ptr(), code,
                      topk_idxs.element_size(), b, m, h, d, n, K, q.stride(0), q.stride(1), q.stride(2),
                      kv.stride(0), kv.stride(1), topk_idxs.stride(0), topk_idxs.stride(1),
                      float(softmax_scale), nthreads())
    return out
