"""flaggems vendor plugin for the Acme accelerator — an out-of-tree example.

A chip maker ships this package; flaggems' tree is untouched. ``pip install flaggems-acme`` registers the
``acme`` plugin in the ``flaggems.vendors`` entry-point group; ``import flaggems`` then selects it when
``detect()`` is true (or when ``FLAGGEMS_VENDOR=acme``).

A real Acme plugin would say ``device_type="acme"``, ``dispatch_key="PrivateUse1"``,
``extension_modules=("torch_acme",)`` and detect ``torch_acme``. So that this example runs (and is tested) on any
machine, it serves CPU tensors through the Triton interpreter when ``ACME_SIMULATE=1``.

Rule: this module is imported during vendor selection, *before* flaggems switches Triton to interpret mode, so it
must not define ``@triton.jit`` kernels at import time: they live in ``acme_flaggems.kernels``, imported on
first use.
"""
import os

import torch

from flaggems.vendors import Capabilities, Override, VendorPlugin
from flaggems.vendors._detect import privateuse1_extension

CONFIGS = os.path.join(os.path.dirname(__file__), "configs", "acme.json")
SIMULATED = os.environ.get("ACME_SIMULATE") == "1"


def _detect() -> bool:
    return SIMULATED or privateuse1_extension("torch_acme", "acme")


def _silu(x):
    from . import kernels  # lazy: decorated after flaggems chose interpret mode (or not)

    return kernels.silu(x)


def make() -> VendorPlugin:
    return VendorPlugin(
        name="acme",
        device_type="cpu" if SIMULATED else "acme",
        dispatch_key="CPU" if SIMULATED else "PrivateUse1",
        detect=_detect,
        # Acme has no fp64 and no fp8: those inputs go to the native kernels.
        capabilities=Capabilities(fp64=False, bf16=True, fp16=True, fp8=False, fp4=False, int64=True,
                                  dot_scaled=False),
        tuned_configs=CONFIGS,
        deny=frozenset({"sort"}),
        # One explicit override: Acme's own SiLU for fp32 (other dtypes keep flaggems' generic kernel).
        overrides=(Override(op="aten::silu.default", fn=_silu, kind="triton", dtypes=frozenset({torch.float32})),),
        interpret=SIMULATED,
        triton_distribution="triton-acme",
        prefer=("triton", "cpp"),
        priority=50,
        hardware_verified=False,
        extension_modules=() if SIMULATED else ("torch_acme",),
        description="Acme accelerator (example plugin; simulated on CPU with ACME_SIMULATE=1).",
    )
