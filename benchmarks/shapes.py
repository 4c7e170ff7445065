"""Shape sets of the benchmarks: DeepSeek-V4-Flash / -Pro (docs/deepseek.md §2) and generic shapes.

Token counts: decode T = 1..256 (one token per sequence, T sequences), prefill T = 4096 (the reference
caps context at max_seq_len = 4096). On a CPU device the prefill is a *small* prefill (T = 128): the torch
compositions at T = 4096 need tens of GB (e.g. sparse attention gathers [T, topk, 512] fp32).
"""
from __future__ import annotations

from typing import Dict, List

# Only the fields the kernels see. Flash / Pro from the configs shipped with the weights.
DEEPSEEK_V4: Dict[str, Dict[str, int]] = {
    "flash": dict(dim=4096, inter=2048, experts=256, top_k=6, heads=64, head_dim=512, index_topk=512,
                  window=128, q_lora=1024, o_groups=8, o_lora=1024, index_heads=64, index_head_dim=128,
                  hc=4, route_scale_x10=15, vocab=129280),
    "pro": dict(dim=7168, inter=3072, experts=384, top_k=6, heads=128, head_dim=512, index_topk=1024,
                window=128, q_lora=1536, o_groups=16, o_lora=1024, index_heads=64, index_head_dim=128,
                hc=4, route_scale_x10=25, vocab=129280),
}
MAX_SEQ = 4096          # the reference's context cap: the KV cache a decode step attends over
DECODE = [1, 2, 4, 8, 16, 64, 256]
PREFILL = [4096]
CPU_DECODE = [1, 2, 4, 8, 16]
CPU_PREFILL = [128]     # "small prefill" on CPU
QUICK_DECODE = [1, 16]


def tokens(phase: str, device_type: str, quick: bool) -> List[int]:
    """Token counts T of one phase ("decode" / "prefill") for this device and mode."""
    cpu = device_type == "cpu"
    if phase == "decode":
        if quick:
            return list(QUICK_DECODE)
        return list(CPU_DECODE if cpu else DECODE)
    return list(CPU_PREFILL if cpu else PREFILL) if not quick or cpu else [1024]


def models(quick: bool, only=None) -> List[str]:
    """DeepSeek-V4 variants to run: ``only`` (--models) if given, else Flash (quick) or Flash and Pro."""
    if only:
        bad = [m for m in only if m not in DEEPSEEK_V4]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; known: {sorted(DEEPSEEK_V4)}")
        return list(only)
    return ["flash"] if quick else ["flash", "pro"]


def dense_fp8_linears(cfg: Dict[str, int]) -> Dict[str, tuple]:
    """(N, K) of the FP8 (128x128 block-scaled) linears of one layer: y[M, N] = x[M, K] · Wᵀ."""
    D = cfg["dim"]
    return {
        "wq_a": (cfg["q_lora"], D),
        "wo_b": (D, cfg["o_groups"] * cfg["o_lora"]),
        "shared.w1": (cfg["inter"], D),
        "shared.w2": (D, cfg["inter"]),
    }


def expert_fp4_linears(cfg: Dict[str, int]) -> Dict[str, tuple]:
    """(N, K) of one routed expert's FP4 (MXFP4, e8m0 per 32) linears."""
    D, I = cfg["dim"], cfg["inter"]
    return {"expert.w1": (I, D), "expert.w2": (D, I)}


def sparse_attn_geometry(cfg: Dict[str, int]) -> Dict[str, int]:
    """A CSA layer (compress ratio 4) at a full 4096-token context: kv = window + compressed entries,
    K = window + index_topk selected entries per query."""
    n = cfg["window"] + MAX_SEQ // 4
    K = min(n, cfg["window"] + cfg["index_topk"])
    return {"h": cfg["heads"], "d": cfg["head_dim"], "n": n, "K": K}


# Generic shapes for elementwise / reduction ops (GPU rows; on CPU those ops run through the interpreter).
ELEMENTWISE = [(1024, 1024), (4096, 4096), (16384, 8192)]
REDUCTION = [(4096, 4096), (256, 129280), (65536, 512)]
QUICK_ELEMENTWISE = [(4096, 4096)]
QUICK_REDUCTION = [(4096, 4096)]
