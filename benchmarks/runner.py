"""The run loop: times each selected case against its baselines and returns ``{meta, ceilings, rows, skipped}``.

Implementation kinds: ``--impl cpp`` or ``triton`` (default: the vendor's preferred kind that the case has).
Triton rows are not timed under the Triton interpreter (cpu vendor): they are listed as skipped with the reason.
C++ rows run only on CPU tensors. Host overhead rows are timed with the wall-clock timer on every device
(back-to-back calls, one sync per sample), which is host-bound for tiny tensors. Inputs rotate over several
copies when one set is smaller than twice the last-level cache, so a row does not measure a cache-resident replay.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from . import memory as memmod
from .catalog import all_cases
from .cases import Case, Ctx
from .ceilings import measure_ceilings, roofline
from .contention import CONTENDED, RETRIES_DEFAULT, CpuLoad
from .device import device_info, device_type, last_level_cache_bytes, peer_module, sync_fn, versions
from .routing import choose_impl, direct_impl, gems_context, peer_context
from .timing import flush_buffer, time_gpu, time_interleaved


def _nbytes(obj) -> int:
    seen, n = set(), 0

    def visit(x):
        nonlocal n
        if isinstance(x, torch.Tensor):
            st = x.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                n += st.nbytes()
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)
    visit(obj)
    return n


def run_case(case: Case, ctx: Ctx, ceilings, budget_s: float, env_meta: Dict[str, Any],
             mem_runner: Optional[Callable] = None, min_reps: Optional[int] = None,
             retries: int = RETRIES_DEFAULT) -> Dict[str, Any]:
    kind, _ = choose_impl(case, ctx)
    dev = ctx.device
    sync = sync_fn(dev)
    if min_reps is None:
        min_reps = 5 if ctx.quick else 10
    first = case.setup()
    llc = last_level_cache_bytes(dev)
    nb = _nbytes(first)
    reps = 1
    if case.rotate and nb and nb < 2 * llc:
        reps = max(1, min(8 if not ctx.quick else 4, math.ceil(2 * llc / nb), (256 << 20) // max(nb, 1)))
    inputs = [first] + [case.setup() for _ in range(reps - 1)]

    def rot(fn):
        state = [0]
        n = len(inputs)

        def call():
            i = state[0]
            state[0] = 0 if i + 1 == n else i + 1
            return fn(inputs[i])
        return call

    null = contextlib.nullcontext
    sides: Dict[str, Tuple[Callable, Callable]] = {"flaggems": (rot(case.flaggems), gems_context(case, kind))}
    # the direct implementation call only on host-overhead rows: on longer ops the difference of two medians
    # is noise on a shared machine, so dispatch cost is measured where it is resolvable (tiny inputs, hot caches)
    kernel = case.kernel or (direct_impl(case, kind) if case.host else None)
    if kernel is not None:
        sides["kernel"] = (rot(kernel), null)
    for name, fn in case.extra.items():
        sides[name] = (rot(fn), null)
    if case.torch is not None:
        sides["torch"] = (rot(case.torch), null)
    if case.peer is not None and peer_module() is not None:
        sides["flag_gems"] = (rot(case.peer), peer_context())
    row: Dict[str, Any] = {"op": case.op, "kind": case.kind, "shape": case.shape, "dtype": case.dtype, "impl": kind,
                           **{k: case.meta.get(k) for k in ("model", "phase", "tokens")},
                           "baseline": case.baseline if case.torch is not None else None,
                           "measures": case.measures, "rotating_buffers": len(inputs), "note": case.note or None}
    # a side that fails (e.g. torch has no kernel for these inputs) is reported, not fatal
    for name in list(sides):
        fn, cx = sides[name]
        try:
            with cx():
                fn()
            sync()
        except Exception as e:  # noqa: BLE001
            if name == "flaggems":
                raise
            row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            del sides[name]
    if dev == "cpu" or case.host:
        flush = None
        if not case.host:
            buf = flush_buffer(dev, llc)
            flush = lambda: buf.add_(1)   # noqa: E731  read + write every line of a > LLC buffer
        res, load = None, None
        for attempt in range(1 + retries):
            if attempt:
                time.sleep(2.0)                       # let a burst of foreign load pass
            mon = CpuLoad()
            r = time_interleaved(sides, budget_s=budget_s, min_reps=min_reps, sync=sync, flush=flush)
            fl = mon.foreign_cores()
            if res is None or (fl is not None and (load is None or fl < load)):
                res, load = r, fl
            if load is None or load <= CONTENDED:
                break
        row["foreign_load"] = load
        row["contended"] = bool(load is not None and load > CONTENDED)
        timer = "perf_counter (interleaved rounds, median)"
    else:
        res = {n: time_gpu(fn, cx, ctx.quick) for n, (fn, cx) in sides.items()}
        timer = res["flaggems"]["timer"]
    f = res["flaggems"]
    row.update(ms=f["ms"], ms_iqr_pct=f["iqr_pct"], reps=f["reps"], timer=timer)
    t = res.get("torch")
    row["torch_ms"] = t["ms"] if t else None
    row["torch_iqr_pct"] = t["iqr_pct"] if t else None
    row["speedup"] = t["ms"] / f["ms"] if t else None
    k = res.get("kernel")
    row["kernel_ms"] = k["ms"] if k else None
    row["dispatch_us"] = (f["ms"] - k["ms"]) * 1e3 if k else None
    p = res.get("flag_gems")
    row["flag_gems_ms"] = p["ms"] if p else None
    row["speedup_vs_flag_gems"] = p["ms"] / f["ms"] if p else None
    for name in case.extra:
        row[f"{name}_ms"] = res[name]["ms"] if name in res else None
    if case.host:
        ref = k or t
        row["overhead_us"] = (f["ms"] - ref["ms"]) * 1e3 if ref else None
    tflops, gbps, frac, bound, ceil = roofline(case, f["ms"], ceilings)
    row.update(tflops=tflops, gbps=gbps, roofline_frac=frac, bound=bound, ceiling=ceil,
               flops=case.flops or None, bytes=case.bytes or None)
    if case.memory and mem_runner is not None:
        row.update(mem_runner(case, ctx, kind, inputs[0]))
    row.update(env_meta)
    return row


def skipped_row(case: Case, reason: str) -> Dict[str, Any]:
    return {"op": case.op, "kind": case.kind, "shape": case.shape, "dtype": case.dtype, "reason": reason}


def _round(row: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float):
            out[k] = float(f"{v:.5g}") if math.isfinite(v) else None
        else:
            out[k] = v
    return out


class _Progress:
    """tqdm when installed, else one line per case on stderr."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.i, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)
            except Exception:
                self.bar = None

    def update(self, desc: str):
        self.i += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description_str(desc[:60])
            self.bar.update(1)
        else:
            print(f"[{self.i}/{self.total}] {desc}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run(ops: Optional[Sequence[str]] = None, quick: bool = False, dtypes: Optional[Sequence[str]] = None,
        impl: Optional[str] = None, memory: bool = True, progress: bool = True,
        budget_s: Optional[float] = None, max_cases: Optional[int] = None, smoke: bool = False,
        models: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the selected cases; returns {meta, ceilings, rows, skipped}.

    ``smoke``: quick shapes, only the first (smallest) case of each (op, kind), a tiny time budget: checks that
    the harness and every selected op run, not their speed.
    """
    if smoke:
        quick = True
        budget_s = 0.02 if budget_s is None else budget_s
    dev = device_type()
    ctx = Ctx(device=dev, quick=quick, dtypes=tuple(d.lower() for d in dtypes) if dtypes else None, impl=impl,
              models=tuple(models) if models else None)
    t_start = time.perf_counter()
    cases = all_cases(ctx, ops)
    if smoke:
        seen, keep = set(), []
        for c in cases:
            if (c.op, c.kind) not in seen:
                seen.add((c.op, c.kind))
                keep.append(c)
        cases = keep
    if max_cases is not None:
        cases = cases[:max_cases]
    dinfo, vers = device_info(dev), versions()
    ceilings = measure_ceilings(dev, quick)
    env_meta = {"device": dinfo.get("name", dev), "versions": {k: vers[k] for k in ("flaggems", "torch", "triton")}}
    budget = budget_s if budget_s is not None else (0.6 if quick else 2.0)
    rows, skipped = [], []
    bar = _Progress(len(cases), progress)
    mem_runner = memmod.runner(dev, quick) if memory else None
    for case in cases:
        kind, why = choose_impl(case, ctx)
        if kind is None:
            skipped.append(skipped_row(case, why))
        else:
            try:
                rows.append(_round(run_case(case, ctx, ceilings, budget, env_meta, mem_runner,
                                            min_reps=3 if smoke else None,
                                            retries=0 if smoke else RETRIES_DEFAULT)))
            except Exception as e:  # noqa: BLE001  a broken case is reported, the run goes on
                skipped.append(skipped_row(case, f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
        bar.update(f"{case.op} {case.shape}")
    bar.close()
    cont = [r for r in rows if r.get("contended")]
    meta = {"contended_rows": len(cont), "contention_threshold_cores": CONTENDED,
            "device": dinfo, "versions": vers, "quick": quick, "smoke": smoke, "impl": impl, "dtypes": list(dtypes or []),
            "ops": list(ops or []), "models": list(models or []), "wall_s": round(time.perf_counter() - t_start, 1),
            "peak_memory_method": memmod.METHOD.get(dev, memmod.METHOD["gpu"]) if memory else None,
            "timer": ("perf_counter, interleaved rounds, median" if dev == "cpu"
                      else "triton.testing.do_bench median (do_bench_cudagraph under 50 µs)"),
            "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    return {"meta": meta, "ceilings": ceilings, "rows": rows, "skipped": skipped}
