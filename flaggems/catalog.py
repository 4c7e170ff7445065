"""What flaggems serves and where it lives: the op table (``python -m flaggems ops``) and, with ``--where``,
per op the module:function of each implementation, its reference, its test file and its benchmark case.

Test files and benchmark cases are found in the source checkout (``tests/``, ``benchmarks/`` beside the
package) by the op's name: a ``served=[...]`` assertion or a ``torch.ops.flaggems.<op>`` / ``aten.<op>`` call
counts most, a plain ``torch.<op>(`` / ``.<op>(`` call less. Outside a checkout they show as "none".
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Dict, List, Optional

from . import registry

_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}
CHECKOUT = Path(__file__).resolve().parent.parent


def dtype_names(dts) -> str:
    if dts is None:
        return "any"
    names = sorted(_SHORT.get(str(d).replace("torch.", ""), str(d).replace("torch.", "")) for d in dts)
    return ", ".join(names)


def _served(e) -> bool:
    return bool(e.impls) or e.reference is not None


def op_table() -> str:
    """Markdown table of every op flaggems declares: name, implementation kinds, dtypes."""
    rows = ["| op | kinds | dtypes |", "|---|---|---|"]
    for q, e in sorted(registry.entries().items()):
        if not _served(e):
            continue
        kinds = ", ".join(sorted({i.kind for i in e.impls})) or "reference only"
        dts = sorted({dtype_names(i.dtypes) for i in e.impls}) or ["-"]
        rows.append(f"| `{q}` | {kinds} | {'; '.join(dts)} |")
    return "\n".join(rows)


def qualified(fn) -> str:
    fn = getattr(fn, "__wrapped__", fn)
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def reference_of(e) -> str:
    """The pure-torch reference: a custom op's declared one; for an ATen op a ``<op>_ref`` beside its kernel,
    else torch's own op evaluated in fp64 (how the tests check it)."""
    if e.reference is not None:
        return qualified(e.reference)
    import importlib

    for impl in e.impls:
        mod = importlib.import_module(getattr(impl.fn, "__module__", "") or "builtins")
        for name in (f"{e.base.lstrip('_')}_ref", f"{e.base}_ref"):
            ref = getattr(mod, name, None)
            if callable(ref):
                return qualified(ref)
    return f"torch aten::{e.base} in fp64 (flaggems.testing)"


@functools.lru_cache(maxsize=None)
def _texts(folder: str) -> Dict[str, str]:
    root = CHECKOUT / folder
    if not root.is_dir():
        return {}
    return {str(p.relative_to(CHECKOUT)): p.read_text(errors="replace") for p in sorted(root.rglob("*.py"))}


def _find(folder: str, base: str, modules=()) -> List[str]:
    """Files under ``folder`` that exercise op ``base``, best first (a file named after the op or after the
    module implementing it wins over one that merely calls it)."""
    b = re.escape(base)
    stems = {base.lstrip("_")} | {m.rsplit(".", 1)[-1].lstrip("_") for m in modules}
    strong = re.compile(rf"(ops\.flaggems\.{b}\b|aten\.{b}\b|aten::{b}\b|[\"']{b}(\.[A-Za-z_]+)?[\"'])")
    weak = re.compile(rf"(torch\.{b}\(|\.{b}_?\(|F\.{b}\()")
    scored = []
    for path, text in _texts(folder).items():
        s = 2 * len(strong.findall(text)) + (1 if weak.search(text) else 0)
        if s and any(Path(path).stem in (f"test_{t}", f"cases_{t}", t) for t in stems):
            s += 1000
        if s:
            scored.append((-s, path))
    return [p for _, p in sorted(scored)]


def locate(qualname: str) -> dict:
    e = registry.entries()[qualname]
    mods = [getattr(i.fn, "__module__", "") for i in e.impls]
    tests = _find("tests", e.base, mods)
    bench = _find("benchmarks", e.base, mods)
    return {"op": qualname,
            "implementations": [f"{i.kind}: {qualified(i.fn)}" for i in e.impls],
            "reference": reference_of(e),
            "test": tests[0] if tests else "none",
            "benchmark": bench[0] if bench else "none"}


def where_table(ops: Optional[List[str]] = None) -> str:
    rows = ["| op | implementations | reference | test | benchmark |", "|---|---|---|---|---|"]
    names = sorted(q for q, e in registry.entries().items() if _served(e)) if not ops else \
        registry.expand_names(ops, registry.declared(), strict=True, what="ops")
    for q in names:
        d = locate(q)
        rows.append(f"| `{q}` | {'<br>'.join(d['implementations']) or '-'} | {d['reference']} | {d['test']} | "
                    f"{d['benchmark']} |")
    return "\n".join(rows)
