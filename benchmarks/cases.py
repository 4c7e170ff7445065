"""The case registry: what a benchmark case is, the run context it is built for, and ``@provider``.

A *case* is one op at one shape and dtype: an input builder, the flaggems call (what a user writes:
``torch.ops.flaggems.*`` or a torch op under ``flaggems.use_gems``), the torch baseline (what a torch user
would otherwise write) and, where it applies, the direct implementation call (no dispatch) and FlagGems'
``flag_gems`` as a peer. Providers (``@provider``) turn a :class:`Ctx` (device, quick, dtypes) into cases.

The case modules (``cases_aten``, ``cases_deepseek``, ``cases_moe``) register here; ``catalog`` imports them.
This module imports nothing from the rest of ``benchmarks``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


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


def _matches(case: Case, sel: Optional[Sequence[str]]) -> bool:
    if not sel:
        return True
    names = {case.op, case.op.split(".")[0], case.kind, case.op.replace("flaggems::", "")}
    return any(s in names for s in sel)


def registered(ctx: Ctx, ops: Optional[Sequence[str]] = None) -> List[Case]:
    """The cases of every provider registered so far, in registration order, filtered by ``ops``."""
    out: List[Case] = []
    for _names, fn in _PROVIDERS:          # building cases allocates nothing (setup is lazy)
        out += [c for c in fn(ctx) if _matches(c, ops)]
    return out
