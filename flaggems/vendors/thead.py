"""T-Head (Alibaba) Zhenwu PPUs through the PPU SDK's CUDA-compatible runtime: device type ``cuda``.

Detected from ``PPU_SDK`` in the environment (set by the PPU SDK; FlagGems uses the same marker) or a device
name mentioning PPU / Zhenwu / T-Head. Checked before ``nvidia``.
Capabilities (conservative, not hardware-verified): the SDK documents FP16/BF16/FP32/INT8; fp64 is not listed,
so off; no fp8/fp4; int64 yes; no ``tl.dot_scaled``. FlagGems' T-Head backend denies nothing, and neither does
this plugin.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path

NAME_PATTERNS = (r"\bPPU\b", r"zhenwu", r"t-head", r"\bthead\b")


def _detect_thead() -> bool:
    return _detect.cuda_compatible(env=("PPU_SDK",), name_patterns=NAME_PATTERNS, hip=False)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="thead",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect_thead,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("thead"),
        deny=frozenset(),
        interpret=False,
        triton_distribution="triton (PPU SDK build)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="T-Head Zhenwu PPU via the PPU SDK's CUDA-compatible torch, device 'cuda'.",
    )
