"""The gate's verdict per target, kernel and specialization: JSON for tools, markdown for people.

A specialization *fails the gate* when it does not compile, spills (NVIDIA: spill stores/loads or local memory
from ptxas/cuobjdump; AMD: VGPRs spilled to scratch) or needs more shared memory / LDS than one block may have
on the target. The Ascend front end (no binary stage) is judged on compiling alone.
"""
from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from . import metrics
from .spec import Specialization
from .targets import Target


@dataclass
class Row:
    target: str
    kernel: str                # qualname
    kernel_ref: str            # module:qualname
    where: str                 # kernel file:line
    spec: str                  # specialization key
    label: str
    status: str                # "compiled" | "failed"
    error: Optional[str] = None
    error_at: Optional[str] = None   # file:line the compiler blamed, when it said
    shared: Optional[int] = None
    shared_limit: Optional[int] = None
    usage: Dict[str, Optional[int]] = field(default_factory=dict)
    spill: int = 0
    overflow: bool = False
    seconds: float = 0.0
    cached: bool = False
    routed: bool = True        # reached through the registry's routing (False: only by direct launcher calls)
    candidate_only: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "compiled" and not self.spill and not self.overflow


def make_row(spec: Specialization, target: Target, res: dict, cached: bool) -> Row:
    status = res.get("status", "failed")
    usage = res.get("usage") or {}
    shared = res.get("shared")
    row = Row(target=target.name, kernel=spec.kernel_name, kernel_ref=spec.kernel, where=f"{spec.file}:{spec.line}", spec=spec.key,
              label=spec.short(), status=status, error=res.get("error"), error_at=_short_path(res.get("where")),
              shared=shared, shared_limit=target.shared_limit, usage=usage, seconds=float(res.get("seconds") or 0),
              cached=cached, routed=bool(spec.routed_ops), candidate_only=spec.candidate_only)
    if status == "compiled":
        row.spill = metrics.spills(target.backend, usage)
        row.overflow = bool(target.shared_limit and shared is not None and shared > target.shared_limit)
    return row


def _short_path(where: Optional[str]) -> Optional[str]:
    if not where:
        return where
    i = where.find("flaggems/")
    return where[i:] if i >= 0 else where


@dataclass
class Report:
    rows: List[Row]
    targets: List[dict]
    toolchain: dict
    captures: List[dict]
    skipped: Dict[str, Dict[str, int]]          # target -> kernel -> specializations not compiled (sampling)
    dropped: Dict[str, Dict[str, int]]          # target -> reason -> count (vendor routing filter)
    timings: Dict[str, float]

    def failing(self) -> List[Row]:
        return [r for r in self.rows if not r.ok]

    def ok(self) -> bool:
        return not self.failing()

    def summary(self) -> List[dict]:
        out = []
        for t in self.targets:
            rows = [r for r in self.rows if r.target == t["name"]]
            out.append(OrderedDict(
                target=t["name"], planned_by=t.get("vendor"), specializations=len(rows),
                compiled=sum(r.status == "compiled" for r in rows), failed=sum(r.status != "compiled" for r in rows),
                spilling=sum(bool(r.spill) for r in rows), over_limit=sum(r.overflow for r in rows),
                skipped_by_sampling=sum(self.skipped.get(t["name"], {}).values()),
                outside_routing=sum(self.dropped.get(t["name"], {}).values()),
                compile_seconds=round(sum(r.seconds for r in rows if not r.cached), 1),
                cache_hits=sum(r.cached for r in rows)))
        return out

    def per_kernel(self, target: str) -> List[dict]:
        groups: Dict[str, List[Row]] = OrderedDict()
        for r in sorted((r for r in self.rows if r.target == target), key=lambda r: (r.where, r.kernel)):
            groups.setdefault(r.kernel_ref, []).append(r)
        out = []
        for ref, rows in groups.items():
            comp = [r for r in rows if r.status == "compiled"]
            regs = [r.usage.get("registers") or r.usage.get("vgprs") for r in comp]
            out.append(OrderedDict(
                kernel=rows[0].kernel, where=rows[0].where, specializations=len(rows), compiled=len(comp),
                failed=len(rows) - len(comp), spilling=sum(bool(r.spill) for r in rows),
                max_spill=max([r.spill for r in rows] or [0]), over_limit=sum(r.overflow for r in rows),
                max_shared=max([r.shared or 0 for r in comp] or [0]),
                max_registers=max([x for x in regs if x is not None] or [0]),
                skipped=self.skipped.get(target, {}).get(ref, 0)))
        return out

    def failure_groups(self) -> List[dict]:
        """Distinct failures: (target, kernel, error, blamed line) with counts and one example."""
        groups: Dict[tuple, List[Row]] = OrderedDict()
        for r in self.rows:
            if r.status != "compiled":
                groups.setdefault((r.target, r.kernel, r.error_at or r.where, r.error), []).append(r)
        return [dict(target=k[0], kernel=k[1], at=k[2], error=k[3], count=len(v),
                     routed=sum(r.routed for r in v), example=v[0].label) for k, v in groups.items()]

    def to_dict(self) -> dict:
        return {"ok": self.ok(), "toolchain": self.toolchain, "targets": self.targets, "summary": self.summary(),
                "per_kernel": {t["name"]: self.per_kernel(t["name"]) for t in self.targets},
                "failures": self.failure_groups(), "skipped_by_sampling": self.skipped,
                "outside_routing": self.dropped, "captures": self.captures, "timings": self.timings,
                "rows": [asdict(r) for r in self.rows]}

    def to_markdown(self) -> str:
        kb = lambda b: "-" if b is None else f"{b / 1024:.0f}"  # noqa: E731
        tc = self.toolchain
        out = ["# flaggems AOT gate", "",
               f"triton {tc.get('triton')} (python {tc.get('python')}, `{tc.get('python_path')}`); verdict: "
               f"**{'pass' if self.ok() else 'FAIL'}** — a specialization fails when it does not compile, spills, "
               "or needs more shared memory/LDS than the target allows.", ""]
        for c in self.captures:
            wl = ", ".join(f"{w['name']} ({w['items']} items, {w['seconds']:.0f}s, {len(w['errors'])} not clean"
                           + (f"; {w['note']}" if w.get("note") else "") + ")" for w in c.get("workloads", []))
            out.append(f"- capture `{c.get('file', '')}`: vendor {c.get('vendor')} planning for {c.get('target')}, "
                       f"{c.get('count', '?')} specializations from {c.get('launches', '?')} launches; "
                       f"workloads: {wl or 'loaded from file'}")
        out += ["", "## Summary", "",
                "| target | planned by | specializations | compiled | failed | spilling | over smem/LDS | "
                "skipped (sampling) | outside vendor routing | compile s | cache hits |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in self.summary():
            out.append("| " + " | ".join(str(v) for v in s.values()) + " |")
        fails = self.failure_groups()
        if fails:
            out += ["", "## Compile failures", "", "| target | kernel | at | error | specializations (routed) | example |",
                    "|---|---|---|---|---:|---|"]
            for f in fails:
                err = (f["error"] or "").replace("|", "\\|")
                out.append(f"| {f['target']} | `{f['kernel']}` | {f['at']} | {err} | {f['count']} ({f['routed']}) | "
                           f"`{f['example']}` |")
        for t in self.targets:
            name = t["name"]
            out += ["", f"## Kernels on {name}", "",
                    "| kernel | defined at | specs | compiled | failed | spilling | worst spill | over limit | "
                    "max shared KB | max regs | skipped |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for k in self.per_kernel(name):
                out.append(f"| `{k['kernel']}` | {k['where']} | {k['specializations']} | {k['compiled']} | "
                           f"{k['failed']} | {k['spilling']} | {k['max_spill']} | {k['over_limit']} | "
                           f"{kb(k['max_shared'])} | {k['max_registers']} | {k['skipped']} |")
        worst = sorted((r for r in self.rows if r.spill), key=lambda r: -r.spill)[:25]
        if worst:
            out += ["", "## Worst spills", "", "| target | kernel | spill | regs | specialization |", "|---|---|---:|---:|---|"]
            for r in worst:
                unit = "B" if r.target.startswith("cuda") else " VGPRs"
                out.append(f"| {r.target} | `{r.kernel}` | {r.spill}{unit} | "
                           f"{r.usage.get('registers') or r.usage.get('vgprs')} | `{r.label}` |")
        over = sorted((r for r in self.rows if r.overflow), key=lambda r: -(r.shared or 0))
        if over:
            per = Counter((r.target, r.kernel) for r in over)
            out += ["", "## Over the shared memory / LDS limit", "", "| target | kernel | specializations | worst KB | "
                    "limit KB | worst specialization |", "|---|---|---:|---:|---:|---|"]
            for (tname, kern), n in per.items():
                w = next(r for r in over if r.target == tname and r.kernel == kern)
                out.append(f"| {tname} | `{kern}` | {n} | {kb(w.shared)} | {kb(w.shared_limit)} | `{w.label}` |")
        dropped = {t: d for t, d in self.dropped.items() if d}
        if dropped:
            out += ["", "## Not compiled: outside the vendor's routing", ""]
            for t, d in dropped.items():
                out += [f"- {t}: " + "; ".join(f"{n} {reason}" for reason, n in d.items())]
        if any(self.skipped.values()):
            out += ["", "## Not compiled: sampling", ""]
            for t, d in self.skipped.items():
                if d:
                    out.append(f"- {t}: {sum(d.values())} specializations skipped: " +
                               ", ".join(f"`{k.split(':')[-1]}` {n}" for k, n in sorted(d.items())))
        out += ["", "## Timings", ""] + [f"- {k}: {v:.1f} s" for k, v in self.timings.items()]
        return "\n".join(out) + "\n"

    def write(self, directory: str, stem: str = "aot-report") -> tuple:
        os.makedirs(directory, exist_ok=True)
        j, m = os.path.join(directory, stem + ".json"), os.path.join(directory, stem + ".md")
        with open(j, "w") as f:
            json.dump(self.to_dict(), f, indent=1, default=str)
        with open(m, "w") as f:
            f.write(self.to_markdown())
        return j, m
