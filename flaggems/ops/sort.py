"""sort / topk along one dim: a bitonic sort of (key, index) pairs, in one tile per row or merged across tiles.

Each value becomes an ordered int64 key (sort_keys.py). Pairs are compared as (key, index), so equal values keep
their original order: the result equals a *stable* sort for every call, and topk breaks ties towards the lower
index (the cpu vendor's topk reproduces torch's CPU tie-breaking instead, topk_cpu.py). ``sorted=False`` still
returns the sorted order. Values are re-read from the input through the sorted indices, so -0.0 and NaN
payloads come back unchanged.

Rows up to TILE elements (16384 under the interpreter, 2048 on a device) are sorted in registers, several short
rows sharing a tile (``_sort_kernel``). Longer rows, of any length, are sorted in global scratch memory:

    1. every TILE-sized chunk of a row is sorted ascending in registers (``_tile_sort_kernel``);
    2. for run length S = TILE, 2*TILE, ... < N' (N' = next power of two >= N, the tail padded with keys above
       every value): two sorted runs [b*2S, b*2S + S) and [b*2S + S, (b+1)*2S) are merged by a bitonic merge —
       element b*2S + j against b*2S + 2S-1-j (the two runs read against each other), then half-cleaners at
       distances S/2, ..., TILE (``_merge_step_kernel``, one launch each: partners in different tiles), then the
       distances TILE/2, ..., 1 inside each tile in registers (``_tile_merge_kernel``, which also writes the first
       K results after the last run).

That is log2(N'/TILE) * (log2(N'/TILE) + 3) / 2 + 1 launches, each O(N') work. The row is addressed through
strides ([outer, n, inner]), so sorting a middle dim needs no transpose; outputs are written in the input's
shape (through their strides where row-addressable).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .elementwise import ALL
from .sort_keys import kind_of, ordered_key, rows_done, rows_io
from .topk_cpu import topk_cpu_compat

_DEFAULT = {"TILE": 2048, "BLOCK": 1024}


@triton.jit
def _cas(k, ids, flip, i: tl.constexpr, n_dims: tl.constexpr):
    """Compare-and-swap partners 2**(n_dims-i-1) apart (per row); order by (key, id)."""
    n_outer: tl.constexpr = k.numel >> n_dims
    shape: tl.constexpr = [n_outer * 2 ** i, 2, 2 ** (n_dims - i - 1)]
    m = tl.arange(0, 2)[None, :, None]
    yk = tl.reshape(k, shape)
    lk = tl.reshape(tl.broadcast_to(tl.sum(yk * (1 - m), 1)[:, None, :], shape), k.shape)
    rk = tl.reshape(tl.broadcast_to(tl.sum(yk * m, 1)[:, None, :], shape), k.shape)
    yi = tl.reshape(ids, shape)
    li = tl.reshape(tl.broadcast_to(tl.sum(yi * (1 - m), 1)[:, None, :], shape), k.shape).to(ids.dtype)
    ri = tl.reshape(tl.broadcast_to(tl.sum(yi * m, 1)[:, None, :], shape), k.shape).to(ids.dtype)
    gt = (lk > rk) | ((lk == rk) & (li > ri))
    cond = gt ^ flip
    k = tl.where(cond, lk ^ rk ^ k, k)
    ids = tl.where(cond, li ^ ri ^ ids, ids)
    return k, ids


@triton.jit
def _merge(k, ids, stage: tl.constexpr, alternating: tl.constexpr, n_dims: tl.constexpr):
    n_outer: tl.constexpr = k.numel >> n_dims
    if alternating:
        shape: tl.constexpr = [n_outer * 2 ** (n_dims - 1 - stage), 2, 2 ** stage]
        flip = tl.reshape(tl.broadcast_to(tl.arange(0, 2)[None, :, None], shape), k.shape) != 0
    else:
        flip = tl.zeros(k.shape, tl.int1)
    for i in tl.static_range(stage):
        k, ids = _cas(k, ids, flip, i + (n_dims - stage), n_dims)
    return k, ids


@triton.jit
def _sort_pairs(k, ids, n_dims: tl.constexpr):
    for s in tl.static_range(1, n_dims + 1):
        k, ids = _merge(k, ids, s, s < n_dims, n_dims)
    return k, ids


@triton.jit
def _sort_kernel(x_ptr, v_ptr, i_ptr, M, M2, N, K, sx1, sx2, sxn, sv1, sv2, svn, si1, si2, sin_,
                 KIND: tl.constexpr, DESC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 LOG_N: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    r1 = rows // M2
    r2 = rows % M2
    xb = r1 * sx1 + r2 * sx2
    cols = tl.arange(0, BLOCK_N)
    mask = row_mask[:, None] & (cols < N)[None, :]
    x = tl.load(x_ptr + xb[:, None] + cols[None, :].to(tl.int64) * sxn, mask=mask, other=0)
    key = tl.where(mask, ordered_key(x, DESC, KIND), 9223372036854775807)
    ids = tl.broadcast_to(cols[None, :], [BLOCK_M, BLOCK_N])
    key, ids = _sort_pairs(key, ids, LOG_N)
    ids64 = ids.to(tl.int64)
    out_mask = row_mask[:, None] & (cols < K)[None, :]
    v = tl.load(x_ptr + xb[:, None] + ids64 * sxn, mask=out_mask)
    c64 = cols[None, :].to(tl.int64)
    tl.store(v_ptr + (r1 * sv1 + r2 * sv2)[:, None] + c64 * svn, v, mask=out_mask)
    tl.store(i_ptr + (r1 * si1 + r2 * si2)[:, None] + c64 * sin_, ids64, mask=out_mask)


@triton.jit
def _tile_sort_kernel(x_ptr, key_ptr, id_ptr, M2, N, NP, TILES, sx1, sx2, sxn,
                      KIND: tl.constexpr, DESC: tl.constexpr, TILE: tl.constexpr, LOG_T: tl.constexpr):
    """Step 1: chunk ``pid % TILES`` of row ``pid // TILES`` sorted ascending by (key, index) into the scratch rows
    key/id [M, NP]; positions past N get the largest key (and indices >= N, so they sort after every value)."""
    pid = tl.program_id(0).to(tl.int64)
    row = pid // TILES
    cols = (pid % TILES) * TILE + tl.arange(0, TILE)
    ok = cols < N
    xb = (row // M2) * sx1 + (row % M2) * sx2
    x = tl.load(x_ptr + xb + cols * sxn, mask=ok, other=0)
    key = tl.where(ok, ordered_key(x, DESC, KIND), 9223372036854775807)
    key, ids = _sort_pairs(key[None, :], cols.to(tl.int32)[None, :], LOG_T)
    tl.store(key_ptr + row * NP + cols[None, :], key)
    tl.store(id_ptr + row * NP + cols[None, :], ids)


@triton.jit
def _merge_step_kernel(key_ptr, id_ptr, PAIRS, NP, H, FLIP: tl.constexpr, BLOCK: tl.constexpr):
    """Step 2, across tiles: pair q of a row compares position i = (q // H) * 2H + q % H with its partner, the
    mirror (b*2H + 2H-1 - (q % H)) if FLIP else i + H, and keeps the smaller (key, index) at i."""
    p = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = p < PAIRS
    half = NP // 2
    row = p // half
    q = p % half
    j = q % H
    blk = (q // H) * (2 * H)
    i = row * NP + blk + j
    if FLIP:
        pi = row * NP + blk + 2 * H - 1 - j
    else:
        pi = i + H
    ki = tl.load(key_ptr + i, mask=live)
    kp = tl.load(key_ptr + pi, mask=live)
    ii = tl.load(id_ptr + i, mask=live)
    ip = tl.load(id_ptr + pi, mask=live)
    swap = (ki > kp) | ((ki == kp) & (ii > ip))
    tl.store(key_ptr + i, tl.where(swap, kp, ki), mask=live)
    tl.store(key_ptr + pi, tl.where(swap, ki, kp), mask=live)
    tl.store(id_ptr + i, tl.where(swap, ip, ii), mask=live)
    tl.store(id_ptr + pi, tl.where(swap, ii, ip), mask=live)


@triton.jit
def _tile_merge_kernel(key_ptr, id_ptr, x_ptr, v_ptr, i_ptr, M2, K, NP, TILES, sx1, sx2, sxn, sv1, sv2, svn,
                       si1, si2, sin_, FINAL: tl.constexpr, TILE: tl.constexpr, LOG_T: tl.constexpr):
    """Step 2, inside a tile: the half-cleaners at distances TILE/2 .. 1 (each tile holds a bitonic sequence whose
    elements all sit between those of the tiles before and after it). FINAL: write the first K (values re-read from
    x through the indices) instead of the scratch."""
    pid = tl.program_id(0).to(tl.int64)
    row = pid // TILES
    cols = (pid % TILES) * TILE + tl.arange(0, TILE)
    key = tl.load(key_ptr + row * NP + cols)[None, :]
    ids = tl.load(id_ptr + row * NP + cols)[None, :]
    key, ids = _merge(key, ids, LOG_T, False, LOG_T)
    if FINAL:
        r1 = row // M2
        r2 = row % M2
        ids64 = ids.to(tl.int64)
        out = cols[None, :] < K
        v = tl.load(x_ptr + r1 * sx1 + r2 * sx2 + ids64 * sxn, mask=out)
        tl.store(v_ptr + r1 * sv1 + r2 * sv2 + cols[None, :] * svn, v, mask=out)
        tl.store(i_ptr + r1 * si1 + r2 * si2 + cols[None, :] * sin_, ids64, mask=out)
    else:
        tl.store(key_ptr + row * NP + cols[None, :], key)
        tl.store(id_ptr + row * NP + cols[None, :], ids)


def _check(self, dim, k=None, outs=()):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if k is not None and self.dtype == torch.bool:
        return "topk on bool (torch raises)"
    if self.dim() == 0:
        return "0-dim input"
    nd = self.dim()
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    n = self.size(dim) if self.dim() else 1
    if k is not None and not 0 <= k <= n:
        return "k out of range (torch raises)"
    for o, dt in outs:
        if o is None:
            continue
        if o.dtype != dt:
            return "out dtype"
        if ew.same_storage(o, self):
            return "out overlaps self"
    return None


def _tile(dtype) -> dict:
    """TILE (elements sorted in registers per program) and BLOCK (pairs per merge-step program)."""
    if runtime.interpreting():
        # the interpreter pays per program: large tiles
        return {"TILE": 16384, "BLOCK": 65536}
    return runtime.launch_config("sort", dtype, _DEFAULT)


def sort_rows(self, dim, k, descending, values=None, indices=None):
    """The first k of each row of ``self`` along ``dim`` in sorted order, into (values, indices)."""
    x = self if self.dim() else self.reshape(1)
    d = dim % x.dim()
    n = x.size(d)
    values, indices, rows = rows_io(x, d, k, values, indices)
    if rows is None:
        return values, indices
    x, tv, ti, (M, M2, sx1, sx2, sxn), (sv1, sv2, svn), (si1, si2, sin_) = rows
    cfg = _tile(self.dtype)
    tile = cfg["TILE"]
    block_n = triton.next_power_of_2(n)
    with runtime.device_guard(x):
        if block_n <= tile:
            block_m = max(1, min(triton.next_power_of_2(M), tile // block_n))
            _sort_kernel[(triton.cdiv(M, block_m),)](
                x, tv, ti, M, M2, n, k, sx1, sx2, sxn, sv1, sv2, svn, si1, si2, sin_,
                KIND=kind_of(self.dtype), DESC=bool(descending), BLOCK_M=block_m, BLOCK_N=block_n,
                LOG_N=block_n.bit_length() - 1)
        else:
            _sort_long(x, tv, ti, M, M2, n, k, (sx1, sx2, sxn), (sv1, sv2, svn), (si1, si2, sin_),
                       kind_of(self.dtype), bool(descending), tile, cfg["BLOCK"])
    return rows_done(values, indices, tv, ti)


def _sort_long(x, tv, ti, M, M2, n, k, sx, sv, si, kind, desc, tile, block):
    """Rows longer than a tile: the merge steps of the module docstring on [M, N'] scratch keys and indices."""
    np_ = triton.next_power_of_2(n)
    tiles = np_ // tile
    log_t = tile.bit_length() - 1
    keys = torch.empty((M, np_), dtype=torch.int64, device=x.device)
    ids = torch.empty((M, np_), dtype=torch.int32, device=x.device)
    grid = (M * tiles,)
    _tile_sort_kernel[grid](x, keys, ids, M2, n, np_, tiles, *sx, KIND=kind, DESC=desc, TILE=tile, LOG_T=log_t)
    pairs = M * np_ // 2
    steps = (triton.cdiv(pairs, block),)
    run = tile
    while run < np_:
        _merge_step_kernel[steps](keys, ids, pairs, np_, run, FLIP=True, BLOCK=block)
        h = run // 2
        while h >= tile:
            _merge_step_kernel[steps](keys, ids, pairs, np_, h, FLIP=False, BLOCK=block)
            h //= 2
        run *= 2
        _tile_merge_kernel[grid](keys, ids, x, tv, ti, M2, k, np_, tiles, *sx, *sv, *si, FINAL=run == np_,
                                 TILE=tile, LOG_T=log_t)


def _dimsize(self, dim):
    return self.size(dim) if self.dim() else 1


@implement("aten::topk.default", kind="triton",
           supports=lambda self, k, dim=-1, largest=True, sorted=True: _check(self, dim, k))
def topk(self, k, dim=-1, largest=True, sorted=True):
    if runtime.interpreting():
        return topk_cpu_compat(self, dim, k, largest, sorted)
    return sort_rows(self, dim, k, largest)


@implement("aten::topk.values", kind="triton",
           supports=lambda self, k, dim=-1, largest=True, sorted=True, *, values, indices: _check(
               self, dim, k, ((values, self.dtype), (indices, torch.int64))))
def topk_values(self, k, dim=-1, largest=True, sorted=True, *, values, indices):
    if runtime.interpreting():
        return topk_cpu_compat(self, dim, k, largest, sorted, values, indices)
    return sort_rows(self, dim, k, largest, values, indices)


@implement("aten::sort.default", kind="triton",
           supports=lambda self, dim=-1, descending=False: _check(self, dim))
def sort(self, dim=-1, descending=False):
    return sort_rows(self, dim, _dimsize(self, dim), descending)


@implement("aten::sort.stable", kind="triton",
           supports=lambda self, *, stable=None, dim=-1, descending=False: _check(self, dim))
def sort_stable(self, *, stable=None, dim=-1, descending=False):
    return sort_rows(self, dim, _dimsize(self, dim), descending)


@implement("aten::sort.values", kind="triton",
           supports=lambda self, dim=-1, descending=False, *, values, indices: _check(
               self, dim, None, ((values, self.dtype), (indices, torch.int64))))
def sort_values(self, dim=-1, descending=False, *, values, indices):
    return sort_rows(self, dim, _dimsize(self, dim), descending, values, indices)


@implement("aten::sort.values_stable", kind="triton",
           supports=lambda self, *, stable=None, dim=-1, descending=False, values, indices: _check(
               self, dim, None, ((values, self.dtype), (indices, torch.int64))))
def sort_values_stable(self, *, stable=None, dim=-1, descending=False, values, indices):
    return sort_rows(self, dim, _dimsize(self, dim), descending, values, indices)
