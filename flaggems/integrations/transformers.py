"""Run transformers' FP8 / FP4 checkpoints (``FineGrainedFP8Config``: FP8Linear, FP8Experts) on flaggems.

``install()`` does two things, both undone by ``uninstall()``:

1. **Kernel provider.** transformers loads the ``kernels-community/finegrained-fp8`` hub kernel through
   ``hub_kernels.lazy_load_kernel("finegrained-fp8")``, which returns a module found in
   ``hub_kernels._KERNEL_MODULE_MAPPING`` before trying the hub: ``flaggems.integrations.finegrained_fp8`` is
   put there. Without the ``kernels`` package, ``integrations.finegrained_fp8`` refuses before consulting the
   mapping, so its loaded-kernel cache (``_FINEGRAINED_FP8``) is filled with the same three entry points too.
   No download, any vendor.
2. **No silent dequantisation.** ``FineGrainedFP8HfQuantizer.validate_environment`` switches a pre-quantized
   load to ``dequantize=True`` (BF16, 2x-4x the memory) whenever neither CUDA nor XPU is available, and on
   CUDA below compute capability 8.9. transformers has no configuration flag that keeps the weights quantised
   there (``dequantize`` only goes False -> True) and no device check a vendor plugin can satisfy, so
   ``install()`` registers, under the quantization methods ``"fp8"`` (and ``"mxfp8"``), a subclass whose only
   change is that check: a pre-quantized checkpoint stays FP8 / FP4 in memory because flaggems serves its
   GEMMs. ``quantization_config=FineGrainedFP8Config(dequantize=True)`` (or the checkpoint's own
   ``dequantize: true``) still dequantises; quantising a BF16 model on the fly keeps transformers' rules.
   ``install(keep_quantized=False)`` registers the provider only.

DeepGEMM (CUDA sm90+) keeps priority where transformers finds it; everywhere else ``FP8Linear`` /
``FP8Experts`` (eager, ``batched_mm``, ``grouped_mm``) call the flaggems provider.
"""
from __future__ import annotations

import types

__all__ = ["install", "uninstall", "installed", "KERNEL_NAME"]

KERNEL_NAME = "finegrained-fp8"
_METHODS = ("fp8", "mxfp8")
_state: dict = {}


def _quantizer_class(base):
    class FlaggemsFineGrainedFP8HfQuantizer(base):
        """transformers' FP8 quantizer, keeping pre-quantized weights quantised on any flaggems vendor."""

        def validate_environment(self, *args, **kwargs):
            if self.pre_quantized and not self.quantization_config.dequantize:
                from transformers.utils import is_accelerate_available

                if not is_accelerate_available():
                    raise ImportError("Loading an FP8 quantized model requires accelerate (`pip install accelerate`)")
                return  # flaggems serves finegrained-fp8: no dequantise fallback
            return super().validate_environment(*args, **kwargs)

    return FlaggemsFineGrainedFP8HfQuantizer


def install(keep_quantized: bool = True) -> types.ModuleType:
    """Register flaggems as transformers' ``finegrained-fp8`` kernel; see the module docstring. Idempotent.

    Returns the provider module.
    """
    from transformers.integrations import finegrained_fp8 as tf_fp8
    from transformers.integrations import hub_kernels
    from transformers.quantizers import auto

    from . import finegrained_fp8 as provider

    if "mapping" not in _state:
        _state["mapping"] = hub_kernels._KERNEL_MODULE_MAPPING.get(KERNEL_NAME, _MISSING)
        _state["cache"] = tf_fp8._FINEGRAINED_FP8
    hub_kernels._KERNEL_MODULE_MAPPING[KERNEL_NAME] = provider
    tf_fp8._FINEGRAINED_FP8 = tf_fp8.FineGrainedFP8(matmul=provider.matmul_2d,
                                                     batched_matmul=provider.matmul_batched,
                                                     grouped_matmul=provider.matmul_grouped)
    if keep_quantized and "quantizers" not in _state:
        _state["quantizers"] = {m: auto.AUTO_QUANTIZER_MAPPING[m] for m in _METHODS
                                if m in auto.AUTO_QUANTIZER_MAPPING}
        for m, base in _state["quantizers"].items():
            auto.AUTO_QUANTIZER_MAPPING[m] = _quantizer_class(base)
    return provider


def uninstall() -> None:
    """Restore transformers' kernel mapping, its kernel cache and its FP8 quantizers."""
    if "mapping" not in _state:
        return
    from transformers.integrations import finegrained_fp8 as tf_fp8
    from transformers.integrations import hub_kernels
    from transformers.quantizers import auto

    prev = _state.pop("mapping")
    if prev is _MISSING:
        hub_kernels._KERNEL_MODULE_MAPPING.pop(KERNEL_NAME, None)
    else:
        hub_kernels._KERNEL_MODULE_MAPPING[KERNEL_NAME] = prev
    tf_fp8._FINEGRAINED_FP8 = _state.pop("cache")
    for m, cls in _state.pop("quantizers", {}).items():
        auto.AUTO_QUANTIZER_MAPPING[m] = cls


def installed() -> bool:
    return "mapping" in _state


_MISSING = object()
