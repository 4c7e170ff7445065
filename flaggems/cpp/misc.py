"""C++ ``hadamard_transform`` and ``hc_split_sinkhorn`` (csrc/misc.cpp); contracts of
flaggems/deepseek/hadamard.py and flaggems/deepseek/hc_sinkhorn.py, whose checks run first."""
from __future__ import annotations

import torch

from flaggems.deepseek import hadamard, hc_sinkhorn
from flaggems.deepseek.checked import checked
from flaggems.registry import implement

from ._ext import DTYPE_CODES, FLOATS, contig, lib, nthreads, require_cpu


@implement(hadamard.OP, kind="cpp", dtypes=FLOATS)
def _hadamard_transform_cpp(x, scale=1.0):
    require_cpu("hadamard_transform", x=x)
    n = x.shape[-1]
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    x2 = x.reshape(-1, n)
    if n > 1 and x2.stride(1) != 1:
        x2 = x2.contiguous()
    lib().hadamard(x2.data_ptr(), out.data_ptr(), DTYPE_CODES[x.dtype], x2.shape[0], n, x2.stride(0), float(scale),
                   nthreads())
    return out


@implement(hc_sinkhorn.OP, kind="cpp", dtypes={torch.float32})
def _hc_split_sinkhorn_cpp(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    require_cpu("hc_split_sinkhorn", mixes=mixes, hc_scale=hc_scale, hc_base=hc_base)
    hc = int(hc_mult)
    lead = mixes.shape[:-1]
    m = contig(mixes).reshape(-1, (2 + hc) * hc)
    T = m.shape[0]
    pre = torch.empty((*lead, hc), dtype=torch.float32, device=mixes.device)
    post = torch.empty((*lead, hc), dtype=torch.float32, device=mixes.device)
    comb = torch.empty((*lead, hc, hc), dtype=torch.float32, device=mixes.device)
    if T:
        lib().hc_split_sinkhorn(m.data_ptr(), contig(hc_scale).data_ptr(), contig(hc_base).data_ptr(),
                                pre.data_ptr(), post.data_ptr(), comb.data_ptr(), T, hc, int(sinkhorn_iters),
                                float(eps), nthreads())
    return pre, post, comb


hadamard_transform_cpp = checked(hadamard.hadamard_transform_check, _hadamard_transform_cpp)
hc_split_sinkhorn_cpp = checked(hc_sinkhorn.hc_split_sinkhorn_check, _hc_split_sinkhorn_cpp)
