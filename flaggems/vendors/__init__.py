"""Vendor plugins and their selection.

Order: the ``FLAGGEMS_VENDOR`` environment variable names a plugin (built-in or entry point); otherwise the
plugins found through the ``flaggems.vendors`` entry-point group that detect their device (highest priority
first); otherwise the built-ins in :data:`DETECTION_ORDER`: the simulated device ``sim`` when the process loaded it
(flaggems/testing/simdevice), the PrivateUse1 vendors (ascend, cambricon, mthreads),
then the vendors reached through ``torch.cuda`` that must be told apart from plain NVIDIA/AMD (hygon before
``amd``; kunlunxin, thead, metax, iluvatar before ``nvidia``), then ``nvidia``, ``amd`` and finally ``cpu``.

Once a plugin is chosen its ``extension_modules`` (``torch_npu`` …) are imported; a failure there is an error.
See docs/vendors.md for the plugin contract.
"""
from __future__ import annotations

import difflib
import importlib
import os
from functools import partial
from typing import Callable, Dict, Optional

from . import cpu, nvidia, sim, table
from .base import CAPABILITY_FLAGS, Capabilities, Override, VendorPlugin, config_path, split_triton_target

ENTRY_POINT_GROUP = "flaggems.vendors"
BUILTINS = ("nvidia", "amd", "cpu")
# Seed plugins for the chip makers that expose torch differently (docs/vendors.md); none is hardware-verified.
SEEDS = ("ascend", "cambricon", "mthreads", "hygon", "kunlunxin", "thead", "metax", "iluvatar")
# Built-in detection order: a vendor whose device also satisfies a later, more generic check comes first.
DETECTION_ORDER = ("sim",                                            # the simulated device, once a process loaded it
                   "ascend", "cambricon", "mthreads",                 # PrivateUse1: their own torch extension
                   "hygon",                                           # ROCm build: before amd
                   "kunlunxin", "thead", "metax", "iluvatar",         # torch.cuda-compatible: before nvidia
                   "nvidia", "amd", "cpu")

__all__ = ["Capabilities", "Override", "VendorPlugin", "CAPABILITY_FLAGS", "config_path", "split_triton_target",
           "builtin", "entry_point_plugins", "available", "select", "detect_builtin", "ENTRY_POINT_GROUP",
           "VendorSelectionError", "BUILTINS", "SEEDS", "DETECTION_ORDER", "active", "set_active"]

# The one active vendor plugin of the process. Everything that needs it (registry, runtime, kernels, testing)
# imports this module downward and asks ``active()``; only ``set_active`` changes it.
_ACTIVE: Optional[VendorPlugin] = None
_LISTENERS: list = []


def active() -> VendorPlugin:
    """The active vendor plugin (chosen by ``import flaggems``; swapped by ``registry.override_vendor``)."""
    if _ACTIVE is None:
        raise VendorSelectionError("no vendor plugin is active yet: import flaggems first")
    return _ACTIVE


def set_active(plugin: VendorPlugin) -> Optional[VendorPlugin]:
    """Make ``plugin`` the active vendor; returns the previous one. Listeners (the registry) are told."""
    global _ACTIVE
    if not isinstance(plugin, VendorPlugin):
        raise TypeError(f"set_active needs a VendorPlugin, got {type(plugin).__name__}")
    prev, _ACTIVE = _ACTIVE, plugin
    for fn in list(_LISTENERS):
        fn(plugin)
    return prev


def on_change(fn) -> None:
    """Call ``fn(plugin)`` whenever the active vendor changes (the registry keeps its hot-path copy this way)."""
    _LISTENERS.append(fn)


class VendorSelectionError(RuntimeError):
    pass


# Seeds and amd are rows of one table (vendors/table.py); nvidia and cpu compute part of their data.
_MAKERS: Dict[str, Callable[[], VendorPlugin]] = {
    **{name: partial(table.make, name) for name in table.ROWS},
    "nvidia": nvidia.make, "cpu": cpu.make, "sim": sim.make}


def builtin(name: str) -> VendorPlugin:
    """A plugin shipped with flaggems (one of :data:`DETECTION_ORDER`)."""
    if name not in DETECTION_ORDER:
        raise KeyError(name)
    return _MAKERS[name]()


def _as_plugin(obj, origin: str) -> VendorPlugin:
    plugin = obj() if callable(obj) and not isinstance(obj, VendorPlugin) else obj
    if not isinstance(plugin, VendorPlugin):
        raise VendorSelectionError(
            f"entry point {origin} in group {ENTRY_POINT_GROUP!r} must give a flaggems.vendors.VendorPlugin "
            f"(or a zero-argument callable returning one), got {type(plugin).__name__}")
    return plugin


def entry_point_plugins() -> Dict[str, Callable[[], VendorPlugin]]:
    """Entry-point plugins by name, loaded lazily (a broken third-party plugin fails only when used)."""
    from importlib.metadata import entry_points

    found: Dict[str, Callable[[], VendorPlugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        def load(ep=ep):
            try:
                obj = ep.load()
            except Exception as e:  # a plugin that cannot import is an error, not a silent skip
                raise VendorSelectionError(f"cannot load vendor plugin entry point {ep.name!r} ({ep.value}): {e}") from e
            return _as_plugin(obj, f"{ep.name} = {ep.value}")
        found[ep.name] = load
    return found


def available() -> Dict[str, Callable[[], VendorPlugin]]:
    """Every plugin name that can be selected, entry points first."""
    names: Dict[str, Callable[[], VendorPlugin]] = dict(entry_point_plugins())
    for b in DETECTION_ORDER:
        names.setdefault(b, lambda b=b: builtin(b))
    return names


def detect_builtin() -> VendorPlugin:
    """The first built-in plugin, in :data:`DETECTION_ORDER`, whose ``detect()`` is true (no entry points)."""
    for b in DETECTION_ORDER:
        plugin = builtin(b)
        if _safe_detect(plugin):
            return plugin
    raise VendorSelectionError("no vendor plugin detected a device (the cpu vendor should always match)")


def _safe_detect(plugin: VendorPlugin) -> bool:
    try:
        return bool(plugin.detect())
    except Exception:  # a probe that fails means "not this vendor", never a crash at import time
        return False


def _activate(plugin: VendorPlugin) -> VendorPlugin:
    """Import the torch extension modules the chosen vendor's device needs."""
    for mod in plugin.extension_modules:
        try:
            importlib.import_module(mod)
        except Exception as e:
            raise VendorSelectionError(
                f"vendor {plugin.name!r} needs the torch extension {mod!r}, which failed to import: {e}") from e
    return plugin


def select(name: Optional[str] = None) -> VendorPlugin:
    name = name if name is not None else os.environ.get("FLAGGEMS_VENDOR") or None
    if name:
        candidates = available()
        if name not in candidates:
            close = difflib.get_close_matches(name, list(candidates), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise VendorSelectionError(
                f"FLAGGEMS_VENDOR={name!r} names no vendor plugin (known: {sorted(candidates)}){hint}")
        return _activate(candidates[name]())
    eps = [load() for load in entry_point_plugins().values()]
    for plugin in sorted(eps, key=lambda p: -p.priority):
        if plugin.detect():
            return _activate(plugin)
    return _activate(detect_builtin())
