"""One kernel specialization: what a GPU Triton would compile for a launch, in plain JSON.

A launch of ``@triton.jit`` function ``f(args)`` compiles (on a GPU) one binary per *specialization*:
- every tensor argument becomes a pointer typed by its element dtype (``*fp16``, ``*fp8e4nv``, ``*u8``) with a
  divisibility hint ``D`` when its data pointer is a multiple of 16 (and ``S`` when its storage lies within
  2 GB, which the AMD backend turns into 32-bit buffer addressing);
- an integer becomes ``i32`` / ``i64`` / ``u64`` by its value, with the hint ``D`` when it is a multiple of 16;
  an integer equal to 1 is not an argument at all but the constant 1 (``tt.equal_to_1`` / a constexpr) unless
  the parameter is in ``do_not_specialize``; ``None`` is a constexpr too;
- a Python float is ``fp32``, a bool ``u1``;
- ``tl.constexpr`` parameters are compiled in, and ``num_warps`` / ``num_stages`` are compile options.
The interpreter does none of this, which is why code that only ran there can fail here (an argument equal to 1
arrives as a Python int, so ``N.to(...)`` has no ``.to``).

Constexpr values are encoded so another Python (another Triton) can rebuild them: Triton dtypes as
``{"dtype": "fp32"}``, ``@triton.jit`` functions as ``{"jit": "module:qualname"}``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

SCHEMA = 1

# torch dtype name -> Triton's pointer element type spelling (``triton.runtime.jit`` canonical names)
TORCH_TO_TRITON = {
    "float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64",
    "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "u16",
    "uint32": "u32", "uint64": "u64", "bool": "i1",
    "float8_e4m3fn": "fp8e4nv", "float8_e5m2": "fp8e5", "float8_e4m3fnuz": "fp8e4b8", "float8_e5m2fnuz": "fp8e5b16",
}
TWO_GB = 2 ** 31


class UnencodableConstexpr(TypeError):
    """A constexpr value the gate cannot hand to another process (and a GPU cache key could not hold either)."""


def encode_constexpr(value: Any) -> Any:
    import triton.language as tl

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tl.constexpr):
        return encode_constexpr(value.value)
    if isinstance(value, tl.dtype):
        return {"dtype": str(value)}
    fn = getattr(value, "fn", None)
    if fn is not None and callable(fn) and hasattr(fn, "__module__") and hasattr(fn, "__qualname__"):
        return {"jit": f"{fn.__module__}:{fn.__qualname__}"}
    if isinstance(value, (tuple, list)):
        return {"tuple": [encode_constexpr(v) for v in value]}
    raise UnencodableConstexpr(f"constexpr of type {type(value).__name__}: {value!r}")


def is_constexpr_param(param) -> bool:
    """Triton's rule (``KernelParam.is_constexpr``): the annotation's text mentions ``constexpr``."""
    ann = param.annotation
    if ann is param.empty:
        return False
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    return "constexpr" in str(text)


def describe_arg(value, *, specialize: bool, align: bool):
    """(type, hint, constexpr value or None) of one non-constexpr argument as a GPU Triton sees it.

    ``type == "constexpr"`` means the value itself is compiled in (None, or an integer equal to 1).
    """
    import torch

    if value is None:
        return "constexpr", "", None
    if isinstance(value, torch.Tensor):
        name = str(value.dtype).replace("torch.", "")
        if name not in TORCH_TO_TRITON:
            raise TypeError(f"tensor of dtype {value.dtype} cannot be a Triton kernel argument")
        hint = ""
        if align and value.data_ptr() % 16 == 0:
            hint += "D"
        storage = value.untyped_storage()
        if storage.nbytes() < TWO_GB:
            hint += "S"
        return "*" + TORCH_TO_TRITON[name], hint, None
    if isinstance(value, bool):
        return "u1", "", None
    if isinstance(value, int):
        if specialize and value == 1:
            return "constexpr", "", 1
        if -(2 ** 31) <= value < 2 ** 31:
            ty = "i32"
        elif 2 ** 63 <= value < 2 ** 64:
            ty = "u64"
        else:
            ty = "i64"
        return ty, ("D" if specialize and align and value % 16 == 0 else ""), None
    if isinstance(value, float):
        return "fp32", "", None
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalar
        return describe_arg(value.item(), specialize=specialize, align=align)
    raise TypeError(f"argument of type {type(value).__name__} has no Triton type")


@dataclass
class Specialization:
    kernel: str                        # "flaggems.ops.gemm.kernel:gemm_kernel"
    file: str                          # path relative to the package's parent ("flaggems/ops/gemm/kernel.py")
    line: int                          # line of the ``def``
    params: List[str]                  # parameter names in order
    signature: Dict[str, str]          # name -> "*fp16" | "i32" | ... | "constexpr"
    constexprs: Dict[str, Any]         # name -> encoded value (constexpr params, value-1 ints, None)
    hints: Dict[str, str]              # name -> "D" / "S" / "DS" (non-constexpr args only)
    options: Dict[str, int]            # num_warps / num_stages (only those the launch gave)
    # where it came from (not part of the identity)
    count: int = 0                     # launches seen
    candidate_only: bool = True        # seen only as an autotune candidate that was not run
    routed_ops: List[str] = field(default_factory=list)   # flaggems ops whose implementation launched it
    direct: bool = False               # also launched outside any routed op (a test calling a launcher)
    origins: List[str] = field(default_factory=list)      # first few workload items (test ids, cases)

    def identity(self) -> dict:
        return {"kernel": self.kernel, "signature": self.signature, "constexprs": self.constexprs,
                "hints": self.hints, "options": self.options}

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:20]

    @property
    def kernel_name(self) -> str:
        return self.kernel.split(":", 1)[1]

    def short(self) -> str:
        """A compact human label: pointer dtypes, then the constexprs that are not dtypes/functions."""
        ptrs = [t[1:] for n, t in self.signature.items() if t.startswith("*")]
        cx = []
        for n, v in self.constexprs.items():
            if isinstance(v, dict):
                v = v.get("dtype") or (v.get("jit") or "").split(":")[-1] or v
            cx.append(f"{n}={v}")
        opts = ",".join(f"{k[4:] if k.startswith('num_') else k}={v}" for k, v in sorted(self.options.items()))
        return f"({','.join(dict.fromkeys(ptrs))}) {' '.join(cx)} [{opts}]"

    def to_dict(self) -> dict:
        return asdict(self) | {"key": self.key}

    @classmethod
    def from_dict(cls, d: dict) -> "Specialization":
        d = {k: v for k, v in d.items() if k != "key"}
        return cls(**d)


def save(specs: List[Specialization], path: str, meta: Optional[dict] = None) -> None:
    import os
    import tempfile

    data = {"schema": SCHEMA, "meta": meta or {}, "specializations": [s.to_dict() for s in specs]}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".capture-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def load(path: str):
    """(specializations, meta) from a capture file written by :func:`save`."""
    with open(path) as f:
        data = json.load(f)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: capture schema {data.get('schema')!r}, this flaggems reads {SCHEMA}")
    return [Specialization.from_dict(d) for d in data["specializations"]], data.get("meta", {})


def merge(groups: List[List[Specialization]]) -> List[Specialization]:
    """One list from several captures: identical specializations combined (counts, ops, origins)."""
    out: Dict[str, Specialization] = {}
    for specs in groups:
        for s in specs:
            have = out.get(s.key)
            if have is None:
                out[s.key] = Specialization.from_dict(s.to_dict())
                continue
            have.count += s.count
            have.candidate_only = have.candidate_only and s.candidate_only
            have.direct = have.direct or s.direct
            have.routed_ops += [o for o in s.routed_ops if o not in have.routed_ops]
            have.origins += [o for o in s.origins if o not in have.origins][:max(0, 3 - len(have.origins))]
    return sorted(out.values(), key=lambda s: (s.kernel, s.key))
