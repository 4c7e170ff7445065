"""Seed vendor plugins: each is detected from its simulated environment (fake torch extension module,
patched torch.cuda / torch.version), detection order separates look-alike vendors, and the declared dispatch
key is where enable() registers."""
import json

import pytest
import torch

import flaggems
from flaggems import registry, vendors
from flaggems.vendors import _detect

from simulate import ALSO_MATCH, ENVIRONMENTS, clean

CASES = [(vendor, label, setup) for vendor, envs in ENVIRONMENTS.items() for label, setup in envs]

EXPECTED = {  # name: (device_type, dispatch_key, fp64, extension module)
    "ascend": ("npu", "PrivateUse1", False, "torch_npu"),
    "cambricon": ("mlu", "PrivateUse1", False, "torch_mlu"),
    "mthreads": ("musa", "PrivateUse1", False, "torch_musa"),
    "hygon": ("cuda", "CUDA", True, None),
    "kunlunxin": ("cuda", "CUDA", False, None),
    "thead": ("cuda", "CUDA", False, None),
    "metax": ("cuda", "CUDA", True, None),
    "iluvatar": ("cuda", "CUDA", False, None),
}


@pytest.mark.parametrize("vendor,label,setup", CASES, ids=[f"{v}-{lab}" for v, lab, _ in CASES])
def test_simulated_environment_selects_vendor(monkeypatch, vendor, label, setup):
    clean(monkeypatch)
    setup(monkeypatch)
    # full selection path (no FLAGGEMS_VENDOR; entry points first, then the built-in order; extension imported)
    chosen = vendors.select()
    assert chosen.name == vendor
    assert vendors.detect_builtin().name == vendor
    # which plugins would match on their own: the vendor, plus only the documented generic look-alikes
    matching = {n for n in vendors.DETECTION_ORDER if vendors.builtin(n).detect()} - {"cpu"}
    assert matching == ({vendor} | ALSO_MATCH.get(vendor, set())) - {"cpu"}
    # and the vendor comes before each look-alike
    for other in ALSO_MATCH.get(vendor, ()):
        assert vendors.DETECTION_ORDER.index(vendor) < vendors.DETECTION_ORDER.index(other)


def test_no_accelerator_selects_cpu(monkeypatch):
    clean(monkeypatch)
    assert vendors.select().name == "cpu"


@pytest.mark.parametrize("module,device", [("torch_npu", "npu"), ("torch_mlu", "mlu"), ("torch_musa", "musa")])
def test_privateuse1_extension_without_device_is_not_selected(monkeypatch, module, device):
    from simulate import fake_extension

    clean(monkeypatch)
    fake_extension(monkeypatch, module, device, available=False)
    assert vendors.select().name == "cpu"


def test_failing_probe_means_not_detected(monkeypatch):
    clean(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def boom(device=None):
        raise RuntimeError("driver not loaded")

    monkeypatch.setattr(torch.cuda, "get_device_name", boom)
    assert _detect.cuda_device_name() == ""
    assert not vendors.builtin("kunlunxin").detect()


def test_failed_extension_import_is_an_error(monkeypatch):
    clean(monkeypatch)
    monkeypatch.setenv("FLAGGEMS_VENDOR", "ascend")
    with pytest.raises(vendors.VendorSelectionError, match="torch_npu"):
        vendors.select()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_plugin_data(name):
    p = vendors.builtin(name)
    dev, key, fp64, ext = EXPECTED[name]
    assert (p.device_type, p.dispatch_key, p.capabilities.fp64) == (dev, key, fp64)
    assert p.extension_modules == ((ext,) if ext else ())
    assert p.hardware_verified is False and p.interpret is False
    assert p.triton_distribution and p.description
    assert p.capabilities.fp8 is False and p.capabilities.dot_scaled is False  # conservative: see docs/vendors.md
    info = p.info()
    json.dumps(info)
    assert info["dispatch_key"] == key and info["hardware_verified"] is False
    # deny lists name real ATen ops (expansion raises on unknown names)
    registry.expand_names(p.deny, registry.declared(), strict=False, what="deny")


def _known_kernels():
    """Kernel name -> the parameters every config of it must set: the nvidia file's kernels and the GEMM
    kernels' own default tiles (flaggems/ops/gemm/*.py TILES)."""
    from flaggems.ops.gemm import dense, fp4_gemm, fp8_gemm, grouped, recipes

    known = {k: {p for p in c[0] if p not in ("num_warps", "num_stages")}
             for k, c in vendors.builtin("nvidia").configs().items()}
    for t in (dense.TILES, fp8_gemm.TILES, fp4_gemm.TILES, grouped.ROWS_TILES, grouped.KSPLIT_TILES, recipes.TILES):
        known.setdefault(t.kernel, {p for p in t.device[""][0] if p not in ("num_warps", "num_stages", "GROUP_M")})
    return known


@pytest.mark.parametrize("name", vendors.DETECTION_ORDER)
def test_tuned_configs_fit_the_kernels(name):
    """Every vendor's tuned-config file uses kernel names and parameter names the kernels know; keys may be
    per dtype and per Triton target (``mm.float32@hip:gfx942``, runtime.autotune.config_keys)."""
    known = _known_kernels()
    cfgs = vendors.builtin(name).configs()
    keys = [k for k in cfgs if not k.startswith("_")]
    assert keys
    for key in keys:
        kernel = key.split("@")[0].split(".")[0]
        assert kernel in known, (name, key)
        for cfg in cfgs[key]:
            assert known[kernel] <= set(cfg), (name, key, cfg)


def test_verified_flags():
    assert {n for n in vendors.DETECTION_ORDER if vendors.builtin(n).hardware_verified} == {"cpu", "nvidia"}


def test_plugin_rejects_unknown_dispatch_key():
    with pytest.raises(ValueError, match="dispatch key"):
        vendors.VendorPlugin(name="x", device_type="npu", dispatch_key="NPU", detect=lambda: True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_enable_registers_at_declared_key(name):
    """enable() under the plugin patches ATen at its dispatch key (PrivateUse1 / CUDA), not at CPU: the CPU
    kernels stay native. torch accepts kernels for these keys without a backend loaded."""
    p = vendors.builtin(name)
    key = p.dispatch_key
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    before = has("aten::exp", key)
    active = flaggems.vendor().name
    with registry.override_vendor(p):
        assert flaggems.vendor().name == name
        flaggems.enable(include=["exp", "add", "sort", "topk", "cumsum"])
        ops = flaggems.registered_ops()
        assert "aten::exp.default" in ops and has("aten::exp", key)
        for denied in registry.expand_names(p.deny, registry.declared(), strict=False):
            assert denied not in ops
        x = torch.randn(8)
        with flaggems.record() as rep:
            torch.exp(x)
        assert rep.served_by("exp") == {}  # CPU tensors never reach a PrivateUse1/CUDA override
        flaggems.disable()
    assert has("aten::exp", key) == before
    assert flaggems.vendor().name == active
