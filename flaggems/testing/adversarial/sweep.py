"""The sweep: every (op, category, dtype) sample run natively and under flaggems, compared, and reported.

A sample only counts when a flaggems kernel served its target op (``record()`` says so): a native fallback
proves nothing about our kernels and is counted as ``not_served``. Each result is matched against the table
of known findings (:mod:`.known`); anything else that disagrees is a **new** mismatch.
"""
from __future__ import annotations

import json
import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch

from ...registry import entries, expand_names, declared
from .calls import NoSeed, dtypes_for
from .categories import CATEGORIES, CATEGORY_DTYPES, GENERATORS
from .compare import Outcome, compare, run
from .calls import Call


@dataclass
class Sample:
    op: str                 # target overload, "aten::add.Tensor"
    category: str
    dtype: str              # "float32"
    label: str
    call: Call
    include: Tuple[str, ...] = ()   # overloads patched for the flaggems side (default: just ``op``)

    @property
    def key(self) -> str:
        return f"{self.op.split('::')[1]}|{self.category}|{self.dtype}|{self.label}"


@dataclass
class Result:
    op: str
    category: str
    dtype: str
    label: str
    # ok | mismatch | native_less_accurate | beyond_native | native_crash | not_served | error
    status: str
    why: str = ""
    native: str = ""
    flaggems: str = ""
    served_by: str = ""
    repro: str = ""
    known: Optional[str] = None      # finding id from known.py
    seconds: float = 0.0

    @property
    def new(self) -> bool:
        return self.status in ("mismatch", "error") and self.known is None


def aten_ops() -> List[str]:
    """Every registered ATen overload with at least one implementation."""
    return sorted(q for q, e in entries().items() if e.namespace == "aten" and e.impls)


def select_ops(names: Optional[Iterable[str]] = None) -> List[str]:
    """``None`` -> all; else ATen names as everywhere in flaggems ("add" = every overload, "add.out" one)."""
    every = aten_ops()
    if names is None:
        return every
    wanted = set(expand_names(list(names), declared(), strict=True, what="ops"))
    return [q for q in every if q in wanted]


def dtype_name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


# samples whose *native* call kills the process (so the comparison cannot run in-process): skipped, and said
NATIVE_CRASHES = {
    ("aten::_scaled_dot_product_flash_attention_for_cpu.default", "empty"):
        "torch's CPU flash attention dies with SIGFPE on 0 queries or 0 keys (torch 2.13)",
}


def samples(op: str, categories: Sequence[str] = CATEGORIES, dtypes: Optional[Sequence[torch.dtype]] = None,
            gaps: Optional[list] = None) -> Iterator[Sample]:
    """The samples of one overload. Ops without a seed are appended to ``gaps`` (never silently skipped)."""
    allowed = dtypes_for(op)
    for cat in categories:
        if (op, cat) in NATIVE_CRASHES:
            if gaps is not None:
                gaps.append((op, f"{cat}: {NATIVE_CRASHES[(op, cat)]}"))
            continue
        cat_dts = CATEGORY_DTYPES[cat] or allowed
        for dt in cat_dts:
            if dt not in allowed or (dtypes is not None and dt not in dtypes):
                continue
            try:
                for label, call in GENERATORS[cat](op, dt):
                    yield Sample(op, cat, dtype_name(dt), label, call)
            except NoSeed as e:
                if gaps is not None and (op, str(e)) not in gaps:
                    gaps.append((op, str(e)))
                return
            except Exception as e:   # noqa: BLE001 - a generator failing is a harness error, reported
                yield Sample(op, cat, dtype_name(dt), f"generator error: {type(e).__name__}: {e}",
                             Call(op, ()))


def run_sample(s: Sample, phase: Optional[Callable[[str], None]] = None) -> Result:
    """Run one sample natively, then under flaggems (only its op patched); compare; classify.

    ``phase("native" | "flaggems")`` is called before each side runs (the worker reports it, so a crash is
    pinned on the side that crashed)."""
    from .known import match

    t0 = time.perf_counter()
    r = Result(s.op, s.category, s.dtype, s.label, "error", repro=s.call.source())
    if s.label.startswith("generator error"):
        r.why = s.label
        return r
    try:
        if phase is not None:
            phase("native")
        native = run(s.call, gems=False)
        if phase is not None:
            phase("flaggems")
        gems = run(s.call, gems=True, include=list(s.include or (s.op,)))
    except Exception as e:   # noqa: BLE001 - reported as a harness error with its traceback tail
        r.why = f"{type(e).__name__}: {e}"
        r.flaggems = traceback.format_exc(limit=3)[-500:]
        r.seconds = time.perf_counter() - t0
        return r
    targets = list(s.include or (s.op,))
    hit = [q for q in targets if gems.served.get(q)]
    if hit:
        r.op = hit[0]     # the overload a flaggems kernel served (OpInfo samples reach one of a family)
    served = gems.served.get(r.op) or {}
    r.native, r.flaggems = native.describe(), gems.describe()
    r.served_by = ", ".join(sorted(served)) if served else "native: " + ", ".join(
        sorted((gems.fallback.get(s.op) or {"op not reached": 1})))
    if not served:
        r.status = "not_served"
    else:
        fp64 = (lambda: run(s.call, gems=False, upcast=True)) if _upcastable(s) else None
        v = compare(s.call, native, gems, fp64)
        r.status, r.why = v.status, v.why
    if r.status in ("mismatch", "error"):
        r.known = match(r)
    r.seconds = time.perf_counter() - t0
    return r


def _upcastable(s: Sample) -> bool:
    # explicit dtype arguments and integer results keep their meaning only at the sample's own precision
    src = s.call.source()
    return s.dtype in ("float32", "bfloat16", "float16") and "dtype=" not in src and "meta(" not in src


@dataclass
class Report:
    results: List[Result] = field(default_factory=list)
    gaps: List = field(default_factory=list)           # (op, why no seed)
    seconds: float = 0.0
    environment: Dict[str, str] = field(default_factory=dict)

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        out["known"] = sum(r.known is not None for r in self.results)
        out["new"] = sum(r.new for r in self.results)
        return out

    def new_mismatches(self) -> List[Result]:
        return [r for r in self.results if r.new]

    def known_mismatches(self) -> List[Result]:
        return [r for r in self.results if r.known is not None]

    def served_ops(self) -> List[str]:
        return sorted({r.op for r in self.results if r.status not in ("not_served", "error")})

    def to_dict(self) -> dict:
        """Counts, gaps, per-op/category status counts, and every result that is not a plain pass."""
        return {"environment": self.environment, "seconds": round(self.seconds, 1), "counts": self.counts(),
                "gaps": [{"op": o, "why": w} for o, w in self.gaps],
                "ops_swept": sorted({r.op for r in self.results}), "ops_served": self.served_ops(),
                "per_op": self.per_op(),
                "results": [asdict(r) for r in self.results if r.status not in ("ok", "not_served")]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def per_op(self) -> Dict[str, Dict[str, Dict[str, int]]]:
        """{op: {category: {status: n}}}."""
        out: Dict[str, Dict[str, Dict[str, int]]] = {}
        for r in self.results:
            c = out.setdefault(r.op, {}).setdefault(r.category, {})
            status = r.status if r.known is None else f"known {r.known}"
            c[status] = c.get(status, 0) + 1
        return out

    def to_markdown(self) -> str:
        c = self.counts()
        lines = [f"# Adversarial sweep: {len({r.op for r in self.results})} overloads, {len(self.results)} samples, "
                 f"{self.seconds:.0f} s", "",
                 ", ".join(f"{k}: {v}" for k, v in sorted(c.items())), "",
                 "Only samples a flaggems kernel served count; `not_served` ones went to torch's kernel.", ""]
        for title, rows in (("New mismatches", self.new_mismatches()), ("Known findings (issue 13)",
                                                                        self.known_mismatches())):
            lines += [f"## {title} ({len(rows)})", "",
                      "| op | category | dtype | sample | known | native | flaggems | why |", "|---|---|---|---|---|---|---|---|"]
            for r in rows:
                lines.append(f"| `{r.op.split('::')[1]}` | {r.category} | {r.dtype} | {r.label} | {r.known or '-'} "
                             f"| {_cell(r.native)} | {_cell(r.flaggems)} | {_cell(r.why)} |")
            lines.append("")
        notes = [r for r in self.results if r.status in ("native_less_accurate", "beyond_native", "native_crash",
                                                         "native_hang")]
        if notes:
            lines += [f"## Notes: native wrong (flaggems agrees with fp64), native has no kernel, or native itself "
                      f"crashed ({len(notes)})", "",
                      "| op | category | dtype | sample | status | why |", "|---|---|---|---|---|---|"]
            for r in notes:
                lines.append(f"| `{r.op.split('::')[1]}` | {r.category} | {r.dtype} | {r.label} | {r.status} | "
                             f"{_cell(r.why)} |")
            lines.append("")
        if self.gaps:
            lines += ["## Not swept (no seed)", ""] + [f"- `{o}`: {w}" for o, w in self.gaps] + [""]
        return "\n".join(lines)


def _cell(s: str, n: int = 160) -> str:
    s = " ".join(str(s).split()).replace("|", "\\|")
    return s if len(s) <= n else s[: n - 1] + "…"


def sweep(ops: Optional[Iterable[str]] = None, categories: Sequence[str] = CATEGORIES,
          dtypes: Optional[Sequence[torch.dtype]] = None, progress: Optional[Callable[[Result], None]] = None,
          sample_ops: Optional[int] = None, seed: int = 0) -> Report:
    """Run every sample of ``ops`` (default: every registered ATen overload).

    ``sample_ops`` picks that many overloads at random (``seed``), for a fast run that still rotates through
    the registry when the seed changes.
    """
    import platform

    import triton

    unknown = [c for c in categories if c not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {list(CATEGORIES)}")
    chosen = select_ops(ops)
    if sample_ops is not None and sample_ops < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample_ops))
    rep = Report(environment={"torch": torch.__version__, "triton": triton.__version__,
                              "python": platform.python_version()})
    t0 = time.perf_counter()
    for op in chosen:
        for s in samples(op, categories, dtypes, rep.gaps):
            r = run_sample(s)
            rep.results.append(r)
            if progress is not None:
                progress(r)
    rep.seconds = time.perf_counter() - t0
    return rep
