"""``with flaggems.record() as rep``: which ATen / flaggems ops ran, who served them, and why not.

A ``TorchDispatchMode`` sees every operator call that reaches the backend (after autograd and
CompositeImplicit decomposition, so ``linear`` shows up as ``t`` + ``addmm``). For each call, the flaggems
override (if the op is patched) notes whether one of our kernels served it and of which kind, or why it went
to the native kernel. Calls no override saw are attributed from the registry state: not implemented,
excluded, denied by the vendor, or flaggems not enabled.

Pure view / metadata ops (their output aliases an input, or they only allocate or read metadata) are listed
but excluded from coverage: see ``VIEW_AND_METADATA_OPS`` and docs/architecture.md ("Record and coverage").

The registry does not know about this module: while a ``record()`` is active, :func:`note` is the registry's
outcome observer (``registry.set_observer``), and calls no override saw are explained by
``registry.why_not_served``.
"""
from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Dict, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import registry

_ACTIVE_COUNT = 0
_COUNT_LOCK = threading.Lock()


class _TLS(threading.local):
    slot = None


_tls = _TLS()

# Ops that only allocate, alias or read metadata; they are never counted against coverage.
VIEW_AND_METADATA_OPS = frozenset({
    "empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "resize_", "resize_as_",
    "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_same_size",
    "result_type", "_has_compatible_shallow_copy_type", "is_contiguous", "is_nonzero", "set_", "lift_fresh",
    "detach", "detach_", "alias", "_unsafe_view", "_reshape_alias", "view", "_to_copy_meta", "size", "stride",
    "dim", "numel", "is_complex", "is_floating_point", "record_stream", "_assert_async", "_assert_tensor_metadata",
    "_functional_assert_async", "_conj", "_neg_view", "resolve_conj", "resolve_neg", "conj",
})


def note(name: str, kind: Optional[str], reason: Optional[str]) -> None:
    """The registry's observer: the outcome of a flaggems override or custom op the mode is dispatching.

    Only the override of that very op decides its outcome. Notes from other ops (a native or composite kernel
    calling patched ops internally) are remembered as "via" information, never as the op being served.
    """
    slot = _tls.slot
    if slot is None:
        return
    if name == slot[1]:
        if slot[0] is None:
            slot[0] = (name, kind, reason)
    elif slot[2] is None and kind is not None:
        slot[2] = name


def _opname(func) -> str:
    ns = getattr(func, "namespace", "aten")
    return f"{ns}::{func._opname}.{func._overloadname}"


def is_view_or_metadata(func) -> bool:
    if func._opname in VIEW_AND_METADATA_OPS:
        return True
    schema = func._schema
    if schema.returns:
        aliases = [r.alias_info for r in schema.returns]
        if all(a is not None and not a.is_write for a in aliases):
            return True
    return False


class Report:
    """Per-op counts: served by flaggems (by kind) and sent to the native kernel (by reason)."""

    def __init__(self):
        self.ops: Dict[str, dict] = {}
        self._lock = threading.Lock()

    def _row(self, name: str, view: bool) -> dict:
        row = self.ops.get(name)
        if row is None:
            row = self.ops[name] = {"calls": 0, "served": defaultdict(int), "fallback": defaultdict(int),
                                    "view": view, "via": defaultdict(int)}
        return row

    def _count(self, func, outcome, via=None) -> None:
        name = _opname(func)
        with self._lock:
            row = self._row(name, is_view_or_metadata(func))
            row["calls"] += 1
            if via is not None and outcome is None:
                row["via"][via] += 1
            if outcome is None:
                if row["view"]:
                    return
                row["fallback"][registry.why_not_served(name)] += 1
                return
            _, kind, reason = outcome
            if kind is not None:
                row["served"][kind] += 1
            else:
                row["fallback"][reason] += 1

    # ---- queries
    def compute_ops(self) -> Dict[str, dict]:
        return {k: v for k, v in self.ops.items() if not v["view"]}

    def served_calls(self) -> int:
        return sum(sum(r["served"].values()) for r in self.compute_ops().values())

    def fallback_calls(self) -> int:
        return sum(sum(r["fallback"].values()) for r in self.compute_ops().values())

    def coverage(self) -> float:
        """served / (served + fallback) over compute ops; 1.0 when nothing ran."""
        s, f = self.served_calls(), self.fallback_calls()
        return 1.0 if s + f == 0 else s / (s + f)

    def served_by(self, op: str) -> Dict[str, int]:
        """{kind: calls} served by flaggems for ``op`` ({} if it was never called or never served)."""
        try:
            return dict(self._find(op)["served"])
        except KeyError:
            return {}

    def fallbacks(self) -> Dict[str, Dict[str, int]]:
        """{op: {reason: calls}} for every compute op with at least one native call."""
        return {k: dict(v["fallback"]) for k, v in sorted(self.compute_ops().items()) if v["fallback"]}

    def _find(self, op: str) -> dict:
        if op in self.ops:
            return self.ops[op]
        q = op if "::" in op else f"aten::{op}"
        if "." not in q.split("::")[1]:
            q += ".default"
        if q in self.ops:
            return self.ops[q]
        raise KeyError(f"{op!r} was not called inside this record(); ops seen: {sorted(self.ops)}")

    def to_dict(self) -> dict:
        return {
            "coverage": self.coverage(),
            "served_calls": self.served_calls(),
            "fallback_calls": self.fallback_calls(),
            "ops": {k: {"calls": v["calls"], "served": dict(v["served"]), "fallback": dict(v["fallback"]),
                        "view_or_metadata": v["view"], "via": dict(v["via"])}
                    for k, v in sorted(self.ops.items())},
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_markdown(self) -> str:
        lines = ["| op | calls | served by flaggems | native (reason) |", "|---|---:|---|---|"]
        for name, row in sorted(self.ops.items(), key=lambda kv: (kv[1]["view"], kv[0])):
            served = ", ".join(f"{k}: {n}" for k, n in sorted(row["served"].items())) or "-"
            if row["view"]:
                fb = "view/metadata (not counted)"
            else:
                fb = ", ".join(f"{r}: {n}" for r, n in sorted(row["fallback"].items())) or "-"
                if row["via"]:
                    fb += " (inner ops served: " + ", ".join(f"`{v}`" for v in sorted(row["via"])) + ")"
            lines.append(f"| `{name}` | {row['calls']} | {served} | {fb} |")
        lines.append("")
        lines.append(f"Coverage: {self.coverage():.1%} of {self.served_calls() + self.fallback_calls()} "
                     f"compute calls served by flaggems.")
        return "\n".join(lines)

    def __repr__(self):
        return f"Report(ops={len(self.ops)}, coverage={self.coverage():.3f})"


class _RecordMode(TorchDispatchMode):
    def __init__(self, report: Report):
        super().__init__()
        self.report = report

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        prev = _tls.slot
        slot = [None, _opname(func), None]
        _tls.slot = slot
        try:
            return func(*args, **kwargs)
        finally:
            _tls.slot = prev
            self.report._count(func, slot[0], slot[2])


class record:
    """Context manager collecting a :class:`Report` of every op call in its body (this thread)."""

    def __init__(self):
        self.report = Report()
        self._mode = _RecordMode(self.report)

    def __enter__(self) -> Report:
        global _ACTIVE_COUNT
        with _COUNT_LOCK:
            _ACTIVE_COUNT += 1
            registry.set_observer(note)
        self._mode.__enter__()
        return self.report

    def __exit__(self, *exc):
        global _ACTIVE_COUNT
        try:
            self._mode.__exit__(*exc)
        finally:
            with _COUNT_LOCK:
                _ACTIVE_COUNT -= 1
                if _ACTIVE_COUNT == 0:
                    registry.set_observer(None)
        return False
