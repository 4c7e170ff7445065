"""``fgsim``: a simulated accelerator with no kernels of its own, for running flaggems the way a vendor does.

A real vendor's device reaches torch as a PrivateUse1 backend (torch_npu, torch_mlu, torch_musa): its runtime
gives torch memory, copies and device management, and everything that computes comes from an operator library.
This package is that first day, on any machine: ``load()`` compiles a small C++ extension (cached), registers it
at PrivateUse1 and renames the backend to ``fgsim``, so ``torch.device("fgsim")``, ``tensor.to("fgsim")``,
``torch.fgsim.*``, device guards and autograd work — while every compute op on an fgsim tensor fails with torch's
own "Could not run 'aten::…' with arguments from the 'fgsim' backend" unless flaggems serves it.

Device memory is host memory, so flaggems' C++ kernels read it directly and the Triton interpreter's
host copies are plain memcpys. ``FLAGGEMS_VENDOR=sim`` selects the matching vendor plugin
(flaggems/vendors/sim.py), whose selection imports :mod:`flaggems.testing.simdevice.register`.
"""
from __future__ import annotations

import threading

from .build import SimDeviceBuildError, cache_dir  # noqa: F401

DEVICE_TYPE = "fgsim"

# Everything the backend registers at PrivateUse1: what a vendor runtime provides before any operator library.
# Kept in step with csrc/memory_ops.cpp; tests/simdevice/test_backend.py checks it against the dispatcher.
REGISTERED_ATEN_OPS = frozenset({
    "aten::empty.memory_format",
    "aten::empty_strided",
    "aten::as_strided",
    "aten::view",
    "aten::_reshape_alias",
    "aten::view_as_real",
    "aten::view_as_complex",
    "aten::unfold",
    "aten::resize_",
    "aten::set_",
    "aten::set_.source_Storage",
    "aten::set_.source_Storage_storage_offset",
    "aten::set_.source_Tensor",
    "aten::_copy_from",
    "aten::_copy_from_and_resize",
    "aten::_local_scalar_dense",
})

# Fallthroughs at the Conjugate / Negative keys, so conj/neg views reach _copy_from with their bits (which it
# applies) instead of being materialised by a clone, i.e. a copy_, i.e. _copy_from again (endless recursion).
REGISTERED_FALLTHROUGHS = frozenset({
    ("aten::_copy_from", "Conjugate"), ("aten::_copy_from_and_resize", "Conjugate"),
    ("aten::_copy_from", "Negative"), ("aten::_copy_from_and_resize", "Negative"),
})

_LOCK = threading.Lock()
_BUILD_SECONDS: float | None = None


class SimDeviceError(RuntimeError):
    """The simulated device cannot be registered in this process."""


def is_loaded() -> bool:
    """True once this process registered the fgsim backend (never undone: torch cannot unregister a backend)."""
    import torch

    return torch._C._get_privateuse1_backend_name() == DEVICE_TYPE and hasattr(torch, DEVICE_TYPE)


def load(verbose: bool = False) -> None:
    """Build (first time, ~30-60 s; later a cache hit) and register the fgsim device. Idempotent."""
    global _BUILD_SECONDS
    import torch

    with _LOCK:
        if is_loaded():
            return
        current = torch._C._get_privateuse1_backend_name()
        if current not in ("privateuseone", DEVICE_TYPE):
            raise SimDeviceError(
                f"this process already has a PrivateUse1 backend ({current!r}); torch allows one, so the simulated "
                f"{DEVICE_TYPE!r} device cannot be added")
        from .build import build
        from . import device_module

        _, _BUILD_SECONDS = build(verbose=verbose)
        if current != DEVICE_TYPE:
            torch.utils.rename_privateuse1_backend(DEVICE_TYPE)
        torch._register_device_module(DEVICE_TYPE, device_module)
        # Tensor.fgsim(), Tensor.is_fgsim, UntypedStorage.fgsim() ... like torch.Tensor.cuda()
        torch.utils.generate_methods_for_privateuse1_backend(for_storage=True)


def build_seconds() -> float | None:
    """Wall time the last ``load()`` spent in cpp_extension (compile, or a cache check when nothing changed)."""
    return _BUILD_SECONDS
