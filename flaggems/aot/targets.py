"""Compile targets of the AOT gate: ``backend:arch`` strings, their on-chip limits and the vendor that plans for them.

A target names what ``triton.compile`` builds for (``GPUTarget(backend, arch, warp_size)``) and what the report
checks the result against. Limits are per thread block / workgroup: sm_90 and sm_100 allow 227 KB of dynamic
shared memory per block (228 KB minus the 1 KB the driver reserves), gfx942 has 64 KB of LDS per workgroup.
The Ascend front end stops before the binary stage (which needs CANN), so it has no limits to check.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional

DEFAULT_TARGETS = ("cuda:90", "cuda:100", "hip:gfx942")

# Until every VendorPlugin carries ``triton_target`` (being added on main), the built-in vendors' targets.
FALLBACK_VENDOR_TARGETS: Dict[str, Optional[str]] = {
    "nvidia": "cuda:90", "amd": "hip:gfx942", "hygon": "hip:gfx942", "ascend": "npu:Ascend910B4", "cpu": None,
}
# The vendor whose plugin (tuned configs, capability flags, deny list) plans launches for a backend when the
# command line names targets but no vendor.
BACKEND_VENDOR = {"cuda": "nvidia", "hip": "amd", "npu": "ascend"}

KB = 1024


@dataclass(frozen=True)
class Target:
    backend: str                  # "cuda" | "hip" | "npu"
    arch: str                     # "90", "gfx942", "Ascend910B4"
    shared_limit: Optional[int]   # bytes of shared memory / LDS one block may use; None: not checked
    # the last compiler stage to run; None runs the whole pipeline (binary included)
    stop_after: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.arch}"

    @property
    def warp_size(self) -> int:
        return {"cuda": 32, "hip": 64}.get(self.backend, 0)

    def gpu_target_args(self) -> tuple:
        """Arguments of ``triton.backends.compiler.GPUTarget`` (cuda archs are ints, the others strings)."""
        arch = int(self.arch) if self.backend == "cuda" else self.arch
        return (self.backend, arch, self.warp_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


def parse_target(text: str) -> Target:
    """``"cuda:90"`` / ``"cuda:sm_100"`` / ``"hip:gfx942"`` / ``"npu:Ascend910B4"`` -> :class:`Target`."""
    if ":" not in text:
        raise ValueError(f"target {text!r}: expected backend:arch, e.g. cuda:90, hip:gfx942, npu:Ascend910B4")
    backend, arch = (s.strip() for s in text.split(":", 1))
    if backend == "cuda":
        arch = arch.removeprefix("sm_").removeprefix("sm")
        if not arch.isdigit():
            raise ValueError(f"target {text!r}: a cuda arch is a compute capability number such as 90 or 100")
        # Hopper and Blackwell datacenter parts: 227 KB; older parts differ and are not gated here
        limit = 227 * KB if int(arch) >= 90 else None
        return Target("cuda", arch, limit)
    if backend == "hip":
        if not arch.startswith("gfx"):
            raise ValueError(f"target {text!r}: a hip arch is a gfx name such as gfx942")
        return Target("hip", arch, 64 * KB)
    if backend == "npu":
        # triton-ascend lowers ttir -> ttadapter (linalg) in the wheel; the npubin stage calls CANN's compiler
        return Target("npu", arch, None, stop_after="ttadapter")
    raise ValueError(f"target {text!r}: unknown backend {backend!r} (cuda, hip, npu)")


def parse_targets(text: Optional[str]) -> List[Target]:
    if not text:
        return []
    out = []
    for part in text.split(","):
        if part.strip():
            t = parse_target(part)
            if t not in out:
                out.append(t)
    return out


def vendor_target(plugin) -> Optional[str]:
    """The plugin's ``triton_target`` ("backend:arch"), or the built-in table while plugins lack the field."""
    declared = getattr(plugin, "triton_target", None)
    if declared:
        return declared
    return FALLBACK_VENDOR_TARGETS.get(plugin.name)


def planning_capabilities(plugin, target: Target):
    """The capability flags ``plugin`` would report on a device of ``target``'s architecture.

    The nvidia plugin probes the live GPU for fp8 (sm_89+) and native ``tl.dot_scaled`` (sm_100+); offline
    there is no GPU, so those two flags are derived from the target exactly as its probes would answer.
    Every other plugin declares static flags, which are used as they are.
    """
    caps = plugin.capabilities
    if plugin.name == "nvidia" and target.backend == "cuda":
        arch = int(target.arch)
        caps = caps.replace(fp8=arch >= 89, dot_scaled=arch >= 100)
    return caps
