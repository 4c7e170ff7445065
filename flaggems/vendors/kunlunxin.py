"""Kunlunxin XPUs (Kunlun P800 / R200) through Kunlunxin's CUDA-compatible torch runtime: device type ``cuda``.

Detected from the device name reported by ``torch.cuda.get_device_name`` (contains "Kunlun", or a Kunlun part
number on a device that is not NVIDIA's: "P800" alone would also match an NVIDIA Quadro P800). Checked before
``nvidia``.
Capabilities (conservative, not hardware-verified): no fp64 (FlagGems disables fp64 for Kunlunxin), bf16/fp16 yes,
no fp8/fp4, int64 yes, no ``tl.dot_scaled``. Deny list from FlagGems' Kunlunxin backend.
"""
import re

from . import _detect
from .base import Capabilities, VendorPlugin, config_path

NAME_PATTERNS = (r"kunlun",)
PART_NUMBERS = (r"\bP800\b", r"\bR200\b", r"\bR300\b")


def _detect_kunlunxin() -> bool:
    if _detect.cuda_compatible(name_patterns=NAME_PATTERNS, hip=False):
        return True
    if not _detect.cuda_compatible(name_patterns=PART_NUMBERS, hip=False):
        return False
    return not re.search(r"nvidia|quadro|geforce|tesla", _detect.cuda_device_name(), re.IGNORECASE)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="kunlunxin",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect_kunlunxin,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("kunlunxin"),
        deny=frozenset({"cumsum", "cumsum_", "topk", "atan2.out"}),
        interpret=False,
        triton_distribution="triton (Kunlunxin XPU build)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="Kunlunxin XPU via its CUDA-compatible torch runtime, device 'cuda'.",
    )
