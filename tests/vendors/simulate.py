"""Simulated vendor environments for the seed plugins: fake torch extension modules in ``sys.modules`` and
patched ``torch.cuda`` / ``torch.version`` probes. Nothing here needs the hardware."""
from __future__ import annotations

import dataclasses
import importlib.machinery
import sys
import types

import torch

from flaggems import vendors


def fake_extension(monkeypatch, module: str, device: str, available: bool = True):
    """Install a fake ``torch_npu``-style module and the ``torch.<device>`` namespace it would add."""
    mod = types.ModuleType(module)
    mod.__spec__ = importlib.machinery.ModuleSpec(module, loader=None)
    mod.__version__ = "0.0.0+simulated"
    monkeypatch.setitem(sys.modules, module, mod)
    ns = types.SimpleNamespace(is_available=lambda: available, device_count=lambda: int(available))
    monkeypatch.setattr(torch, device, ns, raising=False)
    return mod


def cuda_like(monkeypatch, name: str, hip=None, cuda="12.4", **torch_attrs):
    """A torch whose CUDA API reports one device called ``name`` (a ROCm build when ``hip`` is set)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.version, "hip", hip, raising=False)
    monkeypatch.setattr(torch.version, "cuda", None if hip else cuda, raising=False)
    for attr, value in torch_attrs.items():
        target, _, leaf = attr.rpartition(".")
        monkeypatch.setattr(torch.version if target == "version" else torch, leaf, value, raising=False)


def clean(monkeypatch):
    """No accelerator at all (whatever this machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    for var in ("PPU_SDK", "FLAGGEMS_VENDOR"):
        monkeypatch.delenv(var, raising=False)
    for mod in ("torch_npu", "torch_mlu", "torch_musa"):
        monkeypatch.setitem(sys.modules, mod, None)  # None in sys.modules: "not importable"
    for dev in ("npu", "mlu", "musa", "corex", "__hcu_version__"):
        monkeypatch.delattr(torch, dev, raising=False)
    monkeypatch.delattr(torch.version, "maca", raising=False)


# vendor -> list of (label, setup(monkeypatch)) environments that must select it
ENVIRONMENTS = {
    "ascend": [("torch_npu", lambda mp: fake_extension(mp, "torch_npu", "npu"))],
    "cambricon": [("torch_mlu", lambda mp: fake_extension(mp, "torch_mlu", "mlu"))],
    "mthreads": [("torch_musa", lambda mp: fake_extension(mp, "torch_musa", "musa"))],
    "hygon": [("hcu_version", lambda mp: cuda_like(mp, "Device 66a1", hip="5.7.24164", __hcu_version__="2.4.1+das")),
              ("device_name", lambda mp: cuda_like(mp, "K100_AI", hip="6.2.0"))],
    "kunlunxin": [("device_name", lambda mp: cuda_like(mp, "Kunlun3 P800")),
                  ("part_number", lambda mp: cuda_like(mp, "P800 OAM"))],
    "thead": [("PPU_SDK", lambda mp: (cuda_like(mp, "Device 0"), mp.setenv("PPU_SDK", "/opt/ppu"))),
              ("device_name", lambda mp: cuda_like(mp, "PPU-ZW810E"))],
    "metax": [("torch.version.maca", lambda mp: cuda_like(mp, "Device 4000", **{"version.maca": "2.29.0.18"})),
              ("device_name", lambda mp: cuda_like(mp, "MetaX C500"))],
    "iluvatar": [("torch.corex", lambda mp: cuda_like(mp, "Device", corex=True)),
                 ("device_name", lambda mp: cuda_like(mp, "Iluvatar BI-V150"))],
    "nvidia": [("device_name", lambda mp: cuda_like(mp, "NVIDIA H100 80GB HBM3")),
               ("quadro_p800", lambda mp: cuda_like(mp, "Quadro P800"))],
    "amd": [("hip", lambda mp: cuda_like(mp, "AMD Instinct MI300X", hip="6.2.41133"))],
    "cpu": [("nothing", lambda mp: None)],
}

# Generic plugins that also match a vendor's environment: the reason detection order matters.
ALSO_MATCH = {"hygon": {"amd"}, "kunlunxin": {"nvidia"}, "thead": {"nvidia"}, "metax": {"nvidia"},
              "iluvatar": {"nvidia"}}


def simulated(plugin, **changes):
    """The plugin's data (capabilities, deny list, overrides, configs, preferred kinds) on CPU tensors: what a
    device of this vendor would resolve, runnable here through the Triton interpreter."""
    return dataclasses.replace(plugin, device_type="cpu", dispatch_key="CPU", interpret=True,
                               extension_modules=(), **changes)


def seed(name: str, **caps):
    p = vendors.builtin(name)
    return p if not caps else dataclasses.replace(p, capabilities=p.capabilities.replace(**caps))
