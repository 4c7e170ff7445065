"""One registry over ATen (and ``flaggems::`` custom ops), in four layers with one-way flow:

- :mod:`.names`       the vocabulary: canonical ATen names, schemas, user names -> overloads;
- :mod:`.resolution`  declarations (``implement``) and per-call resolution against the active vendor;
- :mod:`.custom_ops`  ``torch.ops.flaggems.*`` declared with a reference, a fake kernel and a check;
- :mod:`.override`    ``enable()``: overrides at the vendor's dispatch key over captured native kernels.

Each layer imports only the ones above it in this list (and ``flaggems.vendors`` / ``flaggems.formats``).
``record()`` subscribes to outcomes with :func:`set_observer` and asks :func:`why_not_served`.
"""
from .custom_ops import custom_op
from .names import RegistrationError, aten_op_exists, canonical, expand_names, op_schema
from .override import (Config, apply, current_config, make_aten_override, native_kernel, override_vendor,
                       patched, remove)
from .resolution import (KINDS, STATE, Impl, OpEntry, clear_caches, declared, dispatch, entries, implement,
                         kind_order, prefer_impl, seal, serving, set_observer, why_not_served)

__all__ = ["custom_op", "RegistrationError", "aten_op_exists", "canonical", "expand_names", "op_schema", "Config",
           "apply", "current_config", "make_aten_override", "native_kernel", "override_vendor", "patched",
           "remove", "KINDS", "STATE", "Impl", "OpEntry", "clear_caches", "declared", "dispatch", "entries",
           "implement", "kind_order", "prefer_impl", "seal", "serving", "set_observer", "why_not_served"]
