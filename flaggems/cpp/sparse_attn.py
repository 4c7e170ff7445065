"""C++ ``sparse_attn`` (csrc/sparse_attn.cpp): same contract as flaggems/deepseek/sparse_attn.py.

q [b,m,h,d], kv [b,n,d] (same float dtype), attn_sink fp32 [h], topk_idxs int32/int64 [b,m,K]
(-1 or any index outside [0, n) = skip). Any strides for q / kv / topk_idxs as long as the last dim
is contiguous (otherwise a contiguous copy is made). fp32 math, output in q's dtype.
"""
from __future__ import annotations

import torch

from flaggems.deepseek.checked import checked
from flaggems.deepseek.sparse_attn import OP, sparse_attn_check
from flaggems.registry import implement

from ._ext import DTYPE_CODES, FLOATS, INDEX, contig, lib, nthreads, require_cpu


def _last_contig(t):
    return t if (t.shape[-1] <= 1 or t.stride(-1) == 1) else t.contiguous()


@implement(OP, kind="cpp", dtypes=FLOATS | INDEX)
def _sparse_attn_cpp(q, kv, attn_sink, topk_idxs, softmax_scale):
    """The C++ kernel (the op's check has run): only the layout the kernel needs is arranged here."""
    require_cpu("sparse_attn", q=q, kv=kv, attn_sink=attn_sink, topk_idxs=topk_idxs)
    b, m, h, d = q.shape
    n, K = kv.shape[1], topk_idxs.shape[2]
    out = torch.empty((b, m, h, d), dtype=q.dtype, device=q.device)
    if out.numel() == 0:
        return out
    q, kv, topk_idxs, sink = _last_contig(q), _last_contig(kv), _last_contig(topk_idxs), contig(attn_sink)
    lib().sparse_attn(q.data_ptr(), kv.data_ptr(), sink.data_ptr(), topk_idxs.data_ptr(), out.data_ptr(),
                      DTYPE_CODES[q.dtype], topk_idxs.element_size(), b, m, h, d, n, K, q.stride(0), q.stride(1),
                      q.stride(2), kv.stride(0), kv.stride(1), topk_idxs.stride(0), topk_idxs.stride(1),
                      float(softmax_scale), nthreads())
    return out


sparse_attn_cpp = checked(sparse_attn_check, _sparse_attn_cpp)
