"""Declarations and per-call resolution: which implementation serves a call, or why none does.

Every op (an ATen overload or a ``flaggems::`` custom op) is an :class:`OpEntry` holding its implementations
(:class:`Impl`: kind "triton" or "cpp", the dtypes and vendor capabilities it needs, an optional per-call
predicate). A call is resolved once per key (tensor dtypes and devices, Python scalar kinds, preferred kind)
into the ordered candidates, or a reason, and cached; the first candidate whose predicate accepts the call
serves it.

The active configuration (vendor, its deny list and overrides, the user's exclusions, the enabled config)
lives in :data:`STATE`. The vendor comes from ``flaggems.vendors`` (this module listens to its changes);
``flaggems.registry.override`` writes the rest. Outcomes are reported to one observer (``record()``), so
nothing here imports upward.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .. import vendors as _vendors
from ..formats import FP4_DTYPES, FP8_DTYPES
from .names import RegistrationError, canonical, expand_names, op_schema, split

KINDS = ("triton", "cpp")


@dataclass(frozen=True)
class Impl:
    op: str
    fn: Callable
    kind: str
    dtypes: Optional[frozenset]
    requires: Tuple[str, ...]
    supports: Optional[Callable]
    vendor: Optional[str] = None   # set for vendor overrides
    # capability flags whose dtypes this impl decodes in software (bit manipulation), so a vendor without the
    # hardware feature can still run it: e.g. an fp8 GEMM with a dequantise-in-registers path
    decodes: Tuple[str, ...] = ()
    # takes a Python number in its Tensor slots, self included (torch's "wrapped numbers", e.g. torch.add(2, t))
    numbers: bool = False

    def static_reason(self, dtypes: Sequence[torch.dtype], caps) -> Optional[str]:
        """Why this impl cannot take inputs of these dtypes on this vendor (None if it can)."""
        for need in self.requires:
            if not getattr(caps, need):
                return f"vendor lacks {need}"
        for dt in dtypes:
            if self.dtypes is not None and dt not in self.dtypes:
                return f"dtype {dtype_name(dt)} not supported by the {self.kind} kernel"
            if dt is torch.float64 and not caps.fp64:
                return "vendor lacks fp64"
            if dt is torch.bfloat16 and not caps.bf16:
                return "vendor lacks bf16"
            if dt is torch.float16 and not caps.fp16:
                return "vendor lacks fp16"
            if dt in FP8_DTYPES and not caps.fp8 and "fp8" not in self.decodes:
                return "vendor lacks fp8"
            if dt in FP4_DTYPES and not caps.fp4 and "fp4" not in self.decodes:
                return "vendor lacks fp4"
            if dt is torch.int64 and not caps.int64:
                return "vendor lacks int64"
        return None


def dtype_name(dt) -> str:
    return str(dt).replace("torch.", "")


class OpEntry:
    """One operator overload with its implementations and its resolution cache."""

    __slots__ = ("qualname", "namespace", "base", "overload", "schema", "impls", "cache",
                 "tensor_slots", "reference", "fake", "check", "_lock")

    def __init__(self, qualname: str, schema=None):
        self.qualname = qualname
        self.namespace, self.base, self.overload = split(qualname)
        self.schema = schema if schema is not None else op_schema(qualname)
        self.impls: List[Impl] = []
        self.cache: Dict[tuple, tuple] = {}
        # positions of arguments typed exactly `Tensor`: a Python number there must be re-wrapped before boxing
        self.tensor_slots = tuple(i for i, a in enumerate(self.schema.arguments)
                                  if str(a.type) == "Tensor" and not a.kwarg_only)
        self.reference: Optional[Callable] = None
        self.fake: Optional[Callable] = None
        self.check: Optional[Callable] = None
        self._lock = threading.Lock()

    @property
    def short(self) -> str:
        return f"{self.base}.{self.overload}"

    def __repr__(self):
        return f"OpEntry({self.qualname}, impls={[i.kind for i in self.impls]})"


_ENTRIES: Dict[str, OpEntry] = {}
_LOCK = threading.RLock()


def entries() -> Dict[str, OpEntry]:
    return _ENTRIES


def declared() -> set:
    """Canonical names of every op flaggems serves (an implementation or a custom op's reference)."""
    return {q for q, e in _ENTRIES.items() if e.impls or e.reference is not None}


def entry(qualname: str) -> OpEntry:
    """The entry of a canonical name, created on first use (ATen overloads must exist in this torch)."""
    with _LOCK:
        e = _ENTRIES.get(qualname)
        if e is None:
            e = _ENTRIES[qualname] = OpEntry(qualname)
        return e


def add_entry(e: OpEntry) -> None:
    with _LOCK:
        if e.qualname in _ENTRIES:
            raise RegistrationError(f"{e.qualname} is already declared")
        _ENTRIES[e.qualname] = e


def implement(ops: Union[str, Iterable[str]], *, kind: str = "triton", dtypes=None,
              requires: Sequence[str] = (), supports: Optional[Callable] = None, decodes: Sequence[str] = (),
              numbers: bool = False):
    """Decorator: declare ``fn`` as an implementation of one or more ops (ATen or flaggems:: custom ops).

    ``requires``: capability flags the vendor must have. ``decodes``: flags ("fp8", "fp4") whose dtypes the
    implementation handles without the hardware feature (software decode), so they do not exclude it.
    ``numbers``: the implementation (and its ``supports``) takes a Python number in any Tensor slot, self
    included; an op whose implementations all do is served for ``torch.add(2, t)`` (else that call stays native).
    """
    if kind not in KINDS:
        raise RegistrationError(f"unknown implementation kind {kind!r}; expected one of {KINDS}")
    flags = _vendors.CAPABILITY_FLAGS
    bad = [r for r in tuple(requires) + tuple(decodes) if r not in flags]
    if bad:
        raise RegistrationError(f"unknown capability flag(s) {bad}; known: {flags}")
    names = [ops] if isinstance(ops, str) else list(ops)
    dts = None if dtypes is None else frozenset(dtypes)

    def deco(fn):
        for name in names:
            q = canonical(name)
            if q.startswith("flaggems::") and q not in _ENTRIES:
                raise RegistrationError(f"{q}: declare it with custom_op() before implementing it")
            e = entry(q)
            impl = Impl(q, fn, kind, dts, tuple(requires), supports, decodes=tuple(decodes), numbers=numbers)
            with e._lock:
                e.impls.append(impl)
                e.cache.clear()
        return fn

    return deco


def clear_caches() -> None:
    for e in list(_ENTRIES.values()):
        e.cache.clear()


# --------------------------------------------------------------------------------------------------------------
# the active configuration

def _prefer_from_env() -> Optional[str]:
    v = os.environ.get("FLAGGEMS_IMPL") or None
    if v is not None and v not in KINDS:
        raise ValueError(f"FLAGGEMS_IMPL={v!r}: expected one of {KINDS}")
    return v


class _Active:
    """Module-level state the hot path reads (attribute reads only, no locking)."""

    def __init__(self):
        self.vendor = None
        self.denied: frozenset = frozenset()     # canonical names the vendor denies
        self.overrides: Dict[str, Tuple[Impl, ...]] = {}   # the vendor's explicit overrides, per op
        self.excluded: frozenset = frozenset()   # canonical names the user excluded (or left out of include=)
        self.config = None                       # the enabled override.Config, None when disabled
        self.prefer_env: Optional[str] = _prefer_from_env()
        self.sealed = False                      # every built-in op is declared: vendor data can be bound


STATE = _Active()


def _bind_vendor(plugin) -> None:
    """Resolve the vendor's deny list and overrides against the declared ops (errors raise)."""
    denied = frozenset(expand_names(plugin.deny, declared(), strict=False, what="deny")) if plugin.deny \
        else frozenset()
    overrides: Dict[str, List[Impl]] = {}
    for o in plugin.overrides:
        q = canonical(o.op)
        if q.startswith("flaggems::") and q not in _ENTRIES:
            raise RegistrationError(f"vendor {plugin.name!r} overrides {q}, which is not declared")
        entry(q)  # an ATen overload must exist in this torch
        overrides.setdefault(q, []).append(
            Impl(q, o.fn, o.kind, None if o.dtypes is None else frozenset(o.dtypes), tuple(o.requires),
                 o.supports, vendor=plugin.name))
    STATE.denied = denied
    STATE.overrides = {q: tuple(v) for q, v in overrides.items()}


def _on_vendor(plugin) -> None:
    STATE.vendor = plugin
    if STATE.sealed:
        _bind_vendor(plugin)
    clear_caches()


def seal() -> None:
    """All built-in ops are declared (called once by ``import flaggems``): bind the active vendor's data."""
    STATE.sealed = True
    if STATE.vendor is not None:
        _bind_vendor(STATE.vendor)
    clear_caches()


_vendors.on_change(_on_vendor)
if _vendors._ACTIVE is not None:
    _on_vendor(_vendors._ACTIVE)


class _Local(threading.local):
    def __init__(self):
        self.busy = set()          # ops whose flaggems impl is running on this thread (re-entrancy guard)
        self.prefer: Optional[str] = None


TLS = _Local()


def serving() -> List[str]:
    """The flaggems ops whose implementation is running on this thread (innermost calls included)."""
    return sorted(TLS.busy)


def kind_order() -> Tuple[str, ...]:
    """Implementation kinds in the order they are tried for this thread."""
    forced = TLS.prefer or STATE.prefer_env
    base = tuple(STATE.vendor.prefer) if STATE.vendor is not None else KINDS
    order = base + tuple(k for k in KINDS if k not in base)
    if forced:
        order = (forced,) + tuple(k for k in order if k != forced)
    return order


@contextlib.contextmanager
def prefer_impl(kind: Optional[str]):
    """Prefer one implementation kind ("triton" or "cpp") on this thread; None restores the vendor order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"prefer_impl: kind must be one of {KINDS} or None, got {kind!r}")
    # the preferred kind is part of every resolution-cache key, so no cache needs clearing
    prev = TLS.prefer
    TLS.prefer = kind
    try:
        yield
    finally:
        TLS.prefer = prev


# --------------------------------------------------------------------------------------------------------------
# outcomes: one observer (record()) is told who served each call

_OBSERVER: Optional[Callable[[str, Optional[str], Optional[str]], None]] = None


def set_observer(fn: Optional[Callable[[str, Optional[str], Optional[str]], None]]) -> None:
    """``fn(op, kind, reason)`` after each resolved call (kind None = native/reference, with the reason)."""
    global _OBSERVER
    _OBSERVER = fn


def why_not_served(qualname: str) -> str:
    """Why a call of ``qualname`` that no flaggems override saw went to torch's kernel."""
    e = _ENTRIES.get(qualname)
    if e is None or not e.impls:
        return "not implemented"
    if qualname in STATE.denied:
        return f"denied by vendor {STATE.vendor.name}"
    if STATE.config is None and qualname.startswith("aten::"):
        return "flaggems not enabled"
    if qualname in STATE.excluded:
        return "excluded"
    return "not patched"


# --------------------------------------------------------------------------------------------------------------
# per call

def _key(args, kwargs) -> tuple:
    """Resolution-cache key of one call: per tensor its dtype and device *index* (``get_device()``: -1 on the
    host, so a CPU operand beside accelerator tensors keys differently; ~6x cheaper than ``device.type``), the
    kind of bool/complex Python scalars, and the thread's preferred implementation kind."""
    key = [TLS.prefer]
    for a in args:
        if isinstance(a, Tensor):
            key.append(a.dtype)
            key.append(a.get_device() if a.dim() else -2)
        elif type(a) is list or type(a) is tuple:
            for x in a:
                if isinstance(x, Tensor):
                    key.append(x.dtype)
        elif type(a) is bool or type(a) is complex:
            key.append(type(a))
    if kwargs:
        for k, a in kwargs.items():
            if isinstance(a, Tensor):
                key.append(k)
                key.append(a.dtype)
                key.append(a.get_device())
            elif isinstance(a, torch.dtype):
                key.append(a)
    return tuple(key)


def _tensor_dtypes(args, kwargs) -> List[torch.dtype]:
    """The dtypes an implementation must handle: its tensors' and a ``dtype=`` keyword's (the result of
    ``_to_copy(x, dtype=torch.float8_e4m3fn)`` or ``full(..., dtype=torch.float64)``, which a vendor without fp8 /
    fp64 cannot compute; keyword dtypes are part of the resolution-cache key, see _key)."""
    out = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a.dtype)
        elif isinstance(a, (list, tuple)):
            out.extend(x.dtype for x in a if isinstance(x, torch.Tensor))
    for a in kwargs.values():
        if isinstance(a, torch.dtype):
            out.append(a)
    return out


def _resolve(e: OpEntry, args, kwargs) -> tuple:
    """(candidates, reason): candidates in preference order, reason if none applies."""
    if e.qualname in STATE.excluded:
        return (), "excluded"
    vendor = STATE.vendor
    if e.qualname in STATE.denied:
        return (), f"denied by vendor {vendor.name}"
    caps = vendor.capabilities
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor) and a.device.type != vendor.device_type and a.dim() > 0:
            return (), f"device {a.device.type} is not the vendor's {vendor.device_type}"
        if isinstance(a, complex):
            return (), "complex scalar"
    dtypes = _tensor_dtypes(args, kwargs)
    order = kind_order()
    reasons = []
    cands = []
    impls = STATE.overrides.get(e.qualname, ()) + tuple(e.impls)
    for impl in sorted(impls, key=lambda i: (i.vendor is None, order.index(i.kind))):
        r = impl.static_reason(dtypes, caps)
        if r is None:
            cands.append(impl)
        else:
            reasons.append(r)
    if cands:
        return tuple(cands), None
    if not impls:
        return (), "not implemented"
    return (), reasons[0] if reasons else "not implemented"


def dispatch(e: OpEntry, args, kwargs):
    """(impl, None) for the first implementation accepting the call, else (None, reason)."""
    key = _key(args, kwargs)
    hit = e.cache.get(key)
    if hit is None:
        hit = _resolve(e, args, kwargs)
        e.cache[key] = hit
    cands, reason = hit
    for impl in cands:
        if impl.supports is None:
            return impl, None
        r = impl.supports(*args, **kwargs)
        if r is None:
            return impl, None
        reason = r
    return None, reason
