"""PyTorch's OpInfo database as a source of samples: ``sample_inputs``, ``reference_inputs`` and
``error_inputs`` of every OpInfo that reaches a registered overload.

An OpInfo calls the Python API (``torch.softmax``), so the overloads it reaches are found at run time: the
sample runs under ``use_gems(include=<the matched families>)`` and counts only if ``record()`` shows one of them
served by flaggems. Needs ``torch.testing._internal`` (which imports ``expecttest``); without it the sweep
says so and runs its own categories only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import torch

from ...registry import entries
from .calls import Call

# OpInfo name -> registered base it reaches when the names differ
ALIASES = {"softmax": "_softmax", "log_softmax": "_log_softmax", "nn.functional.pad": "constant_pad_nd",
           "nn.functional.scaled_dot_product_attention": "_scaled_dot_product_flash_attention_for_cpu",
           "to": "_to_copy", "index_put": "index_put", "__getitem__": "index"}
SKIP_PREFIXES = ("masked.", "sparse.", "_refs.", "torch._scaled_mm")
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.bool)
MAX_NUMEL = 1 << 14     # interpreter cost grows with elements: larger samples add time, not coverage


def available() -> Optional[str]:
    """None if the OpInfo database can be imported, else why not."""
    try:
        _db()
    except Exception as e:   # noqa: BLE001 - reported to the user as the reason the source is off
        return f"{type(e).__name__}: {e}"
    return None


@functools.lru_cache(maxsize=1)
def _db():
    from torch.testing._internal.common_methods_invocations import op_db

    return op_db


def _find(name: str, variant: str):
    for o in _db():
        if o.name == name and o.variant_test_name == variant:
            return o
    raise LookupError(f"no OpInfo {name!r} variant {variant!r}")


def families(opinfo, registered_bases) -> List[str]:
    """Registered bases an OpInfo reaches (its name, aten_name, an alias; and the in-place twin)."""
    last = opinfo.name.split(".")[-1]
    cands = {opinfo.name, last, getattr(opinfo, "aten_name", None) or last, ALIASES.get(opinfo.name, "")}
    hits = {c for c in cands if c in registered_bases}
    hits |= {h + "_" for h in hits if h + "_" in registered_bases}
    return sorted(hits)


def _numel(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (list, tuple)):
        return sum(_numel(y) for y in x)
    if isinstance(x, dict):
        return sum(_numel(y) for y in x.values())
    return 0


@functools.lru_cache(maxsize=8)
def _cached_inputs(name: str, variant: str, kind: str, dtype):
    return _inputs(_find(name, variant), kind, dtype)


def _fresh(x):
    """A copy with the same values and strides (each side of a comparison gets its own tensors)."""
    if isinstance(x, torch.Tensor):
        if x.is_contiguous() or 0 in x.stride():
            return x.clone()
        return torch.empty_strided(x.size(), x.stride(), dtype=x.dtype).copy_(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_fresh(y) for y in x)
    if isinstance(x, dict):
        return {k: _fresh(v) for k, v in x.items()}
    return x


def _inputs(o, kind: str, dtype):
    torch.manual_seed(0)
    if kind == "opinfo_error":
        return [e.sample_input for e in o.error_inputs("cpu")]
    if kind == "opinfo_reference":
        return list(o.reference_inputs("cpu", dtype))
    return list(o.sample_inputs("cpu", dtype))


def opinfo_input(name: str, variant: str, dtype, kind: str, index: int, inplace: bool = False):
    """(fn, args, kwargs) of one OpInfo sample, regenerated deterministically (seed 0): the repro helper."""
    o = _find(name, variant)
    s = _cached_inputs(name, variant, kind, dtype)[index]
    fn = o.inplace_variant if inplace else o.op
    return fn, _fresh([s.input] + list(s.args)), _fresh(dict(s.kwargs))


@dataclass(frozen=True)
class OpInfoCall(Call):
    name: str = ""
    variant: str = ""
    dtype: str = "float32"
    kind: str = "opinfo"
    index: int = 0
    inplace: bool = False

    def source(self) -> str:
        return ("from flaggems.testing.adversarial.opinfo import opinfo_input\n"
                f"fn, args, kwargs = opinfo_input({self.name!r}, {self.variant!r}, torch.{self.dtype}, "
                f"{self.kind!r}, {self.index}, inplace={self.inplace})\nfn(*args, **kwargs)")

    def evaluate(self):
        return opinfo_input(self.name, self.variant, getattr(torch, self.dtype), self.kind, self.index,
                            self.inplace)

    def sort_dim(self) -> int:
        fn, args, kwargs = self.evaluate()
        if "dim" in kwargs:
            return int(kwargs["dim"])
        return int(args[1]) if len(args) > 1 and isinstance(args[1], int) else -1


def opinfo_samples(ops: Sequence[str], dtypes: Optional[Iterable] = None):
    """Samples for the overloads ``ops`` (their families): one per OpInfo input, variant and dtype."""
    from .sweep import Sample, dtype_name

    if available() is not None:
        return []
    wanted = {q.split("::")[1].split(".")[0] for q in ops}
    bases = {e.base for q, e in entries().items() if e.namespace == "aten" and e.impls}
    out = []
    for o in _db():
        if o.name.startswith(SKIP_PREFIXES):
            continue
        fams = [f for f in families(o, bases) if f in wanted]
        if not fams:
            continue
        include = sorted(q for q, e in entries().items() if e.namespace == "aten" and e.impls and e.base in fams)
        sort_like = any(f in ("sort", "topk") for f in fams)
        supported = o.supported_dtypes("cpu")
        for kind in ("opinfo", "opinfo_reference", "opinfo_error"):
            dts = [torch.float32] if kind == "opinfo_error" else \
                [d for d in (dtypes or DTYPES) if d in supported]
            if kind == "opinfo_reference" and o.reference_inputs_func is None:
                continue
            for dt in dts:
                try:
                    inputs = _inputs(o, kind, dt)
                except Exception:   # noqa: BLE001 - an OpInfo that cannot make inputs here adds nothing
                    continue
                for i, s in enumerate(inputs):
                    if _numel([s.input, s.args, s.kwargs]) > MAX_NUMEL:
                        continue
                    variants = [False] + ([True] if o.inplace_variant is not None and kind == "opinfo" else [])
                    for inplace in variants:
                        call = OpInfoCall(include[0], (), dim_of="opinfo" if sort_like else None,
                                          reduce_len=_reduce_bound(s),
                                          name=o.name, variant=o.variant_test_name, dtype=dtype_name(dt),
                                          kind=kind, index=i, inplace=inplace)
                        label = f"{o.name}{'.' + o.variant_test_name if o.variant_test_name else ''}" \
                                f"{' (in-place)' if inplace else ''} #{i}: {_summary(s)}"
                        out.append(Sample(include[0], kind, dtype_name(dt), label, call, include=tuple(include)))
    return out


def _reduce_bound(s) -> int:
    """An upper bound of the terms summed per output element: the largest operand's size (OpInfo does not
    say; only the absolute tolerance grows with it, as sqrt)."""
    sizes = [x.numel() for x in [s.input, *s.args, *s.kwargs.values()] if isinstance(x, torch.Tensor)]
    return max([1] + sizes)


def _summary(s) -> str:
    def d(x):
        if isinstance(x, torch.Tensor):
            nc = "" if x.is_contiguous() else " noncontig"
            return f"T{list(x.shape)}{nc}"
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(d(y) for y in x) + "]"
        return repr(x)[:40]
    parts = [d(s.input)] + [d(a) for a in s.args] + [f"{k}={d(v)}" for k, v in s.kwargs.items()]
    return ", ".join(parts)
