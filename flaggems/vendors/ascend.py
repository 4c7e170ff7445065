"""Huawei Ascend NPUs (Atlas A2/A3: Ascend 910B/910C) through ``torch_npu`` and triton-ascend.

torch_npu renames PrivateUse1 to ``npu``; flaggems registers at ``PrivateUse1``.
Capabilities (conservative, not hardware-verified): no fp64 (FlagGems lists Ascend as fp64-unsupported; the
cube unit has none), bf16/fp16 yes, no fp8/fp4 on 910B/910C (announced for later parts; off until validated),
int64 yes, no ``tl.dot_scaled`` in triton-ascend. Deny list from FlagGems' Ascend backend (sort/topk are left
to torch_npu's kernels there).
"""
from . import _detect
from .base import Capabilities, VendorPlugin, config_path


def _detect_ascend() -> bool:
    return _detect.privateuse1_extension("torch_npu", "npu")


def make() -> VendorPlugin:
    return VendorPlugin(
        name="ascend",
        device_type="npu",
        dispatch_key="PrivateUse1",
        detect=_detect_ascend,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=config_path("ascend"),
        deny=frozenset({"sort", "topk"}),
        interpret=False,
        triton_distribution="triton-ascend",
        prefer=("triton", "cpp"),
        priority=10,
        hardware_verified=False,
        extension_modules=("torch_npu",),
        description="Huawei Ascend NPU via torch_npu (PrivateUse1 'npu') and triton-ascend.",
    )
