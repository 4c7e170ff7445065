"""Capture: run a workload through the interpreter while the host side plans as a GPU vendor would.

While :func:`planning` is active
- the vendor plugin being checked (its tuned configs, capability flags for the target's architecture, deny list,
  overrides, preferred kinds) is the active one, simulated on CPU tensors so the interpreter can run it;
- ``runtime.interpreting()`` answers False, so launchers take their GPU branches (tile sizes, precisions, sort
  paths) instead of the interpreter-friendly ones;
- ``autotune.choose`` does not time anything: the first candidate runs, every other candidate is *launched in
  record-only mode* (its launches are described and skipped), so each config the tuner could pick is captured.
Every launch of an ``@triton.jit`` kernel is described as the GPU would specialise it (:mod:`.spec`) and
de-duplicated.

Must run in a process where ``import flaggems`` chose the cpu vendor (Triton in interpret mode).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import signal
import threading
import time
import traceback
from collections import Counter
from typing import Dict, Iterable, List, Optional

from . import spec as _spec
from .targets import Target, planning_capabilities

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Recorder:
    """Collects specializations from interpreter launches (one per capture)."""

    def __init__(self):
        self.specs: Dict[str, _spec.Specialization] = {}
        self.launches = 0
        # "kernel: reason" -> launches that could not be described, or candidates whose planning raised
        self.unrecorded: Counter = Counter()
        self.origin: Optional[str] = None        # current workload item (test id, validate case)
        self.plan_plugin = None                  # the planning vendor; launches under another one are not its
        self._tls = threading.local()
        self._def_lines: Dict[object, tuple] = {}

    # -- record-only mode (autotune candidates that are not run)
    @contextlib.contextmanager
    def record_only(self):
        depth = getattr(self._tls, "record_only", 0)
        self._tls.record_only = depth + 1
        try:
            yield
        finally:
            self._tls.record_only = depth

    @property
    def recording_only(self) -> bool:
        return getattr(self._tls, "record_only", 0) > 0

    def _where(self, fn):
        hit = self._def_lines.get(fn)
        if hit is None:
            path = inspect.getsourcefile(fn) or "?"
            try:
                lines, start = inspect.getsourcelines(fn)
                line = start + next(i for i, text in enumerate(lines) if text.lstrip().startswith("def "))
            except (OSError, StopIteration):
                line = fn.__code__.co_firstlineno
            rel = os.path.relpath(path, _PACKAGE_PARENT) if path.startswith(_PACKAGE_PARENT) else path
            hit = self._def_lines[fn] = (rel, line)
        return hit

    def describe(self, jitfn, args, kwargs) -> _spec.Specialization:
        fn = jitfn.fn
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        kernel_kwargs = {k: v for k, v in kwargs.items() if k in sig.parameters}
        options = {k: v for k, v in kwargs.items() if k not in sig.parameters and k in ("num_warps", "num_stages")}
        bound = sig.bind(*args, **kernel_kwargs)
        bound.apply_defaults()
        jit_kwargs = getattr(jitfn, "kwargs", {}) or {}
        dns = {names[i] if isinstance(i, int) else i for i in (jit_kwargs.get("do_not_specialize") or ())}
        dnsa = {names[i] if isinstance(i, int) else i
                for i in (jit_kwargs.get("do_not_specialize_on_alignment") or ())}
        signature, constexprs, hints = {}, {}, {}
        for name, param in sig.parameters.items():
            value = bound.arguments[name]
            if _spec.is_constexpr_param(param):
                signature[name] = "constexpr"
                constexprs[name] = _spec.encode_constexpr(value)
                continue
            ty, hint, const = _spec.describe_arg(value, specialize=name not in dns, align=name not in dnsa)
            signature[name] = ty
            if ty == "constexpr":
                constexprs[name] = const
            elif hint:
                hints[name] = hint
        path, line = self._where(fn)
        return _spec.Specialization(kernel=f"{fn.__module__}:{fn.__qualname__}", file=path, line=line, params=names,
                                    signature=signature, constexprs=constexprs, hints=hints, options=options)

    def record(self, jitfn, args, kwargs) -> None:
        self.launches += 1
        try:
            s = self.describe(jitfn, args, kwargs)
        except (TypeError, _spec.UnencodableConstexpr) as e:
            self.unrecorded[f"{getattr(jitfn.fn, '__qualname__', jitfn)}: {e}"] += 1
            return
        have = self.specs.setdefault(s.key, s)
        have.count += 1
        if not self.recording_only:
            have.candidate_only = False
        ops = _serving_ops()
        if self.plan_plugin is not None and _active_plugin() is not self.plan_plugin:
            # a test swapped the vendor (registry.override_vendor with other flags): not this vendor's routing
            ops = []
        if ops:
            for op in ops:
                if op not in have.routed_ops:
                    have.routed_ops.append(op)
        else:
            have.direct = True
        if self.origin and len(have.origins) < 3 and self.origin not in have.origins:
            have.origins.append(self.origin)


def _serving_ops() -> List[str]:
    """The flaggems ops whose implementation is running on this thread (the registry's re-entrancy set)."""
    from .. import registry

    return registry.serving()


def _active_plugin():
    from ..vendors import active

    try:
        return active()
    except Exception:
        return None


def _interpreted_function_class():
    import triton.runtime.interpreter as interp

    cls = getattr(interp, "InterpretedFunction", None)
    if cls is None or not hasattr(cls, "run"):
        raise RuntimeError("flaggems aot: triton.runtime.interpreter.InterpretedFunction.run not found in this "
                           "Triton; capture needs it to see kernel launches")
    return cls


@contextlib.contextmanager
def hooked(recorder: Recorder):
    """Route every interpreter launch through ``recorder`` (skipping it in record-only mode)."""
    cls = _interpreted_function_class()
    orig = cls.run

    def run(self, *args, grid, warmup, **kwargs):
        if not warmup:
            recorder.record(self, args, kwargs)
            if recorder.recording_only:
                return None
        return orig(self, *args, grid=grid, warmup=warmup, **kwargs)

    cls.run = run
    try:
        yield recorder
    finally:
        cls.run = orig


def planning_plugin(plugin, target: Target):
    """``plugin`` as it would plan on a ``target`` device, simulated on CPU tensors through the interpreter
    (its tuned configs are looked up for that target: ``kernel.dtype@cuda:100`` …)."""
    return dataclasses.replace(plugin, device_type="cpu", dispatch_key="CPU", interpret=True, extension_modules=(),
                               detect=lambda: True, capabilities=planning_capabilities(plugin, target),
                               triton_target=target.name)


@contextlib.contextmanager
def planning(plugin, target: Target, recorder: Recorder):
    """Plan as ``plugin`` on ``target`` (see the module docstring) and record every launch into ``recorder``."""
    from .. import registry, runtime
    from ..runtime import autotune
    from ..runtime.interpreter import interpreter_requested

    if not interpreter_requested():
        raise RuntimeError("flaggems aot capture needs the Triton interpreter (the cpu vendor): run it without "
                           "FLAGGEMS_VENDOR, or with FLAGGEMS_VENDOR=cpu")
    orig_choose = autotune.choose

    def choose(kernel, key, configs, run, **kw):
        # every candidate is a config the tuner may pick on the device: record them all, run the first
        for cfg in list(configs)[1:]:
            with recorder.record_only():
                try:
                    run(cfg)
                except Exception as e:  # host-side planning for that candidate failed: report, keep going
                    recorder.unrecorded[f"{kernel} candidate {cfg}: {type(e).__name__}: {e}"[:300]] += 1
        return configs[0]

    autotune.choose = choose
    plan = planning_plugin(plugin, target)
    recorder.plan_plugin = plan
    try:
        with hooked(recorder), runtime.planning_as_device(), registry.override_vendor(plan):
            yield recorder
    finally:
        recorder.plan_plugin = None
        autotune.choose = orig_choose


# ----------------------------------------------------------------------------------------------------------
# workloads

WORKLOADS = ("tests", "validate", "demo")
DEFAULT_TEST_PATHS = ("tests/ops", "tests/deepseek", "tests/compat")


@dataclasses.dataclass
class WorkloadResult:
    name: str
    seconds: float
    items: int = 0
    errors: List[str] = dataclasses.field(default_factory=list)   # first lines of items that failed to run
    note: str = ""


def _run_validate(recorder: Recorder, ops: Optional[List[str]]) -> WorkloadResult:
    from ..testing import validate

    t0 = time.perf_counter()
    names = [o for o in (ops or validate.CASES) if o in validate.CASES]
    res = WorkloadResult("validate", 0.0)
    for name in names:
        recorder.origin = f"validate:{name}"
        rep = validate.validate(ops=[name], dtypes=["fp32", "bf16", "fp16", "fp64"])
        res.items += len(rep.rows)
        res.errors += [f"validate {r.op} {r.dtype}: {r.detail}" for r in rep.rows if r.status == "error"]
    res.seconds = time.perf_counter() - t0
    return res


def _run_demo(recorder: Recorder) -> WorkloadResult:
    from .. import coverage

    t0 = time.perf_counter()
    res = WorkloadResult("demo", 0.0, items=1)
    recorder.origin = "demo:deepseek-v4-tiny"
    try:
        coverage.run(model="deepseek-v4-tiny", dtype="fp32", prompt_len=8, steps=2)
    except Exception as e:  # the demo is a workload here: a failure is reported, the capture keeps what it saw
        res.errors.append(f"demo: {type(e).__name__}: {e}"[:300])
    res.seconds = time.perf_counter() - t0
    return res


class CaptureBudgetExceeded(Exception):
    """Raised inside a test that used up its CPU budget (``--test-budget``)."""


class _PytestOrigin:
    """pytest plugin: name the test that is running, count outcomes, optionally thin the parametrizations."""

    def __init__(self, recorder: Recorder, res: WorkloadResult, per_test: int = 0, budget: float = 0.0):
        self.recorder, self.res, self.per_test, self.budget = recorder, res, per_test, budget
        self.deselected = 0
        self.over_budget = 0

    def pytest_runtest_call(self, item):
        # a CPU-time budget per test (SIGPROF counts this process's CPU, so a loaded machine does not trip it):
        # GPU-sized tiles can make one interpreted test run for many minutes; every launch it reached is
        # already recorded when the budget stops it
        if self.budget > 0:
            signal.signal(signal.SIGPROF, self._over_budget)
            signal.setitimer(signal.ITIMER_PROF, self.budget)

    def pytest_runtest_teardown(self, item):
        if self.budget > 0:
            signal.setitimer(signal.ITIMER_PROF, 0)

    def _over_budget(self, signum, frame):
        signal.setitimer(signal.ITIMER_PROF, 0)
        self.over_budget += 1
        raise CaptureBudgetExceeded(f"aot capture: test stopped after {self.budget:.0f} CPU seconds")

    def pytest_collection_modifyitems(self, session, config, items):
        # keep at most per_test parametrizations of each test function, evenly spread over its list (the
        # parameter lists vary dtype/shape/flags: spreading keeps their variety at a fraction of the cost)
        if self.per_test <= 0:
            return
        groups = {}
        for it in items:
            groups.setdefault((str(it.path), getattr(it, "originalname", it.name)), []).append(it)
        keep = set()
        for group in groups.values():
            n = len(group)
            step = max(1, n / self.per_test)
            keep |= {id(group[int(i * step)]) for i in range(min(n, self.per_test))}
        dropped = [it for it in items if id(it) not in keep]
        items[:] = [it for it in items if id(it) in keep]
        self.deselected = len(dropped)
        if dropped:
            config.hook.pytest_deselected(items=dropped)

    def pytest_runtest_setup(self, item):
        self.recorder.origin = item.nodeid

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self.res.items += 1
            if report.failed and len(self.res.errors) < 200:
                msg = str(report.longrepr).strip().splitlines()
                self.res.errors.append(f"{report.nodeid}: {msg[-1] if msg else 'failed'}"[:300])


def _run_tests(recorder: Recorder, paths: Iterable[str], root: str, extra: Iterable[str] = (),
               per_test: int = 0, budget: float = 0.0) -> WorkloadResult:
    import pytest

    t0 = time.perf_counter()
    res = WorkloadResult("tests", 0.0)
    args = ["-q", "-p", "no:cacheprovider", "--rootdir", root, *extra,
            *[p if os.path.isabs(p) else os.path.join(root, p) for p in paths]]
    cwd = os.getcwd()
    try:
        os.chdir(root)
        plugin = _PytestOrigin(recorder, res, per_test, budget)
        pytest.main(args, plugins=[plugin])
    finally:
        os.chdir(cwd)
    notes = []
    if plugin.deselected:
        notes.append(f"{plugin.deselected} test cases deselected (at most {per_test} per test function)")
    if plugin.over_budget:
        notes.append(f"{plugin.over_budget} tests stopped at the {budget:.0f} CPU-second budget")
    res.note = "; ".join(notes)
    res.seconds = time.perf_counter() - t0
    return res


def capture(plugin, target: Target, workloads: Iterable[str], *, ops: Optional[List[str]] = None,
            test_paths: Iterable[str] = DEFAULT_TEST_PATHS, test_args: Iterable[str] = (), test_sample: int = 0,
            test_budget: float = 0.0,
            root: Optional[str] = None, log=print):
    """Run ``workloads`` planning as ``plugin`` on ``target``; returns (specializations, meta)."""
    import triton
    import torch

    recorder = Recorder()
    results: List[WorkloadResult] = []
    root = root or _PACKAGE_PARENT
    t0 = time.perf_counter()
    with planning(plugin, target, recorder):
        for w in workloads:
            if w not in WORKLOADS:
                raise ValueError(f"unknown workload {w!r}; known: {WORKLOADS}")
            log(f"[aot] capture {plugin.name} for {target.name}: workload {w} ...")
            try:
                if w == "validate":
                    r = _run_validate(recorder, ops)
                elif w == "demo":
                    r = _run_demo(recorder)
                else:
                    r = _run_tests(recorder, test_paths, root, test_args, test_sample, test_budget)
            except Exception as e:
                r = WorkloadResult(w, 0.0, errors=[f"{type(e).__name__}: {e}"[:300]])
                log(traceback.format_exc())
            results.append(r)
            log(f"[aot]   {w}: {r.items} items in {r.seconds:.1f}s, {len(r.errors)} did not run cleanly, "
                f"{len(recorder.specs)} specializations so far")
    specs = sorted(recorder.specs.values(), key=lambda s: (s.kernel, s.key))
    meta = {
        "vendor": plugin.name, "target": target.name, "workloads": [dataclasses.asdict(r) for r in results],
        "capabilities": planning_capabilities(plugin, target).as_dict(), "launches": recorder.launches,
        "unrecorded": dict(recorder.unrecorded), "seconds": time.perf_counter() - t0,
        "routing_known": True,
        "triton": triton.__version__, "torch": torch.__version__,
    }
    return specs, meta
