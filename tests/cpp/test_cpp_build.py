"""The extension loads, reports its SIMD path, and a missing / failed build raises a clear error at first use."""
import pytest
import torch

import flaggems
from flaggems.cpp import _ext


def test_extension_loads():
    C = _ext.lib()
    assert C.isa() in ("generic", "avx2", "avx512")
    assert isinstance(C.openmp, bool)
    assert _ext.available() and _ext.error() is None


def _fresh(monkeypatch):
    monkeypatch.setattr(_ext, "_LIB", None)
    monkeypatch.setattr(_ext, "_ERROR", None)


def test_build_error_file_is_reported(monkeypatch, tmp_path):
    err = tmp_path / "_C_build_error.txt"
    err.write_text("flaggems._C failed to build with C++ compiler 'g++'.\ncsrc/x.cpp:1: error: boom")
    _fresh(monkeypatch)
    monkeypatch.setattr(_ext, "ERROR_FILE", err)
    with pytest.raises(_ext.CppExtensionError, match="error: boom"):
        _ext.lib()
    # the registered cpp implementation raises it too (no silent fallback to Triton)
    x = torch.randn(2, 128)
    with flaggems.prefer_impl("cpp"), pytest.raises(_ext.CppExtensionError, match="building flaggems._C failed"):
        torch.ops.flaggems.act_quant(x, 128)


def test_missing_extension_names_missing_compiler(monkeypatch, tmp_path):
    import builtins

    _fresh(monkeypatch)
    monkeypatch.setattr(_ext, "ERROR_FILE", tmp_path / "absent.txt")
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "flaggems" and fromlist and "_C" in fromlist:
            raise ImportError("No module named 'flaggems._C'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(_ext.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(_ext.CppExtensionError, match=r"no C\+\+ compiler was found"):
        _ext.lib()
