"""C++ ``hadamard_transform`` and ``hc_split_sinkhorn`` (csrc/misc.cpp); contracts of
flaggems/deepseek/hadamard.py and flaggems/deepseek/hc_sinkhorn.py."""
from __future__ import annotations

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu


def hadamard_transform_cpp(x, scale=1.0):
    op = "hadamard_transform"
    require_cpu(op, x=x)
    code = dcode(x.dtype, op, "x")
    if x.dim() < 1:
        raise ValueError(f"{op} (cpp): x must have at least 1 dim")
    n = x.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"{op} (cpp): the last dim must be a power of two, got {n}")
    out = torch.empty(x.shape, dtype=x.dtype)
    if out.numel() == 0:
        return out
    x2 = x.reshape(-1, n)
    if n > 1 and x2.stride(1) != 1:
        x2 = x2.contiguous()
    lib().hadamard(x2.data_ptr(), out.data_ptr(), code, x2.shape[0], n, x2.stride(0), float(scale), nthreads())
    return out


def hc_split_sinkhorn_cpp(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    op = "hc_split_sinkhorn"
    require_cpu(op, mixes=mixes, hc_scale=hc_scale, hc_base=hc_base)
    hc = int(hc_mult)
    width = (2 + hc) * hc
    for name, t in (("mixes", mixes), ("hc_scale", hc_scale), ("hc_base", hc_base)):
        if t.dtype != torch.float32:
            raise TypeError(f"{op} (cpp): {name} must be float32, got {t.dtype}")
    if not 1 <= hc <= 32 or mixes.dim() < 1 or mixes.shape[-1] != width or hc_scale.numel() != 3 \
            or hc_base.numel() != width or int(sinkhorn_iters) < 1:
        raise ValueError(f"{op} (cpp): bad shapes/args mixes {tuple(mixes.shape)}, hc_scale {tuple(hc_scale.shape)}, "
                         f"hc_base {tuple(hc_base.shape)}, hc_mult={hc_mult}, sinkhorn_iters={sinkhorn_iters}")
    lead = mixes.shape[:-1]
    m = contig(mixes).reshape(-1, width)
    T = m.shape[0]
    pre = torch.empty((*lead, hc), dtype=torch.float32)
    post = torch.empty((*lead, hc), dtype=torch.float32)
    comb = torch.empty((*lead, hc, hc), dtype=torch.float32)
    if T:
        lib().hc_split_sinkhorn(m.data_ptr(), contig(hc_scale).data_ptr(), contig(hc_base).data_ptr(),
                                pre.data_ptr(), post.data_ptr(), comb.data_ptr(), T, hc, int(sinkhorn_iters),
                                float(eps), nthreads())
    return pre, post, comb
