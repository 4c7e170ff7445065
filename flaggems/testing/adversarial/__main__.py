"""``python -m flaggems.testing.adversarial [--ops add,mm] [--categories dim,overlap] [--json out.json]``

Runs the sweep in a worker process so that a sample which aborts the interpreter (an out-of-bounds store
corrupts the heap) or hangs is recorded as ``crash`` / ``hang`` for that sample and the sweep goes on from
the next one. Exit status: 0 when no *new* mismatch was found, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flaggems.testing.adversarial",
                                description="Adversarial sweep: flaggems against native torch, per op and category")
    p.add_argument("--ops", default="", help="comma-separated ATen names (default: every registered overload)")
    p.add_argument("--categories", default="",
                   help="comma-separated categories (default: all); 'opinfo' = the OpInfo inputs (implies --opinfo)")
    p.add_argument("--dtypes", default="", help="comma-separated dtype names, e.g. float32,int8 (default: per category)")
    p.add_argument("--opinfo", action="store_true",
                   help="also run PyTorch's OpInfo sample/error/reference inputs (needs expecttest)")
    p.add_argument("--sample-ops", type=int, default=None, help="sweep this many randomly chosen overloads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="write the full report as JSON here")
    p.add_argument("--markdown", default="", help="write the findings table as markdown here")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one sample may run before it is a hang")
    p.add_argument("--in-process", action="store_true", help="no worker process (a crash ends the sweep)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help="skip the first N samples of the plan (resume a sweep)")
    return p


def _plan(args):
    """The ordered samples: the same list in the parent and in every worker."""
    import torch

    from .opinfo import opinfo_samples
    from .sweep import samples, select_ops
    from .categories import CATEGORIES

    named = [c for c in args.categories.split(",") if c]
    unknown = [c for c in named if c not in CATEGORIES and c != "opinfo"]
    if unknown:
        raise SystemExit(f"unknown categories {unknown}; known: {list(CATEGORIES) + ['opinfo']}")
    cats = [c for c in named if c != "opinfo"] if named else list(CATEGORIES)
    with_opinfo = args.opinfo or "opinfo" in named
    dts = [getattr(torch, d) for d in args.dtypes.split(",") if d] or None
    ops = select_ops([o for o in args.ops.split(",") if o] or None)
    if args.sample_ops is not None and args.sample_ops < len(ops):
        import random

        ops = sorted(random.Random(args.seed).sample(ops, args.sample_ops))
    gaps: list = []
    plan = []
    for op in ops:
        plan.extend(samples(op, cats, dts, gaps))
    if with_opinfo:
        plan.extend(opinfo_samples(ops, dts))
    return plan, gaps


def _worker(args) -> int:
    from .sweep import run_sample

    plan, _ = _plan(args)
    out = sys.stdout
    for i in range(args.start, len(plan)):
        out.write(json.dumps({"start": i}) + "\n")
        out.flush()

        def phase(side, i=i):
            out.write(json.dumps({"phase": side, "index": i}) + "\n")
            out.flush()

        r = run_sample(plan[i], phase)
        out.write(json.dumps({"index": i, "result": asdict(r)}, default=str) + "\n")
        out.flush()
    out.write(json.dumps({"done": len(plan)}) + "\n")
    out.flush()
    return 0


def _isolated(args, plan, progress):
    """Run the plan in worker processes; restart after a crash or hang, skipping the sample that caused it."""
    from .sweep import Result

    results = [None] * len(plan)
    start = args.start
    argv = [sys.executable, "-m", "flaggems.testing.adversarial", "--worker"] + _forward(args)
    while start < len(plan):
        proc = subprocess.Popen(argv + ["--start", str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=os.environ.copy())
        lines: "queue.Queue" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
        err_tail: list = []
        threading.Thread(target=lambda: [err_tail.append(x) or err_tail.__delitem__(slice(0, -20))
                                         for x in proc.stderr], daemon=True).start()
        current = None
        side = "native"
        finished = False
        while True:
            try:
                line = lines.get(timeout=args.timeout if current is not None else max(args.timeout, 900))
            except queue.Empty:
                proc.kill()
                proc.wait()
                status, why = "hang", f"no result after {args.timeout:.0f} s"
                break
            if line is None:
                proc.wait()
                status, why = "crash", f"worker exited with status {proc.returncode}: " + "".join(err_tail[-5:])[-600:]
                break
            msg = json.loads(line)
            if "start" in msg:
                current, side = msg["start"], "native"
            elif "phase" in msg:
                side = msg["phase"]
            elif "result" in msg:
                results[msg["index"]] = Result(**msg["result"])
                progress(results[msg["index"]])
                current = None
            elif "done" in msg:
                proc.wait()
                finished = True
                break
        if finished:
            break
        if current is None:   # died between samples (start-up failure): report and stop
            raise RuntimeError(f"adversarial worker failed: {why}")
        s = plan[current]
        # torch's own kernel dying is not a flaggems mismatch (the sample cannot be compared): reported apart
        r = Result(s.op, s.category, s.dtype, s.label, "mismatch" if side == "flaggems" else f"native_{status}",
                   why=f"{status} in the {side} call: {why}", repro=s.call.source(),
                   native=status if side == "native" else "", flaggems=status if side == "flaggems" else "")
        from .known import match

        if r.status == "mismatch":
            r.known = match(r)
        results[current] = r
        progress(r)
        start = current + 1
    return [r for r in results if r is not None]


def _forward(args):
    out = []
    for name in ("ops", "categories", "dtypes"):
        v = getattr(args, name)
        if v:
            out += [f"--{name}", v]
    if args.opinfo:
        out.append("--opinfo")
    if args.sample_ops is not None:
        out += ["--sample-ops", str(args.sample_ops), "--seed", str(args.seed)]
    return out


def main(argv=None) -> int:
    # ``python -m`` has imported the flaggems package already: the vendor is selected and every op declared
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    from .sweep import Report

    plan, gaps = _plan(args)
    rep = Report(gaps=gaps)
    t0 = time.perf_counter()
    n = [0]

    def progress(r):
        n[0] += 1
        if not args.quiet and (r.new or n[0] % 200 == 0):
            tag = "NEW " if r.new else ""
            print(f"[{n[0]}/{len(plan)}] {tag}{r.status} {r.op} {r.category} {r.dtype} {r.label}: {r.why[:160]}",
                  file=sys.stderr, flush=True)

    if args.in_process:
        from .sweep import run_sample

        for s in plan[args.start:]:
            r = run_sample(s)
            rep.results.append(r)
            progress(r)
    else:
        rep.results = _isolated(args, plan, progress)
    rep.seconds = time.perf_counter() - t0
    import platform

    import torch
    import triton

    rep.environment = {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version()}
    if args.json:
        with open(args.json, "w") as f:
            f.write(rep.to_json())
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(rep.to_markdown() + "\n")
    c = rep.counts()
    print(", ".join(f"{k}: {v}" for k, v in sorted(c.items())) + f" ({rep.seconds:.0f} s)")
    for r in rep.new_mismatches():
        print(f"NEW {r.op} [{r.category}/{r.dtype}] {r.label}: {r.why[:200]}")
    return 1 if c["new"] else 0


if __name__ == "__main__":
    sys.exit(main())
