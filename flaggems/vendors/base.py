"""The vendor plugin type: a vendor is data, not code paths scattered through the ops."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple, Union

CAPABILITY_FLAGS = ("fp64", "bf16", "fp16", "fp8", "fp4", "int64", "dot_scaled")


@dataclass(frozen=True)
class Capabilities:
    """What the device (and its Triton backend) can do. Unsupported inputs go to the native kernel."""

    fp64: bool = True
    bf16: bool = True
    fp16: bool = True
    fp8: bool = True
    fp4: bool = True
    int64: bool = True
    # `tl.dot_scaled` (MX block-scaled dot) is available and fast on this device.
    dot_scaled: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "Capabilities":
        unknown = set(kw) - set(CAPABILITY_FLAGS)
        if unknown:
            raise ValueError(f"unknown capability flag(s) {sorted(unknown)}; known: {CAPABILITY_FLAGS}")
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class Override:
    """An implementation a vendor declares for one op, replacing or adding to the generic ones.

    Declared explicitly in the plugin (never discovered by name shadowing).
    """

    op: str                    # "aten::add.Tensor" or "flaggems::sparse_attn"
    fn: Callable
    kind: str = "triton"       # "triton" | "cpp"
    dtypes: Optional[frozenset] = None
    requires: tuple = ()
    supports: Optional[Callable] = None


@dataclass(frozen=True)
class VendorPlugin:
    name: str
    device_type: str                 # torch device type of the tensors it serves: "cuda", "cpu", "npu", ...
    dispatch_key: str                # the dispatch key overrides are registered at: "CUDA", "CPU", "PrivateUse1"
    detect: Callable[[], bool]       # cheap, side-effect free, never a subprocess that can hang
    capabilities: Capabilities = field(default_factory=Capabilities)
    # JSON file of tuned kernel configs: {kernel_name: [ {BLOCK_M: .., num_warps: ..}, ... ]}
    tuned_configs: Optional[str] = None
    deny: frozenset = frozenset()    # ATen / flaggems names never served on this vendor ("mm", "add.Tensor", ...)
    overrides: tuple = ()            # tuple[Override, ...]
    interpret: bool = False          # run Triton kernels through the interpreter (CPU tensors)
    triton_distribution: str = "triton"
    # Order in which implementation kinds are preferred when several accept the inputs.
    prefer: tuple = ("triton", "cpp")
    priority: int = 0                # among detected entry-point plugins, the highest wins
    hardware_verified: bool = False
    description: str = ""
    # torch extension modules the vendor's device needs (``torch_npu``, ``torch_mlu``, ``torch_musa``): imported
    # by ``flaggems.vendors.select`` once this plugin is chosen (never by ``detect``); a failed import is an error.
    extension_modules: tuple = ()
    # The Triton compile target the vendor's kernels are built for, "backend:arch" ("cuda:90", "hip:gfx942",
    # "npu:Ascend910B4"): what an ahead-of-time compile for this vendor asks its Triton for. None: no target
    # this project can name (the interpreter, or a Triton backend that is neither a CUDA nor a HIP fork).
    triton_target: Optional[str] = None

    def __post_init__(self):
        if not _is_dispatch_key(self.dispatch_key):
            raise ValueError(f"vendor {self.name!r}: {self.dispatch_key!r} is not a torch dispatch key "
                             f"(e.g. 'CUDA', 'CPU', 'PrivateUse1')")
        for kind in self.prefer:
            if kind not in ("triton", "cpp"):
                raise ValueError(f"vendor {self.name!r}: unknown implementation kind {kind!r} in prefer")
        if not isinstance(self.capabilities, Capabilities):
            raise TypeError(f"vendor {self.name!r}: capabilities must be a Capabilities instance")
        if self.triton_target is not None:
            try:
                split_triton_target(self.triton_target)
            except ValueError as e:
                raise ValueError(f"vendor {self.name!r}: {e}") from None

    def configs(self) -> Mapping[str, list]:
        """Tuned configs for this vendor (empty when it ships none)."""
        return _load_configs(self.tuned_configs)

    def info(self) -> dict:
        return {
            "name": self.name,
            "device_type": self.device_type,
            "dispatch_key": self.dispatch_key,
            "capabilities": self.capabilities.as_dict(),
            "interpret": self.interpret,
            "prefer": list(self.prefer),
            "deny": sorted(self.deny),
            "overrides": sorted(o.op for o in self.overrides),
            "triton_distribution": self.triton_distribution,
            "triton_target": self.triton_target,
            "extension_modules": list(self.extension_modules),
            "tuned_configs": self.tuned_configs,
            "hardware_verified": self.hardware_verified,
        }

    def __repr__(self) -> str:
        caps = ",".join(k for k, v in self.capabilities.as_dict().items() if v)
        return (f"VendorPlugin(name={self.name!r}, device_type={self.device_type!r}, "
                f"dispatch_key={self.dispatch_key!r}, capabilities=[{caps}], interpret={self.interpret})")


# backend -> the arch spelling Triton's GPUTarget takes for it (cuda: compute capability as an integer, 90 for
# sm_90; hip: the gfx name); other backends name their arch as their own Triton does ("Ascend910B4").
_TARGET = re.compile(r"(?P<backend>[a-z][a-z0-9_]*):(?P<arch>[A-Za-z0-9_.]+)")
_ARCH = {"cuda": re.compile(r"[1-9][0-9]+"), "hip": re.compile(r"gfx[0-9a-f]+")}


def split_triton_target(target: str) -> Tuple[str, Union[int, str]]:
    """``"cuda:90"`` -> ``("cuda", 90)``, ``"hip:gfx942"`` -> ``("hip", "gfx942")``: the backend and arch of
    Triton's ``GPUTarget``. A malformed target raises ValueError."""
    m = _TARGET.fullmatch(target) if isinstance(target, str) else None
    if m is None:
        raise ValueError(f"triton_target {target!r} is not 'backend:arch' (e.g. 'cuda:90', 'hip:gfx942', "
                         f"'npu:Ascend910B4')")
    backend, arch = m.group("backend"), m.group("arch")
    rule = _ARCH.get(backend)
    if rule is not None and not rule.fullmatch(arch):
        raise ValueError(f"triton_target {target!r}: a {backend} arch is written like "
                         f"{'90 (sm_90)' if backend == 'cuda' else 'gfx942'}")
    return backend, int(arch) if backend == "cuda" else arch


def _is_dispatch_key(key) -> bool:
    import torch

    return isinstance(key, str) and key in torch._C.DispatchKey.__members__


_CONFIG_CACHE: dict = {}


def _load_configs(path: Optional[str]) -> Mapping[str, list]:
    if not path:
        return {}
    if path not in _CONFIG_CACHE:
        if not os.path.exists(path):
            raise FileNotFoundError(f"vendor tuned-config file {path} does not exist")
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: tuned configs must be a JSON object of kernel name -> list of configs")
        _CONFIG_CACHE[path] = data
    return _CONFIG_CACHE[path]


def config_path(name: str) -> str:
    """Path of a built-in vendor's tuned-config file."""
    return os.path.join(os.path.dirname(__file__), "configs", f"{name}.json")
