"""Triton interpreter switch and numeric fix-up for bf16 / fp8 on CPU.

The stock interpreter (triton 3.6 .. 3.9) stores bf16 and fp8 values as raw
uint16/uint8 numpy arrays, so ``a + b`` on bf16 adds bit patterns, and its
float<->float conversion truncates instead of rounding to nearest even and does
not saturate fp32 -> e4m3fn the way torch (and the GPU's ``satfinite`` cvt) do.

The fix-up maps those Triton types to ``ml_dtypes`` numpy dtypes, so numpy does
real floating-point arithmetic, and routes float<->float conversion through
``ml_dtypes`` (round-to-nearest-even; e4m3fn saturating to +-448 like torch).
Raw memory still moves through the interpreter's C++ load/store as unsigned
integers of the same width.

It patches module-level hooks of ``triton.runtime.interpreter``; if those hooks
moved in a future Triton, :func:`install_fixup` raises instead of silently
computing garbage.

Device tensors (the simulated ``fgsim`` device of the ``sim`` vendor) need no
patch: the interpreter copies each argument's storage to the host with
``untyped_storage().cpu()`` and back with ``copy_`` (triton 3.6 .. 3.9), which
reach the device's own ``_copy_from``; views keep their offsets and strides
through ``set_``. tests/simdevice/test_kernels.py pins that behaviour.
"""
from __future__ import annotations

import os
import sys
import threading

_INSTALLED = False
# Serialises interpreted kernel launches across threads (see grid_call in install_fixup).
LAUNCH_LOCK = threading.RLock()


class InterpreterFixupError(RuntimeError):
    """Triton's interpreter internals are not where the fix-up expects them."""


def interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")


def enable_interpreter() -> None:
    """Switch Triton to interpret mode and install the numeric fix-up.

    Must run before any module that applies ``@triton.jit`` is imported: the mode is fixed at decoration
    time, so switching afterwards would leave those kernels without a driver.
    """
    if not interpreter_requested():
        early = [m for m in _KERNEL_PACKAGES if m in sys.modules]
        if early:
            raise RuntimeError(
                f"flaggems: kernel modules {early} were imported before the Triton interpreter was switched "
                "on; select the vendor (import flaggems, or set TRITON_INTERPRET=1) before importing them")
    os.environ["TRITON_INTERPRET"] = "1"
    install_fixup()


_KERNEL_PACKAGES = ("flaggems.ops", "flaggems.deepseek", "flaggems.formats")


def install_fixup() -> None:
    """Patch the interpreter's bf16/fp8 handling (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import ml_dtypes
    import numpy as np
    import triton.language as tl

    try:
        import triton.runtime.interpreter as interp
    except ImportError as e:  # pragma: no cover
        raise InterpreterFixupError(f"cannot import triton.runtime.interpreter: {e}") from e

    required = ("_get_np_dtype", "_convert_float", "InterpreterBuilder", "TensorHandle", "_interpreter",
                "GridExecutor")
    missing = [name for name in required if not hasattr(interp, name)]
    builder = getattr(interp, "InterpreterBuilder", None)
    for meth in ("create_masked_load", "create_masked_store"):
        if builder is not None and not hasattr(builder, meth):
            missing.append(f"InterpreterBuilder.{meth}")
    if missing:
        raise InterpreterFixupError(
            "flaggems' bf16/fp8 interpreter fix-up cannot find "
            f"{missing} in triton {getattr(sys.modules.get('triton'), '__version__', '?')}; "
            "the interpreter's internals moved, refusing to run with wrong bf16/fp8 numerics"
        )

    # Types the interpreter keeps as raw integers; float8e4b15 has no ml_dtypes twin
    # (and no torch dtype), so it keeps the stock behaviour.
    float_map = {
        tl.bfloat16: np.dtype(ml_dtypes.bfloat16),
        tl.float8e5: np.dtype(ml_dtypes.float8_e5m2),
        tl.float8e4nv: np.dtype(ml_dtypes.float8_e4m3fn),
        tl.float8e4b8: np.dtype(ml_dtypes.float8_e4m3fnuz),
        tl.float8e5b16: np.dtype(ml_dtypes.float8_e5m2fnuz),
    }
    numeric = {tl.float16: np.dtype(np.float16), tl.float32: np.dtype(np.float32),
               tl.float64: np.dtype(np.float64), **float_map}
    patched_types = frozenset(d.type for d in float_map.values())
    # torch saturates finite and infinite values into e4m3fn's range (as the GPU's
    # satfinite conversion does); the other fp8 formats overflow to inf / NaN in both.
    saturate = {tl.float8e4nv: float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max)}

    orig_get_np_dtype = interp._get_np_dtype
    orig_convert_float = interp._convert_float
    orig_load = builder.create_masked_load
    orig_store = builder.create_masked_store
    TensorHandle = interp.TensorHandle
    cpp = interp._interpreter

    def _get_np_dtype(tt_dtype):
        elem = tt_dtype.element_ty if isinstance(tt_dtype, tl.block_type) else tt_dtype
        if not isinstance(elem, tl.pointer_type) and elem in float_map:
            return float_map[elem]
        return orig_get_np_dtype(tt_dtype)

    def _values(data, tl_dtype):
        """``data`` as a numpy array of tl_dtype's values. Handles hold either that dtype, or its raw bits
        (unsigned integers of the same width: reinterpreted), or — the interpreter labels some results by the
        type they are about to be cast to (issue 13 #18: a comparison's bools reach a cast to bf16 labelled
        fp32) — values of another type (bool, integers of another width, floats): converted by value."""
        src = np.asarray(data)
        want = numeric[tl_dtype]
        if src.dtype == want:
            return src
        if src.dtype.kind == "u" and src.dtype.itemsize == want.itemsize:
            return src.view(want)
        return src.astype(want)

    def _convert_float(data, input_dtype, output_dtype, rounding_mode):
        if input_dtype in numeric and output_dtype in numeric:
            src = _values(data, input_dtype)
            if output_dtype in saturate:
                bound = saturate[output_dtype]
                src = np.clip(src.astype(np.float32), -bound, bound)
            out = src.astype(numeric[output_dtype])
            return out.view(np.dtype(f"uint{output_dtype.primitive_bitwidth}")).reshape(np.shape(data))
        return orig_convert_float(data, input_dtype, output_dtype, rounding_mode)

    def _raw(npd):
        return np.dtype(f"uint{npd.itemsize * 8}")

    def create_masked_load(self, ptrs, mask, other, cache_policy, is_volatile):
        elem = ptrs.get_element_ty()
        npd = _get_np_dtype(elem)
        if npd.type not in patched_types:
            return orig_load(self, ptrs, mask, other, cache_policy, is_volatile)
        raw = _raw(npd)
        other_raw = (np.zeros_like(ptrs.data, dtype=raw) if other is None
                     else np.ascontiguousarray(other.data).view(raw))
        ret = cpp.load(ptrs.data, mask.data, other_raw, raw)
        return TensorHandle(ret.view(npd), elem)

    def create_masked_store(self, ptrs, value, mask, cache_policy):
        data = value.data
        if data.dtype.type in patched_types:
            return cpp.store(ptrs.data, np.ascontiguousarray(data).view(_raw(data.dtype)), mask.data)
        return orig_store(self, ptrs, value, mask, cache_policy)

    # tl.dot_scaled decodes fp8 operands with integer bit masks on the raw bytes: hand it the bytes
    orig_mxfp = getattr(interp, "_mxfp_value_handle_to_float32", None)
    if orig_mxfp is not None:
        def _mxfp_value_handle_to_float32(value_handle):
            data = value_handle.data
            if data.dtype.type in patched_types and data.dtype.itemsize == 1:
                value_handle = TensorHandle(np.ascontiguousarray(data).view(np.uint8), value_handle.dtype)
            return orig_mxfp(value_handle)

        interp._mxfp_value_handle_to_float32 = _mxfp_value_handle_to_float32

    orig_call = interp.GridExecutor.__call__

    def grid_call(self, *args, **kwargs):
        # One interpreted launch at a time (issue 13 #11): the interpreter patches triton.language's builtins
        # and the kernel function's globals for the duration of a launch and restores them afterwards, so a
        # second thread launching meanwhile sees a half-patched module ("Did you forget to add @triton.jit ?")
        # or restores the first thread's patches away. The lock is re-entrant (a launch inside a launch, e.g.
        # from a pre-run hook, must not deadlock). Native and cpp kernels never take it.
        with LAUNCH_LOCK, np.errstate(all="ignore"):
            # Masked-off lanes compute 0/0 or exp overflow like on a GPU, which never warns; numpy would.
            return orig_call(self, *args, **kwargs)

    interp.GridExecutor.__call__ = grid_call
    _speed_up_lang_patching(interp, tl)
    interp._get_np_dtype = _get_np_dtype
    interp._convert_float = _convert_float
    builder.create_masked_load = create_masked_load
    builder.create_masked_store = create_masked_store
    _INSTALLED = True


def _speed_up_lang_patching(interp, tl) -> None:
    """Cache the builtin members the interpreter re-patches on every (nested) jit call.

    Stock ``_patch_builtin`` runs ``inspect.getmembers`` over ``triton.language`` each time a jit function is
    entered: 30-40% of a small launch. The member list never changes, and a member already patched by an
    enclosing call is skipped exactly as before (a patched member is a lambda, not a builtin). Speed only:
    if the hook is missing, nothing is patched.
    """
    import inspect

    orig = getattr(interp, "_patch_builtin", None)
    patch_attr = getattr(interp, "_patch_attr", None)
    if orig is None or patch_attr is None:
        return
    cache = {}

    def _patch_builtin(pkg, builder, scope):
        hit = cache.get(id(pkg))
        if hit is None or hit[0] is not pkg:
            hit = cache[id(pkg)] = (pkg, [(n, m) for n, m in inspect.getmembers(pkg) if tl.core.is_builtin(m)])
        for name, member in hit[1]:
            if getattr(pkg, name, None) is member:
                patch_attr(pkg, name, member, builder, scope)

    interp._patch_builtin = _patch_builtin


def fixup_installed() -> bool:
    return _INSTALLED
