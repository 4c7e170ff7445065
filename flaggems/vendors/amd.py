"""AMD GPUs through the ROCm build of torch (device type "cuda", torch.version.hip set)."""
from .base import Capabilities, VendorPlugin, config_path


def _detect() -> bool:
    import torch

    return bool(getattr(torch.version, "hip", None) and torch.cuda.is_available())


def make() -> VendorPlugin:
    return VendorPlugin(
        name="amd",
        device_type="cuda",
        dispatch_key="CUDA",
        detect=_detect,
        # MI300 fp8 is the fnuz flavour; the registry only routes e4m3fn/e5m2 where fp8 is set, so keep it off
        # until kernels are validated on ROCm.
        capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("amd"),
        interpret=False,
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        description="AMD Instinct GPUs via ROCm torch and Triton's AMD backend.",
    )
