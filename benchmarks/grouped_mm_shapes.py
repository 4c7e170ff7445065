"""MoE expert GEMM shapes of DeepSeek-V4 (Flash, Pro) and a first timing run: flaggems vs torch native.

Shapes are data (``MODELS``, ``TOKENS``); ``run(quick)`` returns rows ``{op, shape, dtype, ms, baseline_ms,
speedup}`` timed on the active vendor's device (CPU: wall clock through the Triton interpreter, so only
``quick`` is practical there). The benchmark harness of issue 7 is expected to import ``cases()`` / ``run()``.

Expert GEMMs per MoE layer, with T tokens routed top-k over E experts (S = T * k rows, grouped by expert):
  * up:   ``_grouped_mm(x[S, D], w13[E, D, 2I])``  (gate and up projections fused, weights column-major)
  * down: ``_grouped_mm(h[S, I], w2[E, I, D])``
  * fp8 dense (shared expert / projections): ``_scaled_mm`` blockwise 1x128 x 128x128, [T, D] x [D, 2I]
  * mxfp4 expert GEMM of one expert: ``_scaled_mm`` MXFP4 (e8m0 per 32), [rows, D] x [D, 2I]
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch

MODELS: Dict[str, Dict[str, int]] = {
    # hidden size D, expert intermediate size I, routed experts E, experts per token k
    "deepseek-v4-flash": {"hidden": 4096, "inter": 2048, "experts": 256, "top_k": 6},
    "deepseek-v4-pro": {"hidden": 7168, "inter": 3072, "experts": 384, "top_k": 6},
    # not a model: a shape set small enough for a smoke run of this file through the CPU interpreter
    "smoke": {"hidden": 256, "inter": 128, "experts": 16, "top_k": 2},
}
TOKENS = {"decode": [1, 8, 64], "prefill": [512, 4096]}
QUICK_TOKENS = [1]


def _offs(T: int, E: int, k: int, device, seed: int = 0) -> torch.Tensor:
    """Group ends for T tokens routed to k distinct experts each (uniform random router, seeded)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)]).reshape(-1)
    counts = torch.bincount(idx, minlength=E)
    return counts.cumsum(0).to(torch.int32).to(device)


def cases(quick: bool = True, models: Optional[List[str]] = None):
    """(model, tokens, op, description) tuples."""
    out = []
    for name in models or (["deepseek-v4-flash"] if quick else list(MODELS)):
        for T in (QUICK_TOKENS if quick else TOKENS["decode"] + TOKENS["prefill"]):
            for op in ("grouped_mm.up", "grouped_mm.down", "scaled_mm.fp8_block", "scaled_mm.mxfp4"):
                out.append((name, T, op))
    return out


def _inputs(model: str, T: int, op: str, device, dtype=torch.bfloat16, shared_weights: bool = True):
    cfg = MODELS[model]
    D, I, E, k = cfg["hidden"], cfg["inter"], cfg["experts"], cfg["top_k"]
    g = torch.Generator().manual_seed(T)
    if op.startswith("grouped_mm"):
        offs = _offs(T, E, k, device)
        S = T * k
        K, N = (D, 2 * I) if op.endswith("up") else (I, D)
        x = torch.randn(S, K, generator=g).to(device, dtype)
        if shared_weights:
            # one expert's weights viewed E times (stride 0): the real [E, N, K] tensor is 8-34 GB
            w = torch.randn(1, N, K, generator=g).mul_(K ** -0.5).to(device, dtype).expand(E, N, K)
        else:
            w = torch.empty(E, N, K, device=device, dtype=dtype).normal_(0.0, K ** -0.5)
        w = w.transpose(1, 2)
        return (lambda: torch._grouped_mm(x, w, offs)), f"S={S} K={K} N={N} E={E}", str(dtype).replace("torch.", "")
    from flaggems.formats import swizzle_scales

    if op == "scaled_mm.fp8_block":
        M, K, N = T, D, 2 * I
        a = torch.randn(M, K, generator=g).to(device, torch.float8_e4m3fn)
        b = torch.randn(N, K, generator=g).to(device, torch.float8_e4m3fn).t()
        sa = torch.rand(math.ceil(K / 128), M, generator=g).to(device).t()
        sb = torch.rand(math.ceil(K / 128), math.ceil(N / 128), generator=g).to(device)
        return ((lambda: torch._scaled_mm(a, b, sa, sb, out_dtype=torch.bfloat16)),
                f"M={M} K={K} N={N} 1x128x128x128", "float8_e4m3fn")
    M, K, N = max(1, T * k // E) if T > 1 else 1, D, 2 * I                 # rows of one (average) expert
    a = torch.randint(0, 256, (M, K // 2), generator=g, dtype=torch.uint8).to(device).view(torch.float4_e2m1fn_x2)
    b = torch.randint(0, 256, (N, K // 2), generator=g, dtype=torch.uint8).to(device).view(torch.float4_e2m1fn_x2).t()
    sa = swizzle_scales(torch.randint(120, 130, (M, K // 32), generator=g, dtype=torch.uint8)
                            .view(torch.float8_e8m0fnu)).to(device)
    sb = swizzle_scales(torch.randint(120, 130, (N, K // 32), generator=g, dtype=torch.uint8)
                            .view(torch.float8_e8m0fnu)).to(device)
    return ((lambda: torch._scaled_mm(a, b, sa, sb, out_dtype=torch.bfloat16)), f"M={M} K={K} N={N} mxfp4",
            "float4_e2m1fn_x2")


def _time(fn) -> float:
    from flaggems.runtime import autotune

    return autotune.bench(fn)


def run(quick: bool = True, models: Optional[List[str]] = None, shared_weights: Optional[bool] = None) -> List[dict]:
    """Time each case under flaggems and with torch's native kernel (None where torch has none here).

    ``shared_weights`` (default: ``quick``) views one expert's weights E times instead of allocating all E
    experts (8-34 GB per tensor at full size): right for a smoke run, optimistic for memory traffic.
    """
    import flaggems
    from flaggems.ops import gemm  # noqa: F401  (declares the ops)

    device = flaggems.vendor().device_type
    shared = quick if shared_weights is None else shared_weights
    rows = []
    for model, T, op in cases(quick, models):
        fn, shape, dt = _inputs(model, T, op, device, shared_weights=shared)
        baseline = None
        try:
            baseline = _time(fn)
        except (RuntimeError, ValueError, NotImplementedError):
            pass                                   # e.g. blockwise / MX scales on torch's CPU kernel
        with flaggems.use_gems(include=["_grouped_mm", "_scaled_mm"]):
            ms = _time(fn)
        rows.append({"op": op, "shape": f"{model} T={T} {shape}", "dtype": dt, "ms": ms, "baseline_ms": baseline,
                     "speedup": (baseline / ms) if baseline else None})
    return rows


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=1))
