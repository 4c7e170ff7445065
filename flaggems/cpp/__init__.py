"""flaggems' C++ CPU kernels (``flaggems._C``, built from csrc/ by setup.py) as ``cpp`` implementations.

The cpu vendor prefers ``cpp`` over ``triton``; ``FLAGGEMS_IMPL=triton`` or ``with flaggems.prefer_impl("triton"):``
selects the Triton kernels instead (same ops, same tests). If ``flaggems._C`` is missing or failed to build,
every C++ implementation raises :class:`CppExtensionError` at its first call, naming the build error or the
missing compiler: there is no silent fallback to something slower.

Registered here (the ops are declared by flaggems.deepseek, which flaggems imports first):
fp8_gemm, fp4_gemm, act_quant(+_inplace), fp4_act_quant(+_inplace), sparse_attn, moe_gate, moe_gate_hash,
hc_split_sinkhorn, hadamard_transform, and ``aten::_grouped_mm`` (its MoE modes, 2D x 3D with offs and 3D x 3D;
see flaggems/cpp/grouped_mm.py ``aten_supports``) and ``aten::_scaled_mm`` (+ ``.out``) for its blockwise and
MXFP8 / MXFP4 recipes (flaggems/cpp/scaled_mm.py ``supports``). ``grouped_mm`` is also exposed as a plain function.
"""
from __future__ import annotations

import torch

from ._ext import CppExtensionError, available, error, lib  # noqa: F401
from .attn import sparse_attn_cpp
from .gemm_lowp import fp4_gemm_cpp, fp8_gemm_cpp  # noqa: F401
from .grouped_mm import aten_supports as grouped_mm_aten_supports  # noqa: F401
from .grouped_mm import grouped_mm, grouped_mm_aten, grouped_mm_cpp, supports as grouped_mm_supports  # noqa: F401
from .misc import hadamard_transform_cpp, hc_split_sinkhorn_cpp
from .moe import moe_gate_cpp, moe_gate_hash_cpp
from .quant import act_quant_cpp, act_quant_inplace_cpp, fp4_act_quant_cpp, fp4_act_quant_inplace_cpp
from .scaled_mm import scaled_mm_cpp, scaled_mm_out_cpp  # noqa: F401
from .scaled_mm import supports as scaled_mm_supports  # noqa: F401

_F = {torch.float32, torch.bfloat16, torch.float16}
_I = {torch.int32, torch.int64}
_E8 = torch.float8_e8m0fnu
_E4 = torch.float8_e4m3fn

IMPLS = {
    "flaggems::act_quant": (act_quant_cpp, _F),
    "flaggems::act_quant_inplace": (act_quant_inplace_cpp, _F),
    "flaggems::fp4_act_quant": (fp4_act_quant_cpp, _F),
    "flaggems::fp4_act_quant_inplace": (fp4_act_quant_inplace_cpp, _F),
    "flaggems::sparse_attn": (sparse_attn_cpp, _F | _I),
    "flaggems::moe_gate": (moe_gate_cpp, _F),
    "flaggems::moe_gate_hash": (moe_gate_hash_cpp, _F | _I),
    "flaggems::hc_split_sinkhorn": (hc_split_sinkhorn_cpp, {torch.float32}),
    "flaggems::hadamard_transform": (hadamard_transform_cpp, _F),
}


def _register() -> None:
    from flaggems.registry import implement

    for op, (fn, dtypes) in IMPLS.items():
        implement(op, kind="cpp", dtypes=dtypes)(fn)


_register()
