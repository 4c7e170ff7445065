"""Device ceilings measured in the same run (bandwidth of a large copy, matmul throughput per dtype) and the
roofline that places a row against them."""
from __future__ import annotations

import statistics
import time
from typing import Dict

import torch

from .cases import Case
from .device import sync_fn


def measure_ceilings(dev: str, quick: bool) -> Dict[str, Dict[str, float]]:
    """Bandwidth (a large copy) and matmul throughput per dtype, measured now on this device."""
    sync = sync_fn(dev)
    out: Dict[str, Dict[str, float]] = {}
    cpu = dev == "cpu"

    def _t(fn, reps):
        fn()
        sync()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    def _time(fn):
        if cpu:
            return _t(fn, 5 if quick else 11)
        import triton.testing as tt
        return tt.do_bench(fn, warmup=10, rep=50, return_mode="median") * 1e-3

    nbytes = (128 << 20 if quick else 512 << 20) if cpu else (1 << 30)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).uniform_()
    dst = torch.empty_like(src)
    t = _time(lambda: dst.copy_(src))
    out["bandwidth"] = {"gbps": 2 * nbytes / t / 1e9, "what": f"copy_ of {nbytes >> 20} MiB fp32 (read + write)"}
    del src, dst
    mm_dtypes = [("fp32", torch.float32), ("bf16", torch.bfloat16)] + ([] if cpu else [("fp16", torch.float16)])
    for name, dt in mm_dtypes:
        n = (1024 if quick else 2048) if cpu else 8192
        if cpu and dt is torch.bfloat16 and not _fast_bf16():
            n = 512
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)
        t = _time(lambda: torch.mm(a, b))
        out[name] = {"tflops": 2 * n ** 3 / t / 1e12, "what": f"torch.mm {n}x{n}x{n} {name}"}
    if not cpu and hasattr(torch, "_scaled_mm"):
        try:
            n = 8192
            a = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn)
            b = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn).t()
            one = torch.ones((), device=dev)
            t = _time(lambda: torch._scaled_mm(a, b, one, one, out_dtype=torch.bfloat16))
            out["fp8"] = {"tflops": 2 * n ** 3 / t / 1e12, "what": f"torch._scaled_mm {n}^3 e4m3 tensorwise"}
        except Exception:
            pass
    return out


def _fast_bf16() -> bool:
    cap = torch.backends.cpu.get_cpu_capability()
    return "AVX512" in cap or "AMX" in cap


def roofline(case: Case, ms: float, ceilings: Dict[str, Dict[str, float]]):
    """(tflops, gbps, fraction of the attainable ceiling, bound, ceiling name)."""
    s = ms * 1e-3
    tflops = case.flops / s / 1e12 if case.flops and s > 0 else None
    gbps = case.bytes / s / 1e9 if case.bytes and s > 0 else None
    bw = ceilings.get("bandwidth", {}).get("gbps")
    comp_name = case.compute if case.compute in ceilings else max(
        (k for k in ceilings if k != "bandwidth"), key=lambda k: ceilings[k]["tflops"], default=None)
    peak = ceilings[comp_name]["tflops"] if comp_name else None
    if tflops is not None and gbps is not None and bw and peak:
        ai = case.flops / case.bytes
        mem_roof = ai * bw / 1e3                       # TFLOP/s attainable from memory
        if mem_roof < peak:
            return tflops, gbps, tflops / mem_roof, "memory", "bandwidth"
        return tflops, gbps, tflops / peak, "compute", comp_name
    if gbps is not None and bw:
        return tflops, gbps, gbps / bw, "memory", "bandwidth"
    if tflops is not None and peak:
        return tflops, gbps, tflops / peak, "compute", comp_name
    return tflops, gbps, None, None, None
