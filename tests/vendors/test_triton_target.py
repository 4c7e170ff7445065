"""VendorPlugin.triton_target: each built-in names the Triton compile target its kernels are built for
("backend:arch", or None), nvidia's follows the live device, malformed targets are refused, and `info` shows it."""
import json

import pytest

import flaggems
from flaggems import vendors
from flaggems.__main__ import main as cli
from flaggems.vendors import VendorPlugin, split_triton_target

from simulate import clean, cuda_like

TARGETS = {
    "ascend": "npu:Ascend910B4",
    "cambricon": None,       # Cambricon's own "mlu" backend
    "mthreads": None,        # Triton for MUSA: "musa" backend
    "hygon": "hip:gfx942",
    "kunlunxin": None,       # "xpu" backend
    "thead": None,           # "ppu" target
    "metax": None,           # "maca" backend
    "iluvatar": "cuda:71",   # CoreX: a CUDA-backend fork, ivcore11
    "amd": "hip:gfx942",
    "cpu": None,             # the interpreter
    "sim": None,             # the interpreter, on the simulated fgsim device
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_builtin_targets(name):
    p = vendors.builtin(name)
    assert p.triton_target == TARGETS[name]
    assert p.info()["triton_target"] == TARGETS[name]
    if p.triton_target is not None:
        backend, _ = split_triton_target(p.triton_target)
        assert backend in ("cuda", "hip", "npu")


def test_every_builtin_is_listed():
    assert set(TARGETS) | {"nvidia"} == set(vendors.DETECTION_ORDER)


@pytest.mark.parametrize("cc,target,fp8,dot_scaled", [(None, "cuda:90", False, False), ((8, 0), "cuda:80", False, False),
                                                      ((9, 0), "cuda:90", True, False),
                                                      ((10, 0), "cuda:100", True, True),
                                                      ((12, 0), "cuda:120", True, True)])
def test_nvidia_target_follows_the_device(monkeypatch, cc, target, fp8, dot_scaled):
    """sm_<cc> of the live device; without one, sm_90 (the part the tuned configs are written for)."""
    clean(monkeypatch)
    if cc is not None:
        cuda_like(monkeypatch, "NVIDIA test part")
        monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: cc)
    p = vendors.builtin("nvidia")
    assert p.triton_target == target
    assert (p.capabilities.fp8, p.capabilities.dot_scaled) == (fp8, dot_scaled)
    assert p.detect() is (cc is not None)


@pytest.mark.parametrize("bad", ["cuda", "cuda:sm_90", "cuda:9.0", "cuda:09", "hip:942", "hip:GFX942", "CUDA:90",
                                 ":90", "cuda:", "cuda:90:32", "npu:Ascend 910B", 90])
def test_malformed_target_is_refused(bad):
    with pytest.raises(ValueError, match="triton_target"):
        VendorPlugin(name="x", device_type="cpu", dispatch_key="CPU", detect=lambda: True, triton_target=bad)


@pytest.mark.parametrize("target,parts", [("cuda:90", ("cuda", 90)), ("cuda:100", ("cuda", 100)),
                                          ("hip:gfx942", ("hip", "gfx942")), ("hip:gfx90a", ("hip", "gfx90a")),
                                          ("npu:Ascend910B4", ("npu", "Ascend910B4")), ("musa:ph1", ("musa", "ph1"))])
def test_split_target(target, parts):
    assert split_triton_target(target) == parts
    assert VendorPlugin(name="x", device_type="cpu", dispatch_key="CPU", detect=lambda: True,
                        triton_target=target).triton_target == target


def test_info_command_shows_the_target(capsys):
    v = flaggems.vendor()
    assert cli(["info"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("triton target:")]
    assert len(lines) == 1
    assert lines[0].split(": ", 1)[1] == v.triton_target if v.triton_target else lines[0].startswith("triton target: none")
    assert cli(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vendor"]["triton_target"] == v.triton_target
