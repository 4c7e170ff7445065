"""Counting device->host transfers ("syncs"), and whether flaggems' own code issued them.

On an accelerator every host read of a device value (``.item()``, ``.tolist()``, ``bool(t)``, ``int(t)``,
``float(t)``, ``.cpu()``, ``.numpy()``, a copy into a CPU tensor, ``torch.equal``) waits for the device to drain
its queue and makes CUDA-graph capture impossible. ``count_syncs()`` counts those reads while it is active:

    with flaggems.testing.count_syncs() as syncs:
        model(...)
    syncs.flaggems()          # reads issued from flaggems code (ops, kernels wrappers, registry)
    syncs.by_site()           # {"flaggems/ops/indexing.py:172 _raise_if": 24, ...}
    syncs.by_op()             # {"aten::index.Tensor": 24, ...}: the op being dispatched when it happened

What counts as device memory: tensors whose device type is not ``cpu`` — and CPU tensors too when the active
vendor's device *is* the CPU, where a host read stands for the sync it would be on an accelerator (so a CPU run
measures what a GPU run would pay). Meta and fake tensors never count. Copies count only from a non-CPU tensor
into a CPU one (a CPU-to-CPU ``copy_`` is an ordinary on-device copy when the CPU is the device).

How: while any counter is active the Tensor methods above (and ``torch.equal`` / ``torch.allclose``) are wrapped
at the Python level, so reads are seen wherever they happen — also inside flaggems' overrides, below the
``TorchDispatchMode`` that ``record()`` uses (a mode does not see the ops an override calls). Each read is
attributed by walking the Python stack to the first frame outside torch: a file of the flaggems package (other
than ``flaggems/testing``, ``coverage.py`` and ``__main__.py``, the harness) makes it a flaggems sync. A small
dispatch mode records which top-level op was running. Reads made by C++ code (a native kernel's own sync) are
not seen: they are not flaggems', and on the simulated device there are no native compute kernels.

Only threads that entered a counter count; wrappers are removed when the last counter exits.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["count_syncs", "SyncCounter", "SyncEvent", "uncounted", "KINDS"]

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_FLAGGEMS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_HARNESS = tuple(os.path.join(_FLAGGEMS_DIR, p) for p in ("testing" + os.sep, "coverage.py", "__main__.py"))
_THIS_FILE = os.path.abspath(__file__)

# Tensor methods that read device values on the host, by the kind reported
_METHODS = {
    "item": "item", "tolist": "tolist", "numpy": "numpy", "cpu": "cpu", "to": "to(cpu)", "copy_": "copy_(cpu)",
    "__bool__": "bool", "__int__": "int", "__float__": "float", "__index__": "index", "__complex__": "complex",
    "equal": "equal", "allclose": "allclose",
}
_FUNCTIONS = {"equal": "equal", "allclose": "allclose"}
KINDS = tuple(sorted(set(_METHODS.values())))


@dataclass(frozen=True)
class SyncEvent:
    kind: str              # "item", "tolist", "bool", "to(cpu)", "copy_(cpu)", ...
    origin: str            # "flaggems" or "other"
    site: str              # "flaggems/ops/indexing.py:172 _raise_if" (path relative to the package's parent)
    op: Optional[str]      # the op being dispatched at the time ("aten::index.Tensor"), None outside any op
    segment: int           # index of the mark() segment it fell in


class SyncCounter:
    """The device->host reads seen while it was active, with ``mark()`` segments (e.g. one per decode step)."""

    def __init__(self, current_op: Optional[Callable[[], Optional[str]]] = None):
        self.events: List[SyncEvent] = []
        self.marks: List[str] = []        # label of each closed segment, in order
        self._current_op = current_op
        self._lock = threading.Lock()

    # ---- recording
    def _add(self, event: SyncEvent) -> None:
        with self._lock:
            self.events.append(event)

    def mark(self, label: str = "") -> int:
        """Close the current segment (``label`` names it) and start the next; returns the closed one's index."""
        with self._lock:
            self.marks.append(label or f"segment {len(self.marks)}")
            return len(self.marks) - 1

    @property
    def segment(self) -> int:
        return len(self.marks)

    # ---- queries
    def _select(self, origin: Optional[str]) -> List[SyncEvent]:
        return [e for e in self.events if origin is None or e.origin == origin]

    def flaggems(self) -> int:
        """Reads issued from flaggems code."""
        return len(self._select("flaggems"))

    def other(self) -> int:
        """Reads issued elsewhere (the model, transformers, the caller)."""
        return len(self._select("other"))

    def total(self) -> int:
        return len(self.events)

    def by_site(self, origin: Optional[str] = "flaggems") -> Dict[str, int]:
        return dict(Counter(e.site for e in self._select(origin)).most_common())

    def by_kind(self, origin: Optional[str] = "flaggems") -> Dict[str, int]:
        return dict(Counter(e.kind for e in self._select(origin)).most_common())

    def by_op(self, origin: Optional[str] = "flaggems") -> Dict[str, int]:
        return dict(Counter(e.op or "(no op)" for e in self._select(origin)).most_common())

    def per_segment(self, origin: Optional[str] = "flaggems") -> List[int]:
        """Counts per segment: one per ``mark()`` plus the open segment after the last mark."""
        counts = [0] * (len(self.marks) + 1)
        for e in self._select(origin):
            counts[e.segment] += 1
        return counts

    def summary(self) -> dict:
        return {"flaggems": self.flaggems(), "other": self.other(), "flaggems_by_site": self.by_site("flaggems"),
                "flaggems_by_op": self.by_op("flaggems"), "flaggems_by_kind": self.by_kind("flaggems"),
                "other_by_site": self.by_site("other"), "segments": list(self.marks) + ["(after last mark)"],
                "flaggems_per_segment": self.per_segment("flaggems"), "other_per_segment": self.per_segment("other")}

    def to_markdown(self) -> str:
        lines = [f"Device->host reads: {self.flaggems()} from flaggems code, {self.other()} elsewhere.", ""]
        sites = self.by_site("flaggems")
        if sites:
            lines += ["| flaggems site | op | reads |", "|---|---|---:|"]
            per = Counter((e.site, e.op or "-") for e in self._select("flaggems"))
            lines += [f"| `{site}` | `{op}` | {n} |" for (site, op), n in per.most_common()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SyncCounter(flaggems={self.flaggems()}, other={self.other()}, segments={len(self.marks) + 1})"


# ------------------------------------------------------------------------------------------------------------
# thread-local state and the wrappers

class _TLS(threading.local):
    def __init__(self):
        self.counters: List[SyncCounter] = []
        self.ops: List[str] = []
        self.suppressed = 0


_tls = _TLS()
_install_lock = threading.Lock()
_installed = 0
_saved: Dict[tuple, object] = {}
_MISSING = object()


@contextlib.contextmanager
def uncounted():
    """Reads in this block are not syncs (simulation machinery that only exists because there is no device)."""
    _tls.suppressed += 1
    try:
        yield
    finally:
        _tls.suppressed -= 1


def _host_is_device() -> bool:
    try:
        from ..vendors import active

        return active().device_type == "cpu"
    except Exception:  # no vendor selected yet: a plain host run, where the CPU is the device
        return True


def _on_device(t) -> bool:
    if not isinstance(t, torch.Tensor) or t.device.type == "meta":
        return False
    from ..runtime.checks import is_fake

    if is_fake(t):
        return False
    return t.device.type != "cpu" or _host_is_device()


def _attribute():
    """(origin, site) of the first Python frame outside torch and this module."""
    f = sys._getframe(2)
    while f is not None:
        path = f.f_code.co_filename
        if not path.startswith(_TORCH_DIR) and path != _THIS_FILE:
            break
        f = f.f_back
    if f is None:
        return "other", "?"
    path = f.f_code.co_filename
    ours = path.startswith(_FLAGGEMS_DIR) and not path.startswith(_HARNESS)
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(_FLAGGEMS_DIR))) if ours else path
    return ("flaggems" if ours else "other"), f"{rel}:{f.f_lineno} {f.f_code.co_name}"


def _record(kind: str) -> None:
    origin, site = _attribute()
    mode_op = _tls.ops[-1] if _tls.ops else None
    for c in _tls.counters:
        op = c._current_op() if c._current_op is not None else mode_op
        c._add(SyncEvent(kind, origin, site, op, c.segment))


def _reads(kind: str, self, args, kwargs) -> bool:
    """Whether this call moves a device value to the host."""
    if kind == "to(cpu)":
        try:
            device = torch._C._nn._parse_to(*args, **kwargs)[0]
        except Exception:
            return False
        return device is not None and device.type == "cpu" and _on_device(self)
    if kind == "copy_(cpu)":
        src = args[0] if args else kwargs.get("src")
        return self.device.type == "cpu" and isinstance(src, torch.Tensor) and src.device.type != "cpu" \
            and _on_device(src)
    if kind in ("equal", "allclose"):
        other = args[0] if args else next(iter(kwargs.values()), None)
        return _on_device(self) or _on_device(other)
    return _on_device(self)


def _wrap(fn, kind: str):
    def wrapper(self, *args, **kwargs):
        if _tls.counters and not _tls.suppressed and _reads(kind, self, args, kwargs):
            _record(kind)
        return fn(self, *args, **kwargs)

    wrapper.__name__ = getattr(fn, "__name__", kind)
    wrapper.__doc__ = getattr(fn, "__doc__", None)
    wrapper.__wrapped__ = fn
    return wrapper


def _install() -> None:
    global _installed
    with _install_lock:
        _installed += 1
        if _installed > 1:
            return
        for name, kind in _METHODS.items():
            _saved[(torch.Tensor, name)] = torch.Tensor.__dict__.get(name, _MISSING)
            setattr(torch.Tensor, name, _wrap(getattr(torch.Tensor, name), kind))
        for name, kind in _FUNCTIONS.items():
            _saved[(torch, name)] = getattr(torch, name)
            setattr(torch, name, _wrap(getattr(torch, name), kind))


def _uninstall() -> None:
    global _installed
    with _install_lock:
        _installed -= 1
        if _installed > 0:
            return
        for (owner, name), orig in _saved.items():
            if orig is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)
        _saved.clear()


class _OpScope(TorchDispatchMode):
    """Remembers which top-level op is being dispatched, so a read inside an override names its op."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f"{getattr(func, 'namespace', 'aten')}::{func._opname}.{func._overloadname}"
        _tls.ops.append(name)
        try:
            return func(*args, **(kwargs or {}))
        finally:
            _tls.ops.pop()


@contextlib.contextmanager
def count_syncs(current_op: Optional[Callable[[], Optional[str]]] = None):
    """Count device->host reads on this thread in the block; yields a :class:`SyncCounter`.

    The op a read happened in comes from a small dispatch mode, or from ``current_op()`` when given (a caller
    that already tracks the op being dispatched, like ``record()``, passes its own and no mode is added).
    """
    counter = SyncCounter(current_op)
    _install()
    _tls.counters.append(counter)
    mode = _OpScope() if current_op is None else contextlib.nullcontext()
    try:
        with mode:
            yield counter
    finally:
        _tls.counters.remove(counter)
        _uninstall()
