"""Detection helpers shared by the vendor plugins.

Every probe is cheap and side-effect free: module *presence* (``sys.modules`` / ``importlib.util.find_spec``,
never an import of a vendor extension), torch attributes, version strings, the CUDA device name through
torch's own API, and environment variables. Never a subprocess (``npu-smi``, ``cnmon``, ``hy-smi`` … can hang
or be missing in containers). Any exception inside a probe counts as "not this vendor".
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Iterable, Optional


def module_present(name: str) -> bool:
    """The module is imported already or importable (without importing it)."""
    if sys.modules.get(name) is not None:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def torch_attr(path: str):
    """``torch.<path>`` (dotted) or None."""
    import torch

    obj = torch
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def version_string(attr: str) -> Optional[str]:
    """``torch.version.<attr>`` as a non-empty string, else None."""
    v = torch_attr(f"version.{attr}")
    return str(v) if v else None


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def cuda_device_name() -> str:
    """Name of CUDA-API device 0 ("" when there is none or the query fails)."""
    if not cuda_available():
        return ""
    try:
        import torch

        return str(torch.cuda.get_device_name(0) or "")
    except Exception:
        return ""


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive regex search of any pattern in ``name``."""
    return any(re.search(p, name, flags=re.IGNORECASE) for p in patterns)


def env_set(var: str) -> bool:
    return bool(os.environ.get(var))


def privateuse1_extension(module: str, device: str) -> bool:
    """A PrivateUse1 vendor: its torch extension is present, and if it is already imported (``torch.<device>``
    exists) its runtime reports a device. Presence alone is trusted before import: importing a vendor
    extension initialises its driver, which detection must not do."""
    if not module_present(module):
        return False
    dev = torch_attr(device)
    probe = getattr(dev, "is_available", None)
    if callable(probe):
        try:
            return bool(probe())
        except Exception:
            return False
    return True


def cuda_compatible(markers: Iterable[str] = (), name_patterns: Iterable[str] = (),
                    env: Iterable[str] = (), hip: Optional[bool] = False) -> bool:
    """A vendor reached through torch.cuda: a device is available and a vendor marker is present
    (a torch attribute / version attribute given in ``markers`` as dotted paths under ``torch``, an environment
    variable, or a device-name pattern). ``hip``: True = ROCm build required, False = must not be ROCm,
    None = either."""
    if not cuda_available():
        return False
    is_hip = bool(version_string("hip"))
    if hip is True and not is_hip:
        return False
    if hip is False and is_hip:
        return False
    if any(torch_attr(m) is not None and torch_attr(m) is not False for m in markers):
        return True
    if any(env_set(v) for v in env):
        return True
    patterns = tuple(name_patterns)
    return bool(patterns) and name_matches(cuda_device_name(), patterns)
