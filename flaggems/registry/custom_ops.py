"""``torch.ops.flaggems.*``: DeepSeek kernels (and other ops without an ATen op) as torch custom ops.

Each is declared once with its schema, a pure-torch reference (served when no implementation accepts the
inputs), a fake (meta) kernel so torch.compile / FakeTensor / meta tensors see it, and an optional ``check``
that validates arguments on real and fake calls alike. Implementations are added with ``implement``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from . import resolution as _res
from .names import RegistrationError, split

_LIB = None


def _lib():
    global _LIB
    if _LIB is None:
        _LIB = torch.library.Library("flaggems", "DEF")
    return _LIB


def custom_op(qualname: str, schema: str, *, reference: Callable, fake: Callable,
              check: Optional[Callable] = None) -> _res.OpEntry:
    """Declare ``torch.ops.flaggems.<name>`` with its pure-torch reference and its fake (meta) kernel.

    ``schema`` is the signature without the name, e.g. ``"(Tensor x, int block) -> Tensor"``.
    """
    ns, base, overload = split(qualname if "::" in qualname else f"flaggems::{qualname}")
    if ns != "flaggems":
        raise RegistrationError(f"custom ops live in the flaggems namespace, got {qualname!r}")
    if overload != "default":
        raise RegistrationError(f"{qualname}: declare custom ops without an overload name")
    q = f"flaggems::{base}.default"
    if q in _res.entries():
        raise RegistrationError(f"{q} is already declared")
    if not callable(reference) or not callable(fake):
        raise RegistrationError(f"{q}: reference and fake must be callables")
    lib = _lib()
    try:
        lib.define(f"{base}{schema}")
    except Exception as e:
        raise RegistrationError(f"cannot define {q} with schema {schema!r}: {e}") from e
    e = _res.OpEntry(q)
    e.reference, e.fake, e.check = reference, fake, check
    _res.add_entry(e)
    tls = _res.TLS
    state = _res.STATE

    def run(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        if q in tls.busy:
            impl, reason = None, "re-entrant call"
        elif state.vendor is None:
            impl, reason = None, "flaggems vendor not initialised"
        else:
            impl, reason = _res.dispatch(e, args, kwargs)
        obs = _res._OBSERVER
        if impl is None:
            if obs is not None:
                obs(q, None, reason)
            return reference(*args, **kwargs)
        if obs is not None:
            obs(q, impl.kind, None)
        tls.busy.add(q)
        try:
            return impl.fn(*args, **kwargs)
        finally:
            tls.busy.discard(q)

    def fake_run(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        return fake(*args, **kwargs)

    run.__name__ = f"flaggems_{base}"
    try:
        lib.impl(base, run, "CompositeExplicitAutograd")
        torch.library.register_fake(f"flaggems::{base}", fake_run, lib=lib)
    except Exception as ex:
        raise RegistrationError(f"cannot register {q}: {ex}") from ex
    return e
