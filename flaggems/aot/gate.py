"""The gate end to end: plan -> capture (or load) -> select -> compile (cached, in parallel) -> report."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from . import cache as _cache
from . import pool, selection
from . import spec as _spec
from .report import Report, make_row
from .targets import (BACKEND_VENDOR, DEFAULT_TARGETS, Target, parse_targets, planning_capabilities,
                      vendor_target)


@dataclasses.dataclass
class Plan:
    """One capture: a vendor planning with one set of capability flags, for the targets that share them."""
    plugin: object
    targets: List[Target]

    @property
    def caps(self):
        return planning_capabilities(self.plugin, self.targets[0])

    @property
    def stem(self) -> str:
        return f"capture-{self.plugin.name}-" + "-".join(t.name.replace(":", "") for t in self.targets)


def _plugin(name: str):
    from ..vendors import available

    plugins = available()
    if name not in plugins:
        raise SystemExit(f"flaggems aot: unknown vendor {name!r} (known: {sorted(plugins)})")
    return plugins[name]()


def make_plans(vendor: Optional[str], targets_text: Optional[str]) -> List[Plan]:
    if vendor:
        plugin = _plugin(vendor)
        targets = parse_targets(targets_text)
        if not targets:
            declared = vendor_target(plugin)
            if not declared:
                raise SystemExit(f"flaggems aot: vendor {vendor!r} names no Triton target; pass --targets")
            targets = parse_targets(declared)
        chosen = [(plugin, t) for t in targets]
    else:
        targets = parse_targets(targets_text) or parse_targets(",".join(DEFAULT_TARGETS))
        chosen = []
        for t in targets:
            if t.backend not in BACKEND_VENDOR:
                raise SystemExit(f"flaggems aot: no vendor plans for backend {t.backend!r}; pass --vendor")
            chosen.append((_plugin(BACKEND_VENDOR[t.backend]), t))
    plans: "OrderedDict[tuple, Plan]" = OrderedDict()
    for plugin, t in chosen:
        key = (plugin.name, json.dumps(planning_capabilities(plugin, t).as_dict(), sort_keys=True))
        if key in plans:
            plans[key].targets.append(t)
        else:
            plans[key] = Plan(plugin, [t])
    return list(plans.values())


def _default_workloads(root: str) -> List[str]:
    return ["tests", "validate", "demo"] if os.path.isdir(os.path.join(root, "tests", "ops")) else ["validate", "demo"]


def capture_plans(plans: List[Plan], args, log) -> Dict[int, Tuple[list, dict]]:
    from .capture import _PACKAGE_PARENT, DEFAULT_TEST_PATHS, capture

    out = {}
    for i, plan in enumerate(plans):
        if args.capture:
            files = [f for f in args.capture.split(",") if f]
            loaded = [_spec.load(f) for f in files]
            specs = _spec.merge([sp for sp, _ in loaded])
            metas = [m for _, m in loaded]
            meta = dict(metas[0], file=",".join(files), count=len(specs),
                        launches=sum(m.get("launches", 0) for m in metas),
                        workloads=[w for m in metas for w in m.get("workloads", [])])
            vendors_seen = {m.get("vendor") for m in metas if m.get("vendor")}
            if vendors_seen - {plan.plugin.name}:
                log(f"[aot] note: {args.capture} was captured planning as {sorted(vendors_seen)}, "
                    f"used here for {plan.plugin.name}")
        else:
            workloads = [w for w in (args.workloads.split(",") if args.workloads else
                                     _default_workloads(_PACKAGE_PARENT)) if w]
            ops = [o.strip() for o in args.ops.split(",")] if args.ops else None
            paths = [t for t in args.tests.split(",") if t] if getattr(args, "tests", None) else DEFAULT_TEST_PATHS
            specs, meta = capture(plan.plugin, plan.targets[0], workloads, ops=ops, test_paths=paths,
                                  test_args=args.test_args.split() if args.test_args else (),
                                  test_sample=getattr(args, "test_sample", 0) or 0,
                                  test_budget=getattr(args, "test_budget", 0) or 0, log=log)
            path = os.path.join(args.output, plan.stem + ".json")
            meta = dict(meta, file=path, count=len(specs))
            _spec.save(specs, path, meta)
            log(f"[aot] captured {len(specs)} specializations ({meta['launches']} launches) in "
                f"{meta['seconds']:.0f}s -> {path}")
        meta.setdefault("count", len(specs))
        out[i] = (specs, meta)
    return out


def run(args, log=print) -> int:
    t_start = time.perf_counter()
    try:
        plans = make_plans(args.vendor, args.targets)
    except ValueError as e:
        raise SystemExit(f"flaggems aot: {e}") from None
    os.makedirs(args.output, exist_ok=True)
    captured = capture_plans(plans, args, log)
    timings = OrderedDict(capture=sum(m.get("seconds", 0) for _, m in captured.values()) if not args.capture else 0.0)
    if args.capture_only:
        return 0
    python = args.python or sys.executable
    tool = pool.probe(python)
    tool["python_path"] = python
    log(f"[aot] compiling with triton {tool['triton']} ({python})")
    rc = _cache.ResultCache(None if args.no_cache else (args.cache or _cache.default_dir()))
    ops = [o.strip() for o in args.ops.split(",")] if args.ops else None

    pending, rows_in, skipped, dropped = [], [], {}, {}
    for i, plan in enumerate(plans):
        specs, meta = captured[i]
        kept, why = selection.vendor_filter(specs, plan.caps) if args.vendor else (list(specs), {})
        kept = selection.ops_filter(kept, ops)
        kept, sk = selection.sample(kept, args.sample)
        for t in plan.targets:
            skipped[t.name] = sk
            dropped[t.name] = {reason: len(keys) for reason, keys in why.items()}
            for s in kept:
                key = _cache.result_key(s, _cache.source_hash(s), t.name, tool["triton"])
                hit = rc.get(key)
                if hit is not None:
                    rows_in.append((s, t, hit, True))
                else:
                    pending.append({"id": f"{len(pending)}", "spec": s.to_dict(), "target": t.to_dict(),
                                    "_key": key, "_s": s, "_t": t})
    log(f"[aot] {len(rows_in) + len(pending)} compiles: {len(rows_in)} cached, {len(pending)} to run "
        f"on {args.jobs} worker(s)")
    done = [0]
    t_compile = time.perf_counter()

    def progress(res):
        done[0] += 1
        if done[0] % 25 == 0 or done[0] == len(pending):
            el = time.perf_counter() - t_compile
            log(f"[aot]   {done[0]}/{len(pending)} compiled in {el:.0f}s "
                f"(~{el / done[0] * (len(pending) - done[0]):.0f}s left)")

    jobs = [{k: v for k, v in j.items() if not k.startswith("_")} for j in pending]
    results = pool.run_jobs(python, jobs, args.jobs, timeout=args.timeout, on_result=progress)
    for j in pending:
        res = results.get(j["id"], {"status": "failed", "error": "not run"})
        if not res.get("timed_out"):
            rc.put(j["_key"], res)
        rows_in.append((j["_s"], j["_t"], res, False))
    timings["compile"] = time.perf_counter() - t_compile
    per_target = OrderedDict((t.name, 0.0) for p in plans for t in p.targets)
    rows = []
    for s, t, res, cached in rows_in:
        rows.append(make_row(s, t, res, cached))
        if not cached:
            per_target[t.name] += float(res.get("seconds") or 0)
    for name, sec in per_target.items():
        timings[f"compile {name} (worker seconds)"] = sec
    timings["total"] = time.perf_counter() - t_start
    targets = [dict(t.to_dict(), vendor=p.plugin.name, capabilities=p.caps.as_dict()) for p in plans for t in p.targets]
    rep = Report(rows=rows, targets=targets, toolchain=tool, captures=[m for _, m in captured.values()],
                 skipped=skipped, dropped=dropped, timings=dict(timings))
    j, m = rep.write(args.output)
    for s in rep.summary():
        log("[aot] " + ", ".join(f"{k}={v}" for k, v in s.items()))
    log(f"[aot] report: {m} and {j}; verdict {'pass' if rep.ok() else 'FAIL'}")
    if rep.ok() or args.report_only:
        return 0
    return 1
