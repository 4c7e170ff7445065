"""DeepSeek-V4 custom ops (``torch.ops.flaggems.*``) against what a torch user would write.

flaggems side: ``torch.ops.flaggems.<op>(...)`` (custom-op dispatch + the registry + the implementation);
the harness also times the implementation function directly (``kernel_ms``), so ``dispatch_us`` is the cost
of the custom-op path. Baselines (eager torch, the recipes of DeepSeek's reference code):

* fp8_gemm / fp4_gemm: dequantise weight and activation to bf16 (block scales applied in fp32) + F.linear;
  ``bf16_linear_ms``: F.linear on a bf16 weight dequantised ahead of time (2x the FP8 weight's memory).
* sparse_attn: gather the selected KV rows, einsum, masked softmax with the sink logit, einsum (fp32).
* moe_gate / moe_gate_hash: the model's eager gate (score function, biased top-k or tid2eid lookup, gather,
  renormalise, route scale).
* hc_split_sinkhorn, act_quant, fp4_act_quant: eager torch of the same formulas; hadamard_transform: fp32
  matmul with the Hadamard matrix.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, List

import torch
import torch.nn.functional as F

from . import shapes
from .cases import Case, Ctx, provider

E8 = torch.float8_e8m0fnu
E4 = torch.float8_e4m3fn
_LUT = [0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6]


def _e8(x: torch.Tensor) -> torch.Tensor:          # e8m0 -> fp32
    return torch.exp2(x.view(torch.uint8).float() - 127)


def _ops():
    return torch.ops.flaggems


def _impls(op: str):
    from flaggems import registry

    e = registry.entries().get(f"flaggems::{op}.default")
    return tuple(dict.fromkeys(i.kind for i in e.impls)) if e is not None else ()


def _custom(op: str, args: Callable[[dict], tuple], kind: str = "deepseek", **kw) -> Case:
    """A case whose flaggems side is torch.ops.flaggems.<op>(*args(inputs))."""
    fn = getattr(_ops(), op)
    kw["meta"] = dict(kw.get("meta") or {})      # never share a meta dict between cases
    c = Case(op=op, kind=kind, impls=_impls(op), flaggems=lambda inp: fn(*args(inp)), **kw)
    c.meta.update(custom_op=f"flaggems::{op}.default", args=args)
    return c


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ GEMMs


def _with_bf16(setup, M, N, K):
    """Inputs plus a bf16 weight / activation for the bf16_linear reference (a model kept in bf16)."""
    def s():
        inp = setup()
        g = _gen(M + N + K)
        inp["w16"] = torch.randn(N, K, generator=g).bfloat16().to(inp["a"].device)
        inp["x16"] = torch.randn(M, K, generator=g).bfloat16().to(inp["a"].device)
        return inp
    return s


def _bf16_linear(inp):
    return F.linear(inp["x16"], inp["w16"])


def _points(ctx: Ctx):
    """(model, phase, T): every DeepSeek-V4 variant, phase and token count this run covers, in that nesting."""
    for model in shapes.models(ctx.quick, ctx.models):
        for phase in ("decode", "prefill"):
            for T in shapes.tokens(phase, ctx.device, ctx.quick):
                yield model, phase, T


def _gemm_shapes(ctx: Ctx, linears: Callable[[dict], dict], quick_only: str):
    """(model, phase, M, linear name, N, K) for each DeepSeek-V4 linear of one GEMM family (``quick_only``: the
    one linear kept with --quick)."""
    for model, phase, M in _points(ctx):
        lin = linears(shapes.DEEPSEEK_V4[model])
        if ctx.quick:
            lin = {quick_only: lin[quick_only]}
        for name, (N, K) in lin.items():
            yield model, phase, M, name, N, K


def _fp8_activation(g: torch.Generator, M: int, K: int):
    """The A side of both GEMMs: FP8 e4m3 activations with one E8M0 scale per 128 values."""
    a = torch.randn(M, K, generator=g).to(E4)
    a_s = torch.randint(120, 130, (M, K // 128), dtype=torch.uint8, generator=g).view(E8)
    return a, a_s


def _dequant_activation(inp, M: int, K: int) -> torch.Tensor:
    return (inp["a"].float().view(M, K // 128, 128) * _e8(inp["a_s"])[..., None]).view(M, K)


def _gemm_case(op: str, setup, base, at: tuple, weight_bytes: int, **kw) -> Case:
    """torch.ops.flaggems.<op>(a, a_s, b, b_s, bf16) at ``at`` = (model, phase, M, name, N, K), with the
    bf16_linear reference side; ``weight_bytes``: the B operand and its scales."""
    model, phase, M, name, N, K = at
    c = _custom(op, lambda i: (i["a"], i["a_s"], i["b"], i["b_s"], torch.bfloat16),
                shape=f"{model} {name} M={M} N={N} K={K}", setup=_with_bf16(setup, M, N, K), torch=base,
                flops=2 * M * N * K, bytes=M * K + weight_bytes + M * K // 128 + 2 * M * N, compute="fp8",
                memory=True, meta={"model": model, "phase": phase, "tokens": M}, **kw)
    c.extra["bf16_linear"] = _bf16_linear
    return c


def _fp8_gemm_cases(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    for at in _gemm_shapes(ctx, shapes.dense_fp8_linears, "shared.w1"):
        _, _, M, _, N, K = at

        def setup(M=M, N=N, K=K):
            g = _gen(M * 7 + N)
            a, a_s = _fp8_activation(g, M, K)
            b = (torch.randn(N, K, generator=g) * 8).to(E4)
            b_s = torch.randint(110, 120, (N // 128, K // 128), dtype=torch.uint8, generator=g).view(E8)
            return {k: v.to(dev) for k, v in dict(a=a, a_s=a_s, b=b, b_s=b_s).items()}

        def base(inp, M=M, N=N, K=K):
            w = (inp["b"].float().view(N // 128, 128, K // 128, 128) * _e8(inp["b_s"])[:, None, :, None]).view(N, K)
            return F.linear(_dequant_activation(inp, M, K).bfloat16(), w.bfloat16())

        out.append(_gemm_case("fp8_gemm", setup, base, at, N * K + N * K // 16384,
                              dtype="fp8_e4m3 (e8m0 128-block scales)",
                              baseline="dequantise weight + activation to bf16, F.linear",
                              measures="C = A·Bᵀ with FP8 A and B, 128-block E8M0 scales, bf16 out"))
    return out


def _fp4_gemm_cases(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    lut = torch.tensor(_LUT)
    for at in _gemm_shapes(ctx, shapes.expert_fp4_linears, "expert.w1"):
        _, _, M, _, N, K = at

        def setup(M=M, N=N, K=K):
            g = _gen(M * 11 + N)
            a, a_s = _fp8_activation(g, M, K)
            b = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, generator=g).view(torch.float4_e2m1fn_x2)
            b_s = torch.randint(118, 128, (N, K // 32), dtype=torch.uint8, generator=g).view(E8)
            return {k: v.to(dev) for k, v in dict(a=a, a_s=a_s, b=b, b_s=b_s).items()}

        def base(inp, M=M, N=N, K=K):
            by = inp["b"].view(torch.uint8)
            lt = lut.to(by.device)
            w = torch.stack([lt[(by & 15).long()], lt[(by >> 4).long()]], -1).view(N, K // 32, 32)
            w = (w * _e8(inp["b_s"])[..., None]).view(N, K)
            return F.linear(_dequant_activation(inp, M, K).bfloat16(), w.bfloat16())

        out.append(_gemm_case("fp4_gemm", setup, base, at, N * K // 2 + N * K // 32,
                              dtype="e4m3 x e2m1 (MXFP4 weight, e8m0/32)",
                              baseline="LUT-dequantise packed e2m1 weight + activation to bf16, F.linear",
                              measures="C = A·Bᵀ with FP8 A, MXFP4 B (one routed expert's linear), bf16 out"))
    return out


@provider("fp8_gemm")
def fp8_gemm(ctx: Ctx) -> List[Case]:
    return _fp8_gemm_cases(ctx) if ctx.want("fp8") else []


@provider("fp4_gemm")
def fp4_gemm(ctx: Ctx) -> List[Case]:
    return _fp4_gemm_cases(ctx) if ctx.want("fp4") or ctx.want("e4m3") else []


# ------------------------------------------------------------------------------------------------ attention


@provider("sparse_attn")
def sparse_attn(ctx: Ctx) -> List[Case]:
    return [_sparse_attn_case(ctx.device, *p) for p in _points(ctx)] if ctx.want("bf16") else []


def _sparse_attn_case(dev: str, model: str, phase: str, T: int) -> Case:
    # one function call per case: its closures see this case's geometry, never a later loop iteration's
    geo = shapes.sparse_attn_geometry(shapes.DEEPSEEK_V4[model])
    h, d, n, K = geo["h"], geo["d"], geo["n"], geo["K"]
    b, m = (T, 1) if phase == "decode" else (1, T)
    scale = d ** -0.5

    def setup():
        g = _gen(b * 131 + m)
        q = torch.randn(b, m, h, d, generator=g).bfloat16()
        kv = torch.randn(b, n, d, generator=g).bfloat16()
        sink = torch.randn(h, generator=g)
        idx = torch.stack([torch.randperm(n, generator=g)[:K] for _ in range(b * m)]).view(b, m, K)
        idx = idx.to(torch.int32)
        idx[..., -16:] = -1                       # a few unused slots, as in a short context
        return {"q": q.to(dev), "kv": kv.to(dev), "sink": sink.to(dev), "idx": idx.to(dev)}

    def base(inp):
        q, kv, sink, idx = inp["q"], inp["kv"], inp["sink"], inp["idx"]
        kvg = kv[torch.arange(b, device=kv.device)[:, None, None], idx.long().clamp(min=0)].float()
        s = torch.einsum("bmhd,bmkd->bmhk", q.float(), kvg) * scale
        s = s.masked_fill((idx < 0)[:, :, None, :], float("-inf"))
        p = torch.cat([s, sink.view(1, 1, h, 1).expand(b, m, h, 1)], -1).softmax(-1)[..., :-1]
        return torch.einsum("bmhk,bmkd->bmhd", p, kvg).to(q.dtype)

    rows_read = min(b * m * K, b * n)
    return _custom(
        "sparse_attn", lambda i: (i["q"], i["kv"], i["sink"], i["idx"], scale),
        shape=f"{model} {phase} b={b} m={m} h={h} d={d} kv={n} topk+window={K}", dtype="bf16",
        setup=setup, torch=base, baseline="gather + einsum + masked softmax(sink) + einsum (fp32)",
        measures="attention of each query over its selected KV rows (MQA, K = V) with a sink logit",
        flops=4 * b * m * h * K * d, bytes=2 * (2 * b * m * h * d + rows_read * d) + 4 * b * m * K,
        compute="bf16", meta={"model": model, "phase": phase, "tokens": T})


# ------------------------------------------------------------------------------------------------ MoE gating


def _eager_gate(logits, bias, k, route_scale):
    s = F.softplus(logits).sqrt()
    idx = (s + bias).topk(k, dim=-1)[1]
    w = s.gather(1, idx)
    w = w / w.sum(-1, keepdim=True)
    return w * route_scale, idx


@provider("moe_gate")
def moe_gate(ctx: Ctx) -> List[Case]:
    return [c for p in _points(ctx) for c in _moe_gate_cases(ctx.device, *p)] if ctx.want("fp32") else []


def _moe_gate_cases(dev: str, model: str, phase: str, T: int) -> List[Case]:
    """The score gate and the hash gate of one model at T tokens (one call per point: see _sparse_attn_case)."""
    cfg = shapes.DEEPSEEK_V4[model]
    E, k, rs, vocab = cfg["experts"], cfg["top_k"], cfg["route_scale_x10"] / 10, cfg["vocab"]
    meta = {"model": model, "phase": phase, "tokens": T}

    def setup():
        g = _gen(T + 3)
        return {"x": torch.randn(T, E, generator=g).to(dev), "bias": (torch.randn(E, generator=g) * .1).to(dev)}

    def setup_h():
        g = _gen(T + 5)
        return {"x": torch.randn(T, E, generator=g).to(dev),
                "tab": torch.randint(0, E, (vocab, k), generator=g, dtype=torch.int32).to(dev),
                "ids": torch.randint(0, vocab, (T,), generator=g).to(dev)}

    def base_h(i):
        s = F.softplus(i["x"]).sqrt()
        idx = i["tab"][i["ids"]].long()
        w = s.gather(1, idx)
        return w / w.sum(-1, keepdim=True) * rs, idx

    return [
        _custom("moe_gate", lambda i: (i["x"], i["bias"], k, "sqrtsoftplus", rs),
                shape=f"{model} T={T} E={E} top-{k} sqrtsoftplus+bias", dtype="fp32", setup=setup,
                torch=lambda i: _eager_gate(i["x"], i["bias"], k, rs), baseline="model.py eager gate",
                measures="routing weights + expert ids from gate logits (score, biased top-k, renormalise)",
                bytes=4 * T * E + 4 * E + 12 * T * k, meta=meta),
        _custom("moe_gate_hash", lambda i: (i["x"], i["tab"], i["ids"], "sqrtsoftplus", rs),
                shape=f"{model} T={T} E={E} top-{k} hash (vocab {vocab})", dtype="fp32", setup=setup_h,
                torch=base_h, baseline="model.py eager hash gate (tid2eid[input_ids])",
                measures="hash-layer routing: weights for the experts tid2eid assigns to each token",
                bytes=4 * T * E + 4 * T * k + 8 * T + 12 * T * k, meta=meta)]


# ------------------------------------------------------------------------------------------------ small ops


@provider("hc_split_sinkhorn", "act_quant", "fp4_act_quant", "hadamard_transform")
def small_ops(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    model = "flash"
    cfg = shapes.DEEPSEEK_V4[model]
    D = cfg["dim"]
    for phase in ("decode", "prefill"):
        for T in shapes.tokens(phase, dev, ctx.quick):
            meta = {"model": model, "phase": phase, "tokens": T}
            if ctx.want("fp32"):
                def setup_sk(T=T):
                    g = _gen(T)
                    return {"mix": torch.randn(T, 24, generator=g).to(dev), "sc": torch.rand(3, generator=g).to(dev),
                            "base": torch.randn(24, generator=g).to(dev)}

                def sk(i, T=T):
                    mixes, sc, base_ = i["mix"], i["sc"], i["base"]
                    pre = torch.sigmoid(mixes[:, :4] * sc[0] + base_[:4]) + 1e-6
                    post = 2 * torch.sigmoid(mixes[:, 4:8] * sc[1] + base_[4:8])
                    c = (mixes[:, 8:] * sc[2] + base_[8:]).view(T, 4, 4).softmax(-1) + 1e-6
                    c = c / (c.sum(-2, keepdim=True) + 1e-6)
                    for _ in range(19):
                        c = c / (c.sum(-1, keepdim=True) + 1e-6)
                        c = c / (c.sum(-2, keepdim=True) + 1e-6)
                    return pre, post, c

                out.append(_custom(
                    "hc_split_sinkhorn", lambda i: (i["mix"], i["sc"], i["base"], 4, 20, 1e-6),
                    shape=f"{model} T={T} hc=4 iters=20", dtype="fp32", setup=setup_sk, torch=sk,
                    baseline="eager torch (sigmoid, softmax, 20 Sinkhorn normalisations)",
                    measures="mHC mixing: pre/post gates and the doubly-stochastic 4x4 comb matrix per token",
                    bytes=4 * T * (24 + 4 + 4 + 16), meta=meta))
            if ctx.want("bf16"):
                def setup_x(T=T, n=D):
                    return {"x": torch.randn(T, n, generator=_gen(T + 1)).bfloat16().to(dev)}

                def aq(i, T=T):
                    xb = i["x"].float().view(T, D // 128, 128)
                    s = torch.exp2(torch.ceil(torch.log2(xb.abs().amax(-1).clamp_min(1e-4) / 448)))
                    y = (xb / s[..., None]).clamp(-448, 448).to(E4).view(T, D)
                    return y, (torch.log2(s) + 127).to(torch.uint8).view(E8)

                out.append(_custom(
                    "act_quant", lambda i: (i["x"], 128, "ue8m0", E8), shape=f"{model} T={T} N={D} block=128 ue8m0",
                    dtype="bf16", setup=setup_x, torch=aq, baseline="eager torch (amax, pow2 scale, cast)",
                    measures="bf16 -> FP8 e4m3 with one E8M0 scale per 128 values",
                    bytes=T * D * 3 + T * D // 128, meta=meta))
                bounds = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])

                def fq(i, T=T):
                    xb = i["x"].float().view(T, D // 32, 32)
                    s = torch.exp2(torch.ceil(torch.log2(xb.abs().amax(-1).clamp_min(6 * 2.0 ** -126) / 6)))
                    v = (xb / s[..., None]).clamp(-6, 6)
                    code = torch.bucketize(v.abs(), bounds.to(v.device)).to(torch.uint8) | ((v < 0).to(torch.uint8) << 3)
                    code = code.view(T, D)
                    packed = (code[:, 0::2] | (code[:, 1::2] << 4)).view(torch.float4_e2m1fn_x2)
                    return packed, (torch.log2(s) + 127).to(torch.uint8).view(E8)

                out.append(_custom(
                    "fp4_act_quant", lambda i: (i["x"], 32), shape=f"{model} T={T} N={D} block=32", dtype="bf16",
                    setup=setup_x, torch=fq, baseline="eager torch (amax, pow2 scale, bucketize to e2m1, pack)",
                    measures="bf16 -> packed MXFP4 e2m1 with one E8M0 scale per 32 values",
                    bytes=T * D * 2 + T * D // 2 + T * D // 32, meta=meta))
                nh, hd = cfg["index_heads"], cfg["index_head_dim"]
                H = torch.tensor([[(-1) ** bin(a & b).count("1") for b in range(hd)] for a in range(hd)],
                                 dtype=torch.float32)

                def setup_h(T=T):
                    return {"x": torch.randn(T * nh, hd, generator=_gen(T + 2)).bfloat16().to(dev), "H": H.to(dev)}

                out.append(_custom(
                    "hadamard_transform", lambda i: (i["x"], hd ** -0.5),
                    shape=f"{model} indexer rows={T * nh} (T={T} x {nh} heads) n={hd}", dtype="bf16",
                    setup=setup_h, torch=lambda i: ((i["x"].float() @ i["H"]) * hd ** -0.5).bfloat16(),
                    baseline="fp32 matmul with the Hadamard matrix", measures="x · H_n / sqrt(n) per row",
                    flops=T * nh * hd * int(math.log2(hd)), bytes=4 * T * nh * hd, compute="bf16", meta=meta))
    return out


# ------------------------------------------------------------------------------------------------ overhead


@provider("overhead")
def custom_op_overhead(ctx: Ctx) -> List[Case]:
    """Host cost of the custom-op path: torch.ops.flaggems.<op> vs its implementation called directly, at the
    smallest decode shape (T = 1, Flash) of each small op, back-to-back calls on hot caches."""
    one = Ctx(device=ctx.device, quick=True, dtypes=None, impl=ctx.impl)
    cases = [c for c in moe_gate(one) + small_ops(one) if c.meta.get("tokens") == 1]
    out = []
    for c in cases:
        out.append(dataclasses.replace(c, kind="overhead", host=True, rotate=False, memory=False,
                           measures="host µs per call of torch.ops.flaggems." + c.op + " (T=1); overhead_us = it "
                                    "minus the implementation called directly (custom-op dispatch, check, registry)",
                           meta=dict(c.meta)))
    return out
