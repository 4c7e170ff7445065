"""flaggems' C++ CPU kernels (``flaggems._C``, built from csrc/ by setup.py) as ``cpp`` implementations.

The cpu vendor prefers ``cpp`` over ``triton``; ``FLAGGEMS_IMPL=triton`` or ``with flaggems.prefer_impl("triton"):``
selects the Triton kernels instead (same ops, same tests). If ``flaggems._C`` is missing or failed to build,
every C++ implementation raises :class:`CppExtensionError` at its first call, naming the build error or the
missing compiler: there is no silent fallback to something slower.

Each module wraps the csrc/ file of the same name and registers its implementations with
``@implement(..., kind="cpp")`` at their definitions (the custom ops are declared by flaggems.deepseek, which
flaggems imports first): sparse_attn.py, moe_gate.py (+ moe_gate_hash), quant.py (act_quant, fp4_act_quant and
their in-place variants), misc.py (hadamard_transform, hc_split_sinkhorn), convert.py (fp4_to_fp8, fp8_to_bf16,
fp4_to_bf16). Registered below: fp8_gemm, fp4_gemm,
``aten::_grouped_mm`` (its MoE modes, 2D x 3D with offs and 3D x 3D; see flaggems/cpp/grouped.py
``aten_supports``) and ``aten::_scaled_mm`` (+ ``.out``) for its blockwise and MXFP8 / MXFP4 recipes
(flaggems/cpp/scaled.py ``supports``). ``grouped_mm`` is also exposed as a plain function.
"""
from __future__ import annotations

import torch

from ._ext import CppExtensionError, available, error, lib  # noqa: F401
from .sparse_attn import sparse_attn_cpp  # noqa: F401
from .gemm import fp4_gemm_cpp, fp8_gemm_cpp
from .grouped import aten_supports as grouped_mm_aten_supports
from .grouped import grouped_mm, grouped_mm_aten, grouped_mm_cpp, supports as grouped_mm_supports  # noqa: F401
from .convert import fp4_to_bf16_cpp, fp4_to_fp8_cpp, fp8_to_bf16_cpp  # noqa: F401
from .misc import hadamard_transform_cpp, hc_split_sinkhorn_cpp  # noqa: F401
from .moe_gate import moe_gate_cpp, moe_gate_hash_cpp  # noqa: F401
from .quant import act_quant_cpp, act_quant_inplace_cpp, fp4_act_quant_cpp, fp4_act_quant_inplace_cpp  # noqa: F401
from .scaled import scaled_mm_cpp, scaled_mm_out_cpp
from .scaled import supports as scaled_mm_supports

_F = {torch.float32, torch.bfloat16, torch.float16}
_E8 = torch.float8_e8m0fnu
_E4 = torch.float8_e4m3fn

IMPLS = {
    "flaggems::fp8_gemm": (fp8_gemm_cpp, {_E4, _E8, torch.float32}),
    "flaggems::fp4_gemm": (fp4_gemm_cpp, {_E4, _E8, torch.float32, torch.float4_e2m1fn_x2, torch.int8,
                                          torch.uint8}),
}


def _register() -> None:
    from flaggems.registry import implement

    for op, (fn, dtypes) in IMPLS.items():
        implement(op, kind="cpp", dtypes=dtypes)(fn)
    # offs is int32; the float dtypes are checked together (a.dtype == b.dtype) by the predicate
    implement("aten::_grouped_mm", kind="cpp", dtypes=_F | {torch.int32},
              supports=grouped_mm_aten_supports)(grouped_mm_aten)
    # blockwise (1x128 / 128x128, fp32 scales) and MXFP8 / MXFP4 recipes; the rest goes on to Triton
    implement("aten::_scaled_mm", kind="cpp", decodes=("fp8", "fp4"), supports=scaled_mm_supports)(scaled_mm_cpp)
    implement("aten::_scaled_mm.out", kind="cpp", decodes=("fp8", "fp4"),
              supports=scaled_mm_supports)(scaled_mm_out_cpp)


_register()
