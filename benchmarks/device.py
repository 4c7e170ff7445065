"""The device a run measures: its type (the active vendor's), synchronisation, description, versions, the size
of its last-level cache, and FlagGems' ``flag_gems`` as a peer where it is importable."""
from __future__ import annotations

import os
import platform
import subprocess
from typing import Any, Callable, Dict

import torch

import flaggems


def device_type() -> str:
    return flaggems.vendor().device_type


def sync_fn(dev: str) -> Callable[[], None]:
    mod = getattr(torch, dev, None) if dev != "cpu" else None
    if mod is not None and hasattr(mod, "synchronize"):
        return mod.synchronize
    return lambda: None


def device_info(dev: str) -> Dict[str, Any]:
    info: Dict[str, Any] = {"type": dev, "vendor": flaggems.vendor().name, "threads": torch.get_num_threads()}
    if dev == "cpu":
        model, cores = platform.processor() or platform.machine(), os.cpu_count()
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                k, _, v = line.partition(":")
                if k.strip() == "Model name":
                    model = v.strip()
                elif k.strip() == "CPU(s)":
                    cores = int(v.strip())
                elif k.strip() == "L3 cache":
                    info["l3"] = v.strip()
        except Exception:
            pass
        info.update(name=model, cores=cores, torch_isa=torch.backends.cpu.get_cpu_capability())
        try:
            from flaggems.cpp import lib
            info["cpp_isa"] = lib().isa()
        except Exception as e:  # noqa: BLE001
            info["cpp_isa"] = f"unavailable ({type(e).__name__})"
    else:
        mod = getattr(torch, dev)
        try:
            info["name"] = mod.get_device_name()
            props = mod.get_device_properties(mod.current_device())
            info["memory_gib"] = round(props.total_memory / 2**30, 1)
            info["sms"] = getattr(props, "multi_processor_count", None)
        except Exception:
            info["name"] = dev
    return info


def versions() -> Dict[str, Any]:
    import triton

    v = {"flaggems": flaggems.__version__, "torch": torch.__version__, "triton": triton.__version__,
         "python": platform.python_version(), "flag_gems": None}
    fg = peer_module()
    if fg is not None:
        v["flag_gems"] = getattr(fg, "__version__", "unknown")
    try:
        v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  timeout=5, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except Exception:
        v["git"] = None
    return v


_PEER: Any = "unset"


def peer_module():
    """FlagGems' ``flag_gems`` package when importable on this device (its kernels need a GPU)."""
    global _PEER
    if _PEER == "unset":
        _PEER = None
        if device_type() != "cpu":
            try:
                import flag_gems  # type: ignore
                _PEER = flag_gems
            except Exception:
                _PEER = None
    return _PEER


def last_level_cache_bytes(dev: str) -> int:
    if dev == "cpu":
        try:
            for idx in range(8):
                p = f"/sys/devices/system/cpu/cpu0/cache/index{idx}"
                if not os.path.exists(p):
                    break
                lvl = int(open(f"{p}/level").read())
                if lvl == 3:
                    s = open(f"{p}/size").read().strip()
                    return int(s[:-1]) * (1024 if s.endswith("K") else 1 << 20) if s[-1] in "KM" else int(s)
        except Exception:
            pass
        return 32 << 20
    try:
        mod = getattr(torch, dev)
        return int(getattr(mod.get_device_properties(mod.current_device()), "L2_cache_size", 50 << 20))
    except Exception:
        return 50 << 20
