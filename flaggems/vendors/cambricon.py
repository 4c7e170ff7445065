"""Cambricon MLUs (MLU370 / MLU590) through ``torch_mlu``.

torch_mlu renames PrivateUse1 to ``mlu``; flaggems registers at ``PrivateUse1``.
Capabilities (conservative, not hardware-verified): no fp64 (FlagGems lists Cambricon as fp64-unsupported),
bf16 yes (MLU590; MLU370 lacks bf16 — a plugin for MLU370 should turn it off), fp16 yes, no fp8/fp4, int64 yes,
no ``tl.dot_scaled``. Deny list from FlagGems' Cambricon backend.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path


def _detect_cambricon() -> bool:
    return _detect.privateuse1_extension("torch_mlu", "mlu")


def make() -> VendorPlugin:
    return VendorPlugin(
        name="cambricon",
        device_type="mlu",
        dispatch_key="PrivateUse1",
        detect=_detect_cambricon,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("cambricon"),
        deny=frozenset({"masked_scatter", "masked_scatter_", "scatter_add_"}),
        interpret=False,
        triton_distribution="triton (Cambricon build, from the Cambricon PyTorch SDK)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        extension_modules=("torch_mlu",),
        description="Cambricon MLU via torch_mlu (PrivateUse1 'mlu') and Cambricon's Triton.",
    )
