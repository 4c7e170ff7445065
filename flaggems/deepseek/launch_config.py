"""Block sizes for the DeepSeek-V4 Triton kernels: the kernel's own default, with the vendor's tuned entry on top.

Each launcher computes its default from the shapes (large blocks under the interpreter, whose cost grows with
programs x loop iterations; GPU-sized tiles elsewhere) and asks :func:`launch_config` with the kernel's name.
The vendor's tuned-config file (``flaggems/vendors/configs/<vendor>.json``, see ``runtime.config``) may override
any key, per dtype first::

    "sparse_attn.bfloat16": [{"BLOCK_H": 32, "BLOCK_K": 64, "num_warps": 8}],
    "sparse_attn":          [{"BLOCK_K": 32}]

Only the first config of an entry is used: these kernels sit on the decode path (and some write in place), so
they are never timed at serving time. The keys each kernel reads are listed in docs/CONTRIBUTING-internal.md.
"""
from __future__ import annotations

import torch

from flaggems.runtime import config


def dtype_key(kernel: str, dtype: torch.dtype) -> str:
    """The per-dtype config key, e.g. ``"sparse_attn.bfloat16"``."""
    return f"{kernel}.{str(dtype).rpartition('.')[2]}"


def launch_config(kernel: str, dtype: torch.dtype, default: dict) -> dict:
    """``default`` overridden by the vendor's ``"<kernel>.<dtype>"`` entry, else its ``"<kernel>"`` entry."""
    tuned = config(dtype_key(kernel, dtype), config(kernel, {}))
    return {**default, **tuned}

