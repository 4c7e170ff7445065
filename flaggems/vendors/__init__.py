"""Vendor plugins and their selection.

Order: the ``FLAGGEMS_VENDOR`` environment variable names a plugin (built-in or entry point); otherwise the
plugins found through the ``flaggems.vendors`` entry-point group that detect their device (highest priority
first); otherwise the built-ins ``nvidia``, ``amd`` and finally ``cpu``.
"""
from __future__ import annotations

import difflib
import importlib
import os
from typing import Callable, Dict, Optional

from .base import CAPABILITY_FLAGS, Capabilities, Override, VendorPlugin, config_path

ENTRY_POINT_GROUP = "flaggems.vendors"
BUILTINS = ("nvidia", "amd", "cpu")

__all__ = ["Capabilities", "Override", "VendorPlugin", "CAPABILITY_FLAGS", "config_path", "builtin",
           "entry_point_plugins", "available", "select", "ENTRY_POINT_GROUP", "VendorSelectionError"]


class VendorSelectionError(RuntimeError):
    pass


def builtin(name: str) -> VendorPlugin:
    if name not in BUILTINS:
        raise KeyError(name)
    mod = importlib.import_module(f"{__name__}.{name}")
    return mod.make()


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
    for b in BUILTINS:
        names.setdefault(b, lambda b=b: builtin(b))
    return names


def select(name: Optional[str] = None) -> VendorPlugin:
    name = name if name is not None else os.environ.get("FLAGGEMS_VENDOR") or None
    if name:
        candidates = available()
        if name not in candidates:
            close = difflib.get_close_matches(name, list(candidates), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise VendorSelectionError(
                f"FLAGGEMS_VENDOR={name!r} names no vendor plugin (known: {sorted(candidates)}){hint}")
        return candidates[name]()
    eps = [load() for load in entry_point_plugins().values()]
    for plugin in sorted(eps, key=lambda p: -p.priority):
        if plugin.detect():
            return plugin
    for b in BUILTINS:
        plugin = builtin(b)
        if plugin.detect():
            return plugin
    raise VendorSelectionError("no vendor plugin detected a device (the cpu vendor should always match)")
