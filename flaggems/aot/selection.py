"""Which captured specializations a run compiles: the vendor's routing, ``--ops``, and sampling.

- Vendor routing: a launch inside an op the registry routed to Triton for this vendor is what the vendor runs
  (the registry already honoured its capability flags and deny list). A launch made only directly by a test
  calling a launcher bypasses the registry (tests force modes: fp8 dots, ``dot_scaled``, fp8 data passed as
  uint8 views), so with ``--vendor`` such specializations are not compiled; the report counts them, naming
  the capability they would need where the data types show it.
- ``--ops``: keep specializations launched by those ops (ATen or flaggems names, any overload) or of kernels
  whose name contains one of the words.
- Sampling: at most N specializations per kernel, taken round-robin over the kernel's variants (pointer dtypes,
  dtype/function constexprs, which arguments are compiled in as 1, launch options) so every variant is
  represented before any repeats. The report
  lists how many were skipped per kernel.
"""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Dict, Iterable, List, Optional, Tuple

from .spec import Specialization

FP8 = ("fp8e4nv", "fp8e5", "fp8e4b8", "fp8e5b16")


def _data_dtypes(s: Specialization) -> set:
    out = {t[1:] for t in s.signature.values() if t.startswith("*")}
    out |= {v["dtype"] for v in s.constexprs.values() if isinstance(v, dict) and "dtype" in v}
    return out


def capability_violation(s: Specialization, caps) -> Optional[str]:
    dts = _data_dtypes(s)
    if not caps.fp64 and "fp64" in dts:
        return "fp64 data on a vendor without fp64"
    if not caps.fp8 and dts & set(FP8):
        return "fp8 data on a vendor without fp8"
    return None


def vendor_filter(specs: Iterable[Specialization], caps) -> Tuple[List[Specialization], Dict[str, List[str]]]:
    """(kept, dropped: reason -> spec keys): only what the vendor's routing launches."""
    kept, dropped = [], defaultdict(list)
    for s in specs:
        if s.routed_ops:
            kept.append(s)
            continue
        why = capability_violation(s, caps)
        dropped["launched only by direct launcher calls in tests" + (f" ({why})" if why else "")].append(s.key)
    return kept, dict(dropped)


def _op_base(op: str) -> str:
    return op.split("::", 1)[-1].split(".", 1)[0]


def ops_filter(specs: Iterable[Specialization], ops: Optional[List[str]]) -> List[Specialization]:
    if not ops:
        return list(specs)
    words = {_op_base(o.strip()) for o in ops if o.strip()}
    out = []
    for s in specs:
        if {_op_base(o) for o in s.routed_ops} & words or any(w in s.kernel_name for w in words):
            out.append(s)
    return out


def _variant(s: Specialization) -> tuple:
    ptrs = tuple(t for t in s.signature.values() if t.startswith("*"))
    shaped = tuple(sorted((k, str(v)) for k, v in s.constexprs.items() if isinstance(v, (dict, str))))
    # arguments compiled in as 1 are where interpreter-only code breaks (rule 1): their own variant
    ones = tuple(sorted(k for k, v in s.constexprs.items() if v == 1 and type(v) is int))
    return ptrs, shaped, ones, tuple(sorted(s.options.items()))


def sample(specs: Iterable[Specialization], per_kernel: Optional[int]) -> Tuple[List[Specialization], Dict[str, int]]:
    """(chosen, skipped count per kernel); ``per_kernel`` None or <= 0 keeps everything."""
    by_kernel: Dict[str, List[Specialization]] = OrderedDict()
    for s in sorted(specs, key=lambda s: (s.kernel, s.key)):
        by_kernel.setdefault(s.kernel, []).append(s)
    chosen, skipped = [], {}
    for kernel, group in by_kernel.items():
        if not per_kernel or per_kernel <= 0 or len(group) <= per_kernel:
            chosen += group
            continue
        variants: Dict[tuple, List[Specialization]] = OrderedDict()
        # specializations that really ran come before autotune candidates within a variant
        for s in sorted(group, key=lambda s: (s.candidate_only, s.key)):
            variants.setdefault(_variant(s), []).append(s)
        queues = sorted(variants.values(), key=len, reverse=True)
        picked: List[Specialization] = []
        while len(picked) < per_kernel:
            progressed = False
            for q in queues:
                if q and len(picked) < per_kernel:
                    picked.append(q.pop(0))
                    progressed = True
            if not progressed:
                break
        chosen += picked
        skipped[kernel] = len(group) - len(picked)
    return chosen, skipped
