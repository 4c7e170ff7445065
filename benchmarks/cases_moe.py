"""MoE expert GEMMs: ``torch._grouped_mm`` (and, on GPU vendors, ``_scaled_mm`` FP8 / MXFP4) at DeepSeek-V4
shapes, reusing ``benchmarks/grouped_mm_shapes.py`` (MODELS, the seeded router ``_offs``, and its
``_inputs`` for the ``_scaled_mm`` cases).

_grouped_mm rows: T tokens routed top-k over E experts, S = T*k rows grouped by expert; up = x[S, D] ·
w13[E, D, 2I], down = h[S, I] · w2[E, I, D], bf16 weights stored [E, N, K] and passed transposed
(transformers' layout). Only the experts that received tokens are kept as groups (an empty group costs
nothing but a loop step), and each has its *own* weights as long as they fit a budget (512 MiB quick,
3 GiB full): decode then streams every active expert's weights from memory as a real layer does. Beyond the
budget one expert's weights are viewed G times (stride 0) and the row says "shared weights" (cache-friendly,
so optimistic for both sides).

flaggems side: ``torch._grouped_mm`` under ``flaggems.use_gems(include=["_grouped_mm"])`` when the registry
has an implementation of the requested kind for it; on CPU while ``aten::_grouped_mm`` has no ``cpp``
registration, the C++ kernel's entry point ``flaggems.cpp.grouped_mm`` is called directly (said in the row).
"""
from __future__ import annotations

from typing import List

import torch

from . import grouped_mm_shapes as gms
from . import shapes
from .cases import Case, Ctx, provider

_MODEL_NAME = {"flash": "deepseek-v4-flash", "pro": "deepseek-v4-pro"}


def _aten_kinds(q: str):
    from flaggems import registry

    e = registry.entries().get(q)
    return tuple(dict.fromkeys(i.kind for i in e.impls)) if e is not None else ()


def _cpp_grouped():
    try:
        from flaggems.cpp import available, grouped_mm
        return grouped_mm if available() else None
    except Exception:
        return None


@provider("_grouped_mm")
def grouped_mm(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    kinds = _aten_kinds("aten::_grouped_mm.default")
    direct = None
    if dev == "cpu" and "cpp" not in kinds and _cpp_grouped() is not None:
        direct = _cpp_grouped()
        impls = ("cpp",)
    else:
        impls = kinds
    budget = (512 << 20) if ctx.quick else (3 << 30)
    dts = [(n, d) for n, d in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32))
           if ctx.want(n, default=n == "bf16")]
    for model in shapes.models(ctx.quick, ctx.models):
        cfg = gms.MODELS[_MODEL_NAME[model]]
        D, I, E, k = cfg["hidden"], cfg["inter"], cfg["experts"], cfg["top_k"]
        for phase in ("decode", "prefill"):
            for T in shapes.tokens(phase, dev, ctx.quick):
                counts = torch.diff(gms._offs(T, E, k, "cpu"), prepend=torch.zeros(1, dtype=torch.int32))
                active = counts[counts > 0]
                G = int(active.numel())
                S = T * k
                for proj in ("up", "down") if not (ctx.quick and phase == "prefill") else ("up",):
                    K, N = (D, 2 * I) if proj == "up" else (I, D)
                    for dname, dt in dts:
                        es = torch.empty((), dtype=dt).element_size()
                        shared = G * N * K * es > budget

                        def setup(T=T, K=K, N=N, dt=dt, shared=shared, G=G, active=active):
                            g = torch.Generator().manual_seed(T * 13 + K)
                            x = torch.randn(T * k, K, generator=g).to(dev, dt)
                            if shared:
                                w = torch.empty(1, N, K, device=dev, dtype=dt).normal_(0, K ** -0.5).expand(G, N, K)
                            else:
                                w = torch.empty(G, N, K, device=dev, dtype=dt).normal_(0, K ** -0.5)
                            offs = active.cumsum(0).to(torch.int32).to(dev)
                            return {"x": x, "w": w.transpose(1, 2), "offs": offs}

                        if direct is not None:
                            fg = (lambda i, f=direct: f(i["x"], i["w"], i["offs"]))
                            aten, note = None, ("flaggems.cpp.grouped_mm called directly: aten::_grouped_mm has no "
                                                "cpp registration yet")
                        else:
                            fg = (lambda i: torch._grouped_mm(i["x"], i["w"], i["offs"]))
                            aten, note = ["_grouped_mm"], ""
                        wbytes = (1 if shared else G) * N * K * es
                        out.append(Case(
                            op="_grouped_mm", kind="moe", impls=impls,
                            shape=f"{model} {proj} T={T} S={S} K={K} N={N} G={G} of E={E}"
                                  + (" shared weights" if shared else ""),
                            dtype=dname, setup=setup, flaggems=fg,
                            torch=lambda i: torch._grouped_mm(i["x"], i["w"], i["offs"]),
                            baseline="torch._grouped_mm (native kernel)", aten=aten, note=note,
                            measures="MoE expert GEMM: rows grouped by expert, each group times its expert's weight",
                            flops=2 * S * K * N, bytes=S * K * es + wbytes + S * N * es, compute=dname, memory=True,
                            meta={"model": model, "phase": phase, "tokens": T}))
    return out


@provider("_scaled_mm")
def scaled_mm(ctx: Ctx) -> List[Case]:
    """fp8 blockwise (1x128 / 128x128) and MXFP4 torch._scaled_mm at DeepSeek shapes (grouped_mm_shapes)."""
    if not (ctx.want("fp8") or ctx.want("fp4")):
        return []
    out = []
    kinds = _aten_kinds("aten::_scaled_mm.default")
    for model in shapes.models(ctx.quick, ctx.models):
        name = _MODEL_NAME[model]
        cfg = gms.MODELS[name]
        for phase in ("decode", "prefill"):
            for T in shapes.tokens(phase, ctx.device, ctx.quick):
                for op in ("scaled_mm.fp8_block", "scaled_mm.mxfp4"):
                    M = T if op.endswith("block") else (max(1, T * cfg["top_k"] // cfg["experts"]) if T > 1 else 1)
                    Kd, Nd = cfg["hidden"], 2 * cfg["inter"]

                    def setup(T=T, op=op, name=name):
                        fn, _shape, _dt = gms._inputs(name, T, op, ctx.device)
                        return {"fn": fn}

                    fp4 = op.endswith("mxfp4")
                    out.append(Case(
                        op="_scaled_mm", kind="moe", impls=kinds,
                        shape=f"{model} {op.split('.')[1]} T={T} M={M} K={Kd} N={Nd}",
                        dtype="fp4_e2m1 (e8m0/32)" if fp4 else "fp8_e4m3 (1x128 / 128x128 fp32 scales)",
                        setup=setup, flaggems=lambda i: i["fn"](), torch=lambda i: i["fn"](), aten=["_scaled_mm"],
                        baseline="torch._scaled_mm (native kernel, where torch has one)",
                        measures="block-scaled low-precision GEMM, bf16 out",
                        flops=2 * M * Kd * Nd, bytes=(M * Kd + Kd * Nd) // (2 if fp4 else 1) + 2 * M * Nd,
                        compute="fp8", rotate=False, meta={"model": model, "phase": phase, "tokens": T}))
    return out
