"""The built-in vendors that are pure data: the eight seed plugins and ``amd``, one row each.

A row holds what differs between these vendors, under :class:`~flaggems.vendors.base.VendorPlugin`'s field
names. :func:`make` adds what the row's detection rule implies (a ``PrivateUse1`` rule: that device type, the
``PrivateUse1`` dispatch key and the torch extension to import once chosen; a ``CudaDevice`` rule: device
``cuda``, key ``CUDA``) and what they all share (tuned configs in ``configs/<name>.json``, priority 10, not
hardware-verified). ``nvidia`` (flags read from the live device) and ``cpu`` (the interpreter) are modules.

None of the seeds has run on its hardware. Their flags are conservative readings of public documentation and of
FlagGems' per-vendor backends; where unsure a flag is off (an off flag costs speed, a wrong on flag costs
correctness), and fp8 / fp4 / ``tl.dot_scaled`` are off everywhere until validated. Deny lists are FlagGems'
per-backend unused-op lists, mapped to ATen names. ``triton_target`` is given only where the vendor's Triton
is a CUDA or HIP fork; the others build for a backend of their own (named in each row's comment, as FlagTree's
per-vendor drivers report it).
"""
from __future__ import annotations

from ._detect import CudaDevice, PrivateUse1
from .base import Capabilities, VendorPlugin, config_path

# What a vendor without fp8/fp4 can do; rows with fp64 say so.
_NO_FP64 = Capabilities(fp64=False, fp8=False, fp4=False)
_FP64 = Capabilities(fp8=False, fp4=False)

# Device-name patterns are case-insensitive regular expressions searched in torch.cuda.get_device_name(0).
ROWS = {
    # Huawei Ascend NPUs (Atlas A2/A3: 910B / 910C); torch_npu renames PrivateUse1 to "npu". No fp64 (FlagGems
    # lists Ascend as fp64-unsupported; the cube unit has none); no fp8/fp4 on 910B/910C (announced for later
    # parts); sort and topk stay with torch_npu's kernels, as in FlagGems' Ascend backend.
    "ascend": dict(
        detect=PrivateUse1("torch_npu", "npu"), capabilities=_NO_FP64, deny={"sort", "topk"},
        triton_distribution="triton-ascend",
        triton_target="npu:Ascend910B4",  # triton-ascend's GPUTarget("npu", "Ascend910B4", 0)
        description="Huawei Ascend NPU via torch_npu (PrivateUse1 'npu') and triton-ascend."),
    # Cambricon MLUs (MLU370 / MLU590); torch_mlu renames PrivateUse1 to "mlu". No fp64 (FlagGems lists Cambricon
    # as fp64-unsupported); bf16 is the MLU590's (MLU370 has none: a plugin for it should turn bf16 off).
    # Triton target: none, Cambricon's Triton is its own "mlu" backend (arch = the MLU ISA version).
    "cambricon": dict(
        detect=PrivateUse1("torch_mlu", "mlu"), capabilities=_NO_FP64,
        deny={"masked_scatter", "masked_scatter_", "scatter_add_"},
        triton_distribution="triton (Cambricon build, from the Cambricon PyTorch SDK)",
        description="Cambricon MLU via torch_mlu (PrivateUse1 'mlu') and Cambricon's Triton."),
    # Moore Threads GPUs (MTT S4000 / S5000); torch_musa renames PrivateUse1 to "musa". No fp64 (FlagGems lists
    # Moore Threads as fp64-unsupported); fp8 is advertised on newer parts, off until validated. FlagGems' Moore
    # Threads backend denies nothing. Triton target: none, Triton for MUSA is its own "musa" backend.
    "mthreads": dict(
        detect=PrivateUse1("torch_musa", "musa"), capabilities=_NO_FP64,
        triton_distribution="triton (MUSA build, from the Moore Threads SDK)",
        description="Moore Threads GPU via torch_musa (PrivateUse1 'musa') and Triton for MUSA."),
    # Hygon DCUs (Z100 / K100 / BW) through the DTK (ROCm-compatible) torch. Told apart from amd, which also sees
    # torch.version.hip, by torch.__hcu_version__ or the device name; detected before amd. fp64 yes (GPGPUs with
    # fp64 units); bf16 from K100-AI on (Z100 has none). FlagGems' Hygon backend denies nothing.
    "hygon": dict(
        detect=CudaDevice(hip=True, markers=("__hcu_version__", "version.hcu"),
                          names=(r"\bDCU\b", r"hygon", r"\bK100", r"\bZ100", r"\bBW\d{3}")),
        capabilities=_FP64, triton_distribution="triton (Hygon DTK build, HIP backend)",
        # DTK's Triton is a HIP-backend fork; gfx942 is the HIP arch upstream Triton compiles (issue 11). The
        # DCUs' own ISAs (gfx936 / gfx938 in FlagTree's hcu backend) are no upstream Triton target.
        triton_target="hip:gfx942",
        description="Hygon DCU via the DTK (ROCm-compatible) torch build, device 'cuda'."),
    # Kunlunxin XPUs (Kunlun P800 / R200) through a CUDA-compatible torch runtime, detected before nvidia from the
    # device name: "Kunlun", or a Kunlun part number on a name that is not NVIDIA's (an NVIDIA Quadro P800 exists).
    # No fp64 (FlagGems disables it for Kunlunxin). Triton target: none, its Triton is an "xpu" backend.
    "kunlunxin": dict(
        detect=CudaDevice(names=(r"kunlun",), parts=(r"\bP800\b", r"\bR200\b", r"\bR300\b"),
                          unless=(r"nvidia|quadro|geforce|tesla",)),
        capabilities=_NO_FP64, deny={"cumsum", "cumsum_", "topk", "atan2.out"},
        triton_distribution="triton (Kunlunxin XPU build)",
        description="Kunlunxin XPU via its CUDA-compatible torch runtime, device 'cuda'."),
    # T-Head (Alibaba) Zhenwu PPUs through the PPU SDK's CUDA-compatible runtime, detected before nvidia from
    # PPU_SDK (set by the SDK; FlagGems uses the same marker) or the device name. The SDK documents
    # FP16/BF16/FP32/INT8, not fp64: off. FlagGems' T-Head backend denies nothing. Triton target: none, the PPU
    # Triton names a "ppu" target of its own.
    "thead": dict(
        detect=CudaDevice(env=("PPU_SDK",), names=(r"\bPPU\b", r"zhenwu", r"t-head", r"\bthead\b")),
        capabilities=_NO_FP64, triton_distribution="triton (PPU SDK build)",
        description="T-Head Zhenwu PPU via the PPU SDK's CUDA-compatible torch, device 'cuda'."),
    # MetaX GPUs (C500 / C550) through the MACA torch build, detected before nvidia (MACA torch also sets
    # torch.version.cuda) from torch.version.maca or the device name. fp64 yes (FlagGems does not restrict it; the
    # C500 is a GPGPU). FlagGems' MetaX backend denies nothing. Triton target: none, MetaX's Triton is a "maca"
    # backend that accepts only maca targets (it compiles for MACA, not PTX).
    "metax": dict(
        detect=CudaDevice(markers=("version.maca",), names=(r"metax", r"\bMXC\d")),
        capabilities=_FP64, triton_distribution="triton (MACA build)",
        description="MetaX GPU via the MACA build of torch, device 'cuda'."),
    # Iluvatar CoreX GPUs (BI-V100 / BI-V150 / MR-V100) through the CoreX torch build, detected before nvidia from
    # torch.corex or the device name. No fp64 (FlagGems disables it for Iluvatar). FlagGems' Iluvatar backend
    # denies nothing.
    "iluvatar": dict(
        detect=CudaDevice(markers=("corex",), names=(r"iluvatar", r"\bBI-V\d", r"\bMR-V\d")),
        capabilities=_NO_FP64, triton_distribution="triton (Iluvatar CoreX build)",
        # CoreX Triton is a fork of the CUDA backend: its driver reports GPUTarget("cuda", <cc>, 64) and takes
        # "cuda" targets; cc 71 is ivcore11, the arch public CoreX releases emit assembly for (FlagTree's
        # iluvatar backend). Its warps are 64 wide, not 32.
        triton_target="cuda:71",
        description="Iluvatar CoreX GPU via the CoreX build of torch, device 'cuda'."),
    # AMD Instinct GPUs through ROCm torch (torch.version.hip). MI300 fp8 is the fnuz flavour and the registry
    # routes only e4m3fn/e5m2 where fp8 is set: off until the kernels are validated on ROCm.
    "amd": dict(
        detect=CudaDevice(hip=True), capabilities=_FP64,
        triton_target="hip:gfx942",  # MI300 (CDNA3)
        description="AMD Instinct GPUs via ROCm torch and Triton's AMD backend."),
}


def make(name: str) -> VendorPlugin:
    row = dict(ROWS[name])
    rule = row["detect"]
    if isinstance(rule, PrivateUse1):
        where = dict(device_type=rule.device, dispatch_key="PrivateUse1", extension_modules=(rule.module,))
    else:
        where = dict(device_type="cuda", dispatch_key="CUDA")
    row["deny"] = frozenset(row.get("deny", ()))
    return VendorPlugin(name=name, tuned_configs=config_path(name), priority=10, **where, **row)
