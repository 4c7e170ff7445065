"""DeepSeek-V4 kernel shim: the ``kernel`` and ``fast_hadamard_transform`` modules that DeepSeek's reference
``inference/model.py`` imports, backed by ``torch.ops.flaggems.*`` so model.py runs unchanged on any vendor.

Same names, signatures, defaults, output dtypes and in-place behaviour as DeepSeek's TileLang ``kernel.py``::

    act_quant(x, block_size=128, scale_fmt=None, scale_dtype=torch.float32, inplace=False)
        -> (y float8_e4m3fn, s scale_dtype), or x (quantised-dequantised in place) when inplace
    fp4_act_quant(x, block_size=32, inplace=False)
        -> (float4_e2m1fn_x2 [..., N/2], float8_e8m0fnu [..., N/block_size]), or x when inplace
    fp8_gemm(a, a_s, b, b_s, scale_dtype=torch.float32)   -> [..., N] in torch.get_default_dtype()
    fp4_gemm(a, a_s, b, b_s, scale_dtype=torch.float32)   -> [..., N] in torch.get_default_dtype()
    sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale) -> o like q
    hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6) -> (pre, post, comb)
    hadamard_transform(x, scale=1.0)                       (fast_hadamard_transform's function)

Dtypes accepted are the model's real ones: float8_e4m3fn activations/weights, float8_e8m0fnu or fp32 scales,
FP4 weights as float4_e2m1fn_x2 or as the checkpoint's int8 (same bytes, low nibble = even element).
The GEMMs read each scale tensor according to its own dtype; ``scale_dtype`` is validated and kept for
signature compatibility (in model.py it always equals the scale tensors' dtype).

``install(force=False)`` inserts module objects named ``kernel`` and ``fast_hadamard_transform`` into
``sys.modules``. It refuses, with an error, to shadow a different module of that name that is already
imported or importable (e.g. DeepSeek's own kernel.py next to model.py) unless ``force=True``.
``uninstall()`` removes the shims and restores whatever ``install(force=True)`` displaced.

Loader path (flaggems/compat/checkpoint.py): ``convert_state_dict(sd, to="auto")`` and
``convert_checkpoint(src, dst, to="auto")`` turn a checkpoint's FP4 experts into FP8 where the active vendor
lacks ``fp4``, and every FP8 / FP4 weight into BF16 where it lacks ``fp8`` (exactly; ``target_for`` says which);
``python -m flaggems convert`` is the command line for the second.
"""
from __future__ import annotations

import importlib.util
import sys
import types

import torch

from .checkpoint import InexactConversion, convert_checkpoint, convert_state_dict, target_for  # noqa: F401

# importing this module imported the flaggems package first: the vendor is selected and torch.ops.flaggems.*
# is declared

__all__ = ["act_quant", "fp4_act_quant", "fp8_gemm", "fp4_gemm", "sparse_attn", "hc_split_sinkhorn",
           "hadamard_transform", "install", "uninstall", "installed", "KERNEL_NAMES",
           "convert_state_dict", "convert_checkpoint", "target_for", "InexactConversion"]

_SCALE_DTYPES = (torch.float32, torch.float8_e8m0fnu)


def _ops():
    return torch.ops.flaggems


def _check_scale_dtype(fn: str, scale_dtype) -> None:
    if scale_dtype not in _SCALE_DTYPES:
        raise TypeError(f"{fn}: scale_dtype must be torch.float32 or torch.float8_e8m0fnu, got {scale_dtype!r}")


def _check_inplace(fn: str, inplace) -> None:
    if not isinstance(inplace, bool):
        raise TypeError(f"{fn}: inplace must be a bool, got {type(inplace).__name__}")


def act_quant(x: torch.Tensor, block_size: int = 128, scale_fmt=None, scale_dtype=torch.float32,
              inplace: bool = False):
    """Block-wise FP8 (e4m3) quantisation along the last dim; see flaggems.deepseek.quant."""
    _check_inplace("act_quant", inplace)
    _check_scale_dtype("act_quant", scale_dtype)
    if inplace:
        _ops().act_quant_inplace(x, block_size, scale_fmt)
        return x
    return _ops().act_quant(x, block_size, scale_fmt, scale_dtype)


def fp4_act_quant(x: torch.Tensor, block_size: int = 32, inplace: bool = False):
    """Block-wise FP4 (e2m1, E8M0 power-of-two scales) quantisation; see flaggems.deepseek.quant."""
    _check_inplace("fp4_act_quant", inplace)
    if inplace:
        _ops().fp4_act_quant_inplace(x, block_size)
        return x
    return _ops().fp4_act_quant(x, block_size)


def fp8_gemm(a: torch.Tensor, a_s: torch.Tensor, b: torch.Tensor, b_s: torch.Tensor,
             scale_dtype=torch.float32) -> torch.Tensor:
    """C = A·Bᵀ with per-128 activation scales and 128x128 weight-block scales; default-dtype output."""
    _check_scale_dtype("fp8_gemm", scale_dtype)
    return _ops().fp8_gemm(a, a_s, b, b_s, torch.get_default_dtype())


def fp4_gemm(a: torch.Tensor, a_s: torch.Tensor, b: torch.Tensor, b_s: torch.Tensor,
             scale_dtype=torch.float32) -> torch.Tensor:
    """C = A·Bᵀ with FP8 activations and packed FP4 weights (MX E8M0 scales per 32); default-dtype output."""
    _check_scale_dtype("fp4_gemm", scale_dtype)
    return _ops().fp4_gemm(a, a_s, b, b_s, torch.get_default_dtype())


def sparse_attn(q: torch.Tensor, kv: torch.Tensor, attn_sink: torch.Tensor, topk_idxs: torch.Tensor,
                softmax_scale: float) -> torch.Tensor:
    """Sparse MQA over gathered kv rows (index -1 = skip) with a per-head attention sink."""
    return _ops().sparse_attn(q, kv, attn_sink, topk_idxs, float(softmax_scale))


def hc_split_sinkhorn(mixes: torch.Tensor, hc_scale: torch.Tensor, hc_base: torch.Tensor, hc_mult: int = 4,
                      sinkhorn_iters: int = 20, eps: float = 1e-6):
    """mHC: split the mixes into (pre, post, comb) with a Sinkhorn-normalised comb."""
    return _ops().hc_split_sinkhorn(mixes, hc_scale, hc_base, int(hc_mult), int(sinkhorn_iters), float(eps))


def hadamard_transform(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """fast_hadamard_transform.hadamard_transform: x · H_n · scale (natural-order Sylvester Hadamard)."""
    return _ops().hadamard_transform(x, float(scale))


# ----------------------------------------------------------------------------------------------------
# install
# ----------------------------------------------------------------------------------------------------
KERNEL_NAMES = ("act_quant", "fp4_act_quant", "fp8_gemm", "fp4_gemm", "sparse_attn", "hc_split_sinkhorn")
_SHIM_MARK = "__flaggems_shim__"
_displaced: dict = {}


def _make_modules() -> dict:
    kernel = types.ModuleType("kernel", "flaggems shim for DeepSeek-V4's kernel.py (TileLang kernels)")
    for name in KERNEL_NAMES:
        setattr(kernel, name, globals()[name])
    kernel.__all__ = list(KERNEL_NAMES)
    fht = types.ModuleType("fast_hadamard_transform", "flaggems shim for fast_hadamard_transform")
    fht.hadamard_transform = hadamard_transform
    fht.__all__ = ["hadamard_transform"]
    for mod in (kernel, fht):
        setattr(mod, _SHIM_MARK, True)
        mod.__file__ = __file__
    return {"kernel": kernel, "fast_hadamard_transform": fht}


def _is_shim(mod) -> bool:
    return getattr(mod, _SHIM_MARK, False) is True


def _real_module_location(name: str):
    """Where a real module ``name`` is imported from or importable from, or None."""
    mod = sys.modules.get(name)
    if mod is not None:
        if _is_shim(mod):
            return None
        return getattr(mod, "__file__", None) or repr(mod)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return spec.origin or (list(spec.submodule_search_locations or []) or [name])[0]


def install(force: bool = False) -> dict:
    """Make ``import kernel`` and ``import fast_hadamard_transform`` resolve to the flaggems shims.

    Raises RuntimeError (naming the module and where it lives) if a different module of either name is
    imported or importable, unless ``force=True``; then the shim wins and ``uninstall()`` restores it.
    Idempotent. Returns {name: module}.
    """
    if not isinstance(force, bool):
        raise TypeError(f"install: force must be a bool, got {type(force).__name__}")
    mods = _make_modules()
    if not force:
        clashes = {name: loc for name in mods if (loc := _real_module_location(name)) is not None}
        if clashes:
            desc = "; ".join(f"{n!r} from {loc}" for n, loc in clashes.items())
            raise RuntimeError(
                f"flaggems.compat.deepseek_v4.install: refusing to shadow a different module: {desc}. "
                "Pass force=True to replace it with the flaggems shim (uninstall() restores it).")
    for name, mod in mods.items():
        prev = sys.modules.get(name)
        if prev is not None and _is_shim(prev):
            mods[name] = prev      # keep the installed shim object (idempotent)
            continue
        if prev is not None and name not in _displaced:
            _displaced[name] = prev
        sys.modules[name] = mod
    return mods


def uninstall() -> None:
    """Remove the shims from sys.modules, restoring any module ``install(force=True)`` displaced."""
    for name in ("kernel", "fast_hadamard_transform"):
        mod = sys.modules.get(name)
        if mod is not None and _is_shim(mod):
            del sys.modules[name]
        if name in _displaced:
            sys.modules[name] = _displaced.pop(name)


def installed() -> bool:
    return all(_is_shim(sys.modules.get(n)) for n in ("kernel", "fast_hadamard_transform"))
