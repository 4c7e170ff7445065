"""Run one call natively and under flaggems, and compare the two outcomes.

An outcome is either the exception a call raised, or its results plus every tensor argument after the call
(so in-place and out= writes, and writes to inputs that should stay untouched, are compared too) and which
result aliases which argument (an out= / in-place op must return its written-to tensor).

Rules (the adversarial contract):
- native raises -> flaggems raises the same exception class (never a plausible number);
- native returns -> flaggems returns the same structure, dtypes, shapes and aliasing; NaN/Inf at the same
  positions with the same signs; finite floats within ``tolerance(dtype, reduce_len)``; ints/bools exact;
- a float disagreement is arbitrated by an fp64 run of the same call: where flaggems is within tolerance of the
  fp64 result (and native is not), it is reported as "native less accurate", not as a flaggems bug.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import torch
from torch.utils._pytree import tree_flatten

from ...api import use_gems
from ...record import record
from ...registry import current_config
from .. import assert_close
from .calls import Call

# Errors that say torch has no kernel for this backend/dtype here, not that the input is invalid: flaggems
# serving such a call gives the user more than native (a GPU has the kernel), so it is reported, not failed.
NATIVE_LACKS = re.compile(
    r"Could not run '|not implemented for '|doesn't exist for this backend|is not supported on CPU|"
    r"only supported (on|for) (CUDA|cuda|GPU)|Invalid scaling configuration|no kernel")


@dataclass
class Outcome:
    error: Optional[BaseException] = None
    leaves: List[Any] = field(default_factory=list)      # flattened results
    args_after: List[torch.Tensor] = field(default_factory=list)
    aliases: Tuple = ()                                  # per result tensor: index of the argument it aliases
    served: dict = field(default_factory=dict)           # {op: {kind: calls}} served by flaggems
    fallback: dict = field(default_factory=dict)         # {op: {reason: calls}}

    @property
    def raised(self) -> bool:
        return self.error is not None

    def describe(self) -> str:
        if self.error is not None:
            return f"raises {type(self.error).__name__}: {_first_line(self.error)}"
        parts = [_describe(x) for x in self.leaves]
        return "returns " + (", ".join(parts) if parts else "None")


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else "")[:200]


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        d = str(x.dtype).replace("torch.", "")
        if x.device.type == "meta":
            return f"meta {d}{list(x.shape)}"
        if x.numel() <= 8:
            return f"{d}{list(x.shape)} {x.detach().cpu().tolist()}"
        xf = x.detach().cpu()
        if xf.is_floating_point():
            n_nan, n_inf = int(torch.isnan(xf).sum()), int(torch.isinf(xf).sum())
            return f"{d}{list(x.shape)} ({n_nan} NaN, {n_inf} Inf)"
        return f"{d}{list(x.shape)}"
    return repr(x)


def _tensors(xs) -> List[torch.Tensor]:
    flat, _ = tree_flatten(list(xs))
    return [t for t in flat if isinstance(t, torch.Tensor)]


def _storage_key(t: torch.Tensor):
    if t.device.type == "meta":
        return None
    try:
        return t.untyped_storage().data_ptr()
    except Exception:   # noqa: BLE001 - tensors without storage have no aliasing to compare
        return None


def run(call: Call, gems: bool, include: Optional[List[str]] = None, upcast: bool = False) -> Outcome:
    """Evaluate ``call`` (inputs built natively), then run it natively or under ``use_gems(include=...)``."""
    if current_config() is not None and not gems:
        raise RuntimeError("flaggems is enabled: the native side of an adversarial sample needs it disabled")
    out = Outcome()
    try:
        fn, args, kwargs = call.evaluate()
    except Exception as e:   # noqa: BLE001 - a sample that cannot be built is an error of the sample
        raise RuntimeError(f"sample cannot be built: {type(e).__name__}: {e}\n{call.source()}") from e
    if upcast:
        args, kwargs = _upcast(args), dict(zip(kwargs, _upcast(list(kwargs.values()))))
    arg_tensors = _tensors(list(args) + list(kwargs.values()))
    rec = record()
    result = None
    try:
        if gems:
            with use_gems(include=include if include is not None else [call.op]):
                with rec:
                    result = fn(*args, **kwargs)
        else:
            with rec:
                result = fn(*args, **kwargs)
    except Exception as e:   # noqa: BLE001 - the exception is the outcome being compared
        out.error = e
    rep = rec.report
    out.served = {k: dict(v["served"]) for k, v in rep.ops.items() if v["served"]}
    out.fallback = {k: dict(v["fallback"]) for k, v in rep.ops.items() if v["fallback"]}
    if out.error is None:
        flat, _ = tree_flatten(result)
        out.leaves = flat
        keys = [_storage_key(t) for t in arg_tensors]
        out.aliases = tuple((keys.index(_storage_key(x)) if _storage_key(x) in keys and _storage_key(x) else None)
                            if isinstance(x, torch.Tensor) else None for x in flat)
    out.args_after = arg_tensors
    return out


def _upcast(xs):
    out = []
    for x in xs:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype.itemsize >= 2 \
                and x.device.type != "meta":
            # the reference is the math, not a layout: contiguous fp64 copies (a kernel that mishandles
            # strides must not be its own arbiter)
            out.append(x.detach().to(torch.float64).contiguous())
        elif isinstance(x, (list, tuple)):
            out.append(type(x)(_upcast(x)))
        else:
            out.append(x)
    return out


# --------------------------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    status: str             # "ok", "mismatch", "native_less_accurate", "beyond_native"
    why: str = ""


def compare(call: Call, native: Outcome, gems: Outcome, fp64=None) -> Verdict:
    """Apply the contract above; ``fp64`` is a callable returning the fp64 outcome (only asked on disagreement)."""
    if native.raised:
        if not gems.raised:
            if NATIVE_LACKS.search(str(native.error)):
                return Verdict("beyond_native", f"native has no kernel here ({_first_line(native.error)}); "
                                                f"flaggems {gems.describe()}")
            return Verdict("mismatch", f"native raises {type(native.error).__name__} but flaggems returns a value")
        if type(native.error) is not type(gems.error):
            return Verdict("mismatch", f"exception class: native {type(native.error).__name__}, flaggems "
                                       f"{type(gems.error).__name__}")
        return Verdict("ok")
    if gems.raised:
        return Verdict("mismatch", f"flaggems raises {type(gems.error).__name__} where native returns")
    if not call.values_defined:
        return Verdict("ok", "values unspecified (overlapping writes); both returned")
    if len(native.leaves) != len(gems.leaves):
        return Verdict("mismatch", f"{len(gems.leaves)} results, native {len(native.leaves)}")
    for i, (n, g) in enumerate(zip(native.leaves, gems.leaves)):
        why = _leaf(call, native, gems, i, n, g)
        if why:
            if fp64 is not None and _float_leaf(n):
                ref = _fp64_leaf(fp64, i)
                if ref is not None and _within(g, ref, call.reduce_len) and not _within(n, ref, call.reduce_len):
                    return Verdict("native_less_accurate", f"result {i}: {why}; flaggems is within tolerance of "
                                                           f"the fp64 result, native is not")
            return Verdict("mismatch", f"result {i}: {why}")
    if native.aliases != gems.aliases:
        return Verdict("mismatch", f"aliasing: native results alias arguments {native.aliases}, flaggems "
                                   f"{gems.aliases}")
    for j, (n, g) in enumerate(zip(native.args_after, gems.args_after)):
        if n.device.type == "meta" or g.device.type == "meta" or j in native.aliases:
            continue     # results were compared above (tie-tolerant where allowed)
        why = _tensor_diff(n, g, call.reduce_len)
        if why:
            return Verdict("mismatch", f"argument tensor {j} after the call: {why}")
    return Verdict("ok")


def _float_leaf(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point() and x.device.type != "meta"


def _fp64_leaf(fp64, i):
    try:
        o = fp64()
    except Exception:   # noqa: BLE001 - no fp64 arbiter for this call
        return None
    if o.raised or i >= len(o.leaves) or not isinstance(o.leaves[i], torch.Tensor):
        return None
    return o.leaves[i]


def _within(x: torch.Tensor, ref: torch.Tensor, reduce_len: int) -> bool:
    try:
        assert_close(x, ref, x.dtype, reduce_len=reduce_len)
        return True
    except AssertionError:
        return False


def _leaf(call: Call, native: Outcome, gems: Outcome, i: int, n, g) -> str:
    if isinstance(n, torch.Tensor) != isinstance(g, torch.Tensor):
        return f"type {type(g).__name__}, native {type(n).__name__}"
    if not isinstance(n, torch.Tensor):
        if isinstance(n, float) and isinstance(g, float) and math.isnan(n) and math.isnan(g):
            return ""
        return "" if n == g else f"{g!r}, native {n!r}"
    if call.dim_of is not None and i == 1 and n.dtype is torch.int64:
        return _indices_diff(call, native, gems, n, g)
    return _tensor_diff(n, g, call.reduce_len)


def _tensor_diff(n: torch.Tensor, g: torch.Tensor, reduce_len: int) -> str:
    if n.dtype != g.dtype:
        return f"dtype {g.dtype}, native {n.dtype}"
    if tuple(n.shape) != tuple(g.shape):
        return f"shape {tuple(g.shape)}, native {tuple(n.shape)}"
    if n.device != g.device:
        return f"device {g.device}, native {n.device}"
    if n.device.type == "meta":
        return ""
    if n.dim() > 64:   # torch's reductions (used by the comparison) stop at 64 dims: compare flat
        n, g = n.reshape(-1), g.reshape(-1)
    if n.dtype.is_floating_point and n.dtype.itemsize == 1:   # fp8: compare the decoded values
        n, g = n.float(), g.float()
    try:
        assert_close(g, n, n.dtype if n.is_floating_point() else None, reduce_len=reduce_len)
    except AssertionError as e:
        return str(e).strip()
    return ""


def _indices_diff(call: Call, native: Outcome, gems: Outcome, n: torch.Tensor, g: torch.Tensor) -> str:
    """sort/topk without stable=True may order ties either way: indices agree if they pick equal values."""
    if tuple(n.shape) != tuple(g.shape) or n.dtype != g.dtype:
        return f"indices {g.dtype}{tuple(g.shape)}, native {n.dtype}{tuple(n.shape)}"
    if torch.equal(n, g):
        return ""
    src = native.args_after[0]
    dim = call.sort_dim()
    if g.numel() and (int(g.min()) < 0 or int(g.max()) >= max(1, src.shape[dim] if src.dim() else 1)):
        return "indices out of range"
    a = src.gather(dim, n) if src.dim() else src
    b = src.gather(dim, g) if src.dim() else src
    same = (a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point() else (a == b)
    return "" if bool(same.all()) else "indices pick different values"

