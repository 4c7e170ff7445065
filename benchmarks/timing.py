"""Timers: interleaved wall-clock rounds (CPU, host-overhead rows), do_bench / CUDA-graph replay (GPU), and the
buffer that flushes the last-level cache between samples.

CPU: wall clock (``time.perf_counter``). The sides of a case (flaggems, direct kernel, torch, peer) are timed in
*interleaved rounds* so background load on a shared machine hits all of them alike; a sample is a batch of calls
lasting >= ~200 µs (so µs-scale ops are measurable), the result is the median over samples (at least
``min_reps``, until the case's time budget is spent), and the spread is reported as the inter-quartile range in %
of the median.
GPU: ``triton.testing.do_bench`` (median, with its L2 flush); ops faster than 50 µs are re-timed with
``do_bench_cudagraph`` (a CUDA graph removes the host launch cost from a device-time measurement).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch


def _quantiles(xs: List[float]) -> Tuple[float, float, float]:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def time_interleaved(sides: Dict[str, Tuple[Callable[[], Any], Callable[[], Any]]], *, budget_s: float,
                     min_reps: int = 5, max_reps: int = 200, sync: Callable[[], None] = lambda: None,
                     target_sample_s: float = 200e-6, flush: Optional[Callable[[], None]] = None
                     ) -> Dict[str, Dict[str, float]]:
    """Wall-clock medians of several sides timed in interleaved rounds.

    ``sides``: name -> (fn, context factory). Returns name -> {ms, p25, p75, iqr_pct, reps, inner}.
    Each round visits the sides in a rotated order; ``flush`` (overwrite a buffer larger than the last-level
    cache) runs before every sample so no side inherits a cache warmed by the previous one.
    """
    inner, warm = {}, {}
    for name, (fn, ctx) in sides.items():
        with ctx():
            fn()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            t = time.perf_counter() - t0
        inner[name] = max(1, min(20000, int(target_sample_s / max(t, 1e-9))))
        warm[name] = t < 5e-3      # re-warm after entering the context each round (cache re-resolution)
    samples: Dict[str, List[float]] = {n: [] for n in sides}
    names = list(sides)
    start = time.perf_counter()
    rnd = 0
    while True:
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        rnd += 1
        for name in order:
            fn, ctx = sides[name]
            if len(samples[name]) >= max_reps:
                continue
            with ctx():
                if warm[name]:
                    fn()
                    sync()
                if flush is not None:
                    flush()
                    sync()
                n = inner[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                sync()
                samples[name].append((time.perf_counter() - t0) / n)
        enough = all(len(s) >= min_reps for s in samples.values())
        if (enough and time.perf_counter() - start >= budget_s) or all(len(s) >= max_reps for s in samples.values()):
            break
    out = {}
    for name, s in samples.items():
        p25, med, p75 = _quantiles(s)
        out[name] = {"ms": med * 1e3, "p25": p25 * 1e3, "p75": p75 * 1e3,
                     "iqr_pct": 100.0 * (p75 - p25) / med if med > 0 else 0.0, "reps": len(s), "inner": inner[name]}
    return out


def time_gpu(fn: Callable[[], Any], ctx: Callable[[], Any], quick: bool) -> Dict[str, float]:
    """Device time: do_bench median (with its L2 flush); CUDA graph replay for ops under 50 µs."""
    import triton.testing as tt

    with ctx():
        q = tt.do_bench(fn, warmup=10 if quick else 25, rep=40 if quick else 100, quantiles=[0.25, 0.5, 0.75],
                        return_mode="median")
        p25, med, p75 = q
        timer = "do_bench"
        if med < 0.05:
            try:
                q = tt.do_bench_cudagraph(fn, rep=20 if quick else 50, quantiles=[0.25, 0.5, 0.75],
                                          return_mode="median")
                p25, med, p75 = q
                timer = "do_bench_cudagraph"
            except Exception:   # a host sync or an uncapturable op: keep do_bench
                pass
    return {"ms": med, "p25": p25, "p75": p75, "iqr_pct": 100.0 * (p75 - p25) / med if med else 0.0,
            "reps": None, "inner": 1, "timer": timer}


_FLUSH: Dict[str, torch.Tensor] = {}


def flush_buffer(dev: str, llc: int) -> torch.Tensor:
    if dev not in _FLUSH:
        _FLUSH[dev] = torch.zeros(max(2 * llc, 8 << 20) // 4, dtype=torch.int32, device=dev)
    return _FLUSH[dev]
