"""Patching: ``enable()`` registers an override for each selected ATen overload at the vendor's dispatch key.

The native kernel of each overload is captured with ``torch.library.get_kernel`` *before* our override is
registered (once per (op, dispatch key): captures are cached, so enable/disable cycles do not accumulate
handles) and called with ``call_boxed`` for anything flaggems does not serve, so the override can never be
re-entered. A failed registration raises :class:`RegistrationError`.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from numbers import Number
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .. import vendors as _vendors
from . import resolution as _res
from .names import RegistrationError, expand_names


@dataclass(frozen=True)
class Config:
    include: Optional[Tuple[str, ...]]
    exclude: Tuple[str, ...]
    ops: Tuple[str, ...]


_PATCH_LIB = None


def current_config() -> Optional[Config]:
    return _res.STATE.config


def patched() -> List[str]:
    cfg = _res.STATE.config
    return list(cfg.ops) if cfg is not None else []


# --------------------------------------------------------------------------------------------------------------
# native kernels

class _MissingNative:
    """Stands in for an op torch declares but has no kernel for at this key (e.g. _scaled_grouped_mm on CPU):
    flaggems may still serve it there; inputs we do not support raise torch's own "could not run" error."""

    def __init__(self, qualname: str, key: str):
        self.qualname, self.key = qualname, key

    def call_boxed(self, keyset, *args, **kwargs):
        raise NotImplementedError(
            f"Could not run '{self.qualname}' with arguments from the '{self.key}' backend: torch has no "
            f"{self.key} kernel for it and flaggems' implementations do not support these inputs")


_NATIVES: Dict[Tuple[str, str], object] = {}


def native_kernel(qualname: str, key: str):
    """torch's kernel of ``qualname`` at dispatch key ``key``, captured once (never while we are patched)."""
    hit = _NATIVES.get((qualname, key))
    if hit is not None:
        return hit
    if _PATCH_LIB is not None and qualname in patched():
        raise RegistrationError(f"cannot capture the native kernel of {qualname} while flaggems patches it")
    try:
        k = torch.library.get_kernel(qualname.replace(".default", ""), key)
    except RuntimeError as e:
        if "no kernel" not in str(e):
            raise
        k = _MissingNative(qualname, key)
    _NATIVES[(qualname, key)] = k
    return k


# --------------------------------------------------------------------------------------------------------------
# Python numbers in Tensor slots

def _category(dt) -> int:
    if dt is torch.bool:
        return 0
    if dt.is_complex:
        return 3
    if dt.is_floating_point:
        return 2
    return 1


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


def _rewrap(e: _res.OpEntry, args: tuple) -> tuple:
    if not e.tensor_slots:
        return args
    fixed = None
    for slot in e.tensor_slots:
        if slot < len(args) and isinstance(args[slot], Number) and not isinstance(args[slot], torch.Tensor):
            if fixed is None:
                fixed = list(args)
            fixed[slot] = _wrap_scalar(args[slot], args, slot)
    return args if fixed is None else tuple(fixed)


# --------------------------------------------------------------------------------------------------------------
# the override

def make_aten_override(e: _res.OpEntry, native) -> Callable:
    """The function registered at the vendor's dispatch key for one ATen overload."""
    name = e.qualname
    # torch hands "wrapped number" tensors (torch.add(2, t), or a native kernel's internal ones) to Python
    # overrides as plain numbers; a number in the self slot is served only by implementations declared to take
    # numbers (implement(numbers=True)) and stays native otherwise (their predicates expect a tensor there)
    self_slot = 0 in e.tensor_slots
    numbers_ok = bool(e.impls) and all(i.numbers for i in e.impls)
    tls = _res.TLS
    dispatch = _res.dispatch
    res = _res

    def override(keyset, *args, **kwargs):
        busy = tls.busy
        if self_slot and args and isinstance(args[0], Number) and not isinstance(args[0], torch.Tensor) and \
                not (numbers_ok and not res.STATE.overrides.get(name)):
            impl, reason = None, "wrapped number operand"
        elif name in busy:
            # an implementation re-entered its own op: serve it natively, never recurse
            impl, reason = None, "re-entrant call"
        else:
            impl, reason = dispatch(e, args, kwargs)
        obs = res._OBSERVER
        if impl is None:
            if obs is not None:
                obs(name, None, reason)
            return native.call_boxed(keyset, *_rewrap(e, args), **kwargs)
        if obs is not None:
            obs(name, impl.kind, None)
        busy.add(name)
        try:
            return impl.fn(*args, **kwargs)
        finally:
            busy.discard(name)

    override.__name__ = f"flaggems_{e.base}_{e.overload}"
    override.__qualname__ = override.__name__
    return override


def _aten_entries() -> List[_res.OpEntry]:
    return [e for q, e in _res.entries().items() if e.namespace == "aten" and e.impls]


def apply(include=None, exclude=None) -> Config:
    """Patch the selected ATen overloads (replacing any previous patch)."""
    global _PATCH_LIB
    state = _res.STATE
    if state.vendor is None:
        raise RegistrationError("no vendor selected")
    for what, names in (("include", include), ("exclude", exclude)):
        if isinstance(names, str):
            raise TypeError(f"{what} must be a list of op names, not a string ({names!r})")
    exclude = tuple(exclude or ())
    inc = None if include is None else tuple(include)
    decl = _res.declared()
    ents = _res.entries()
    excluded = set(expand_names(exclude, decl, strict=False, what="exclude"))
    if inc is not None:
        wanted = set(expand_names(inc, decl, strict=True, what="include"))
    else:
        wanted = {e.qualname for e in _aten_entries()} | {q for q in ents if q.startswith("flaggems::")}
    aten = sorted(q for q in wanted if q.startswith("aten::") and q not in excluded and q not in state.denied
                  and ents[q].impls)
    remove()
    # flaggems:: ops outside the selection are served by their reference
    custom_off = {q for q in ents if q.startswith("flaggems::") and (q not in wanted or q in excluded)}
    key = state.vendor.dispatch_key
    lib = torch.library.Library("aten", "IMPL")
    try:
        natives = {q: native_kernel(q, key) for q in aten}
        with warnings.catch_warnings():
            # torch warns once that we override a registered kernel: that is the point of enable()
            warnings.filterwarnings("ignore", message="Warning only once for all operators")
            warnings.filterwarnings("ignore", message="(?s).*Overriding a previously registered kernel")
            for q in aten:
                e = ents[q]
                name = e.base if e.overload == "default" else f"{e.base}.{e.overload}"
                lib.impl(name, make_aten_override(e, natives[q]), key, with_keyset=True)
    except Exception as ex:
        lib._destroy()
        raise RegistrationError(f"registering flaggems overrides at {key} failed: {ex}") from ex
    _PATCH_LIB = lib
    state.excluded = frozenset(excluded | custom_off | {q for q in ents if q.startswith("aten::")
                                                        and q not in aten})
    state.config = Config(inc, exclude, tuple(aten))
    _res.clear_caches()
    return state.config


def remove() -> None:
    """Restore every patched ATen op to its native kernel."""
    global _PATCH_LIB
    if _PATCH_LIB is not None:
        _PATCH_LIB._destroy()
        _PATCH_LIB = None
    _res.STATE.config = None
    _res.STATE.excluded = frozenset()
    _res.clear_caches()


@contextlib.contextmanager
def override_vendor(plugin):
    """Run a block with another vendor plugin active (tests and device-validation tools).

    Capability flags, deny list, overrides and preferred kinds follow the plugin, and the current selection
    is re-applied at its dispatch key. Restores the previous plugin and configuration on exit.
    """
    cfg = _res.STATE.config
    prev = _vendors.set_active(plugin)
    try:
        if cfg is not None:
            apply(cfg.include, cfg.exclude)
        yield plugin
    finally:
        _vendors.set_active(prev)
        if cfg is not None:
            apply(cfg.include, cfg.exclude)
        else:
            remove()
