"""One registry over ATen (and flaggems:: custom ops).

Every op is named the way the dispatcher names it: ``aten::add.Tensor``, ``aten::mm.default``,
``flaggems::sparse_attn.default``. Users may write ``"mm"`` (every overload of mm), ``"mm.out"`` (one overload)
or the ``aten::`` form.

For each op we hold its implementations (``kind`` = "triton" or "cpp"), each with the dtypes and vendor
capabilities it needs and an optional per-call predicate. A call is resolved once per (dtypes, device) key into
the ordered list of candidate implementations (or a fallback reason) and cached; anything unsupported goes to
the native kernel captured with ``torch.library.get_kernel`` *before* we patched, called with
``call_boxed`` so our override cannot be re-entered. A failed registration raises.
"""
from __future__ import annotations

import contextlib
import difflib
import threading
import warnings
from dataclasses import dataclass
from numbers import Number
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from . import record as _record
from . import vendors as _vendors
from .formats import FP4_DTYPES, FP8_DTYPES

KINDS = ("triton", "cpp")



class RegistrationError(RuntimeError):
    """An op could not be declared or patched. Never downgraded to a warning."""


# --------------------------------------------------------------------------------------------------------------
# names

def _split(qualname: str) -> Tuple[str, str, str]:
    ns, _, rest = qualname.partition("::")
    base, _, overload = rest.partition(".")
    return ns, base, overload or "default"


def canonical(name: str, default_ns: str = "aten") -> str:
    """'add.Tensor' -> 'aten::add.Tensor'; 'mm' -> 'aten::mm.default'."""
    if "::" not in name:
        name = f"{default_ns}::{name}"
    ns, base, overload = _split(name)
    return f"{ns}::{base}.{overload}"


def _schema(qualname: str):
    ns, base, overload = _split(qualname)
    try:
        return torch._C._get_schema(f"{ns}::{base}", "" if overload == "default" else overload)
    except RuntimeError as e:
        raise RegistrationError(f"{qualname} is not an operator known to this torch ({torch.__version__})") from e


def aten_op_exists(name: str) -> bool:
    ns, base, overload = _split(canonical(name))
    if ns != "aten":
        return False
    packet = getattr(torch.ops.aten, base, None)
    if packet is None:
        return False
    if "." not in name.split("::")[-1]:
        return True
    return overload in packet.overloads() or (overload == "default" and "default" in packet.overloads())


# --------------------------------------------------------------------------------------------------------------
# declarations

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

    def static_reason(self, dtypes: Sequence[torch.dtype], caps) -> Optional[str]:
        """Why this impl cannot take inputs of these dtypes on this vendor (None if it can)."""
        for need in self.requires:
            if not getattr(caps, need):
                return f"vendor lacks {need}"
        for dt in dtypes:
            if self.dtypes is not None and dt not in self.dtypes:
                return f"dtype {_dtname(dt)} not supported by the {self.kind} kernel"
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


def _dtname(dt) -> str:
    return str(dt).replace("torch.", "")


class OpEntry:
    """One operator overload with its implementations and its resolution cache."""

    __slots__ = ("qualname", "namespace", "base", "overload", "schema", "impls", "cache",
                 "tensor_slots", "reference", "fake", "check", "_lock")

    def __init__(self, qualname: str, schema=None):
        self.qualname = qualname
        self.namespace, self.base, self.overload = _split(qualname)
        self.schema = schema if schema is not None else _schema(qualname)
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


def _entry(qualname: str) -> OpEntry:
    with _LOCK:
        e = _ENTRIES.get(qualname)
        if e is None:
            e = _ENTRIES[qualname] = OpEntry(qualname)
        return e


def implement(ops: Union[str, Iterable[str]], *, kind: str = "triton", dtypes=None,
              requires: Sequence[str] = (), supports: Optional[Callable] = None, decodes: Sequence[str] = ()):
    """Declare ``fn`` as an implementation of one or more ops (ATen or flaggems:: custom ops).

    ``requires``: capability flags the vendor must have. ``decodes``: flags ("fp8", "fp4") whose dtypes the
    implementation handles without the hardware feature (software decode), so they do not exclude it.
    """
    from .vendors.base import CAPABILITY_FLAGS

    if kind not in KINDS:
        raise RegistrationError(f"unknown implementation kind {kind!r}; expected one of {KINDS}")
    bad = [r for r in tuple(requires) + tuple(decodes) if r not in CAPABILITY_FLAGS]
    if bad:
        raise RegistrationError(f"unknown capability flag(s) {bad}; known: {CAPABILITY_FLAGS}")
    names = [ops] if isinstance(ops, str) else list(ops)
    dts = None if dtypes is None else frozenset(dtypes)

    def deco(fn):
        for name in names:
            q = canonical(name)
            if q.startswith("flaggems::") and q not in _ENTRIES:
                raise RegistrationError(f"{q}: declare it with custom_op() before implementing it")
            entry = _entry(q)
            impl = Impl(q, fn, kind, dts, tuple(requires), supports, decodes=tuple(decodes))
            with entry._lock:
                entry.impls.append(impl)
                entry.cache.clear()
        return fn

    return deco


def clear_caches() -> None:
    for e in list(_ENTRIES.values()):
        e.cache.clear()


# --------------------------------------------------------------------------------------------------------------
# resolution

class _State(threading.local):
    def __init__(self):
        self.busy = set()          # ops whose flaggems impl is running on this thread (re-entrancy guard)
        self.prefer: Optional[str] = None


_TLS = _State()

# The active configuration (set by enable/disable). Module globals so the hot path reads them cheaply.
_VENDOR = None
_EXCLUDED: frozenset = frozenset()      # canonical names the user excluded
_DENIED: frozenset = frozenset()        # canonical names the vendor denies
_PREFER_ENV: Optional[str] = None


def _set_vendor(plugin) -> None:
    global _VENDOR, _DENIED
    _vendors.set_active(plugin)
    _VENDOR = plugin
    _DENIED = frozenset(_expand_names(plugin.deny, strict=False)) if plugin.deny else frozenset()
    for o in plugin.overrides:
        q = canonical(o.op)
        entry = _entry(q) if not q.startswith("flaggems::") or q in _ENTRIES else None
        if entry is None:
            raise RegistrationError(f"vendor {plugin.name!r} overrides {q}, which is not declared")
        impl = Impl(q, o.fn, o.kind, None if o.dtypes is None else frozenset(o.dtypes), tuple(o.requires),
                    o.supports, vendor=plugin.name)
        with entry._lock:
            entry.impls.insert(0, impl)
    clear_caches()


@contextlib.contextmanager
def override_vendor(plugin):
    """Run a block with another vendor plugin active (tests and device-validation tools).

    The dispatch key of the patch does not change; capability flags, deny list, overrides and preferred
    kinds do. Restores the previous plugin and re-applies the previous configuration on exit.
    """
    global _VENDOR, _DENIED
    prev_vendor, prev_denied, prev_cfg = _VENDOR, _DENIED, _CONFIG
    saved = {q: list(e.impls) for q, e in _ENTRIES.items()}
    _set_vendor(plugin)
    if prev_cfg is not None:
        apply(prev_cfg.include, prev_cfg.exclude)
    try:
        yield plugin
    finally:
        for q, impls in saved.items():
            _ENTRIES[q].impls[:] = impls
        _VENDOR, _DENIED = prev_vendor, prev_denied
        _vendors.set_active(prev_vendor)
        clear_caches()
        if prev_cfg is not None:
            apply(prev_cfg.include, prev_cfg.exclude)
        else:
            remove()


def _kind_order() -> Tuple[str, ...]:
    forced = _TLS.prefer or _PREFER_ENV
    base = tuple(_VENDOR.prefer) if _VENDOR is not None else KINDS
    rest = tuple(k for k in KINDS if k not in base)
    order = base + rest
    if forced:
        order = (forced,) + tuple(k for k in order if k != forced)
    return order


@contextlib.contextmanager
def prefer_impl(kind: Optional[str]):
    """Prefer one implementation kind ("triton" or "cpp") on this thread; None restores the vendor order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"prefer_impl: kind must be one of {KINDS} or None, got {kind!r}")
    # the preferred kind is part of every resolution-cache key, so no cache needs clearing
    prev = _TLS.prefer
    _TLS.prefer = kind
    try:
        yield
    finally:
        _TLS.prefer = prev


def _key(args, kwargs) -> tuple:
    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            key.append(a.dtype)
            key.append(a.device.type)
        elif isinstance(a, (list, tuple)):
            for x in a:
                if isinstance(x, torch.Tensor):
                    key.append(x.dtype)
        elif isinstance(a, (complex, bool)):
            key.append(type(a))
    if kwargs:
        for k, a in kwargs.items():
            if isinstance(a, torch.Tensor):
                key.append(k)
                key.append(a.dtype)
            elif isinstance(a, torch.dtype):
                key.append(a)
    key.append(_TLS.prefer)
    return tuple(key)


def _tensor_dtypes(args, kwargs) -> List[torch.dtype]:
    out = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a.dtype)
        elif isinstance(a, (list, tuple)):
            out.extend(x.dtype for x in a if isinstance(x, torch.Tensor))
    return out


def _resolve(entry: OpEntry, args, kwargs) -> tuple:
    """(candidates, reason): candidates in preference order, reason if none applies."""
    if entry.qualname in _EXCLUDED:
        return (), "excluded"
    if entry.qualname in _DENIED:
        return (), f"denied by vendor {_VENDOR.name}"
    caps = _VENDOR.capabilities
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor) and a.device.type != _VENDOR.device_type and a.dim() > 0:
            return (), f"device {a.device.type} is not the vendor's {_VENDOR.device_type}"
        if isinstance(a, complex):
            return (), "complex scalar"
    dtypes = _tensor_dtypes(args, kwargs)
    order = _kind_order()
    reasons = []
    cands = []
    for impl in sorted(entry.impls, key=lambda i: (i.vendor is None, order.index(i.kind))):
        if impl.vendor is not None and impl.vendor != _VENDOR.name:
            continue
        r = impl.static_reason(dtypes, caps)
        if r is None:
            cands.append(impl)
        else:
            reasons.append(r)
    if cands:
        return tuple(cands), None
    if not entry.impls:
        return (), "not implemented"
    return (), reasons[0] if reasons else "not implemented"


def dispatch(entry: OpEntry, args, kwargs):
    """(impl, None) for the first implementation accepting the call, else (None, reason)."""
    key = _key(args, kwargs)
    hit = entry.cache.get(key)
    if hit is None:
        hit = _resolve(entry, args, kwargs)
        entry.cache[key] = hit
    cands, reason = hit
    for impl in cands:
        if impl.supports is None:
            return impl, None
        r = impl.supports(*args, **kwargs)
        if r is None:
            return impl, None
        reason = r
    return None, reason


def _wrap_scalar(value, args, slot):
    """A Python number in a Tensor slot, as the 0-dim tensor torch's argument parser would have made.

    torch wraps it as a 'wrapped number' that never promotes a tensor of the same category; we reproduce that
    by choosing the widest dtype of its category when another operand keeps the result dtype, and the
    result dtype itself otherwise.
    """
    others = [a for i, a in enumerate(args) if i != slot and isinstance(a, torch.Tensor)]
    if not others:
        return torch.tensor(value)
    rt = torch.result_type(others[0], value) if len(others) == 1 else torch.result_type(
        torch.empty((), dtype=torch.promote_types(*[o.dtype for o in others[:2]])), value)
    dims = [o for o in others if o.dim() > 0]
    if dims:
        if isinstance(value, bool):
            wide = torch.bool
        elif isinstance(value, int):
            wide = torch.int64
        elif isinstance(value, float):
            wide = torch.float64
        else:
            wide = torch.complex128
        # a 0-dim operand never promotes dimensioned operands of the same or a higher category
        if _category(wide) <= max(_category(o.dtype) for o in dims):
            return torch.tensor(value, dtype=wide)
    return torch.tensor(value, dtype=rt)


def _category(dt) -> int:
    if dt is torch.bool:
        return 0
    if dt.is_complex:
        return 3
    if dt.is_floating_point:
        return 2
    return 1


def _rewrap(entry: OpEntry, args: tuple) -> tuple:
    if not entry.tensor_slots:
        return args
    fixed = None
    for slot in entry.tensor_slots:
        if slot < len(args) and isinstance(args[slot], Number) and not isinstance(args[slot], torch.Tensor):
            if fixed is None:
                fixed = list(args)
            fixed[slot] = _wrap_scalar(args[slot], args, slot)
    return args if fixed is None else tuple(fixed)


def make_aten_override(entry: OpEntry, native) -> Callable:
    """The function registered at the vendor's dispatch key for one ATen overload."""
    name = entry.qualname
    # torch hands a kernel's internal "wrapped number" tensors to Python overrides as plain numbers; where the
    # op's self slot holds one, the call comes from inside a native kernel and stays native
    self_slot = 0 in entry.tensor_slots

    def override(keyset, *args, **kwargs):
        tls_busy = _TLS.busy
        if self_slot and args and isinstance(args[0], Number) and not isinstance(args[0], torch.Tensor):
            if _record._ACTIVE:
                _record.note(name, None, "wrapped number operand")
            return native.call_boxed(keyset, *_rewrap(entry, args), **kwargs)
        if name in tls_busy:
            # an implementation re-entered its own op: serve it natively, never recurse
            if _record._ACTIVE:
                _record.note(name, None, "re-entrant call")
            return native.call_boxed(keyset, *_rewrap(entry, args), **kwargs)
        impl, reason = dispatch(entry, args, kwargs)
        if impl is None:
            if _record._ACTIVE:
                _record.note(name, None, reason)
            return native.call_boxed(keyset, *_rewrap(entry, args), **kwargs)
        if _record._ACTIVE:
            _record.note(name, impl.kind, None)
        tls_busy.add(name)
        try:
            return impl.fn(*args, **kwargs)
        finally:
            tls_busy.discard(name)

    override.__name__ = f"flaggems_{entry.base}_{entry.overload}"
    override.__qualname__ = override.__name__
    return override


# --------------------------------------------------------------------------------------------------------------
# custom ops (flaggems::*)

_CUSTOM_LIB = None


def _custom_lib():
    global _CUSTOM_LIB
    if _CUSTOM_LIB is None:
        _CUSTOM_LIB = torch.library.Library("flaggems", "DEF")
    return _CUSTOM_LIB


def custom_op(qualname: str, schema: str, *, reference: Callable, fake: Callable,
              check: Optional[Callable] = None) -> OpEntry:
    """Declare ``torch.ops.flaggems.<name>`` with its pure-torch reference and its fake (meta) kernel.

    ``schema`` is the signature without the name, e.g. ``"(Tensor x, int block) -> Tensor"``.
    """
    ns, base, overload = _split(qualname if "::" in qualname else f"flaggems::{qualname}")
    if ns != "flaggems":
        raise RegistrationError(f"custom ops live in the flaggems namespace, got {qualname!r}")
    if overload != "default":
        raise RegistrationError(f"{qualname}: declare custom ops without an overload name")
    q = f"flaggems::{base}.default"
    if q in _ENTRIES:
        raise RegistrationError(f"{q} is already declared")
    if not callable(reference) or not callable(fake):
        raise RegistrationError(f"{q}: reference and fake must be callables")
    lib = _custom_lib()
    try:
        lib.define(f"{base}{schema}")
    except Exception as e:
        raise RegistrationError(f"cannot define {q} with schema {schema!r}: {e}") from e
    entry = OpEntry(q, _schema(q))
    entry.reference, entry.fake, entry.check = reference, fake, check
    _ENTRIES[q] = entry

    def run(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        if q in _TLS.busy:
            impl, reason = None, "re-entrant call"
        elif _VENDOR is None:
            impl, reason = None, "flaggems vendor not initialised"
        else:
            impl, reason = dispatch(entry, args, kwargs)
        if impl is None:
            if _record._ACTIVE:
                _record.note(q, None, reason)
            return reference(*args, **kwargs)
        if _record._ACTIVE:
            _record.note(q, impl.kind, None)
        _TLS.busy.add(q)
        try:
            return impl.fn(*args, **kwargs)
        finally:
            _TLS.busy.discard(q)

    def fake_run(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        return fake(*args, **kwargs)

    run.__name__ = f"flaggems_{base}"
    try:
        lib.impl(base, run, "CompositeExplicitAutograd")
        torch.library.register_fake(f"flaggems::{base}", fake_run, lib=lib)
    except Exception as e:
        raise RegistrationError(f"cannot register {q}: {e}") from e
    return entry


# --------------------------------------------------------------------------------------------------------------
# enabling: patch the ATen overloads at the vendor's dispatch key

@dataclass(frozen=True)
class Config:
    include: Optional[Tuple[str, ...]]
    exclude: Tuple[str, ...]
    ops: Tuple[str, ...]


_PATCH_LIB = None
_CONFIG: Optional[Config] = None


def _expand_names(names: Iterable[str], strict: bool = True, what: str = "exclude") -> List[str]:
    """User names -> canonical overload names we declare. Unknown names raise ValueError with close matches."""
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of op names, not a string ({names!r})")
    declared = {q for q, e in _ENTRIES.items() if e.impls or e.reference is not None}
    out = []
    for raw in names:
        if not isinstance(raw, str) or not raw:
            raise TypeError(f"{what}: op names are non-empty strings, got {raw!r}")
        ns = "flaggems" if raw.startswith("flaggems::") else "aten"
        body = raw.split("::", 1)[-1]
        if "." in body:
            q = canonical(raw, ns)
            hits = [q] if q in declared else []
        else:
            hits = sorted(d for d in declared if d.startswith(f"{ns}::{body}.")
                          or (ns == "aten" and d.startswith(f"flaggems::{body}.")))
        if hits:
            out.extend(hits)
            continue
        real = aten_op_exists(raw) if ns == "aten" else False
        if real and not strict:
            continue  # excluding or denying an ATen op we do not serve is a no-op, and true
        pool = sorted({d.split("::")[1] for d in declared} | {d.split("::")[1].split(".")[0] for d in declared})
        close = difflib.get_close_matches(body, pool, n=5)
        hint = f" Close matches: {close}." if close else ""
        if real:
            raise ValueError(f"{what}: flaggems has no implementation of aten::{body}.{hint}")
        raise ValueError(f"{what}: unknown op name {raw!r}.{hint}")
    return out


def _aten_entries() -> List[OpEntry]:
    return [e for q, e in _ENTRIES.items() if e.namespace == "aten" and e.impls]


def current_config() -> Optional[Config]:
    return _CONFIG


def apply(include=None, exclude=None) -> Config:
    """Patch the selected ATen overloads (replacing any previous patch)."""
    global _PATCH_LIB, _CONFIG, _EXCLUDED
    if _VENDOR is None:
        raise RegistrationError("no vendor selected")
    for what, names in (("include", include), ("exclude", exclude)):
        if isinstance(names, str):
            raise TypeError(f"{what} must be a list of op names, not a string ({names!r})")
    exclude = tuple(exclude or ())
    inc = None if include is None else tuple(include)
    excluded = set(_expand_names(exclude, strict=False, what="exclude"))
    if inc is not None:
        wanted = set(_expand_names(inc, strict=True, what="include"))
    else:
        wanted = {e.qualname for e in _aten_entries()} | {q for q in _ENTRIES if q.startswith("flaggems::")}
    aten = sorted(q for q in wanted if q.startswith("aten::") and q not in excluded and q not in _DENIED
                  and _ENTRIES[q].impls)
    remove()
    # flaggems:: ops outside the selection are served by their reference
    custom_off = {q for q in _ENTRIES if q.startswith("flaggems::") and (q not in wanted or q in excluded)}
    _EXCLUDED = frozenset(excluded | custom_off | {q for q in _ENTRIES if q.startswith("aten::")
                                                    and q not in aten})
    clear_caches()
    key = _VENDOR.dispatch_key
    lib = torch.library.Library("aten", "IMPL")
    natives = {}
    try:
        for q in aten:
            natives[q] = _native_kernel(q, key)
        with warnings.catch_warnings():
            # torch warns once that we override a registered kernel: that is the point of enable()
            warnings.filterwarnings("ignore", message="Warning only once for all operators")
            warnings.filterwarnings("ignore", message="(?s).*Overriding a previously registered kernel")
            for q in aten:
                e = _ENTRIES[q]
                name = e.base if e.overload == "default" else f"{e.base}.{e.overload}"
                lib.impl(name, make_aten_override(e, natives[q]), key, with_keyset=True)
    except Exception as ex:
        lib._destroy()
        raise RegistrationError(f"registering flaggems overrides at {key} failed: {ex}") from ex
    _PATCH_LIB = lib
    _CONFIG = Config(inc, exclude, tuple(aten))
    return _CONFIG


# Ops torch declares but has no kernel for at some dispatch keys (e.g. _scaled_grouped_mm on CPU) may still be
# served by flaggems there; inputs we do not support then raise torch's own "could not run" error.
MISSING_NATIVE_OK = True


class _MissingNative:
    def __init__(self, qualname: str, key: str):
        self.qualname, self.key = qualname, key

    def call_boxed(self, keyset, *args, **kwargs):
        raise NotImplementedError(
            f"Could not run '{self.qualname}' with arguments from the '{self.key}' backend: torch has no "
            f"{self.key} kernel for it and flaggems' implementations do not support these inputs")


def _native_kernel(q: str, key: str):
    try:
        return torch.library.get_kernel(q.replace(".default", ""), key)
    except RuntimeError as e:
        if "no kernel" not in str(e):
            raise
        return _MissingNative(q, key)


def remove() -> None:
    global _PATCH_LIB, _CONFIG, _EXCLUDED
    if _PATCH_LIB is not None:
        _PATCH_LIB._destroy()
        _PATCH_LIB = None
    _CONFIG = None
    _EXCLUDED = frozenset()
    clear_caches()


def patched() -> List[str]:
    return list(_CONFIG.ops) if _CONFIG is not None else []
