"""MetaX GPUs (C500 / C550) through the MACA build of torch: device type ``cuda``.

Detected from ``torch.version.maca`` (set by MACA torch builds) or a device name mentioning MetaX. Checked before
``nvidia`` (MACA torch also reports ``torch.version.cuda``).
Capabilities (conservative, not hardware-verified): fp64 yes (FlagGems does not restrict fp64 on MetaX; the C500
is a GPGPU with fp64), bf16/fp16 yes, no fp8/fp4 (off until validated), int64 yes, no ``tl.dot_scaled``.
FlagGems' MetaX backend denies nothing, and neither does this plugin.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path

NAME_PATTERNS = (r"metax", r"\bMXC\d")


def _detect_metax() -> bool:
    return _detect.cuda_compatible(markers=("version.maca",), name_patterns=NAME_PATTERNS, hip=False)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="metax",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect_metax,
        capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("metax"),
        deny=frozenset(),
        interpret=False,
        triton_distribution="triton (MACA build)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="MetaX GPU via the MACA build of torch, device 'cuda'.",
    )
