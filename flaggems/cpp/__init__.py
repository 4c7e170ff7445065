"""flaggems' C++ CPU kernels (``flaggems._C``, built from csrc/ by setup.py) as ``cpp`` implementations.

The cpu vendor prefers ``cpp`` over ``triton``; ``FLAGGEMS_IMPL=triton`` or ``with flaggems.prefer_impl("triton"):``
selects the Triton kernels instead (same ops, same tests). If ``flaggems._C`` is missing or failed to build,
every C++ implementation raises :class:`CppExtensionError` at its first call, naming the build error or the
missing compiler: there is no silent fallback to something slower.

Each module wraps the csrc/ file of the same name and registers its implementations with
``@implement(..., kind="cpp")`` at their definitions (the custom ops are declared by flaggems.deepseek and
flaggems.ops.gemm, which flaggems imports first): sparse_attn.py, moe_gate.py (+ moe_gate_hash), quant.py
(act_quant, fp4_act_quant and their in-place variants), misc.py (hadamard_transform, hc_split_sinkhorn),
gemm_lowp.py (fp8_gemm, fp4_gemm), grouped_mm.py (``aten::_grouped_mm``: its MoE modes, 2D x 3D with offs and
3D x 3D; ``aten_supports``) and scaled_mm.py (``aten::_scaled_mm`` (+ ``.out``) for its blockwise and MXFP8 /
MXFP4 recipes; ``supports``), grouped_lowp.py (``aten::_scaled_grouped_mm`` (+ ``_v2``) for the DeepSeek-V4
block recipes of MoE experts), convert.py (fp4_to_fp8, fp8_to_bf16, fp4_to_bf16). ``grouped_mm`` is also
exposed as a plain function.
"""
from __future__ import annotations

from ._ext import CppExtensionError, available, error, lib  # noqa: F401
from .gemm_lowp import fp4_gemm_cpp, fp8_gemm_cpp  # noqa: F401
from .grouped_lowp import grouped_fp4_gemm_cpp, grouped_fp8_gemm_cpp, scaled_grouped_mm_cpp  # noqa: F401
from .grouped_mm import aten_supports as grouped_mm_aten_supports  # noqa: F401
from .grouped_mm import grouped_mm, grouped_mm_aten, grouped_mm_cpp, supports as grouped_mm_supports  # noqa: F401
from .convert import fp4_to_bf16_cpp, fp4_to_fp8_cpp, fp8_to_bf16_cpp  # noqa: F401
from .misc import hadamard_transform_cpp, hc_split_sinkhorn_cpp  # noqa: F401
from .moe_gate import moe_gate_cpp, moe_gate_hash_cpp  # noqa: F401
from .quant import act_quant_cpp, act_quant_inplace_cpp, fp4_act_quant_cpp, fp4_act_quant_inplace_cpp  # noqa: F401
from .scaled_mm import scaled_mm_cpp, scaled_mm_out_cpp  # noqa: F401
from .scaled_mm import supports as scaled_mm_supports  # noqa: F401
from .sparse_attn import sparse_attn_cpp  # noqa: F401
