"""The public switch: ``enable`` / ``disable`` / ``use_gems`` / ``registered_ops`` (re-exported by ``flaggems``).

Lives below the package root so that flaggems' own subpackages (testing, coverage, the CLI) use it without
importing the root.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, List, Optional

from . import registry

__all__ = ["enable", "disable", "use_gems", "registered_ops"]


def enable(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None) -> None:
    """Route ATen ops to flaggems at the active vendor's dispatch key.

    ``include``/``exclude`` take ATen names: ``"mm"`` is every overload of mm, ``"mm.out"`` one overload
    (``"aten::mm.out"`` also works). Unknown names raise ``ValueError`` with close matches.
    """
    registry.apply(include, exclude)


def disable() -> None:
    """Restore every patched ATen op to its native kernel."""
    registry.remove()


@contextlib.contextmanager
def use_gems(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None):
    """Enable flaggems in a block; on exit (also on exceptions) restore exactly the previous state."""
    prev = registry.current_config()
    registry.apply(include, exclude)
    try:
        yield
    finally:
        if prev is None:
            registry.remove()
        else:
            registry.apply(prev.include, prev.exclude)


def registered_ops() -> List[str]:
    """Sorted ``aten::name.overload`` strings currently patched (empty when disabled)."""
    return sorted(registry.patched())
