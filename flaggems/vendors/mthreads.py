"""Moore Threads GPUs (MTT S4000 / S5000) through ``torch_musa``.

torch_musa renames PrivateUse1 to ``musa``; flaggems registers at ``PrivateUse1``.
Capabilities (conservative, not hardware-verified): no fp64 (FlagGems lists Moore Threads as fp64-unsupported),
bf16/fp16 yes, fp8/fp4 off (newer parts advertise fp8; off until validated), int64 yes, no ``tl.dot_scaled``.
FlagGems' Moore Threads backend denies nothing, and neither does this plugin.
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path


def _detect_mthreads() -> bool:
    return _detect.privateuse1_extension("torch_musa", "musa")


def make() -> VendorPlugin:
    return VendorPlugin(
        name="mthreads",
        device_type="musa",
        dispatch_key="PrivateUse1",
        detect=_detect_mthreads,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("mthreads"),
        deny=frozenset(),
        interpret=False,
        triton_distribution="triton (MUSA build, from the Moore Threads SDK)",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        extension_modules=("torch_musa",),
        description="Moore Threads GPU via torch_musa (PrivateUse1 'musa') and Triton for MUSA.",
    )
