"""An official-style DeepSeek-V4 forward over a checkpoint's own tensors, with DeepSeek's ``linear`` dispatch.

Like ``inference/model.py`` (shared/docs/deepseek-v4.md §3): ``linear`` picks the kernel from the weight's dtype
(FP4 -> ``act_quant`` + ``fp4_gemm``, FP8 -> ``act_quant`` + ``fp8_gemm``, else ``F.linear``), all through the
compat shim (``flaggems.compat.deepseek_v4``, the ``kernel`` module model.py imports); the MoE is §3.8-3.9
(sqrtsoftplus gate, hash routing on hash layers, clamped SwiGLU experts weighted before w2, FP8 shared expert).
Reduced where conversion plays no part: one residual stream instead of mHC, and the attention is the low-rank
Q path (wq_a -> q_norm -> wq_b) into wo_b, without the sparse attention itself. Every quantised tensor
of the checkpoint's attention and MoE goes through ``linear``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from flaggems.compat import deepseek_v4 as kernel

E8M0 = torch.float8_e8m0fnu
ROUTE_SCALE, SWIGLU_LIMIT, TOPK, EPS = 1.5, 10.0, 2, 1e-6


def linear(x, weight, scale):
    if weight.dtype in (torch.int8, torch.float4_e2m1fn_x2):
        xq, s = kernel.act_quant(x, 128, "ue8m0", E8M0)
        return kernel.fp4_gemm(xq, s, weight, scale, E8M0)
    if weight.dtype == torch.float8_e4m3fn:
        xq, s = kernel.act_quant(x, 128, "ue8m0", E8M0)
        return kernel.fp8_gemm(xq, s, weight, scale, E8M0)
    return F.linear(x, weight)


def rms(x, w):
    xf = x.float()
    return (w.float() * xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + EPS)).to(x.dtype)


class Model:
    def __init__(self, sd: dict, n_layers: int, n_experts: int, prefix: str = "model."):
        self.sd, self.L, self.E, self.p = sd, n_layers, n_experts, prefix

    def lin(self, x, name):
        return linear(x, self.sd[name + ".weight"], self.sd.get(name + ".scale"))

    def expert(self, x, name, w=None):
        g, u = self.lin(x, name + ".w1").float(), self.lin(x, name + ".w3").float()
        u, g = u.clamp(-SWIGLU_LIMIT, SWIGLU_LIMIT), g.clamp(max=SWIGLU_LIMIT)
        h = F.silu(g) * u
        if w is not None:
            h = w * h
        return self.lin(h.to(x.dtype), name + ".w2")

    def moe(self, x, ids, i):
        pre = f"{self.p}layers.{i}.ffn."
        s = torch.sqrt(F.softplus(F.linear(x.float(), self.sd[pre + "gate.weight"].float())))
        if pre + "gate.tid2eid" in self.sd:
            idx = self.sd[pre + "gate.tid2eid"][ids.reshape(-1)].long()
        else:
            bias = self.sd.get(pre + "gate.bias")
            idx = (s if bias is None else s + bias.float()).topk(TOPK, -1).indices
        w = s.gather(-1, idx)
        w = w / w.sum(-1, keepdim=True) * ROUTE_SCALE
        y = torch.zeros_like(x, dtype=torch.float32)
        for e in range(self.E):
            rows, slot = torch.where(idx == e)
            if rows.numel():
                y[rows] += self.expert(x[rows], f"{pre}experts.{e}", w[rows, slot, None]).float()
        return (y + self.expert(x, pre + "shared_experts").float()).to(x.dtype)

    @torch.no_grad()
    def __call__(self, ids):
        h = self.sd[self.p + "embed_tokens.weight"][ids.reshape(-1)]
        for i in range(self.L):
            pre = f"{self.p}layers.{i}."
            q = rms(self.lin(rms(h, self.sd[pre + "attn_norm.weight"]), pre + "attn.wq_a"),
                    self.sd[pre + "attn.q_norm.weight"])
            h = h + self.lin(F.silu(self.lin(q, pre + "attn.wq_b")), pre + "attn.wo_b")
            h = h + self.moe(rms(h, self.sd[pre + "ffn_norm.weight"]), ids, i)
        y = rms(h, self.sd[self.p + "norm.weight"])
        return F.linear(y.float(), self.sd["head.weight"].float()).view(*ids.shape, -1)
