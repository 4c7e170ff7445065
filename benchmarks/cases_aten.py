"""ATen elementwise / reduction ops (flaggems' Triton kernels under ``use_gems``) and host-overhead rows.

Device rows (kind elementwise / reduction): the torch op under ``flaggems.use_gems(include=[op])`` vs the
same op with flaggems disabled, at generic shapes. Their implementation is Triton: on the cpu vendor they are
skipped (the interpreter is not a speed path).

Host-overhead rows (kind overhead), on every device, timed as back-to-back calls on 16 elements:
* ``fallback``: the op patched by flaggems but served by torch's native kernel (complex64 is outside every
  flaggems kernel's dtype list), vs the same call with flaggems disabled: the cost of the override layer
  (Python override, resolution-cache lookup, boxed call of the captured native kernel).
* ``triton`` (GPU vendors): the op served by flaggems' Triton kernel (fp32), vs torch native: the host cost of
  launching our kernel (FlagGems' weak spot, ~75 µs per elementwise call in its issue #4558).
"""
from __future__ import annotations

from typing import List

import torch

from . import shapes
from .cases import Case, Ctx, provider
from .device import peer_module

_DT = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

ELEMENTWISE = {
    "add.Tensor": (2, lambda i: torch.add(i["a"], i["b"])),
    "mul.Tensor": (2, lambda i: torch.mul(i["a"], i["b"])),
    "silu.default": (1, lambda i: torch.nn.functional.silu(i["a"])),
    "exp.default": (1, lambda i: torch.exp(i["a"])),
}
REDUCTION = {
    "sum.dim_IntList": lambda i: i["a"].sum(-1),
    "mean.dim": lambda i: i["a"].mean(-1),
    "amax.default": lambda i: i["a"].amax(-1),
    "_softmax.default": lambda i: torch.softmax(i["a"], -1),
}


def _kinds(op: str):
    from flaggems import registry

    e = registry.entries().get(f"aten::{op}")
    return tuple(dict.fromkeys(i.kind for i in e.impls)) if e is not None else ()


def _dtypes(ctx: Ctx):
    return [(n, d) for n, d in _DT.items() if ctx.want(n, default=n in (("bf16",) if ctx.quick else ("bf16", "fp32")))]


@provider("add", "mul", "silu", "exp", "elementwise")
def elementwise(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    shp = shapes.QUICK_ELEMENTWISE if ctx.quick else shapes.ELEMENTWISE
    for op, (nin, fn) in ELEMENTWISE.items():
        for dname, dt in _dtypes(ctx):
            for s in shp:
                numel = s[0] * s[1]
                es = torch.empty((), dtype=dt).element_size()

                def setup(s=s, dt=dt):
                    return {"a": torch.randn(s, device=dev, dtype=dt), "b": torch.randn(s, device=dev, dtype=dt)}

                out.append(Case(op=op, kind="elementwise", impls=_kinds(op), shape="x".join(map(str, s)), dtype=dname,
                                setup=setup, flaggems=fn, torch=fn, peer=fn if peer_module() else None, aten=[op],
                                measures="device time of the op (flaggems Triton kernel vs torch native)",
                                bytes=numel * es * (nin + 1)))
    return out


@provider("sum", "mean", "amax", "_softmax", "reduction")
def reduction(ctx: Ctx) -> List[Case]:
    out = []
    dev = ctx.device
    shp = shapes.QUICK_REDUCTION if ctx.quick else shapes.REDUCTION
    for op, fn in REDUCTION.items():
        for dname, dt in _dtypes(ctx):
            for s in shp:
                es = torch.empty((), dtype=dt).element_size()
                out_elems = s[0] * s[1] if op.startswith("_softmax") else s[0]

                def setup(s=s, dt=dt):
                    return {"a": torch.randn(s, device=dev, dtype=dt)}

                out.append(Case(op=op, kind="reduction", impls=_kinds(op), shape="x".join(map(str, s)) + " dim=-1",
                                dtype=dname, setup=setup, flaggems=fn, torch=fn, peer=fn if peer_module() else None,
                                aten=[op], measures="device time of the op (flaggems Triton kernel vs torch native)",
                                bytes=(s[0] * s[1] + out_elems) * es))
    return out


@provider("overhead")
def overhead(ctx: Ctx) -> List[Case]:
    dev = ctx.device
    out = []
    tiny = {
        "add.Tensor": lambda i: torch.add(i["a"], i["b"]),
        "exp.default": lambda i: torch.exp(i["a"]),
        "sum.dim_IntList": lambda i: i["a"].sum(-1),
    }
    for op, fn in tiny.items():
        def setup_c():
            return {"a": torch.randn(16, device=dev, dtype=torch.complex64),
                    "b": torch.randn(16, device=dev, dtype=torch.complex64)}

        out.append(Case(op=op, kind="overhead", impls=("fallback",), shape="16 elements", dtype="complex64",
                        setup=setup_c, flaggems=fn, torch=fn, aten=[op], host=True, rotate=False,
                        baseline="the same call with flaggems disabled",
                        measures="host µs per call: op patched by flaggems but served natively (dtype outside "
                                 "its kernels) vs flaggems disabled; overhead_us = the difference"))

        def setup_f():
            return {"a": torch.randn(16, device=dev), "b": torch.randn(16, device=dev)}

        out.append(Case(op=op, kind="overhead", impls=_kinds(op), shape="16 elements", dtype="fp32",
                        setup=setup_f, flaggems=fn, torch=fn, peer=fn if peer_module() else None, aten=[op],
                        host=True, rotate=False, baseline="torch native",
                        measures="host µs per call: op served by the flaggems kernel vs torch native; "
                                 "overhead_us = the difference"))
    return out
