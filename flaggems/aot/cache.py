"""Compile-result cache: one small JSON file per (kernel source, specialization, target, Triton version).

The source part hashes the kernel's own source, the ``@triton.jit`` functions it calls (transitively, through
module globals and ``module.attr`` references, as Triton's own dependency finder does) and the plain global
constants it reads; ``@triton.jit`` functions passed as constexprs (``OP=...``) are hashed the same way. An edit
to any of them, or another Triton, misses the cache; an edit elsewhere in the module does not.
Files are written to a temporary name and renamed, so parallel runs can share the directory.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import types
from typing import Dict, Optional

from .spec import Specialization

RESULT_SCHEMA = 2  # bump when the worker reports differently (cached results are then recompiled)
_FN_HASH: Dict[object, str] = {}


def _code_names(code) -> set:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def _jit_inner(v):
    """The Python function behind a JITFunction / InterpretedFunction, else None."""
    fn = getattr(v, "fn", None)
    if isinstance(fn, types.FunctionType) and hasattr(v, "run"):
        return fn
    return None


def function_hash(fn: types.FunctionType) -> str:
    hit = _FN_HASH.get(fn)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    seen = set()

    def visit(f):
        if f in seen:
            return
        seen.add(f)
        try:
            h.update(inspect.getsource(f).encode())
        except (OSError, TypeError):
            h.update(f.__code__.co_code)
        g = f.__globals__
        names = _code_names(f.__code__)
        for name in sorted(names):
            if name not in g:
                continue
            v = g[name]
            inner = _jit_inner(v)
            if inner is not None:
                visit(inner)
            elif isinstance(v, types.ModuleType):
                for attr in sorted(names):
                    a = getattr(v, attr, None)
                    inner = _jit_inner(a) if a is not None else None
                    if inner is not None:
                        visit(inner)
            elif isinstance(v, (bool, int, float, str)) or type(v).__name__ in ("constexpr", "dtype"):
                h.update(f"{name}={v!r};".encode())

    visit(fn)
    _FN_HASH[fn] = h.hexdigest()
    return _FN_HASH[fn]


def _resolve_fn(ref: str):
    import importlib

    module, qual = ref.split(":", 1)
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return _jit_inner(obj) or obj


def source_hash(spec: Specialization) -> str:
    parts = [function_hash(_resolve_fn(spec.kernel))]
    for v in spec.constexprs.values():
        if isinstance(v, dict) and "jit" in v:
            parts.append(function_hash(_resolve_fn(v["jit"])))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def result_key(spec: Specialization, src_hash: str, target_name: str, triton_version: str) -> str:
    blob = json.dumps({"schema": RESULT_SCHEMA, "source": src_hash, "spec": spec.identity(), "target": target_name,
                       "triton": triton_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def default_dir() -> str:
    from ..runtime.config_cache import default_dir as base

    return os.path.join(base(), "aot")


class ResultCache:
    def __init__(self, directory: Optional[str]):
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".json")

    def get(self, key: str) -> Optional[dict]:
        if not self.directory:
            return None
        try:
            with open(self._path(key)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put(self, key: str, result: dict) -> None:
        if not self.directory:
            return
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".r-", suffix=".json", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            json.dump(result, f)
        os.replace(tmp, path)
