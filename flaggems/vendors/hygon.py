"""Hygon DCUs (Z100 / K100 / BW) through Hygon's DTK (ROCm-compatible) build of torch: device type ``cuda``.

Told apart from ``amd`` (which also sees ``torch.version.hip``): DTK torch carries ``torch.__hcu_version__``,
and the device name says DCU/Hygon. Checked before ``amd``.
Capabilities (conservative, not hardware-verified): fp64 yes (DCUs are GPGPUs with fp64 units), bf16/fp16 yes
(K100-AI and later; Z100 lacks bf16), no fp8/fp4, int64 yes, no ``tl.dot_scaled``. FlagGems' Hygon backend
denies nothing, and neither does this plugin.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path

NAME_PATTERNS = (r"\bDCU\b", r"hygon", r"\bK100", r"\bZ100", r"\bBW\d{3}")


def _detect_hygon() -> bool:
    return _detect.cuda_compatible(markers=("__hcu_version__", "version.hcu"), name_patterns=NAME_PATTERNS,
                                   hip=True)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="hygon",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect_hygon,
        capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("hygon"),
        deny=frozenset(),
        interpret=False,
        triton_distribution="triton (Hygon DTK build, HIP backend)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="Hygon DCU via the DTK (ROCm-compatible) torch build, device 'cuda'.",
    )
