"""Resource usage of a compiled kernel, read from what the compilers print or embed (no GPU needed).

NVIDIA: ptxas runs with ``-v`` inside ``triton.compile``; with ``TRITON_DUMP_PTXAS_LOG=1`` Triton prints that log,
which gives registers and spill stores/loads. Where no log was printed (an older Triton without the knob),
``cuobjdump -res-usage`` on the cubin gives registers and the local-memory (spill) bytes per thread.
AMD: the amdgcn assembly carries its own metadata (``.vgpr_count``, ``.vgpr_spill_count``, ``ScratchSize``).
Shared memory / LDS is Triton's own allocation (``metadata.shared``) on both.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Dict, Optional

_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas_log(text: str) -> Optional[Dict[str, int]]:
    regs = _PTXAS_REGS.findall(text)
    spill = _PTXAS_SPILL.findall(text)
    if not regs:
        return None
    out = {"registers": max(int(r) for r in regs)}
    if spill:
        out["stack_bytes"] = max(int(s[0]) for s in spill)
        out["spill_store_bytes"] = max(int(s[1]) for s in spill)
        out["spill_load_bytes"] = max(int(s[2]) for s in spill)
    return out


_RES = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def cuobjdump_usage(cubin: bytes, cuobjdump: str) -> Optional[Dict[str, int]]:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        text = subprocess.run([cuobjdump, "-res-usage", path], capture_output=True, text=True, timeout=60).stdout
    finally:
        os.unlink(path)
    m = _RES.search(text)
    if not m:
        return None
    regs, stack, _shared, local = (int(x) for x in m.groups())
    # cuobjdump has no store/load split: local memory per thread is what spills (and local arrays) occupy
    return {"registers": regs, "stack_bytes": stack, "local_bytes": local}


def _amd_field(asm: str, pattern: str) -> Optional[int]:
    m = re.search(pattern, asm)
    return int(m.group(1)) if m else None


def amdgcn_usage(asm: str) -> Dict[str, Optional[int]]:
    return {
        "vgprs": _amd_field(asm, r"\.vgpr_count:\s+(\d+)") or _amd_field(asm, r"; NumVgprs: (\d+)"),
        "agprs": _amd_field(asm, r"\.agpr_count:\s+(\d+)") or _amd_field(asm, r"; NumAgprs: (\d+)"),
        "sgprs": _amd_field(asm, r"\.sgpr_count:\s+(\d+)") or _amd_field(asm, r"; NumSgprs: (\d+)"),
        "vgpr_spill_count": _amd_field(asm, r"\.vgpr_spill_count:\s+(\d+)"),
        "sgpr_spill_count": _amd_field(asm, r"\.sgpr_spill_count:\s+(\d+)"),
        "scratch_bytes": _amd_field(asm, r"; ScratchSize: (\d+)"),
    }


def spills(target_backend: str, usage: Dict[str, Optional[int]]) -> int:
    """One number for the gate: bytes (NVIDIA) or VGPRs (AMD) spilled to memory; 0 when nothing spills."""
    if target_backend == "cuda":
        if "spill_store_bytes" in usage:
            return int(usage.get("spill_store_bytes") or 0) + int(usage.get("spill_load_bytes") or 0)
        return int(usage.get("local_bytes") or 0)
    if target_backend == "hip":
        # SGPR spills land in spare VGPR lanes (no memory traffic); VGPR spills go to scratch memory
        return int(usage.get("vgpr_spill_count") or 0)
    return 0
