"""The sim vendor, and a seed plugin rehearsed on fgsim as docs/vendors.md describes: its deny list and missing
capabilities become loud errors on a device without native kernels, never a silent native run."""
import dataclasses

import pytest
import torch

import flaggems
from flaggems import registry, vendors


def test_sim_vendor_is_active_and_registers_at_privateuse1(fgsim):
    v = flaggems.vendor()
    assert (v.name, v.device_type, v.dispatch_key, v.interpret) == ("sim", "fgsim", "PrivateUse1", True)
    assert v.capabilities == vendors.builtin("cpu").capabilities
    assert vendors.detect_builtin().name == "sim"       # detected first once the device is loaded
    x = torch.randn(3)
    with flaggems.use_gems(), flaggems.record() as rep:
        assert torch._C._dispatch_has_kernel_for_dispatch_key("aten::mul.Tensor", "PrivateUse1")
        (x.to(fgsim) * 2, x * 2)
    # the device's tensors are served; host tensors keep torch's CPU kernels (flaggems patched PrivateUse1 only)
    assert rep.served_by("mul.Tensor") == {"triton": 1}
    assert sum(rep.fallbacks()["aten::mul.Tensor"].values()) == 1


def _rehearsal(name):
    """A seed plugin's data on the simulated device (the recipe in docs/vendors.md)."""
    return dataclasses.replace(vendors.builtin(name), name=f"{name}-sim", device_type="fgsim",
                               dispatch_key="PrivateUse1", interpret=True,
                               extension_modules=("flaggems.testing.simdevice.register",),
                               detect=vendors.builtin("sim").detect)


def test_seed_plugin_rehearsed_on_fgsim(fgsim):
    x = torch.randn(4, 8)
    d = x.to(fgsim)
    with registry.override_vendor(_rehearsal("ascend")), flaggems.use_gems(), flaggems.record() as rep:
        y = d * 2
        assert torch.equal(y.cpu(), x * 2) and rep.served_by("mul.Tensor") == {"triton": 1}
        # ascend denies sort: not patched, and there is no native kernel to hide behind
        with pytest.raises(NotImplementedError, match=r"Could not run 'aten::sort[.\w]*' with arguments from the 'fgsim'"):
            torch.sort(d, dim=-1)
        # ascend lacks fp64: an fp64 add goes to the native kernel, which the device does not have
        dd = d.double()                               # a copy with conversion: the runtime's _copy_from
        with pytest.raises(NotImplementedError, match=r"Could not run 'aten::add\.out'"):
            dd + dd
    assert rep.fallbacks()["aten::add.Tensor"] == {"vendor lacks fp64": 1}
