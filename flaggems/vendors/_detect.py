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
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple


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
                    env: Iterable[str] = (), hip: Optional[bool] = False, parts: Iterable[str] = (),
                    unless: Iterable[str] = ()) -> bool:
    """A vendor reached through torch.cuda: a device is available and a vendor marker is present
    (a torch attribute / version attribute given in ``markers`` as dotted paths under ``torch``, an environment
    variable, a device-name pattern, or a part-number pattern on a device name that matches none of ``unless``:
    part numbers are shared with other makers' products). ``hip``: True = ROCm build required, False = must not
    be ROCm, None = either. With no marker of any kind, any such device matches (the generic vendors)."""
    if not cuda_available():
        return False
    is_hip = bool(version_string("hip"))
    if hip is True and not is_hip:
        return False
    if hip is False and is_hip:
        return False
    markers, env, name_patterns, parts = tuple(markers), tuple(env), tuple(name_patterns), tuple(parts)
    if not (markers or env or name_patterns or parts):
        return True
    if any(torch_attr(m) is not None and torch_attr(m) is not False for m in markers):
        return True
    if any(env_set(v) for v in env):
        return True
    name = cuda_device_name() if name_patterns or parts else ""
    if name_patterns and name_matches(name, name_patterns):
        return True
    return bool(parts) and name_matches(name, parts) and not name_matches(name, unless)


# Detection rules as data: the vendor table names one per vendor; each is a zero-argument callable.


@dataclass(frozen=True)
class PrivateUse1:
    """An out-of-tree backend: its torch extension ``module`` is present (and ``torch.<device>`` has a device
    once imported). See :func:`privateuse1_extension`."""

    module: str
    device: str

    def __call__(self) -> bool:
        return privateuse1_extension(self.module, self.device)


@dataclass(frozen=True)
class CudaDevice:
    """A device reached through ``torch.cuda``; the fields are :func:`cuda_compatible`'s arguments."""

    hip: Optional[bool] = False
    markers: Tuple[str, ...] = ()
    env: Tuple[str, ...] = ()
    names: Tuple[str, ...] = ()
    parts: Tuple[str, ...] = ()
    unless: Tuple[str, ...] = ()

    def __call__(self) -> bool:
        return cuda_compatible(markers=self.markers, name_patterns=self.names, env=self.env, hip=self.hip,
                               parts=self.parts, unless=self.unless)
