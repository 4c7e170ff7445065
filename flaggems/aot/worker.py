"""Compile worker: ``python -m flaggems.aot.worker`` in the Python whose Triton is being checked.

Reads one JSON job per line on stdin ({"spec": ..., "target": ..., "log": path}), compiles it with that Python's
``triton.compile`` and writes one JSON result per line on the protocol stream. Everything the compilers print
(ptxas logs, MLIR diagnostics, ``LLVM ERROR`` before an abort) goes to the job's log file, so when LLVM aborts
the whole process the parent still reads the reason there and starts a new worker.

Runs under any Triton from 3.2 (triton-ascend) to 3.9; :func:`make_source` holds the differences.
Started with ``FLAGGEMS_VENDOR`` set to a GPU vendor and ``TRITON_INTERPRET`` unset, so ``@triton.jit`` gives
real ``JITFunction`` objects.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import time
import traceback

from . import metrics


def _version(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:2])


def resolve(ref: str, file: str = None):
    """``"module:qualname"`` -> the object (a ``JITFunction`` for kernels).

    A module that is not importable by name (a kernel in a script or a test file) is loaded from ``file``
    (absolute, or relative to the directory holding the flaggems package).
    """
    module, qual = ref.split(":", 1)
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError:
        if not file:
            raise
        obj = _load_file(module, file)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _load_file(module: str, file: str):
    import importlib.util

    path = file if os.path.isabs(file) else os.path.join(os.path.dirname(_PKG_ROOT), file)
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None:
        raise ModuleNotFoundError(f"cannot load {module} from {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


def decode_constexpr(v):
    import triton.language as tl

    if isinstance(v, dict):
        if "dtype" in v:
            return tl.dtype(v["dtype"])
        if "jit" in v:
            return resolve(v["jit"])
        if "tuple" in v:
            return tuple(decode_constexpr(x) for x in v["tuple"])
    return v


class _FakeTensor:
    """Enough of a tensor for Triton 3.2's ``AttrsDescriptor`` to derive the divisibility hint."""

    def __init__(self, aligned: bool):
        self._ptr = 16 if aligned else 8

    def data_ptr(self):
        return self._ptr


def make_source(fn, spec: dict, target):
    """``ASTSource`` for ``spec``, spelled as the installed Triton wants it."""
    import triton
    from triton.compiler import ASTSource

    params = spec["params"]
    sig, hints = spec["signature"], spec["hints"]
    constexprs = {k: decode_constexpr(v) for k, v in spec["constexprs"].items()}
    if _version(triton.__version__) >= (3, 3):
        # 3.3+: the signature names every parameter ("constexpr" for compiled-in ones); constexprs and
        # attributes are keyed by argument path (index tuples); backend.parse_attr turns hint letters into
        # attributes ("D" -> tt.divisibility 16; on AMD "S" -> tt.pointer_range 32)
        from triton.compiler.compiler import make_backend

        backend = make_backend(target)
        attrs = {}
        for name, hint in hints.items():
            if target.backend != "hip":
                hint = hint.replace("S", "")
            else:
                hint = _amd_buffer_ops_filter(hint)
            parsed = backend.parse_attr(hint) if hint else []
            if parsed:
                attrs[(params.index(name),)] = parsed
        return ASTSource(fn, dict(sig), {(params.index(k),): v for k, v in constexprs.items()}, attrs)
    # 3.2 (triton-ascend): only non-constexpr parameters are in the signature; compiled-in values go in
    # `constants` by name (arguments equal to 1 stay typed i32 *and* constant; None is typed *i8); the
    # divisibility/equal-to-1 attributes come from the backend's AttrsDescriptor over stand-in values.
    from triton.compiler.compiler import make_backend

    backend = make_backend(target)
    signature, values = {}, []
    for p in fn.params:
        name = p.name
        ty = sig[name]
        if p.is_constexpr:
            values.append(constexprs[name])
            continue
        if ty == "constexpr":
            value = constexprs[name]
            signature[name] = "*i8" if value is None else "i32"
            values.append(value)
            continue
        signature[name] = ty
        aligned = "D" in hints.get(name, "")
        values.append(_FakeTensor(aligned) if ty.startswith("*") else (16 if aligned else 17) if ty[0] in "iu"
                      else 0.5)
    attrs = backend.get_attrs_descriptor(fn.params, values) if hasattr(backend, "get_attrs_descriptor") else None
    constants = {k: v for k, v in constexprs.items()}
    return ASTSource(fn, signature, constants, attrs)


def _amd_buffer_ops_filter(hint: str) -> str:
    try:
        from triton import knobs

        if not knobs.amd.use_buffer_ops:
            return hint.replace("S", "")
    except (ImportError, AttributeError):
        pass
    return hint


def _gpu_target(tdict):
    from triton.backends.compiler import GPUTarget

    backend, arch = tdict["backend"], tdict["arch"]
    warp = {"cuda": 32, "hip": 64}.get(backend, 0)
    return GPUTarget(backend, int(arch) if backend == "cuda" else arch, warp)


def _launcher_refuses_callables() -> bool:
    """Older launchers (triton 3.2 / triton-ascend) reject a ``@triton.jit`` function passed as a constexpr."""
    from triton.runtime.jit import JITFunction

    try:
        return "Callable constexpr" in inspect.getsource(JITFunction.run)
    except (OSError, TypeError):
        return False


def _run_front_end(src, target, options: dict, stop_after: str) -> list:
    """The compile pipeline up to and including ``stop_after`` (the Ascend binary stage needs CANN)."""
    from triton._C.libtriton import ir
    from triton.compiler.compiler import make_backend

    backend = make_backend(target)
    opts = backend.parse_options(dict(options))
    stages = {}
    backend.add_stages(stages, opts)
    names = list(stages)
    if stop_after not in names:
        raise RuntimeError(f"{target.backend} has no stage {stop_after!r} (stages: {names})")
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    codegen_fns = backend.get_codegen_implementation(*([opts] if _takes_args(backend.get_codegen_implementation)
                                                       else []))
    module_map = backend.get_module_map()
    if "target" in inspect.signature(src.make_ir).parameters:
        module = src.make_ir(target, opts, codegen_fns, module_map, context)
    else:
        module = src.make_ir(opts, codegen_fns, module_map, context)
    metadata = {"target": target, **opts.__dict__}
    ran = []
    # like triton.compile: make_ir gives the module the first stage (src.ext, "ttir") runs its passes on
    for name in names[names.index(src.ext):names.index(stop_after) + 1]:
        module = stages[name](module, metadata)
        ran.append(name)
    return ran


def _takes_args(fn) -> bool:
    try:
        return len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):
        return False


def compile_job(job: dict) -> dict:
    import triton

    spec, tdict = job["spec"], job["target"]
    out = {"status": "compiled", "error": None, "usage": {}, "shared": None}
    t0 = time.perf_counter()
    fn = resolve(spec["kernel"], spec.get("file"))
    target = _gpu_target(tdict)
    src = make_source(fn, spec, target)
    options = dict(spec["options"])
    if tdict.get("stop_after"):
        out["stages"] = _run_front_end(src, target, options, tdict["stop_after"])
    else:
        k = triton.compile(src, target=target, options=options)
        md = k.metadata
        out["shared"] = int(getattr(md, "shared", 0) or 0)
        if target.backend == "cuda":
            out["usage"] = _nvidia_usage(k, job["log"])
        elif target.backend == "hip":
            out["usage"] = metrics.amdgcn_usage(k.asm.get("amdgcn", ""))
    out["seconds"] = time.perf_counter() - t0
    return out


def launcher_refusal(spec: dict):
    """What the installed Triton's launcher would refuse before compiling anything (None if nothing)."""
    import triton

    callables = [k for k, v in spec["constexprs"].items() if isinstance(v, dict) and "jit" in v]
    if callables and _launcher_refuses_callables():
        return (f"TypeError: Callable constexpr {callables} is not supported "
                f"(the triton {triton.__version__} launcher)")
    return None


def _nvidia_usage(kernel, log_path: str) -> dict:
    sys.stdout.flush()
    try:
        with open(log_path) as f:
            parsed = metrics.parse_ptxas_log(f.read())
    except OSError:
        parsed = None
    if parsed is not None:
        return parsed
    try:
        from triton import knobs

        tool = knobs.nvidia.cuobjdump.path
    except (ImportError, AttributeError):
        tool = os.path.join(os.path.dirname(importlib.import_module("triton").__file__), "backends", "nvidia",
                            "bin", "cuobjdump")
    return metrics.cuobjdump_usage(kernel.asm["cubin"], tool) or {}


def describe_error(exc: BaseException) -> dict:
    """First meaningful line of a compile error, and the kernel source line it points at where known.

    A Triton ``CompilationError`` reads "at L:C:" + the function's source + the underlying error; L counts from
    the ``def`` line of the function that holds the construct (the innermost error of the chain when a
    ``@triton.jit`` helper failed inside a kernel), and its last line is the actual reason.
    """
    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    comp = [x for x in chain if type(x).__name__ == "CompilationError" and isinstance(getattr(x, "src", None), str)]
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tool = next((x for x in chain if getattr(x, "stderr", None)), None)
    if tool is not None:
        # an external compiler stage (triton-adapter-opt, ptxas) failed: its own diagnostics say why
        err = tool.stderr.decode(errors="replace") if isinstance(tool.stderr, bytes) else str(tool.stderr)
        m = _LOC.search(err)
        return {"error": first_error_line(err) or text[:300], "where": f"{m.group(1)}:{m.group(2)}" if m else None,
                "detail": (err or text)[-2000:]}
    if comp:
        # the chain runs outward-in (raise ... from inner): the last one is the deepest jit frame
        located = [x for x in comp if _src_location(x)]
        inner = located[-1] if located else comp[-1]
        msg = [ln for ln in str(inner).splitlines() if ln.strip()]
        return {"error": (msg[-1].strip() if msg else text)[:300], "where": _src_location(inner),
                "detail": text[-2000:]}
    return {"error": first_error_line(text), "where": None, "detail": text[-2000:]}


_AT = re.compile(r"^at (\d+):(\d+):")
_DEF = re.compile(r"^def (\w+)\(")
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FILES: dict = {}
_CURRENT_FILE = [None]   # the job's kernel file: searched first (a kernel outside the package)


def _src_location(err):
    """"path:line" of a CompilationError, found by locating its function source in the flaggems package."""
    m = _AT.match(str(err))
    src = err.src.splitlines()
    def_line_text = next((ln.strip() for ln in src if _DEF.match(ln)), None)
    if not m or def_line_text is None:
        return None
    own = _CURRENT_FILE[0]
    if own:
        own = own if os.path.isabs(own) else os.path.join(os.path.dirname(_PKG_ROOT), own)
        if own not in _FILES and os.path.exists(own):
            with open(own, errors="replace") as fh:
                _FILES[own] = fh.read().splitlines()
    if not _FILES.get("<scanned>"):
        _FILES["<scanned>"] = []
        for dirpath, _, files in os.walk(_PKG_ROOT):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    with open(path, errors="replace") as fh:
                        _FILES[path] = fh.read().splitlines()
    for path in ([own] if own in _FILES else []) + [p for p in _FILES if p != own]:
        for i, ln in enumerate(_FILES[path]):
            if ln.strip() == def_line_text:
                return f"{path}:{i + int(m.group(1))}"
    return None


_LOC = re.compile(r'([\w./-]+\.py)"?:(\d+)(?::\d+)?')


def diagnostics_from_log(path: str, res: dict) -> dict:
    """MLIR/LLVM diagnostics the compiler printed (they name the failing construct better than the exception)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for ln in text.splitlines():
        if "error:" in ln or "LLVM ERROR" in ln:
            out["error"] = ln.strip()[:300]
            m = _LOC.search(ln)
            if m and not res.get("where"):
                out["where"] = f"{m.group(1)}:{m.group(2)}"
            break
    return out


_SKIP = re.compile(r"^\s*(\^|Traceback|File |at \d+:\d+:?$|$)")


def first_error_line(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    for ln in lines:
        if re.search(r"(LLVM ERROR|error:|Error:|Error\b|Exception:|Assertion|failed)", ln) and not _SKIP.match(ln):
            return ln.strip()[:300]
    for ln in reversed(lines):
        if ln.strip() and not _SKIP.match(ln):
            return ln.strip()[:300]
    return text.strip()[:300]


def main() -> int:
    # protocol on a private copy of stdout; fds 1 and 2 go to each job's log file
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import triton  # noqa: F401  (fail here, before the first job, if this Python has no Triton)

    proto.write(json.dumps({"ready": True, "triton": triton.__version__, "python": sys.version.split()[0]}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        t0 = time.perf_counter()
        _CURRENT_FILE[0] = job["spec"].get("file")
        try:
            refusal = launcher_refusal(job["spec"])
        except Exception:  # the check itself must never hide the compile result
            refusal = None
        try:
            res = compile_job(job)
        except BaseException as e:  # a compile error is a result; only the protocol itself may end the worker
            res = {"status": "failed", "usage": {}, "shared": None, **describe_error(e)}
            res["seconds"] = time.perf_counter() - t0
            sys.stdout.flush()
            sys.stderr.flush()
            res.update(diagnostics_from_log(job["log"], res))
        if refusal:
            # the launcher stops before the compiler would run: the kernel cannot be launched at all
            res["launcher_error"] = refusal
            res["status"] = "failed"
            res["error"] = refusal if res.get("error") is None else f"{refusal}; compile: {res['error']}"
        sys.stdout.flush()
        sys.stderr.flush()
        res["id"] = job["id"]
        proto.write(json.dumps(res, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
