"""Iluvatar CoreX GPUs (BI-V100 / BI-V150 / MR-V100) through the CoreX build of torch: device type ``cuda``.

Detected from ``torch.corex`` (present in CoreX torch builds) or a device name mentioning Iluvatar / BI-V / MR-V.
Checked before ``nvidia``.
Capabilities (conservative, not hardware-verified): no fp64 (FlagGems disables fp64 for Iluvatar), bf16/fp16 yes,
no fp8/fp4, int64 yes, no ``tl.dot_scaled``. FlagGems' Iluvatar backend denies nothing, and neither does this
plugin.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path

NAME_PATTERNS = (r"iluvatar", r"\bBI-V\d", r"\bMR-V\d")


def _detect_iluvatar() -> bool:
    return _detect.cuda_compatible(markers=("corex",), name_patterns=NAME_PATTERNS, hip=False)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="iluvatar",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect_iluvatar,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("iluvatar"),
        deny=frozenset(),
        interpret=False,
        triton_distribution="triton (Iluvatar CoreX build)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="Iluvatar CoreX GPU via the CoreX build of torch, device 'cuda'.",
    )
