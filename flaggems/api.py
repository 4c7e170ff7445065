"""The public switch: ``enable`` / ``disable`` / ``use_gems`` / ``registered_ops`` (re-exported by ``flaggems``).

Lives below the package root so that flaggems' own subpackages (testing, coverage, the CLI) use it without
importing the root.

The patch is process-global (torch's dispatcher table is), so the rule for nesting and threads is explicit:
the active selection is that of the most recently entered ``use_gems()`` block still open, on any thread;
with no block open it is what ``enable()`` / ``disable()`` last set. Leaving a block removes exactly that
block, wherever it sits, so blocks that overlap across threads (A enters, B enters, A exits, B exits) can
never leave ops patched after all of them have exited.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Iterable, List, Optional, Tuple

from . import registry

__all__ = ["enable", "disable", "use_gems", "registered_ops"]

_LOCK = threading.RLock()
_BASE: Optional[Tuple] = None                 # (include, exclude) from enable(), None after disable()
_BLOCKS: List[Tuple[int, Tuple]] = []         # open use_gems() blocks, oldest first: (token, selection)
_TOKENS = itertools.count()


def _sync() -> None:
    """Make the patch match the rule above (called with _LOCK held)."""
    want = _BLOCKS[-1][1] if _BLOCKS else _BASE
    if want is None:
        registry.remove()
        return
    cur = registry.current_config()
    include, exclude = want
    if cur is not None and cur.include == include and cur.exclude == exclude:
        return
    registry.apply(include, exclude)


def _selection(include, exclude) -> Tuple:
    for what, names in (("include", include), ("exclude", exclude)):
        if isinstance(names, str):
            raise TypeError(f"{what} must be a list of op names, not a string ({names!r})")
    sel = (None if include is None else tuple(include), tuple(exclude or ()))
    # validate names now, so a bad name fails at the call site and changes nothing
    decl = registry.declared()
    registry.expand_names(sel[1], decl, strict=False, what="exclude")
    if sel[0] is not None:
        registry.expand_names(sel[0], decl, strict=True, what="include")
    return sel


def enable(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None) -> None:
    """Route ATen ops to flaggems at the active vendor's dispatch key.

    ``include``/``exclude`` take ATen names: ``"mm"`` is every overload of mm, ``"mm.out"`` one overload
    (``"aten::mm.out"`` also works). Unknown names raise ``ValueError`` with close matches.
    Inside an open ``use_gems()`` block the block's selection stays active until it exits.
    """
    global _BASE
    sel = _selection(include, exclude)
    with _LOCK:
        _BASE = sel
        _sync()


def disable() -> None:
    """Restore every patched ATen op to its native kernel (open ``use_gems()`` blocks keep theirs until exit)."""
    global _BASE
    with _LOCK:
        _BASE = None
        _sync()


@contextlib.contextmanager
def use_gems(include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None):
    """Enable flaggems (with this selection) for the duration of a block; on exit, also on exceptions, the
    selection of the remaining open blocks, or else of ``enable()``/``disable()``, is restored."""
    sel = _selection(include, exclude)
    token = next(_TOKENS)
    with _LOCK:
        _BLOCKS.append((token, sel))
        try:
            _sync()
        except BaseException:
            _BLOCKS.pop()
            _sync()
            raise
    try:
        yield
    finally:
        with _LOCK:
            _BLOCKS[:] = [b for b in _BLOCKS if b[0] != token]
            _sync()


def registered_ops() -> List[str]:
    """Sorted ``aten::name.overload`` strings currently patched (empty when disabled)."""
    return sorted(registry.patched())
