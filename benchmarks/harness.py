"""The benchmark harness: case registry, timers, device ceilings, one row per op/shape/dtype.

A *case* is one op at one shape and dtype: an input builder, the flaggems call (what a user writes:
``torch.ops.flaggems.*`` or a torch op under ``flaggems.use_gems``), the torch baseline (what a torch user
would otherwise write) and, where it applies, the direct implementation call (no dispatch) and FlagGems'
``flag_gems`` as a peer. Providers (``@provider``) turn a :class:`Ctx` (device, quick, dtypes) into cases.

Timing
  CPU: wall clock (``time.perf_counter``). The sides of a case (flaggems, direct kernel, torch, peer) are
  timed in *interleaved rounds* so background load on a shared machine hits all of them alike; a sample is a
  batch of calls lasting >= ~200 µs (so µs-scale ops are measurable), the result is the median over samples
  (at least ``min_reps``, until the case's time budget is spent), and the spread is reported as the
  inter-quartile range in % of the median.
  GPU: ``triton.testing.do_bench`` (median, with its L2 flush); ops faster than 50 µs are re-timed with
  ``do_bench_cudagraph`` (a CUDA graph removes the host launch cost from a device-time measurement).
  Host overhead rows are timed with the wall-clock timer on every device (back-to-back calls, one sync per
  sample), which is host-bound for tiny tensors.
  Inputs rotate over several copies when one set is smaller than twice the last-level cache, so a row does
  not measure a cache-resident replay.
Implementation kinds
  ``--impl cpp`` or ``triton`` (default: the vendor's preferred kind that the case has). Triton rows are not
  timed under the Triton interpreter (cpu vendor): they are listed as skipped with the reason. C++ rows run
  only on CPU tensors.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

import flaggems
from flaggems import registry

# ---------------------------------------------------------------------------------------------------- cases


@dataclass
class Case:
    op: str                                   # "fp8_gemm", "_grouped_mm", "add.Tensor", ...
    kind: str                                 # deepseek | moe | elementwise | reduction | overhead
    shape: str
    dtype: str
    impls: Tuple[str, ...]                    # implementation kinds behind `flaggems` ("cpp", "triton", "fallback")
    setup: Callable[[], dict]                 # one input set on the vendor's device
    flaggems: Callable[[dict], Any]           # the user-facing flaggems call
    torch: Optional[Callable[[dict], Any]] = None
    baseline: str = "torch native"            # what the torch side is
    measures: str = ""                        # one sentence: what this row measures
    kernel: Optional[Callable[[dict], Any]] = None   # direct implementation call (no custom-op / registry dispatch)
    peer: Optional[Callable[[dict], Any]] = None     # the same computation through flag_gems
    extra: Dict[str, Callable[[dict], Any]] = field(default_factory=dict)  # more reference sides -> <name>_ms
    aten: Optional[Sequence[str]] = None      # ATen names patched (use_gems include=...) around the flaggems call
    flops: float = 0.0
    bytes: float = 0.0                        # compulsory traffic (inputs read once + outputs written)
    compute: str = "fp32"                     # the matmul ceiling that applies ("fp32", "bf16", "fp16", "fp8")
    memory: bool = False                      # measure peak memory of both sides
    host: bool = False                        # host-overhead row: wall-clock timer on every device
    rotate: bool = True
    meta: Dict[str, Any] = field(default_factory=dict)   # model / phase / tokens / ...
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.op}|{self.shape}|{self.dtype}"


@dataclass
class Ctx:
    device: str                     # torch device type of the vendor ("cpu", "cuda", ...)
    quick: bool
    dtypes: Optional[Tuple[str, ...]] = None   # --dtype filter (None: each case's defaults)
    impl: Optional[str] = None                 # --impl
    models: Optional[Tuple[str, ...]] = None   # --models (DeepSeek-V4 variants: flash, pro)

    def want(self, dtype: str, default: bool = True) -> bool:
        """Whether a case of this dtype runs: in --dtype when given, else when it is a default dtype."""
        if self.dtypes is None:
            return default
        d = dtype.lower()
        return any(d == w or d.startswith(w) for w in self.dtypes)


_PROVIDERS: List[Tuple[Tuple[str, ...], Callable[[Ctx], List[Case]]]] = []


def provider(*ops: str):
    """Register a function ``Ctx -> [Case]`` producing cases of the named ops (for --ops selection)."""
    def deco(fn):
        _PROVIDERS.append((tuple(ops), fn))
        return fn
    return deco


def _load_providers() -> None:
    from . import cases_aten, cases_deepseek, cases_moe  # noqa: F401  (register providers)


def _matches(case: Case, sel: Optional[Sequence[str]]) -> bool:
    if not sel:
        return True
    names = {case.op, case.op.split(".")[0], case.kind, case.op.replace("flaggems::", "")}
    return any(s in names for s in sel)


def all_cases(ctx: Ctx, ops: Optional[Sequence[str]] = None) -> List[Case]:
    _load_providers()
    out: List[Case] = []
    for _names, fn in _PROVIDERS:          # building cases allocates nothing (setup is lazy)
        out += [c for c in fn(ctx) if _matches(c, ops)]
    return out


# ---------------------------------------------------------------------------------------------------- device


def device_type() -> str:
    return flaggems.vendor().device_type


def sync_fn(dev: str) -> Callable[[], None]:
    mod = getattr(torch, dev, None) if dev != "cpu" else None
    if mod is not None and hasattr(mod, "synchronize"):
        return mod.synchronize
    return lambda: None


def device_info(dev: str) -> Dict[str, Any]:
    info: Dict[str, Any] = {"type": dev, "vendor": flaggems.vendor().name, "threads": torch.get_num_threads()}
    if dev == "cpu":
        model, cores = platform.processor() or platform.machine(), os.cpu_count()
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                k, _, v = line.partition(":")
                if k.strip() == "Model name":
                    model = v.strip()
                elif k.strip() == "CPU(s)":
                    cores = int(v.strip())
                elif k.strip() == "L3 cache":
                    info["l3"] = v.strip()
        except Exception:
            pass
        info.update(name=model, cores=cores, torch_isa=torch.backends.cpu.get_cpu_capability())
        try:
            from flaggems.cpp import lib
            info["cpp_isa"] = lib().isa()
        except Exception as e:  # noqa: BLE001
            info["cpp_isa"] = f"unavailable ({type(e).__name__})"
    else:
        mod = getattr(torch, dev)
        try:
            info["name"] = mod.get_device_name()
            props = mod.get_device_properties(mod.current_device())
            info["memory_gib"] = round(props.total_memory / 2**30, 1)
            info["sms"] = getattr(props, "multi_processor_count", None)
        except Exception:
            info["name"] = dev
    return info


def versions() -> Dict[str, Any]:
    import triton

    v = {"flaggems": flaggems.__version__, "torch": torch.__version__, "triton": triton.__version__,
         "python": platform.python_version(), "flag_gems": None}
    fg = peer_module()
    if fg is not None:
        v["flag_gems"] = getattr(fg, "__version__", "unknown")
    try:
        v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  timeout=5, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except Exception:
        v["git"] = None
    return v


_PEER: Any = "unset"


def peer_module():
    """FlagGems' ``flag_gems`` package when importable on this device (its kernels need a GPU)."""
    global _PEER
    if _PEER == "unset":
        _PEER = None
        if device_type() != "cpu":
            try:
                import flag_gems  # type: ignore
                _PEER = flag_gems
            except Exception:
                _PEER = None
    return _PEER


def last_level_cache_bytes(dev: str) -> int:
    if dev == "cpu":
        try:
            for idx in range(8):
                p = f"/sys/devices/system/cpu/cpu0/cache/index{idx}"
                if not os.path.exists(p):
                    break
                lvl = int(open(f"{p}/level").read())
                if lvl == 3:
                    s = open(f"{p}/size").read().strip()
                    return int(s[:-1]) * (1024 if s.endswith("K") else 1 << 20) if s[-1] in "KM" else int(s)
        except Exception:
            pass
        return 32 << 20
    try:
        mod = getattr(torch, dev)
        return int(getattr(mod.get_device_properties(mod.current_device()), "L2_cache_size", 50 << 20))
    except Exception:
        return 50 << 20


# ---------------------------------------------------------------------------------------------------- timers


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


# ---------------------------------------------------------------------------------------------------- contention


class CpuLoad:
    """CPU time used by everything but this process (other tenants, CI, the hypervisor's steal) over an
    interval, in cores: from /proc/stat (busy + steal jiffies) minus /proc/self/stat (our threads). None where
    /proc is unavailable."""

    def __init__(self):
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = sum(v[:8]) - v[3] - v[4]           # user nice system (idle iowait) irq softirq steal
            with open("/proc/self/stat") as f:
                fs = f.read().rsplit(")", 1)[1].split()
            return busy, int(fs[11]) + int(fs[12]), time.perf_counter()
        except Exception:
            return None

    def start(self):
        self._t0 = self._read()

    def foreign_cores(self) -> Optional[float]:
        t1 = self._read()
        if t1 is None or self._t0 is None or t1[2] - self._t0[2] < 0.05:
            return None
        other = (t1[0] - self._t0[0]) - (t1[1] - self._t0[1])
        return max(0.0, other / self._hz / (t1[2] - self._t0[2]))


RETRIES_DEFAULT = 2
CONTENDED = 0.25     # foreign cores above which a CPU row is re-timed (up to RETRIES times) and flagged


# ---------------------------------------------------------------------------------------------------- ceilings


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


# ---------------------------------------------------------------------------------------------------- running


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


_FLUSH: Dict[str, torch.Tensor] = {}


def _flush_buffer(dev: str, llc: int) -> torch.Tensor:
    if dev not in _FLUSH:
        _FLUSH[dev] = torch.zeros(max(2 * llc, 8 << 20) // 4, dtype=torch.int32, device=dev)
    return _FLUSH[dev]


def choose_impl(case: Case, ctx: Ctx) -> Tuple[Optional[str], Optional[str]]:
    """(implementation kind to time, None) or (None, reason to skip)."""
    v = flaggems.vendor()
    if "fallback" in case.impls:
        return "fallback", None
    if ctx.impl is not None:
        if ctx.impl not in case.impls:
            return None, f"no {ctx.impl} implementation (has: {', '.join(case.impls)})"
        kind = ctx.impl
    else:
        kind = next((k for k in v.prefer if k in case.impls), None)
        if kind is None:
            return None, "no implementation for this vendor"
    if kind == "triton" and v.interpret:
        return None, ("Triton runs through the interpreter on this vendor (timings meaningless for speed); "
                      "run on a GPU vendor")
    if kind == "cpp" and ctx.device != "cpu":
        return None, "C++ kernels serve CPU tensors only"
    return kind, None


def _direct_impl(case: Case, kind: str) -> Optional[Callable[[dict], Any]]:
    """The implementation of a flaggems:: custom op called directly (no custom-op / registry dispatch)."""
    q = case.meta.get("custom_op")
    if q is None or kind not in registry.KINDS:
        return None
    entry = registry.entries().get(q)
    vname = flaggems.vendor().name
    impl = next((i for i in (entry.impls if entry else ()) if i.kind == kind and i.vendor in (None, vname)), None)
    if impl is None:
        return None
    args = case.meta["args"]
    return lambda inp: impl.fn(*args(inp))


def gems_context(case: Case, kind: str) -> Callable[[], Any]:
    """Context factory that routes the flaggems side to implementation `kind`."""
    @contextlib.contextmanager
    def ctx():
        with contextlib.ExitStack() as st:
            if kind in registry.KINDS:
                st.enter_context(flaggems.prefer_impl(kind))
            if case.aten:
                st.enter_context(flaggems.use_gems(include=list(case.aten)))
            yield
    return ctx


def peer_context() -> Callable[[], Any]:
    fg = peer_module()

    @contextlib.contextmanager
    def ctx():
        with fg.use_gems():
            yield
    return ctx


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
    kernel = case.kernel or (_direct_impl(case, kind) if case.host else None)
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
            buf = _flush_buffer(dev, llc)
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
    from . import memory as memmod

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


def replace(case: Case, **kw) -> Case:
    return dataclasses.replace(case, **kw)
