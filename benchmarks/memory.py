"""Peak memory of one call, flaggems vs the torch baseline.

CPU (Linux): the resident-set high-water mark. ``tracemalloc`` does not see torch's allocations and
``torch.cpu`` keeps no memory statistics, so each measured case runs in a fresh subprocess
(``python -m benchmarks.memory --key ...``) started with ``MALLOC_MMAP_THRESHOLD_=65536`` (every block of
64 KiB or more is a fresh mmap, so an allocation cannot hide in memory glibc already holds). There the inputs
are built and the runtime warmed up (a small torch matmul starts the thread pools), then
``/proc/self/clear_refs`` is written with 5 (resets ``VmHWM`` to the current RSS), the call runs *once* (its
first call: the C++ kernels' per-thread scratch, which persists, is counted) and the peak is
``VmHWM - VmRSS(before)``: every page touched by the call, torch tensors, C++ buffers and the output included.
The flaggems side is measured first, then the torch side, in the same process.
Fallback (no clear_refs, e.g. not Linux): bytes of tensor storage alive at once, tracked with a
TorchDispatchMode (sees only torch allocations: C++ scratch is missed).
GPU: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus the memory allocated
before the call (the caching allocator's view: tensors only).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import weakref
from typing import Any, Callable

import torch

from .catalog import all_cases
from .cases import Ctx
from .device import device_type
from .routing import gems_context

METHOD = {
    "cpu": "RSS high-water mark (VmHWM after writing 5 to /proc/self/clear_refs) over the first call in a fresh "
           "subprocess with MALLOC_MMAP_THRESHOLD_=65536; counts torch tensors, C++ scratch and outputs",
    "cpu-fallback": "tensor storage alive at once (TorchDispatchMode accounting; C++ internal buffers not seen)",
    "gpu": "torch.<device>.max_memory_allocated() delta over one call (caching-allocator tensors)",
}


# ------------------------------------------------------------------------------------------ in-process methods


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def clear_refs_available() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kb("VmHWM")
        return True
    except Exception:
        return False


def _trim():
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


def rss_peak(fn: Callable[[], Any]) -> int:
    """Bytes of resident memory the call adds at its peak (output included)."""
    _trim()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kb("VmRSS")
    out = fn()
    peak = _status_kb("VmHWM")
    del out
    return max(0, peak - base) * 1024


class _LiveTensors(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._seen = set()

    def _free(self, key, n):
        self._seen.discard(key)
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = st.data_ptr()
                if key and key not in self._seen:
                    n = st.nbytes()
                    self._seen.add(key)
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(st, self._free, key, n)
        return out


def dispatch_peak(fn: Callable[[], Any]) -> int:
    with _LiveTensors() as m:
        out = fn()
    n = sum(t.untyped_storage().nbytes() for t in (out if isinstance(out, (tuple, list)) else (out,))
            if isinstance(t, torch.Tensor))
    return max(m.peak, n)


def gpu_peak(fn: Callable[[], Any], dev: str) -> int:
    mod = getattr(torch, dev)
    mod.synchronize()
    gc.collect()
    mod.reset_peak_memory_stats()
    base = mod.memory_allocated()
    out = fn()
    mod.synchronize()
    peak = mod.max_memory_allocated() - base
    del out
    return int(peak)


# ------------------------------------------------------------------------------------------ runner


def runner(dev: str, quick: bool) -> Callable:
    """A function (case, ctx, kind, inputs) -> {peak_mem_bytes, torch_peak_mem_bytes, peak_mem_method}."""
    def gpu(case, ctx, kind, inputs):
        gctx = gems_context(case, kind)
        with gctx():
            f = gpu_peak(lambda: case.flaggems(inputs), dev)
        t = gpu_peak(lambda: case.torch(inputs), dev) if case.torch is not None else None
        return {"peak_mem_bytes": f, "torch_peak_mem_bytes": t, "peak_mem_method": "gpu"}

    def cpu(case, ctx, kind, inputs):
        if not clear_refs_available():
            gctx = gems_context(case, kind)
            with gctx():
                f = dispatch_peak(lambda: case.flaggems(inputs))
            t = dispatch_peak(lambda: case.torch(inputs)) if case.torch is not None else None
            return {"peak_mem_bytes": f, "torch_peak_mem_bytes": t, "peak_mem_method": "cpu-fallback"}
        cmd = [sys.executable, "-m", "benchmarks.memory", "--key", case.key, "--op", case.op,
               "--impl", kind, "--threads", str(torch.get_num_threads())]
        if ctx.quick:
            cmd.append("--quick")
        if ctx.dtypes:
            cmd += ["--dtype", ",".join(ctx.dtypes)]
        if ctx.models:
            cmd += ["--models", ",".join(ctx.models)]
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="131072")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=root)
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except Exception as e:  # noqa: BLE001
            err = (p.stderr.strip().splitlines() or ["?"])[-1] if "p" in locals() else str(e)
            return {"peak_mem_bytes": None, "torch_peak_mem_bytes": None, "peak_mem_method": None,
                    "peak_mem_error": err[:200]}
        return {"peak_mem_bytes": res["flaggems"], "torch_peak_mem_bytes": res["torch"], "peak_mem_method": "cpu"}

    return cpu if dev == "cpu" else gpu


def _main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="(internal) peak memory of one benchmark case, in a fresh process")
    ap.add_argument("--key", required=True)
    ap.add_argument("--op", required=True)
    ap.add_argument("--impl", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--models", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    ctx = Ctx(device=device_type(), quick=a.quick, dtypes=tuple(a.dtype.split(",")) if a.dtype else None, impl=a.impl,
              models=tuple(a.models.split(",")) if a.models else None)
    case = next((c for c in all_cases(ctx, [a.op]) if c.key == a.key), None)
    if case is None:
        raise SystemExit(f"no case {a.key!r}")
    inputs = case.setup()
    # warm the runtime (thread pools, oneDNN) on something else than the measured call
    x = torch.randn(64, 64)
    (x @ x).sum()
    (x.bfloat16() @ x.bfloat16()).sum()
    gctx = gems_context(case, a.impl)
    with gctx():
        f = rss_peak(lambda: case.flaggems(inputs))
    t = rss_peak(lambda: case.torch(inputs)) if case.torch is not None else None
    print(json.dumps({"flaggems": f, "torch": t}))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        _main()
