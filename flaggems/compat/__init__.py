"""Drop-in shims that let third-party model code run on flaggems kernels unchanged.

``flaggems.compat.deepseek_v4``: DeepSeek-V4's ``kernel`` module (act_quant, fp4_act_quant, fp8_gemm, fp4_gemm,
sparse_attn, hc_split_sinkhorn) and ``fast_hadamard_transform.hadamard_transform``; ``install()`` makes
``import kernel`` / ``from fast_hadamard_transform import hadamard_transform`` resolve to them.
"""
from __future__ import annotations

import importlib

__all__ = ["deepseek_v4"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
