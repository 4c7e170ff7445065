"""Pointwise kernel generator: one small ``@triton.jit`` kernel per (scalar function, operand count).

    pointwise_<name>_<N>: out[o(i)] = <name>(x_1[s_1(i)], ..., x_N[s_N(i)])   for i < n

where ``<name>`` is a registered scalar function: a ``@triton.jit`` function of 1 to 4 operands, already in the
compute dtype, and optionally a last parameter named ``R`` that receives the result dtype as a constexpr (for
ops that round intermediate steps to it, as torch's fp16/bf16 kernels do in floor division). A kernel with
fewer operands than the function takes passes its first operand for the rest. o / s_k address a 4-dim coalesced
index space through each tensor's strides (pointwise_jit.py holds the device helpers the kernels call).

Why generated kernels: the op used to be a ``@triton.jit`` function passed as a constexpr (``OP=_add``), which
triton-ascend's launcher refuses, and one kernel with three operand slots made every op carry unused
arguments. A generated kernel names its op as a module global instead.

Where they live: the source is written once, atomically, to ``<FLAGGEMS_CACHE_DIR>/pointwise/`` (a temporary
directory when that is not writable), named by the hash of its text, and executed as a module whose
``__name__`` is this module's. So each kernel is ``flaggems.ops.pointwise_codegen:pointwise_<name>_<N>`` with a
real source file (Triton reads it; compile errors point at its lines), and this module's ``__getattr__``
rebuilds any kernel from its name alone: ``python -m flaggems aot`` records that reference and its compile
workers (other Pythons, other Tritons) resolve it by importing this module, whether or not the file exists
on their side.

Scalar functions are registered by name (``scalar_function``; the elementwise family maker registers its
own): names are unique, so a kernel name says which op it computes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
import threading
from typing import Dict, Optional, Tuple

TEMPLATE_VERSION = 1
MAX_OPERANDS = 4
PREFIX = "pointwise_"

_SCALARS: Dict[str, object] = {}            # name -> @triton.jit scalar function
_NAMES: Dict[int, str] = {}                 # id(scalar function) -> name
_KERNELS: Dict[Tuple[int, int], object] = {}   # (id(scalar function), operand count) -> kernel
_LOCK = threading.RLock()
_DIR: Optional[str] = None
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _jit_python_function(fn):
    inner = getattr(fn, "fn", None)
    if inner is None or not hasattr(inner, "__code__"):
        raise TypeError(f"a pointwise scalar function must be a @triton.jit function, not {fn!r}")
    return inner


def register(fn, name: Optional[str] = None) -> str:
    """Register ``fn`` (a module-level ``@triton.jit`` function) as scalar function ``name``; returns the name.

    The default name is the function's name without leading underscores. A name is taken once: registering a
    different function under it raises (re-registering the same module-level function, e.g. on a module
    reload, replaces it).
    """
    py = _jit_python_function(fn)
    _signature(py)
    name = name or py.__name__.lstrip("_")
    if not _NAME_RE.match(name):
        raise ValueError(f"pointwise scalar function name {name!r} is not an identifier")
    with _LOCK:
        have = _SCALARS.get(name)
        if have is not None and have is not fn:
            hp = _jit_python_function(have)
            if (hp.__module__, hp.__qualname__) != (py.__module__, py.__qualname__):
                raise ValueError(f"pointwise scalar function name {name!r} is taken by "
                                 f"{hp.__module__}.{hp.__qualname__}")
            _NAMES.pop(id(have), None)
            for key in [k for k in _KERNELS if k[0] == id(have)]:
                del _KERNELS[key]
        _SCALARS[name] = fn
        _NAMES[id(fn)] = name
    return name


def scalar_function(fn=None, *, name: Optional[str] = None):
    """Decorator form of :func:`register` (over ``@triton.jit``): ``@scalar_function`` or
    ``@scalar_function(name="gelu_tanh")``."""
    if fn is None:
        return lambda f: (register(f, name), f)[1]
    register(fn, name)
    return fn


def name_of(fn) -> str:
    name = _NAMES.get(id(fn))
    if name is None:
        py = _jit_python_function(fn)
        raise KeyError(f"{py.__module__}.{py.__qualname__} is not a registered pointwise scalar function "
                       f"(decorate it with @scalar_function)")
    return name


def _signature(py) -> Tuple[int, bool]:
    """(operand count, takes R) of a scalar function."""
    names = py.__code__.co_varnames[:py.__code__.co_argcount]
    wants_r = bool(names) and names[-1] == "R"
    n = len(names) - wants_r
    if not 1 <= n <= MAX_OPERANDS:
        raise TypeError(f"pointwise scalar function {py.__qualname__} must take 1 to {MAX_OPERANDS} operands "
                        f"(and optionally R, the result dtype), not {names}")
    return n, wants_r


def kernel_name(name: str, n_in: int) -> str:
    return f"{PREFIX}{name}_{n_in}"


_OPERANDS = "abcd"


def source(name: str, n_in: int) -> str:
    """The text of kernel ``pointwise_<name>_<n_in>``."""
    if not 1 <= n_in <= MAX_OPERANDS:
        raise ValueError(f"pointwise kernels take 1 to {MAX_OPERANDS} operands, not {n_in}")
    fn = _SCALARS[name]
    py = _jit_python_function(fn)
    ops = _OPERANDS[:n_in]
    kname = kernel_name(name, n_in)
    ptrs = ", ".join(f"{x}_ptr" for x in ops)
    vals = ", ".join(f"{x}_val" for x in ops)
    strides = "\n".join(f"    s{x}0, s{x}1, s{x}2, s{x}3," for x in "o" + ops)
    flags = ", ".join(f"{x.upper()}_SCALAR: tl.constexpr" for x in ops)
    contig = ", ".join(f"{x.upper()}_CONTIG: tl.constexpr" for x in "o" + ops)
    loads = "\n".join(
        f"    {x} = load_operand({x}_ptr, {x}_val, idx, mask, s{x}0, s{x}1, s{x}2, s{x}3, d1, d2, d3, "
        f"{x.upper()}_SCALAR, {x.upper()}_CONTIG, COMPUTE, BLOCK)" for x in ops)
    takes, wants_r = _signature(py)
    if n_in > takes:
        raise ValueError(f"{py.__qualname__} takes {takes} operands, not {n_in}")
    call = ", ".join(list(ops) + ["a"] * (takes - n_in) + (["RESULT"] if wants_r else []))
    return f'''"""Generated by flaggems.ops.pointwise_codegen (template {TEMPLATE_VERSION}); rebuilt when missing, do not edit.

out[i] = {name}({", ".join(ops)}) with {py.__module__}.{py.__qualname__}: operands converted to COMPUTE,
the result rounded to RESULT (torch's result dtype), then to out's dtype.
"""
import triton
import triton.language as tl

from flaggems.ops.pointwise_jit import cvt, flat_index, load_operand, store_result
from {py.__module__} import {py.__qualname__} as op


@triton.jit
def {kname}(
    out_ptr, {ptrs}, {vals},
{strides}
    d1, d2, d3, n,
    COMPUTE: tl.constexpr, RESULT: tl.constexpr, {flags},
    {contig},
    IDX64: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = flat_index(BLOCK, IDX64)
    mask = idx < n
{loads}
    r = cvt(op({call}), RESULT)
    store_result(out_ptr, r, idx, mask, so0, so1, so2, so3, d1, d2, d3, O_CONTIG)
'''


def generated_dir() -> str:
    """Where generated sources are written: the flaggems cache, else a private temporary directory."""
    global _DIR
    if _DIR is not None:
        return _DIR
    from ..runtime.config_cache import default_dir

    path = os.path.join(default_dir(), "pointwise")
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True)
        probe.close()
    except OSError:
        # an unwritable cache must not stop the ops: the kernels live in this process's temporary directory
        path = tempfile.mkdtemp(prefix="flaggems-pointwise-")
    _DIR = path
    return path


def _write(text: str, kname: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(generated_dir(), f"{kname}_{digest}.py")
    try:
        with open(path) as f:
            if f.read() == text:
                return path
    except OSError:
        pass
    # written under a temporary name and renamed: a concurrent process never imports a partial file
    fd, tmp = tempfile.mkstemp(prefix=f".{kname}-", suffix=".py", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def _load(path: str, kname: str):
    # executed under this module's name (not put in sys.modules): the kernel's reference
    # `flaggems.ops.pointwise_codegen:<kname>` then resolves through __getattr__ in any process
    spec = importlib.util.spec_from_file_location(__name__, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, kname)


def kernel(fn, n_in: int):
    """The generated kernel computing scalar function ``fn`` over ``n_in`` operands (built once per process)."""
    hit = _KERNELS.get((id(fn), n_in))
    if hit is not None:
        return hit
    with _LOCK:
        hit = _KERNELS.get((id(fn), n_in))
        if hit is None:
            name = name_of(fn)
            kname = kernel_name(name, n_in)
            hit = _load(_write(source(name, n_in), kname), kname)
            _KERNELS[(id(fn), n_in)] = hit
    return hit


def kernel_by_name(kname: str):
    """``pointwise_<name>_<N>`` -> its kernel (the scalar functions are registered when flaggems is imported)."""
    m = re.match(rf"^{PREFIX}(.+)_(\d+)$", kname)
    if not m or m.group(1) not in _SCALARS:
        raise AttributeError(f"module {__name__!r} has no attribute {kname!r}")
    return kernel(_SCALARS[m.group(1)], int(m.group(2)))


def __getattr__(attr: str):
    if attr.startswith(PREFIX):
        return kernel_by_name(attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def registered() -> Dict[str, object]:
    """name -> scalar function, for tools and tests."""
    return dict(_SCALARS)

