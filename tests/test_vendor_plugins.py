"""Vendor plugins: built-in selection, entry-point discovery, FLAGGEMS_VENDOR, capability-driven fallback."""
import os
import subprocess
import sys
import textwrap

import pytest

from flaggems import vendors
from flaggems.vendors import Capabilities, VendorPlugin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN_SRC = '''
from flaggems.vendors import Capabilities, VendorPlugin

def make():
    return VendorPlugin(
        name="acme", device_type="cpu", dispatch_key="CPU", detect=lambda: True,
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True),
        interpret=True, prefer=("triton", "cpp"), priority=5, deny=frozenset({"mm.out"}),
        description="test vendor")
'''


def _make_dist(tmp_path, name="acme_flaggems", ep="acme = acme_vendor:make", src=PLUGIN_SRC):
    (tmp_path / "acme_vendor.py").write_text(src)
    info = tmp_path / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[flaggems.vendors]\n{ep}\n")
    return tmp_path


def _run(code, tmp_path, env_extra):
    env = dict(os.environ)
    env.pop("FLAGGEMS_VENDOR", None)
    env.pop("TRITON_INTERPRET", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT, env.get("PYTHONPATH", "")])
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_entry_point_vendor_selected_by_env(tmp_path):
    _make_dist(tmp_path)
    r = _run('''
        import torch, flaggems
        v = flaggems.vendor()
        print(v.name, v.dispatch_key, v.capabilities.fp64)
        x = torch.randn(5, dtype=torch.float64)
        with flaggems.use_gems():
            assert "aten::mm.out" not in flaggems.registered_ops()
            assert "aten::mm.default" in flaggems.registered_ops()
            with flaggems.record() as rep:
                y = x + x
                z = x.float() + x.float()
        assert torch.equal(y, 2 * x)
        print(rep.fallbacks()["aten::add.Tensor"], rep.served_by("add.Tensor"))
    ''', tmp_path, {"FLAGGEMS_VENDOR": "acme"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "acme CPU False"
    assert lines[1] == "{'vendor lacks fp64': 1} {'triton': 1}"


def test_entry_point_vendor_detected_without_env(tmp_path):
    _make_dist(tmp_path)
    r = _run("import flaggems; print(flaggems.vendor().name)", tmp_path, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "acme"


def test_builtin_cpu_when_no_plugin(tmp_path):
    r = _run("import flaggems; print(flaggems.vendor().name)", tmp_path, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cpu"


def test_unknown_vendor_name_is_an_error(tmp_path):
    r = _run("import flaggems", tmp_path, {"FLAGGEMS_VENDOR": "cpux"})
    assert r.returncode != 0
    assert "names no vendor plugin" in r.stderr and "'cpu'" in r.stderr


def test_broken_entry_point_is_an_error(tmp_path):
    _make_dist(tmp_path, ep="acme = acme_vendor:does_not_exist")
    r = _run("import flaggems", tmp_path, {"FLAGGEMS_VENDOR": "acme"})
    assert r.returncode != 0
    assert "cannot load vendor plugin entry point 'acme'" in r.stderr


def test_builtins_are_declarative():
    for name in vendors.BUILTINS:
        p = vendors.builtin(name)
        assert isinstance(p, VendorPlugin) and isinstance(p.capabilities, Capabilities)
        assert p.dispatch_key in ("CPU", "CUDA")
        assert isinstance(p.configs(), dict)
    assert vendors.builtin("cpu").detect() is True
    assert vendors.builtin("cpu").interpret is True
    with pytest.raises(ValueError):
        Capabilities().replace(fp128=True)
    with pytest.raises(ValueError):
        VendorPlugin(name="x", device_type="cpu", dispatch_key="CPU", detect=lambda: True, prefer=("cuda",))


def test_amd_detection_uses_hip_version(monkeypatch):
    import torch

    amd = vendors.builtin("amd")
    nv = vendors.builtin("nvidia")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", "6.2.0", raising=False)
    assert amd.detect() is True and nv.detect() is False
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.version, "cuda", "12.8", raising=False)
    assert amd.detect() is False and nv.detect() is True
