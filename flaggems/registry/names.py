"""ATen names: the one vocabulary for registering, selecting, denying, reporting and testing ops.

``aten::add.Tensor``, ``aten::mm.default``, ``flaggems::sparse_attn.default``; users may write ``"mm"`` (every
overload), ``"mm.out"`` (one overload) or the ``aten::`` form.
"""
from __future__ import annotations

from typing import Tuple

import torch


class RegistrationError(RuntimeError):
    """An op could not be declared or patched. Never downgraded to a warning."""


def split(qualname: str) -> Tuple[str, str, str]:
    """'aten::add.Tensor' -> ('aten', 'add', 'Tensor'); a missing overload is 'default'."""
    ns, _, rest = qualname.partition("::")
    base, _, overload = rest.partition(".")
    return ns, base, overload or "default"


def canonical(name: str, default_ns: str = "aten") -> str:
    """'add.Tensor' -> 'aten::add.Tensor'; 'mm' -> 'aten::mm.default'."""
    if "::" not in name:
        name = f"{default_ns}::{name}"
    ns, base, overload = split(name)
    return f"{ns}::{base}.{overload}"


def op_schema(qualname: str):
    """The dispatcher's schema of one overload; RegistrationError if this torch does not know it."""
    ns, base, overload = split(qualname)
    try:
        return torch._C._get_schema(f"{ns}::{base}", "" if overload == "default" else overload)
    except RuntimeError as e:
        raise RegistrationError(f"{qualname} is not an operator known to this torch ({torch.__version__})") from e


def aten_op_exists(name: str) -> bool:
    """Whether this torch defines the ATen op (``"mm"``) or overload (``"mm.out"``)."""
    ns, base, overload = split(canonical(name))
    if ns != "aten":
        return False
    packet = getattr(torch.ops.aten, base, None)
    if packet is None:
        return False
    if "." not in name.split("::")[-1]:
        return True
    return overload in packet.overloads() or (overload == "default" and "default" in packet.overloads())


def expand_names(names, declared, strict: bool = True, what: str = "exclude"):
    """User names -> the canonical overload names among ``declared``.

    ``"mm"`` is every declared overload of mm (and of ``flaggems::mm`` when the name has no namespace),
    ``"mm.out"`` one overload. An unknown name raises ValueError with close matches; with ``strict=False`` a
    real ATen op flaggems does not declare is a no-op (excluding or denying it is true already).
    """
    import difflib

    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of op names, not a string ({names!r})")
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
            continue
        pool = sorted({d.split("::")[1] for d in declared} | {d.split("::")[1].split(".")[0] for d in declared})
        close = difflib.get_close_matches(body, pool, n=5)
        hint = f" Close matches: {close}." if close else ""
        if real:
            raise ValueError(f"{what}: flaggems has no implementation of aten::{body}.{hint}")
        raise ValueError(f"{what}: unknown op name {raw!r}.{hint}")
    return out
