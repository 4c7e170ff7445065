"""Convert a DeepSeek-V4 checkpoint for the active vendor, one tensor at a time.

A weight ``P.weight`` is quantised when its scale ``P.scale`` (DeepSeek naming) or ``P.weight_scale_inv``
(transformers naming; ``X_scale_inv`` for any ``X``, e.g. stacked experts' ``gate_up_proj``) sits beside it::

    FP4   weight int8 / float4_e2m1fn_x2 [..., N, K/2], scale e8m0 [..., N, K/32]      (routed experts)
    FP8   weight float8_e4m3fn [..., N, K],              scale e8m0 [..., N/128, K/128] (other linears)

Targets (``to``): ``"fp8"`` turns FP4 weights into FP8 with 128x128 block scales (``flaggems::fp4_to_fp8``),
``"bf16"`` turns FP8 and FP4 weights into BF16 and drops their scales (``fp8_to_bf16``, ``fp4_to_bf16``),
``None`` keeps everything. :func:`target_for` picks it from vendor capabilities: ``"bf16"`` without ``fp8``,
``"fp8"`` with ``fp8`` but without ``fp4``, ``None`` with both. Every other tensor passes through unchanged.

FP4 -> FP8 is exact unless a 128x128 block's 1x32 scales spread by more than 2^14 (docs/deepseek.md; real
checkpoints: 0 inexact values). ``on_inexact`` says what happens to a tensor with inexact values:
``"error"`` raises :class:`InexactConversion` (nothing is written for it), ``"bf16"`` stores that tensor in
BF16 instead (exact; the model must accept a per-tensor dtype: DeepSeek's ``Linear`` does, transformers'
``FP8Experts`` does not), ``"round"`` keeps the rounded FP8 values. The BF16 conversions are exact for
every scale byte below 247 (FP8) / 253 (FP4); an overflow there is handled the same way (``"bf16"`` cannot
help, so it raises like ``"error"``).

``convert_checkpoint`` streams safetensors shards: each tensor is read, converted, appended to a data file
and released, so peak memory is about one tensor (plus its scale), not one shard or one model; the header
is written once the shard's tensors (and so their final dtypes) are known.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2
TARGETS = ("fp8", "bf16")
POLICIES = ("error", "bf16", "round")
# scale name suffix -> the weight name's suffix it replaces
SCALE_SUFFIXES = ((".scale", ".weight"), ("_scale_inv", ""))


class InexactConversion(ValueError):
    """A tensor could not be converted exactly and the policy says to refuse."""


def target_for(capabilities=None) -> Optional[str]:
    """The conversion a vendor needs: None (has fp8 and fp4), "fp8" (no fp4), "bf16" (no fp8)."""
    if capabilities is None:
        from flaggems import vendors

        capabilities = vendors.active().capabilities
    if not capabilities.fp8:
        return "bf16"
    return None if capabilities.fp4 else "fp8"


@dataclass
class TensorReport:
    name: str
    kind: str            # "fp4", "fp8" or "other"
    result: str          # "fp8", "bf16", "unchanged"
    shape: tuple
    inexact: int = 0
    fallback: bool = False


@dataclass
class Report:
    target: Optional[str]
    tensors: List[TensorReport] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0            # process peak resident set during the conversion
    baseline_rss_mb: float = 0.0        # resident set when it started (imports, torch)
    largest_tensor_mb: float = 0.0      # the largest tensor read or written

    @property
    def converted(self) -> int:
        return sum(t.result != "unchanged" for t in self.tensors)

    @property
    def inexact(self) -> int:
        return sum(t.inexact for t in self.tensors)

    @property
    def fallbacks(self) -> List[str]:
        return [t.name for t in self.tensors if t.fallback]

    def summary(self) -> str:
        kinds: Dict[str, int] = {}
        for t in self.tensors:
            if t.result != "unchanged":
                kinds[f"{t.kind}->{t.result}"] = kinds.get(f"{t.kind}->{t.result}", 0) + 1
        parts = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) or "nothing to convert"
        lines = [f"target {self.target or 'none (the vendor has fp8 and fp4)'}; {len(self.tensors)} tensors, "
                 f"converted {self.converted} ({parts})",
                 f"inexact values: {self.inexact}" + (f"; kept in BF16: {', '.join(self.fallbacks)}"
                                                      if self.fallbacks else "")]
        if self.peak_rss_mb:
            lines.append(f"peak RSS {self.peak_rss_mb:.0f} MiB (before converting {self.baseline_rss_mb:.0f} MiB, "
                         f"+{self.peak_rss_mb - self.baseline_rss_mb:.0f} MiB; largest tensor "
                         f"{self.largest_tensor_mb:.1f} MiB); {self.seconds:.1f} s")
        return "\n".join(lines)


def _status_mb(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size (MiB); the peak so far where /proc is missing."""
    now = _status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (Linux: ``5`` to /proc/self/clear_refs), so the next
    :func:`peak_rss_mb` measures from now, not from import time. False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak resident set size (MiB) since start or :func:`reset_peak_rss`."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource                               # Unix only
    except ImportError:
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------------------------------------
# one tensor

def _scale_key(name: str, has: Callable[[str], bool]) -> Optional[str]:
    for scale_suf, weight_suf in SCALE_SUFFIXES:
        if name.endswith(weight_suf):
            key = name[: len(name) - len(weight_suf)] + scale_suf
            if key != name and has(key):
                return key
    return None


def kind_of(w: torch.Tensor, s: Optional[torch.Tensor]) -> str:
    """"fp4", "fp8" or "other" from the weight's and scale's dtypes and shapes."""
    if s is None or w.dim() < 2 or s.dtype not in (E8M0, torch.uint8):
        return "other"
    if w.dtype in (torch.int8, FP4) and tuple(s.shape) == (*w.shape[:-1], -(-2 * w.shape[-1] // 32)):
        return "fp4"
    if w.dtype == E4M3 and tuple(s.shape) == (*w.shape[:-2], -(-w.shape[-2] // 128), -(-w.shape[-1] // 128)):
        return "fp8"
    return "other"


def convert_pair(name: str, w: torch.Tensor, s: torch.Tensor, to: Optional[str], on_inexact: str = "error"
                 ) -> Tuple[Dict[str, Optional[torch.Tensor]], TensorReport]:
    """Convert one quantised weight and its scale.

    Returns ({"weight": tensor, "scale": tensor or None (dropped)}, report). ``s`` may be uint8 e8m0 bytes.
    """
    if on_inexact not in POLICIES:
        raise ValueError(f"on_inexact must be one of {POLICIES}, got {on_inexact!r}")
    ops = torch.ops.flaggems
    kind = kind_of(w, s)
    s8 = s.view(E8M0) if kind != "other" and s.dtype == torch.uint8 else s
    rep = TensorReport(name, kind, "unchanged", tuple(w.shape))
    if kind == "other" and to == "bf16" and w.dtype == E4M3:
        raise ValueError(f"{name}: an FP8 weight whose scale {s.dtype} {tuple(s.shape)} is not one e8m0 scale per "
                         "128x128 block; only DeepSeek's format converts to BF16")
    if kind == "other" or to is None or (to == "fp8" and kind == "fp8"):
        return {"weight": w, "scale": s}, rep
    if to == "fp8":                                   # FP4 -> FP8
        y, bs, cnt = ops.fp4_to_fp8(w, s8)
        rep.inexact = int(cnt.sum())
        if rep.inexact == 0 or on_inexact == "round":
            rep.result = "fp8"
            return {"weight": y, "scale": bs}, rep
        if on_inexact == "error":
            raise InexactConversion(_inexact_msg(name, "FP4 -> FP8", cnt))
        y, cnt = ops.fp4_to_bf16(w, s8)               # exact per-tensor fallback
        rep.inexact, rep.result, rep.fallback = int(cnt.sum()), "bf16", True
    else:                                             # -> BF16
        y, cnt = (ops.fp4_to_bf16 if kind == "fp4" else ops.fp8_to_bf16)(w, s8)
        rep.inexact, rep.result = int(cnt.sum()), "bf16"
    if rep.inexact and on_inexact != "round":
        raise InexactConversion(_inexact_msg(name, f"{kind.upper()} -> BF16", cnt))
    return {"weight": y, "scale": None}, rep


def _inexact_msg(name, what, cnt) -> str:
    blocks = (cnt > 0).nonzero().tolist()[:4]
    return (f"{name}: {what} would round {int(cnt.sum())} values (128x128 blocks {blocks}...): a block's 1x32 "
            "scales spread by more than 2^14, or scales overflow BF16. Pass on_inexact='bf16' (keep this "
            "tensor in BF16, exact) or 'round' (accept the rounding).")


def convert_tensors(names: List[str], get: Callable[[str], torch.Tensor], to: Optional[str],
                    on_inexact: str = "error", report: Optional[Report] = None
                    ) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yield (name, tensor) of the converted checkpoint, reading each input with ``get(name)`` lazily.

    A weight and its scale are read together and yielded at the weight's position (its scale right after,
    unless dropped); everything else passes through.
    """
    present = set(names)
    scale_of = {n: k for n in names if (k := _scale_key(n, present.__contains__))}
    scales = set(scale_of.values())
    for name in names:
        if name in scales:
            continue                                  # emitted with its weight
        t = get(name)
        if name not in scale_of:
            if report is not None:
                report.tensors.append(TensorReport(name, "other", "unchanged", tuple(t.shape)))
            yield name, t
            continue
        skey = scale_of[name]
        out, rep = convert_pair(name, t, get(skey), to, on_inexact)
        del t
        if report is not None:
            report.tensors.append(rep)
        yield name, out["weight"]
        if out["scale"] is not None:
            yield skey, out["scale"]


def convert_state_dict(state_dict: Dict[str, torch.Tensor], to: Optional[str] = "auto", on_inexact: str = "error"
                       ) -> Tuple[Dict[str, torch.Tensor], Report]:
    """In-memory form of :func:`convert_checkpoint`: a new state dict and the report."""
    to = target_for() if to == "auto" else to
    _check_target(to)
    rep = Report(to)
    out = dict(convert_tensors(list(state_dict), state_dict.__getitem__, to, on_inexact, rep))
    return out, rep


def _check_target(to):
    if to is not None and to not in TARGETS:
        raise ValueError(f"to must be one of {TARGETS}, 'auto' or None, got {to!r}")


# ----------------------------------------------------------------------------------------------------------
# safetensors, streamed

def _st_dtype_names() -> Dict[torch.dtype, str]:
    from safetensors import torch as st_torch

    names = {dt: name for name, dt in st_torch._TYPES.items()}
    names.setdefault(E8M0, "F8_E8M0")           # written by safetensors >= 0.6, missing from its _TYPES table
    return names


class _ShardReader:
    """Reads one tensor at a time with plain file reads (no mmap: pages of a mapped file would stay resident
    and count towards the process's memory until the file is closed)."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        self.meta = header.pop("__metadata__", None)
        self.entries = header
        self.base = 8 + n
        self.dtypes = {name: dt for dt, name in _st_dtype_names().items()}

    def keys(self) -> List[str]:
        return list(self.entries)

    def get(self, name: str) -> torch.Tensor:
        e = self.entries[name]
        start, end = e["data_offsets"]
        dtype = self.dtypes.get(e["dtype"])
        if dtype is None:
            raise TypeError(f"{self.path}: {name} has dtype {e['dtype']}, unknown to this torch")
        buf = torch.empty(end - start, dtype=torch.uint8)
        if end > start:
            with open(self.path, "rb") as f:
                f.seek(self.base + start)
                if f.readinto(memoryview(buf.numpy())) != end - start:
                    raise ValueError(f"{self.path}: {name} is truncated")
        return buf.view(dtype).reshape(e["shape"])


class _ShardWriter:
    """Appends tensors to ``<dst>.data`` and writes ``dst`` (header + data) on close."""

    def __init__(self, dst: Path, metadata: Optional[dict]):
        self.dst, self.metadata = dst, metadata
        self.data_path = dst.with_name(dst.name + ".data")
        self.f = open(self.data_path, "wb")
        self.entries: Dict[str, dict] = {}
        self.offset = 0
        self.names = _st_dtype_names()

    def add(self, name: str, t: torch.Tensor) -> None:
        t = t.detach().contiguous()
        if t.dtype not in self.names:
            raise TypeError(f"{name}: dtype {t.dtype} has no safetensors name")
        buf = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
        n = t.numel() * t.element_size()
        self.f.write(memoryview(buf) if n else b"")
        self.entries[name] = {"dtype": self.names[t.dtype], "shape": list(t.shape),
                              "data_offsets": [self.offset, self.offset + n]}
        self.offset += n

    def abort(self) -> None:
        self.f.close()
        os.remove(self.data_path)

    def close(self) -> None:
        self.f.close()
        header = dict(self.entries)
        if self.metadata:
            header["__metadata__"] = self.metadata
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * (-len(hb) % 8)                   # 8-byte aligned data, as safetensors writes it
        with open(self.dst, "wb") as out, open(self.data_path, "rb") as data:
            out.write(struct.pack("<Q", len(hb)))
            out.write(hb)
            shutil.copyfileobj(data, out, 4 << 20)
        os.remove(self.data_path)


def _shards(src: Path) -> List[Path]:
    if src.is_file():
        return [src]
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no *.safetensors under {src}")
    return shards


def convert_checkpoint(src, dst, to: Optional[str] = "auto", on_inexact: str = "error",
                       log: Optional[Callable[[str], None]] = None) -> Report:
    """Convert safetensors shards ``src`` (a file or a directory) into ``dst`` (same layout), streaming.

    A directory's other files (config.json, tokenizer, ...) are copied; ``config.json`` and the shard index are
    updated for the new formats (:func:`update_config`).
    """
    to = target_for() if to == "auto" else to
    _check_target(to)
    src, dst = Path(src), Path(dst)
    shards = _shards(src)
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
    reset_peak_rss()
    rep = Report(to, baseline_rss_mb=rss_mb())
    t0 = time.perf_counter()
    # every key's shard; a scale is written with its weight (moved to the weight's shard if it sits elsewhere)
    readers = {sh: _ShardReader(sh) for sh in shards}
    where: Dict[str, Path] = {}
    order: List[str] = []
    for sh, r in readers.items():
        for k in r.keys():
            where[k] = sh
            order.append(k)
    assign: Dict[Path, List[str]] = {sh: [] for sh in shards}
    for k in order:
        assign[_owner(k, where)].append(k)

    def get(name: str) -> torch.Tensor:
        t = readers[where[name]].get(name)
        rep.largest_tensor_mb = max(rep.largest_tensor_mb, t.numel() * t.element_size() / 2**20)
        return t

    weight_map: Dict[str, str] = {}
    for sh in shards:
        out_path = dst / sh.name if src.is_dir() else dst
        own = assign[sh]
        writer = _ShardWriter(out_path, readers[sh].meta)
        try:
            for name, t in convert_tensors(own, get, to, on_inexact, rep):
                rep.largest_tensor_mb = max(rep.largest_tensor_mb, t.numel() * t.element_size() / 2**20)
                writer.add(name, t)
                weight_map[name] = out_path.name
                del t
        except BaseException:
            writer.abort()                            # no partial shard left behind
            raise
        writer.close()
        if log:
            log(f"{sh.name}: done ({len(own)} tensors read)")
    if src.is_dir():
        _copy_side_files(src, dst, shards, to, weight_map)
    rep.seconds = time.perf_counter() - t0
    rep.peak_rss_mb = peak_rss_mb()
    return rep


def _owner(name: str, where: Dict[str, Path]) -> Path:
    """The shard a tensor is written to: its own, except a scale, which goes with its weight."""
    for scale_suf, weight_suf in SCALE_SUFFIXES:
        if name.endswith(scale_suf):
            w = name[: -len(scale_suf)] + weight_suf
            if w in where:
                return where[w]
    return where[name]


def _copy_side_files(src: Path, dst: Path, shards, to, weight_map) -> None:
    for p in src.iterdir():
        if p in shards or p.is_dir():
            continue
        if p.name.endswith(".safetensors.index.json"):
            idx = json.loads(p.read_text())
            idx["weight_map"] = dict(sorted(weight_map.items()))
            idx.setdefault("metadata", {}).pop("total_size", None)
            (dst / p.name).write_text(json.dumps(idx, indent=2))
        elif p.name == "config.json":
            (dst / p.name).write_text(json.dumps(update_config(json.loads(p.read_text()), to), indent=2))
        else:
            shutil.copy2(p, dst / p.name)


def update_config(cfg: dict, to: Optional[str]) -> dict:
    """config.json after a conversion, for DeepSeek's ModelArgs keys and transformers' quantization_config."""
    cfg = dict(cfg)
    if to is None:
        return cfg
    if cfg.get("expert_dtype") == "fp4":            # DeepSeek inference config
        cfg["expert_dtype"] = None
    if to == "bf16" and cfg.get("dtype") == "fp8":
        cfg["dtype"] = "bf16"
    q = cfg.get("quantization_config")
    if isinstance(q, dict):
        if to == "bf16":
            cfg.pop("quantization_config")
        elif q.get("expert_dtype") == "fp4":
            cfg["quantization_config"] = {**q, "expert_dtype": "fp8"}
    return cfg
