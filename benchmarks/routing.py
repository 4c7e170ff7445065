"""Which implementation kind a case times on this vendor, and the contexts that route each side to it."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional, Tuple

import flaggems
from flaggems import registry

from .cases import Case, Ctx
from .device import peer_module


def choose_impl(case: Case, ctx: Ctx) -> Tuple[Optional[str], Optional[str]]:
    """(implementation kind to time, None) or (None, reason to skip)."""
    v = flaggems.vendor()
    if "fallback" in case.impls:
        return "fallback", None
    if ctx.impl is not None:
        if ctx.impl not in case.impls:
            return None, f"no {ctx.impl} implementation (has: {', '.join(case.impls)})"
        kind = ctx.impl
    else:
        kind = next((k for k in v.prefer if k in case.impls), None)
        if kind is None:
            return None, "no implementation for this vendor"
    if kind == "triton" and v.interpret:
        return None, ("Triton runs through the interpreter on this vendor (timings meaningless for speed); "
                      "run on a GPU vendor")
    if kind == "cpp" and ctx.device != "cpu":
        return None, "C++ kernels serve CPU tensors only"
    return kind, None


def direct_impl(case: Case, kind: str) -> Optional[Callable[[dict], Any]]:
    """The implementation of a flaggems:: custom op called directly (no custom-op / registry dispatch)."""
    q = case.meta.get("custom_op")
    if q is None or kind not in registry.KINDS:
        return None
    entry = registry.entries().get(q)
    vname = flaggems.vendor().name
    impl = next((i for i in (entry.impls if entry else ()) if i.kind == kind and i.vendor in (None, vname)), None)
    if impl is None:
        return None
    args = case.meta["args"]
    return lambda inp: impl.fn(*args(inp))


def gems_context(case: Case, kind: str) -> Callable[[], Any]:
    """Context factory that routes the flaggems side to implementation `kind`."""
    @contextlib.contextmanager
    def ctx():
        with contextlib.ExitStack() as st:
            if kind in registry.KINDS:
                st.enter_context(flaggems.prefer_impl(kind))
            if case.aten:
                st.enter_context(flaggems.use_gems(include=list(case.aten)))
            yield
    return ctx


def peer_context() -> Callable[[], Any]:
    fg = peer_module()

    @contextlib.contextmanager
    def ctx():
        with fg.use_gems():
            yield
    return ctx
