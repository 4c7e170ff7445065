"""Runtime helpers shared by the kernels: interpreter state, device guards, launch configs, tuning.

Layering inside: ``interpreter`` and ``device`` (where kernels run) <- ``config_cache`` <- ``autotune``
(choosing configs) <- this package's ``config``. Nothing here imports the registry or the ops.
"""
from __future__ import annotations

from .device import device_guard, device_name, interpreting, next_pow2, planning_as_device  # noqa: F401
from .interpreter import install_fixup, interpreter_requested  # noqa: F401
from .autotune import candidates, config_keys  # noqa: F401


def config(kernel: str, default: dict, dtype=None) -> dict:
    """The first tuned config the vendor declares for ``kernel`` (per dtype / target first), else ``default``."""
    return candidates(kernel, [default], dtype)[0]


def launch_config(kernel: str, dtype, default: dict) -> dict:
    """``default`` with the vendor's most specific entry for ``kernel`` on top (see ``autotune.config_keys``).

    For launchers that compute their defaults from the shapes and are never timed at serving time (decode-path
    kernels, some writing in place): only the first config of an entry is used, and any key may be overridden::

        "sparse_attn.bfloat16": [{"BLOCK_H": 32, "BLOCK_K": 64, "num_warps": 8}],
        "sparse_attn":          [{"BLOCK_K": 32}]
    """
    return {**default, **config(kernel, {}, dtype)}
