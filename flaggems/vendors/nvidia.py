"""NVIDIA CUDA GPUs (Ampere and newer): the fp8 / dot_scaled flags and the Triton target follow the live device."""
from __future__ import annotations

from typing import Optional, Tuple

from ._detect import CudaDevice
from .base import Capabilities, VendorPlugin, config_path


def _capability() -> Optional[Tuple[int, int]]:
    import torch

    try:
        return tuple(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None
    except Exception:
        return None


def make() -> VendorPlugin:
    cc = _capability()
    return VendorPlugin(
        name="nvidia",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=CudaDevice(hip=False, markers=("version.cuda",)),
        # fp8 tl.dot needs sm_89+. Hardware MX block-scaled MMA is sm_100+; Triton emulates dot_scaled on sm_90
        # (correct, slower), so report it only where it is native.
        capabilities=Capabilities(fp8=cc is not None and cc >= (8, 9), dot_scaled=cc is not None and cc[0] >= 10),
        tuned_configs=config_path("nvidia"),
        priority=10,
        hardware_verified=True,
        # without a device: sm_90 (H100 / H200), the part the tuned configs are written for
        triton_target=f"cuda:{cc[0] * 10 + cc[1]}" if cc else "cuda:90",
        description="NVIDIA GPUs through the CUDA build of torch and upstream Triton.",
    )
