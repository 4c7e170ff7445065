"""Per-op accuracy report for the active vendor ("precision alignment"): ``python -m flaggems validate``.

For each op and dtype: small seeded inputs on the vendor's device; flaggems' result (under ``use_gems`` limited to
that op, with ``record()`` telling whether our kernel actually served the call) and the native kernel's result in
the same dtype are both compared with an fp64 reference computed natively on the host CPU. The verdict uses
:func:`flaggems.testing.tolerance` (per dtype, atol scaled by the reduction length) — the same rule the test
suite uses — and the report gives max abs / max rel error for flaggems and for native side by side.

Status per row: ``pass``; ``FAIL`` (served by flaggems and outside tolerance); ``native`` (flaggems did not serve
it here — the reason is given, e.g. ``vendor lacks fp64``; the native result is still checked); ``error``.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch

from ..api import use_gems
from ..record import record

from . import assert_close, tolerance

DTYPE_NAMES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
_SHORT = {v: k for k, v in DTYPE_NAMES.items()}
FLOATS = (torch.float32, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Case:
    op: str                                   # overload as record() names it: "add.Tensor", "mm.default"
    fn: Callable[..., torch.Tensor]           # fn(*inputs)
    make: Callable[[torch.dtype, torch.Generator], tuple]  # host (CPU) inputs of the dtype
    reduce_len: int = 1                       # terms summed per output element (scales atol)
    dtypes: tuple = FLOATS


def _randn(g, *shape, dtype, scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale + shift).to(dtype)


def _pos(g, *shape, dtype):
    return (torch.rand(*shape, generator=g, dtype=torch.float32) * 4 + 0.25).to(dtype)


R, C, K = 37, 129, 64   # odd sizes so ragged tiles are exercised

CASES: Dict[str, Case] = {c.op.split(".")[0]: c for c in (
    Case("add.Tensor", torch.add, lambda dt, g: (_randn(g, R, C, dtype=dt), _randn(g, C, dtype=dt))),
    Case("sub.Tensor", torch.sub, lambda dt, g: (_randn(g, R, C, dtype=dt), _randn(g, R, 1, dtype=dt))),
    Case("mul.Tensor", torch.mul, lambda dt, g: (_randn(g, R, C, dtype=dt), _randn(g, R, C, dtype=dt))),
    Case("div.Tensor", torch.div, lambda dt, g: (_randn(g, R, C, dtype=dt), _pos(g, R, C, dtype=dt))),
    Case("neg.default", torch.neg, lambda dt, g: (_randn(g, R, C, dtype=dt),)),
    Case("exp.default", torch.exp, lambda dt, g: (_randn(g, R, C, dtype=dt),)),
    Case("rsqrt.default", torch.rsqrt, lambda dt, g: (_pos(g, R, C, dtype=dt),)),
    Case("sigmoid.default", torch.sigmoid, lambda dt, g: (_randn(g, R, C, dtype=dt, scale=3),)),
    Case("silu.default", torch.nn.functional.silu, lambda dt, g: (_randn(g, R, C, dtype=dt, scale=3),)),
    Case("where.self", torch.where, lambda dt, g: (torch.rand(R, C, generator=g) > 0.5, _randn(g, R, C, dtype=dt),
                                                   _randn(g, R, C, dtype=dt))),
    Case("sum.dim_IntList", lambda x: torch.sum(x, dim=-1), lambda dt, g: (_randn(g, R, C, dtype=dt),), reduce_len=C),
    Case("mean.dim", lambda x: torch.mean(x, dim=-1), lambda dt, g: (_randn(g, R, C, dtype=dt),), reduce_len=C),
    Case("_softmax.default", lambda x: torch.softmax(x, dim=-1), lambda dt, g: (_randn(g, R, C, dtype=dt, scale=2),),
         reduce_len=C),
    Case("mm.default", torch.mm, lambda dt, g: (_randn(g, R, K, dtype=dt), _randn(g, K, C, dtype=dt)), reduce_len=K),
)}


@dataclass
class Row:
    op: str
    dtype: str
    status: str
    served_by: str            # "triton" / "cpp" / "native: <reason>"
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    native_max_abs: Optional[float] = None
    native_max_rel: Optional[float] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None
    detail: str = ""


@dataclass
class ValidationReport:
    vendor: dict
    environment: dict
    rows: List[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("pass", "native") for r in self.rows)

    def failures(self) -> List[Row]:
        return [r for r in self.rows if r.status not in ("pass", "native")]

    def served_fraction(self) -> float:
        return sum(r.status in ("pass", "FAIL") for r in self.rows) / max(1, len(self.rows))

    def to_dict(self) -> dict:
        return {"vendor": self.vendor, "environment": self.environment, "ok": self.ok,
                "served_fraction": self.served_fraction(), "rows": [asdict(r) for r in self.rows]}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_markdown(self) -> str:
        v = self.vendor
        caps = ", ".join(k for k, on in v["capabilities"].items() if on) or "none"
        out = [f"# flaggems accuracy report: vendor `{v['name']}` (device {v['device_type']}, key {v['dispatch_key']}, "
               f"hardware-verified plugin: {v['hardware_verified']})", "",
               f"capabilities: {caps}; " + ", ".join(f"{k} {val}" for k, val in self.environment.items()), "",
               "Errors against an fp64 reference on the host CPU; tolerance = flaggems.testing.tolerance(dtype, "
               "reduce_len).", "",
               "| op | dtype | status | served by | max abs | max rel | native max abs | native max rel | rtol | atol |",
               "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        f = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
        for r in self.rows:
            status = r.status if not r.detail else f"{r.status} ({r.detail})"
            out.append(f"| `{r.op}` | {r.dtype} | {status} | {r.served_by} | {f(r.max_abs)} | {f(r.max_rel)} | "
                       f"{f(r.native_max_abs)} | {f(r.native_max_rel)} | {f(r.rtol)} | {f(r.atol)} |")
        n = len(self.rows)
        out += ["", f"{sum(r.status == 'pass' for r in self.rows)}/{n} pass, "
                    f"{sum(r.status == 'native' for r in self.rows)} native, {len(self.failures())} failed; "
                    f"flaggems served {self.served_fraction():.0%} of the cases."]
        return "\n".join(out)


def _errors(actual: torch.Tensor, ref: torch.Tensor, dtype, atol: float):
    a = actual.detach().cpu().to(torch.float64)
    e = ref.detach().cpu().to(dtype).to(torch.float64)  # the best a kernel of this dtype can return
    if a.numel() == 0:
        return 0.0, 0.0
    finite = torch.isfinite(a) & torch.isfinite(e)
    diff = torch.where(finite, (a - e).abs(), torch.where(a == e, 0.0, math.inf))
    rel = diff / e.abs().clamp_min(max(atol, 1e-30))
    return float(diff.max()), float(rel.max())


def _resolve_dtypes(dtypes) -> List[torch.dtype]:
    out = []
    for d in dtypes:
        if isinstance(d, torch.dtype):
            out.append(d)
        elif d in DTYPE_NAMES:
            out.append(DTYPE_NAMES[d])
        else:
            raise ValueError(f"unknown dtype {d!r}; use one of {sorted(DTYPE_NAMES)}")
    return out


def validate(ops: Optional[Iterable[str]] = None, dtypes: Optional[Sequence[Union[str, torch.dtype]]] = None,
             seed: int = 0, cases: Optional[Dict[str, Case]] = None) -> ValidationReport:
    """Run the accuracy check for ``ops`` (default: every case in :data:`CASES`) on the active vendor."""
    import triton

    from .._version import __version__
    from ..vendors import active

    table = dict(CASES if cases is None else cases)
    names = list(table) if ops is None else [o.strip() for o in ops if o.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"no validation case for {unknown}; known: {sorted(table)}")
    want = None if dtypes is None else _resolve_dtypes(dtypes)
    v = active()
    device = v.device_type
    report = ValidationReport(vendor=v.info(), environment={
        "flaggems": __version__, "torch": torch.__version__, "triton": triton.__version__,
        "python": platform.python_version()})
    for name in names:
        case = table[name]
        for dt in (case.dtypes if want is None else [d for d in want if d in case.dtypes or d is torch.float64]):
            report.rows.append(_run_case(name, case, dt, device, seed))
    return report


def _run_case(name: str, case: Case, dt: torch.dtype, device: str, seed: int) -> Row:
    row = Row(op=f"aten::{case.op}", dtype=_SHORT.get(dt, str(dt)), status="error", served_by="-")
    try:
        g = torch.Generator().manual_seed(seed)
        host = case.make(dt, g)
        ref = case.fn(*[t.double() if t.is_floating_point() else t for t in host])  # fp64 on the host CPU
        inputs = [t.to(device) for t in host]
        native = case.fn(*inputs)
        with use_gems(include=[name]):
            with record() as rep:
                ours = case.fn(*inputs)
        try:
            r = rep._find(case.op)
            served, fallback = dict(r["served"]), dict(r["fallback"])
        except KeyError:
            served, fallback = {}, {"op not reached (decomposed differently)": 1}
        tol = tolerance(dt, case.reduce_len)
        row.rtol, row.atol = tol.rtol, tol.atol
        row.max_abs, row.max_rel = _errors(ours, ref, dt, tol.atol)
        row.native_max_abs, row.native_max_rel = _errors(native, ref, dt, tol.atol)
        try:
            assert_close(ours.cpu(), ref, dt, reduce_len=case.reduce_len)
            ok = True
        except AssertionError as e:
            ok, row.detail = False, str(e).strip().split(";")[0]
        if served and not fallback:
            row.served_by = ", ".join(sorted(served))
            row.status = "pass" if ok else "FAIL"
        else:
            row.served_by = "native: " + ", ".join(sorted(fallback)) if fallback else "native"
            row.status = "native" if ok else "FAIL"
            if not ok:
                row.detail = "native kernel outside tolerance: " + row.detail
    except Exception as e:  # a crash is a result of the report, not the end of it
        row.status, row.detail = "error", f"{type(e).__name__}: {e}"[:300]
    return row


def main(args) -> int:
    rep = validate(ops=args.ops.split(",") if args.ops else None,
                   dtypes=args.dtypes.split(",") if args.dtypes else None, seed=args.seed)
    text = rep.to_json() if args.json else rep.to_markdown()
    print(text)
    if args.output:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(args.output)) or ".", exist_ok=True)
        with open(args.output + ".json", "w") as f:
            f.write(rep.to_json())
        with open(args.output + ".md", "w") as f:
            f.write(rep.to_markdown() + "\n")
    return 0 if rep.ok else 1
