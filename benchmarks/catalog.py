"""Every benchmark case: imports the case modules (which register their providers in ``cases``) and selects."""
from __future__ import annotations

from typing import List, Optional, Sequence

from . import cases_aten, cases_deepseek, cases_moe  # noqa: F401  (register providers, in this order)
from .cases import Case, Ctx, registered


def all_cases(ctx: Ctx, ops: Optional[Sequence[str]] = None) -> List[Case]:
    """The cases for ``ctx`` whose op name, op base name or kind is in ``ops`` (all when None)."""
    return registered(ctx, ops)
