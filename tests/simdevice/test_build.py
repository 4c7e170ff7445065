"""Building the simulated device: a clear error when it cannot be built, and the cache location."""
import os
import subprocess
import sys

import pytest

from flaggems.testing.simdevice import build


def test_no_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(build.sysconfig, "get_config_var", lambda name: None)
    assert build.find_compiler() is None
    with pytest.raises(build.SimDeviceBuildError, match="no C\\+\\+ compiler was found"):
        build.build()


def test_no_ninja_is_a_clear_error(monkeypatch):
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    with pytest.raises(build.SimDeviceBuildError, match="pip install ninja"):
        build.build()


def test_compile_error_names_the_compiler_output(monkeypatch, tmp_path):
    (tmp_path / "broken.cpp").write_text("this is not C++;\n")
    monkeypatch.setattr(build, "CSRC", tmp_path)
    monkeypatch.setattr(build, "SOURCES", ("broken.cpp",))
    monkeypatch.setattr(build, "LIBRARY_NAME", "flaggems_fgsim_broken")
    monkeypatch.setenv("FLAGGEMS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(build.SimDeviceBuildError, match="broken.cpp"):
        build.build()


def test_cache_dir_follows_flaggems_cache_dir(monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("FLAGGEMS_CACHE_DIR", str(tmp_path))
    d = build.cache_dir()
    assert d.parent == tmp_path / "simdevice" and torch.__version__ in d.name
    # per checkout: another csrc directory builds elsewhere
    monkeypatch.setattr(build, "CSRC", tmp_path / "other" / "csrc")
    assert build.cache_dir() != d and build.cache_dir().parent == d.parent


def test_vendor_selection_reports_the_build_failure(tmp_path):
    """FLAGGEMS_VENDOR=sim on a machine without a compiler: import flaggems fails naming the cause."""
    env = dict(os.environ, FLAGGEMS_VENDOR="sim", PATH=str(tmp_path), CXX="")
    code = ("import sysconfig; sysconfig.get_config_var = lambda name: None\n"
            "import flaggems")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "vendor 'sim' needs the torch extension 'flaggems.testing.simdevice.register'" in r.stderr
    assert "no C++ compiler was found" in r.stderr
