"""CPU vendor: Triton kernels run through the interpreter on CPU tensors; C++ kernels preferred where present."""
from .base import Capabilities, VendorPlugin, config_path

PLUGIN = VendorPlugin(
    name="cpu",
    device_type="cpu",
    dispatch_key="CPU",
    detect=lambda: True,
    # The interpreter computes fp64 and int64 exactly; fp8/fp4 go through the ml_dtypes fix-up and
    # tl.dot_scaled is emulated exactly (but a dequantise path is as fast there).
    capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=True, fp4=True, int64=True, dot_scaled=True),
    tuned_configs=config_path("cpu"),
    interpret=True,
    prefer=("cpp", "triton"),
    priority=-100,
    hardware_verified=True,
    description="Host CPU. Triton via TRITON_INTERPRET=1 with the bf16/fp8 fix-up; C++ kernels from flaggems._C.",
)


def make() -> VendorPlugin:
    return PLUGIN
