"""NVIDIA CUDA GPUs (Ampere and newer)."""
from .base import Capabilities, VendorPlugin, config_path


def _detect() -> bool:
    import torch

    return bool(torch.cuda.is_available() and getattr(torch.version, "cuda", None)
                and not getattr(torch.version, "hip", None))


def _dot_scaled() -> bool:
    # Hardware MX block-scaled MMA is sm_100+; Triton emulates dot_scaled on sm_90 (correct, slower), so
    # report it only where it is native.
    import torch

    try:
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 10
    except Exception:
        return False


def _fp8() -> bool:
    import torch

    try:
        return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
    except Exception:
        return False


def make() -> VendorPlugin:
    return VendorPlugin(
        name="nvidia",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect,
        capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=_fp8(), fp4=True, int64=True,
                                  dot_scaled=_dot_scaled()),
        tuned_configs=config_path("nvidia"),
        interpret=False,
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=True,
        description="NVIDIA GPUs through the CUDA build of torch and upstream Triton.",
    )
