"""The one launch path of the GEMM kernel: a :class:`Plan` says how to compute, :func:`launch` runs it.

A plan is what an op wrapper decides from its arguments and the vendor: the grid layout (batched tiles, rows
grouped by ``offs``, K grouped by ``offs``), each operand's format (as loaded, e4m3 bytes, packed e2m1) and
scales (:class:`Scale`: where they apply, their format, grouping and layout), the dtype the dot runs in (or
``tl.dot_scaled``), the accumulator dtype and fp32 precision, and where its block sizes come from
(:class:`Tiles`). ``launch`` turns it into one kernel launch: block config (vendor data, tuned, fitted to the
problem and the scale recipe), grid, strides and constexprs.

Block configs come through ``flaggems.runtime.autotune``: the vendor's tuned-config JSON may declare
``"<kernel>.<variant>"`` (variant = the dtype the dot runs in, e.g. ``"fp8_gemm.float8_e4m3fn"``; a config that
cannot fit a dtype on a chip is not offered for it), optionally ``@<target>``, or ``"<kernel>"``; otherwise the
kernel's defaults. Under the interpreter the defaults are large blocks shrunk to the problem (its cost grows with programs x loop iterations, not FLOPs).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

import torch
import triton

from ... import runtime
from ...formats import AS_LOADED, DOT_SCALED_FORMAT, E2M1_PAIRS, ONE
from ...runtime import autotune, next_pow2
from .. import elementwise as ew
from .kernel import KSPLIT, ON_ACC, PER_BLOCK, PRE_DOT, ROWS, TILES, UNSCALED, gemm_kernel

__all__ = ["Scale", "Plan", "Tiles", "launch", "precision", "fp8_dot", "UNSCALED", "ON_ACC", "PER_BLOCK", "PRE_DOT",
           "TILES", "ROWS", "KSPLIT"]


class Scale(NamedTuple):
    """One operand's scales: value (r, k) = decode(t[off(r // div, k // group)]), applied ``at``.

    Rows r are A's rows or B's columns (B's scales are described in the frame of Bᵀ). ``off`` is
    ``batch * s_batch + row * s_row + col * s_k``, or the MX swizzled layout (``swz``).
    """
    t: Optional[torch.Tensor] = None     # fp32 tensor, or the uint8 view of e8m0 / e4m3 bytes
    s_row: int = 0                       # stride per scale row
    s_k: int = 0                         # stride per K group
    div: int = 1                         # rows per scale row (128 for 128x128 blocks)
    swz: bool = False                    # MX swizzled layout
    fmt: int = AS_LOADED                 # formats.AS_LOADED (fp32) / E8M0_BYTES / E4M3_BYTES
    group: int = 0                       # K elements per scale (0: one scale for all of K)
    at: int = UNSCALED                   # UNSCALED, ON_ACC, PER_BLOCK or PRE_DOT
    s_batch: int = 0                     # stride per batch / group


class Tiles(NamedTuple):
    """Where a kernel's block sizes come from.

    ``device``: default candidates per variant ("" = any variant); ``interpreter``: the default under the
    interpreter (None: the device defaults); ``shrink`` / ``device_shrink``: the dims ("M", "N", "K") whose
    block is shrunk to max(16, next_pow2(extent)) under the interpreter / on a device.
    """
    kernel: str
    device: Dict[str, List[dict]]
    interpreter: Optional[List[dict]] = None
    shrink: str = "MNK"
    device_shrink: str = ""


class Plan(NamedTuple):
    tiles: Tiles
    name: str = ""                       # the scale recipe (part of the tuning key)
    sa: Scale = Scale()
    sb: Scale = Scale()
    gs: Optional[torch.Tensor] = None    # fp32 scalar: product of NVFP4 global scales
    a_fmt: int = AS_LOADED               # formats.AS_LOADED, E4M3_BYTES or E2M1_PAIRS
    b_fmt: int = AS_LOADED
    dot: Optional[torch.dtype] = None    # operands converted to this dtype for tl.dot (None: as loaded)
    dot_scaled: bool = False             # tl.dot_scaled, PRE_DOT scales as its MX scales
    acc: torch.dtype = torch.float32
    precision: Optional[str] = None      # tl.dot input_precision for fp32 operands
    layout: int = TILES


def precision(dtype: torch.dtype) -> str:
    """fp32 operands use IEEE products unless torch allows TF32 on the device (never under the interpreter)."""
    if dtype is torch.float32 and not runtime.interpreting():
        if torch.backends.cuda.matmul.allow_tf32:
            return "tf32"
    return "ieee"


def fp8_dot(a: torch.Tensor, b: torch.Tensor) -> Optional[torch.dtype]:
    """Dot dtype of fp8 operands: native when both share one fp8 type and the vendor has fp8, else via bf16
    (exact: every fp8 value is a bf16 value)."""
    from ...vendors import active

    return None if a.dtype == b.dtype and active().capabilities.fp8 else torch.bfloat16


def _variant(plan: Plan, a: torch.Tensor) -> str:
    if plan.dot_scaled:
        return "dot_scaled"
    return str(plan.dot or a.dtype).replace("torch.", "")


def configs(tiles: Tiles, variant: str) -> List[dict]:
    """Candidate block configs: the vendor's ``kernel.variant@target``, ``kernel@target``, ``kernel.variant``,
    ``kernel`` entries (runtime.autotune.config_keys), then the defaults."""
    if runtime.interpreting() and tiles.interpreter is not None:
        default = tiles.interpreter
    else:
        default = tiles.device.get(variant) or tiles.device[""]
    return autotune.candidates(tiles.kernel, default, dtype=variant)


def _block_k(bk: int, plan: Plan, packed: bool) -> int:
    """BLOCK_K the scale recipe allows: a multiple of every pre-dot group (>= 64 for packed fp4 or
    tl.dot_scaled), within one per-block group (one scale per operand and partial product)."""
    pre = [s.group for s in (plan.sa, plan.sb) if s.at == PRE_DOT]
    post = [s.group for s in (plan.sa, plan.sb) if s.at == PER_BLOCK]
    if pre:
        bk = max(bk, *pre, 64 if (packed or plan.dot_scaled) else 0)
    if post:
        bk = min(bk, *post)
    return bk


def _fit(cfg: dict, plan: Plan, dims: Dict[str, int], packed: bool):
    meta, opts = autotune.split_launch_options(cfg)
    meta.setdefault("GROUP_M", 1)
    for d in (plan.tiles.shrink if runtime.interpreting() else plan.tiles.device_shrink):
        meta[f"BLOCK_{d}"] = min(meta[f"BLOCK_{d}"], max(16, next_pow2(dims[d])))
    meta["BLOCK_K"] = _block_k(meta["BLOCK_K"], plan, packed)
    return meta, opts


def _scale_meta(prefix: str, s: Scale, dot_scaled: bool) -> dict:
    return {f"{prefix}_AT": s.at, f"{prefix}_FMT": s.fmt, f"{prefix}_GROUP": max(s.group, 1),
            f"{prefix}_UNIT": 32 if dot_scaled else max(s.group, 1), f"{prefix}_DIV": s.div,
            f"{prefix}_SWZ": s.swz, f"{prefix}_ONE": ONE[s.fmt]}


def _ds_format(fmt: int, t: torch.Tensor) -> str:
    return "e2m1" if fmt == E2M1_PAIRS else DOT_SCALED_FORMAT.get(t.dtype, "e4m3")


def _no_product(c, bias, beta, scale_result):
    """K = 0 or alpha == 0: no product term (BLAS semantics: with alpha == 0 A and B are not read, so NaN / Inf
    in them do not reach C); the bias term still applies."""
    if bias is None:
        return c.zero_()
    t = bias.expand(c.shape)
    if beta != 1:
        t = t * beta
    if scale_result is not None:
        t = t.float() / scale_result.float().reshape(())
    return c.copy_(t)


def launch(plan: Plan, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, offs: Optional[torch.Tensor] = None,
           bias: Optional[torch.Tensor] = None, alpha: float = 1.0, beta: float = 1.0,
           scale_result: Optional[torch.Tensor] = None, check_offs: bool = False) -> torch.Tensor:
    """c = plan(a · b) for 3-D a [Bt, M, K], b [Bt, K, N], c [Bt, M, N] (any strides, 0 included).

    TILES: Bt is the batch. ROWS: a [1, R, K] and c [1, R, N] with rows grouped by ``offs``, b [G, K, N].
    KSPLIT: a [1, M, K], b [1, K, N], c [G, M, N] with K grouped by ``offs``. Packed e2m1 operands hold K / 2
    bytes along K. ``bias`` broadcasts to c (scaled by ``beta``, skipped when beta == 0; with alpha == 0 the
    product is skipped, as BLAS does); ``scale_result``
    (fp32 scalar) divides the result. ``check_offs``: validate ``offs`` in the kernel (``tl.device_assert``,
    active in Triton's debug mode), for offsets the caller could not check without a device sync.
    """
    if c.numel() == 0:
        return c
    packed = E2M1_PAIRS in (plan.a_fmt, plan.b_fmt)
    M = a.shape[1]
    K = a.shape[2] * (2 if plan.a_fmt == E2M1_PAIRS else 1)
    N = b.shape[2]
    if bias is not None and beta == 0:
        bias = None
    if plan.layout == TILES and (K == 0 or alpha == 0):
        return _no_product(c, bias, beta, scale_result)
    s_a, s_b, s_c = a.stride(), b.stride(), c.stride()
    G = 1
    dims = {"M": M, "N": N, "K": K}
    if plan.layout == ROWS:
        # rows are global: only B (and its scales) are indexed by the group
        G = b.shape[0]
        s_a, s_c = (0, *s_a[1:]), (0, *s_c[1:])
        dims["M"] = int(M / max(G, 1))
    elif plan.layout == KSPLIT:
        G = c.shape[0]
        s_a, s_b = (0, *s_a[1:]), (0, *s_b[1:])
        dims["K"] = max(1, K // max(G, 1))
    a_k = a.view(torch.uint8) if plan.a_fmt != AS_LOADED else a
    b_k = b.view(torch.uint8) if plan.b_fmt != AS_LOADED else b
    sa, sb = plan.sa, plan.sb
    dummy = c
    if bias is not None:
        bias = bias.expand(c.shape)
    s_x = bias.stride() if bias is not None else (0, 0, 0)
    variant = _variant(plan, a)
    consts = dict(LAYOUT=plan.layout, A_FMT=plan.a_fmt, B_FMT=plan.b_fmt,
                  DOT=ew.tl_dtype(plan.dot) if plan.dot is not None else None, ACC=ew.tl_dtype(plan.acc),
                  PRECISION=plan.precision, DOT_SCALED=plan.dot_scaled, A_DS=_ds_format(plan.a_fmt, a),
                  B_DS=_ds_format(plan.b_fmt, b), HAS_BIAS=bias is not None, SCALE=alpha != 1,
                  HAS_GS=plan.gs is not None, OUT_DIV=scale_result is not None, BLOCK_G=next_pow2(G + 1),
                  CHECK_OFFS=bool(check_offs and offs is not None),
                  **_scale_meta("SA", sa, plan.dot_scaled), **_scale_meta("SB", sb, plan.dot_scaled))
    key = (autotune.bucket(dims["M"]), autotune.bucket(N), autotune.bucket(dims["K"]), plan.name, variant,
           str(a.dtype), str(c.dtype))

    def run(cfg):
        meta, opts = _fit(cfg, plan, dims, packed)
        BM, BN = meta["BLOCK_M"], meta["BLOCK_N"]
        if plan.layout == ROWS:
            # sum_g cdiv(size_g, BM) <= cdiv(R, BM) + (#non-empty groups), at most min(G, R) non-empty
            grid = (triton.cdiv(M, BM) + min(G, M) + 1, triton.cdiv(N, BN))
        else:
            grid = (triton.cdiv(M, BM) * triton.cdiv(N, BN), G if plan.layout == KSPLIT else a.shape[0])
        with runtime.device_guard(a):
            gemm_kernel[grid](
                a_k, b_k, c, sa.t if sa.t is not None else dummy, sb.t if sb.t is not None else dummy,
                bias if bias is not None else dummy, plan.gs if plan.gs is not None else dummy,
                scale_result if scale_result is not None else dummy, offs if offs is not None else dummy,
                M, N, K, G, float(alpha), float(beta), *s_a, *s_b, *s_c,
                sa.s_batch, sa.s_row, sa.s_k, sb.s_batch, sb.s_row, sb.s_k, *s_x,
                **consts, **meta, **opts)

    run(autotune.choose(plan.tiles.kernel, key, configs(plan.tiles, variant), run))
    return c
