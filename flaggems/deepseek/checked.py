"""The directly callable form of a registered implementation (``sparse_attn_triton``, ``sparse_attn_cpp``, ...).

A registered implementation trusts its arguments: the registry runs the custom op's ``check`` before any
implementation. Callers that bypass the op (tests, benchmarks, code that picks a kind by hand) get the same
check through :func:`checked`, so each op's argument rules are written once, in its ``check``.
"""
from __future__ import annotations

import functools
from typing import Callable


def checked(check: Callable, impl: Callable) -> Callable:
    """``impl`` preceded by ``check``; named like ``impl`` without its leading underscore."""

    @functools.wraps(impl)
    def entry(*args, **kwargs):
        check(*args, **kwargs)
        return impl(*args, **kwargs)

    entry.__name__ = entry.__qualname__ = impl.__name__.lstrip("_")
    entry.__doc__ = f"{impl.__name__} after the op's argument check {check.__name__}.\n\n{impl.__doc__ or ''}"
    return entry
