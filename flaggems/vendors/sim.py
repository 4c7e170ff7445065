"""The simulated device (flaggems/testing/simdevice): a PrivateUse1 backend named ``fgsim`` with host memory and
no compute kernels, served entirely by flaggems — the way to run a vendor plugin's path before hardware exists.

Same capability flags as the cpu vendor (the kernels run on the host: Triton through the interpreter, the C++
kernels directly on device memory, which is host memory), but the device type is ``fgsim`` and the overrides are
registered at ``PrivateUse1``, like torch_npu / torch_mlu / torch_musa devices. Selected with
``FLAGGEMS_VENDOR=sim`` (which builds and loads the device), or detected when the process already loaded it.
"""
from .base import Capabilities, VendorPlugin, config_path

DEVICE_TYPE = "fgsim"


def _loaded() -> bool:
    # presence only: never builds or loads the device (detection must be cheap and side-effect free)
    from ..testing.simdevice import is_loaded

    return is_loaded()


PLUGIN = VendorPlugin(
    name="sim",
    device_type=DEVICE_TYPE,
    dispatch_key="PrivateUse1",
    detect=_loaded,
    capabilities=Capabilities(fp64=True, bf16=True, fp16=True, fp8=True, fp4=True, int64=True, dot_scaled=True),
    # the kernels run on the host CPU, so the cpu vendor's tuned configs are the right ones
    tuned_configs=config_path("cpu"),
    interpret=True,
    triton_distribution="triton (interpreter)",
    prefer=("cpp", "triton"),
    hardware_verified=False,
    description="Simulated PrivateUse1 device 'fgsim' (host memory, no kernels of its own): every op from flaggems.",
    extension_modules=("flaggems.testing.simdevice.register",),
)


def make() -> VendorPlugin:
    return PLUGIN
