"""One work list from several gate reports: ``python -m flaggems.aot.summary a/aot-report.json b/... > list.md``.

Gate runs with different Pythons (stock Triton for cuda/hip, triton-ascend for npu) write separate reports; this
joins them into one table per kernel and target: specializations, failures (with their first error and the
line blamed), spills, shared-memory overflows.
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict
from typing import Dict, List


def load_rows(paths: List[str]) -> List[dict]:
    rows = []
    for p in paths:
        with open(p) as f:
            rows += json.load(f)["rows"]
    return rows


def per_kernel(rows: List[dict]) -> "OrderedDict[str, Dict[str, dict]]":
    out: "OrderedDict[str, Dict[str, dict]]" = OrderedDict()
    for r in sorted(rows, key=lambda r: (r["where"], r["target"])):
        k = out.setdefault(f"{r['kernel']} ({r['where']})", {})
        t = k.setdefault(r["target"], {"n": 0, "failed": 0, "spilling": 0, "worst_spill": 0, "over": 0,
                                       "errors": OrderedDict()})
        t["n"] += 1
        if r["status"] != "compiled":
            t["failed"] += 1
            e = f"{r.get('error_at') or r['where']}: {r.get('error')}"
            t["errors"][e] = t["errors"].get(e, 0) + 1
        if r.get("spill"):
            t["spilling"] += 1
            t["worst_spill"] = max(t["worst_spill"], r["spill"])
        if r.get("overflow"):
            t["over"] += 1
    return out


def to_markdown(rows: List[dict]) -> str:
    targets = sorted({r["target"] for r in rows})
    head = ["| kernel | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    notes = []
    for kernel, per in per_kernel(rows).items():
        cells = []
        for t in targets:
            c = per.get(t)
            if c is None:
                cells.append("-")
                continue
            bits = [f"{c['n'] - c['failed']}/{c['n']} ok" if not (c["failed"] or c["spilling"] or c["over"])
                    else f"{c['n']} specs"]
            if c["failed"]:
                bits.append(f"**{c['failed']} fail**")
                notes += [f"- `{kernel.split(' ')[0]}` on {t} ({n}×): {e}" for e, n in c["errors"].items()]
            if c["spilling"]:
                bits.append(f"{c['spilling']} spill (≤{c['worst_spill']}{'B' if t.startswith('cuda') else ' VGPR'})")
            if c["over"]:
                bits.append(f"{c['over']} over limit")
            cells.append(", ".join(bits))
        head.append(f"| `{kernel}` | " + " | ".join(cells) + " |")
    return "\n".join(head + ["", "Failures:", ""] + notes) + "\n"


def main(argv=None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print(__doc__)
        return 2
    sys.stdout.write(to_markdown(load_rows(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
