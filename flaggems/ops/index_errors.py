"""How the indexing kernels report an out-of-range index without a host sync on accelerators.

Every index kernel (take / put / the multi-index fold, take_put.py and advanced_index.py) masks an out-of-range
index (it is never dereferenced: reads give 0, writes are skipped) and, when checking, records it in a small
device-side error record ``rec`` of int64 words:

    rec[0] = 1 once claimed     rec[1] = error kind (KINDS)     rec[2] = the index     rec[3] = the dim's size
    rec[4] = the dim

The first program that finds a bad index claims the record with an atomic compare-and-swap on rec[0] and
writes the rest, so its fields always describe one error; programs without a bad index only do one reduction.

When the host looks at the record depends on where the tensors live (``mode()``):

- ``"eager"`` on the cpu vendor: every call gets a fresh record and reads it right after the launch (host
  memory, so the read costs nothing) and raises torch's exception class and message, as torch's CPU kernels do.
- ``"deferred"`` on an accelerator vendor: no host read at all. The kernels write one sticky record per device
  (allocated once, so its address is stable under CUDA-graph capture and replay); :func:`check` reads it where
  the caller already synchronises (e.g. after sampling the next token) and raises the recorded error, and a
  record still set at interpreter exit is reported as a warning. This is how torch's CUDA kernels behave too:
  their index kernels carry a device-side assert (``CUDA_KERNEL_ASSERT``), never a host read; the error
  surfaces later, at whatever call next synchronises, as "device-side assert triggered". Here the error is
  reported with torch's class and message, and the device stays usable (nothing was read or written out of
  bounds), where a CUDA assert poisons the context. We do not use ``tl.device_assert``: Triton compiles it only
  in debug mode (``TRITON_DEBUG=1`` / ``debug=True``, which also turns on integer-overflow checks for the whole
  kernel), so in a normal build it would not even report.
- ``FLAGGEMS_INDEX_CHECK=sync``: eager on every vendor (a debug mode, one device->host sync per call, like
  ``CUDA_LAUNCH_BLOCKING=1`` for torch); ``FLAGGEMS_INDEX_CHECK=0``: no record (bad indices still masked).
"""
from __future__ import annotations

import atexit
import os
import threading
import warnings
from typing import Callable, Optional

import torch

# error kinds written into rec[1]: (exception class, message template); {i}, {d}, {n} from the record
KINDS = {
    # index_select / embedding (torch: "index out of range in self")
    2: (IndexError, "index out of range in self"),
    # gather / scatter / index_add (torch's CPU kernels: RuntimeError)
    3: (RuntimeError, "index {i} is out of bounds for dimension {d} with size {n}"),
    # index.Tensor / index_put (IndexError)
    4: (IndexError, "index {i} is out of bounds for dimension {d} with size {n}"),
}
SELECT, ALONG_DIM, ADVANCED = 2, 3, 4
RECORD_WORDS = 5

_sticky = {}
_lock = threading.Lock()


def mode() -> str:
    """"eager", "deferred" or "off" (see the module docstring)."""
    env = os.environ.get("FLAGGEMS_INDEX_CHECK", "1").lower()
    if env in ("0", "off", "false"):
        return "off"
    if env == "sync":
        return "eager"
    from ..vendors import active

    return "eager" if active().device_type == "cpu" else "deferred"


def error_from(kind: int, index: int, size: int, dim: int) -> Exception:
    cls, template = KINDS.get(kind, (RuntimeError, "index {i} is out of bounds for dimension {d} with size {n}"))
    return cls(template.format(i=index, d=dim, n=size))


def _sticky_record(device: torch.device) -> torch.Tensor:
    key = str(device)
    rec = _sticky.get(key)
    if rec is None:
        with _lock:
            rec = _sticky.get(key)
            if rec is None:
                rec = torch.zeros(RECORD_WORDS, dtype=torch.int64, device=device)
                _sticky[key] = rec
    return rec


class Check:
    """The record one call's kernels write (``rec`` is None when not checking) and how the call finishes."""

    __slots__ = ("rec", "kind", "eager")

    def __init__(self, device: torch.device, kind: int):
        m = mode()
        self.kind = kind
        self.eager = m == "eager"
        if m == "off":
            self.rec = None
        elif self.eager:
            self.rec = torch.zeros(RECORD_WORDS, dtype=torch.int64, device=device)
        else:
            self.rec = _sticky_record(device)

    def finish(self, make_error: Optional[Callable[[], Exception]] = None) -> None:
        """Eager: raise the call's error (``make_error()`` builds torch's exact message from host memory, else the
        record's). Deferred / off: nothing here (``check()`` raises later)."""
        if not self.eager or self.rec is None:
            return
        rec = self.rec.tolist()
        if rec[0]:
            raise make_error() if make_error is not None else error_from(*rec[1:])


def check(device=None) -> None:
    """Raise the out-of-range index error recorded on ``device`` (every device used so far when None) and clear
    the record. One device->host read per device: call it where the host synchronises anyway."""
    with _lock:
        items = [(k, r) for k, r in _sticky.items() if device is None or k == str(torch.device(device))]
    for _, rec in items:
        words = rec.tolist()
        if words[0]:
            rec.zero_()
            raise error_from(*words[1:])


def pending() -> list:
    """The errors recorded and not yet checked, as (device, exception) pairs; clears nothing."""
    with _lock:
        items = list(_sticky.items())
    out = []
    for key, rec in items:
        words = rec.tolist()
        if words[0]:
            out.append((key, error_from(*words[1:])))
    return out


@atexit.register
def _report_at_exit():
    try:
        errs = pending()
    except Exception:  # the device runtime may already be torn down
        return
    for dev, err in errs:
        warnings.warn(f"flaggems: an out-of-range index was recorded on {dev} and never checked "
                      f"(flaggems.ops.index_errors.check()): {type(err).__name__}: {err}", RuntimeWarning)
