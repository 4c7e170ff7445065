"""sort / topk along one dim with a bitonic sort of (key, index) pairs held in one tile per row.

Each value becomes an int64 key whose signed order is the value order torch uses: floats via their bits
(negative floats with the magnitude bits flipped), -0.0 folded onto +0.0 and every NaN onto one NaN above +inf
(torch sorts NaN as the largest value); integers as themselves; ``descending`` / ``largest`` complement the
key. Pairs are compared as (key, index), so equal values keep their original order: the result equals a
*stable* sort for every call, and topk breaks ties towards the lower index (torch's CPU topk picks among ties
in an unspecified order, so tied indices may differ from it; values never do). ``sorted=False`` still returns
the sorted order. Values are re-read from the input through the sorted indices, so -0.0 and NaN payloads come
back unchanged.

Rows up to 16384 elements are one tile (several short rows share a tile); longer rows go to torch. The row is
addressed through strides ([outer, n, inner]), so sorting a middle dim needs no transpose; outputs are written
contiguous in the input's shape.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .elementwise import ALL
from .rows import rows_layout

MAX_SORT_N = 16384
_INT64_MAX = 2 ** 63 - 1


@triton.jit
def _ordered_key(v, DESC: tl.constexpr, KIND: tl.constexpr):
    if KIND == 0:    # floats of <= 32 bits, compared in fp32 (exact widening)
        f = v.to(tl.float32)
        b = f.to(tl.int32, bitcast=True)
        b = tl.where(f == 0, 0, b)
        b = tl.where(f != f, 0x7FC00000, b)
        b = tl.where(b < 0, b ^ 0x7FFFFFFF, b)
        k = b.to(tl.int64)
    elif KIND == 1:  # fp64
        b = v.to(tl.int64, bitcast=True)
        b = tl.where(v == 0, 0, b)
        b = tl.where(v != v, 0x7FF8000000000000, b)
        k = tl.where(b < 0, b ^ 0x7FFFFFFFFFFFFFFF, b)
    else:            # integers and bool
        k = v.to(tl.int64)
    if DESC:
        k = ~k
    return k


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
    key = tl.where(mask, _ordered_key(x, DESC, KIND), 9223372036854775807)
    ids = tl.broadcast_to(cols[None, :], [BLOCK_M, BLOCK_N])
    key, ids = _sort_pairs(key, ids, LOG_N)
    ids64 = ids.to(tl.int64)
    out_mask = row_mask[:, None] & (cols < K)[None, :]
    v = tl.load(x_ptr + xb[:, None] + ids64 * sxn, mask=out_mask)
    c64 = cols[None, :].to(tl.int64)
    tl.store(v_ptr + (r1 * sv1 + r2 * sv2)[:, None] + c64 * svn, v, mask=out_mask)
    tl.store(i_ptr + (r1 * si1 + r2 * si2)[:, None] + c64 * sin_, ids64, mask=out_mask)


def _kind(dt):
    if dt == torch.float64:
        return 1
    if dt.is_floating_point:
        return 0
    return 2


def _check(self, dim, k=None, outs=(), limit=True):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if self.dim() == 0:
        return "0-dim input"
    nd = self.dim()
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    n = self.size(dim) if self.dim() else 1
    if limit and n > MAX_SORT_N:
        return f"sorted dim longer than {MAX_SORT_N}"
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


def _rows_io(x, d, k, values, indices):
    """Outputs for the first k of every row of x along d: (values, indices) allocated or resized to x's shape
    with k at d, and, unless they are empty, (x', tv, ti, x' rows, tv strides, ti strides): x' a row-addressable
    view or copy of x, tv/ti the outputs or contiguous temporaries where their layout is not row-addressable."""
    shape = list(x.shape)
    shape[d] = k
    if values is None:
        values = torch.empty(shape, dtype=x.dtype, device=x.device)
    if indices is None:
        indices = torch.empty(shape, dtype=torch.int64, device=x.device)
    for o in (values, indices):
        if list(o.shape) != shape:
            o.resize_(shape)
    if values.numel() == 0:
        return values, indices, None
    lx = rows_layout(x, d)
    if lx is None:
        x = x.contiguous()
        lx = rows_layout(x, d)
    tv = values if rows_layout(values, d) is not None else torch.empty(shape, dtype=x.dtype, device=x.device)
    ti = indices if rows_layout(indices, d) is not None else torch.empty(shape, dtype=torch.int64, device=x.device)
    return values, indices, (x, tv, ti, lx, rows_layout(tv, d)[2:], rows_layout(ti, d)[2:])


def _rows_done(values, indices, tv, ti):
    if tv is not values:
        values.copy_(tv)
    if ti is not indices:
        indices.copy_(ti)
    return values, indices


def sort_rows(self, dim, k, descending, values=None, indices=None):
    """The first k of each row of ``self`` along ``dim`` in sorted order, into (values, indices)."""
    x = self if self.dim() else self.reshape(1)
    d = dim % x.dim()
    n = x.size(d)
    values, indices, rows = _rows_io(x, d, k, values, indices)
    if rows is None:
        return values, indices
    x, tv, ti, (M, M2, sx1, sx2, sxn), (sv1, sv2, svn), (si1, si2, sin_) = rows
    block_n = triton.next_power_of_2(n)
    tile = 16384 if runtime.interpreting() else 2048
    block_m = max(1, min(triton.next_power_of_2(M), tile // block_n))
    with runtime.device_guard(x):
        _sort_kernel[(triton.cdiv(M, block_m),)](
            x, tv, ti, M, M2, n, k, sx1, sx2, sxn, sv1, sv2, svn, si1, si2, sin_,
            KIND=_kind(self.dtype), DESC=bool(descending), BLOCK_M=block_m, BLOCK_N=block_n,
            LOG_N=block_n.bit_length() - 1)
    return _rows_done(values, indices, tv, ti)


def _dimsize(self, dim):
    return self.size(dim) if self.dim() else 1


@implement("aten::topk.default", kind="triton",
           supports=lambda self, k, dim=-1, largest=True, sorted=True: _check(
               self, dim, k, limit=self.device.type != "cpu"))
def topk(self, k, dim=-1, largest=True, sorted=True):
    if self.device.type == "cpu":
        return topk_cpu_compat(self, dim, k, largest, sorted)
    return sort_rows(self, dim, k, largest)


@implement("aten::topk.values", kind="triton",
           supports=lambda self, k, dim=-1, largest=True, sorted=True, *, values, indices: _check(
               self, dim, k, ((values, self.dtype), (indices, torch.int64)), limit=self.device.type != "cpu"))
def topk_values(self, k, dim=-1, largest=True, sorted=True, *, values, indices):
    if self.device.type == "cpu":
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


# --------------------------------------------------------------------------------------------------------------
# topk with torch's CPU tie-breaking
#
# torch's CPU topk (ATen/native/TopKImpl.h) fills a queue of (value, index) pairs and runs libstdc++'s
# std::partial_sort (when k * 64 <= n) or std::nth_element followed by std::sort of the first k - 1 entries.
# Which of several equal values it returns, and in what order, is whatever those algorithms leave behind; a
# model whose scores tie (ReLU zeros, masked -inf) picks different entries if we break ties any other way.
# On the CPU device we therefore run the same algorithms, step for step, as sequential scalar code on a scratch
# copy of each row (one program per row): introselect with median-of-three pivots and the heap-select
# fallback, introsort with an explicit stack, insertion sorts, libstdc++'s heap routines. The comparator is
# the one torch passes (NaN largest), applied to the ordered integer keys. This kernel is for the CPU device
# only (scalar global-memory traffic is the wrong shape for a GPU, whose torch breaks ties differently anyway).

@triton.jit
def _comp(kp, a, b):
    return tl.load(kp + a) < tl.load(kp + b)


@triton.jit
def _swap(kp, ip, a, b):
    ka = tl.load(kp + a)
    kb = tl.load(kp + b)
    ia = tl.load(ip + a)
    ib = tl.load(ip + b)
    tl.store(kp + a, kb)
    tl.store(kp + b, ka)
    tl.store(ip + a, ib)
    tl.store(ip + b, ia)


@triton.jit
def _move(kp, ip, dst, src):
    tl.store(kp + dst, tl.load(kp + src))
    tl.store(ip + dst, tl.load(ip + src))


@triton.jit
def _partition_pivot(kp, ip, f, l):
    # __unguarded_partition_pivot: median of (f+1, mid, l-1) to f, then Hoare partition of [f+1, l) around it
    a = f + 1
    b = f + (l - f) // 2
    c = l - 1
    ab = _comp(kp, a, b)
    bc = _comp(kp, b, c)
    ac = _comp(kp, a, c)
    t = tl.where(ab, tl.where(bc, b, tl.where(ac, c, a)), tl.where(ac, a, tl.where(bc, c, b)))
    _swap(kp, ip, f, t)
    pk = tl.load(kp + f)
    lo = f + 1
    hi = l
    done = lo < 0
    while done == 0:
        while tl.load(kp + lo) < pk:
            lo += 1
        hi -= 1
        while pk < tl.load(kp + hi):
            hi -= 1
        if lo < hi:
            _swap(kp, ip, lo, hi)
            lo += 1
        else:
            done = lo >= 0
    return lo


@triton.jit
def _insertion_sort(kp, ip, f, l):
    i = f + 1
    while i < l:
        vk = tl.load(kp + i)
        vi = tl.load(ip + i)
        j = i
        while (j > f) & (vk < tl.load(kp + tl.maximum(j - 1, f))):
            _move(kp, ip, j, j - 1)
            j -= 1
        tl.store(kp + j, vk)
        tl.store(ip + j, vi)
        i += 1


@triton.jit
def _adjust_heap(kp, ip, f, hole, length, vk, vi):
    top = hole
    second = hole
    while second < (length - 1) // 2:
        second = 2 * (second + 1)
        second -= _comp(kp, f + second, f + second - 1).to(tl.int64)
        _move(kp, ip, f + hole, f + second)
        hole = second
    if ((length & 1) == 0) & (second == (tl.maximum(length, 2) - 2) // 2):
        second = 2 * (second + 1)
        _move(kp, ip, f + hole, f + second - 1)
        hole = second - 1
    # __push_heap
    parent = (tl.maximum(hole, 1) - 1) // 2
    while (hole > top) & (tl.load(kp + f + parent) < vk):
        _move(kp, ip, f + hole, f + parent)
        hole = parent
        parent = (tl.maximum(hole, 1) - 1) // 2
    tl.store(kp + f + hole, vk)
    tl.store(ip + f + hole, vi)


@triton.jit
def _pop_heap(kp, ip, f, l, r):
    vk = tl.load(kp + r)
    vi = tl.load(ip + r)
    _move(kp, ip, r, f)
    _adjust_heap(kp, ip, f, f * 0, l - f, vk, vi)


@triton.jit
def _heap_select(kp, ip, f, m, l):
    length = m - f
    p = tl.where(length >= 2, (tl.maximum(length, 2) - 2) // 2, -1)
    while p >= 0:
        _adjust_heap(kp, ip, f, p, length, tl.load(kp + f + p), tl.load(ip + f + p))
        p -= 1
    i = m
    while i < l:
        if _comp(kp, i, f):
            _pop_heap(kp, ip, f, m, i)
        i += 1


@triton.jit
def _sort_heap(kp, ip, f, l):
    while l - f > 1:
        l -= 1
        _pop_heap(kp, ip, f, l, l)


@triton.jit
def _lg(n):
    # floor(log2(n)) for n >= 1
    r = n * 0
    while n > 1:
        n = n // 2
        r += 1
    return r


@triton.jit
def _introselect(kp, ip, f, nth, l):
    depth = _lg(l - f) * 2
    done = f < 0
    while ((l - f) > 3) & (done == 0):
        if depth == 0:
            _heap_select(kp, ip, f, nth + 1, l)
            _swap(kp, ip, f, nth)
            done = f >= 0
        else:
            depth -= 1
            cut = _partition_pivot(kp, ip, f, l)
            go_right = cut <= nth
            f = tl.where(go_right, cut, f)
            l = tl.where(go_right, l, cut)
    if done == 0:
        _insertion_sort(kp, ip, f, l)


@triton.jit
def _std_sort(kp, ip, sp, f0, l0):
    # __introsort_loop (threshold 16) with its right-hand recursion on an explicit stack, then the final
    # insertion sort over the whole range
    if l0 - f0 > 1:
        tl.store(sp + 0, f0)
        tl.store(sp + 1, l0)
        tl.store(sp + 2, _lg(l0 - f0) * 2)
        top = f0 * 0 + 1
        while top > 0:
            top -= 1
            f = tl.load(sp + 3 * top)
            l = tl.load(sp + 3 * top + 1)
            d = tl.load(sp + 3 * top + 2)
            while l - f > 16:
                if d == 0:
                    _heap_select(kp, ip, f, l, l)
                    _sort_heap(kp, ip, f, l)
                    l = f
                else:
                    d -= 1
                    cut = _partition_pivot(kp, ip, f, l)
                    tl.store(sp + 3 * top, cut)
                    tl.store(sp + 3 * top + 1, l)
                    tl.store(sp + 3 * top + 2, d)
                    top += 1
                    l = cut
        _insertion_sort(kp, ip, f0, l0)


@triton.jit
def _topk_cpu_kernel(x_ptr, v_ptr, i_ptr, kbuf, ibuf, stack, M2, N, K, sx1, sx2, sxn, sv1, sv2, svn, si1, si2, sin_,
                     KIND: tl.constexpr, DESC: tl.constexpr, SORTED: tl.constexpr, PARTIAL: tl.constexpr,
                     BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    r1 = row // M2
    r2 = row % M2
    xb = r1 * sx1 + r2 * sx2
    kp = kbuf + row * N
    ip = ibuf + row * N
    sp = stack + row * 384
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N).to(tl.int64)
        m = cols < N
        x = tl.load(x_ptr + xb + cols * sxn, mask=m, other=0)
        tl.store(kp + cols, _ordered_key(x, DESC, KIND), mask=m)
        tl.store(ip + cols, cols, mask=m)
    zero = row * 0
    if PARTIAL:
        _heap_select(kp, ip, zero, zero + K, zero + N)
        _sort_heap(kp, ip, zero, zero + K)
    else:
        if K - 1 != N:
            _introselect(kp, ip, zero, zero + K - 1, zero + N)
        if SORTED:
            _std_sort(kp, ip, sp, zero, zero + K - 1)
    for start in range(0, K, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N).to(tl.int64)
        m = cols < K
        ids = tl.load(ip + cols, mask=m, other=0)
        v = tl.load(x_ptr + xb + ids * sxn, mask=m)
        tl.store(v_ptr + r1 * sv1 + r2 * sv2 + cols * svn, v, mask=m)
        tl.store(i_ptr + r1 * si1 + r2 * si2 + cols * sin_, ids, mask=m)


def topk_cpu_compat(self, dim, k, largest, sorted_, values=None, indices=None):
    d = dim % self.dim()
    values, indices, rows = _rows_io(self, d, k, values, indices)
    if rows is None:
        return values, indices
    x, tv, ti, (M, M2, sx1, sx2, sxn), (sv1, sv2, svn), (si1, si2, sin_) = rows
    n = x.size(d)
    kbuf = torch.empty((M, n), dtype=torch.int64, device=self.device)
    ibuf = torch.empty((M, n), dtype=torch.int64, device=self.device)
    stack = torch.empty((M, 384), dtype=torch.int64, device=self.device)
    block_n = max(16, min(triton.next_power_of_2(n), 4096))
    with runtime.device_guard(x):
        _topk_cpu_kernel[(M,)](x, tv, ti, kbuf, ibuf, stack, M2, n, k, sx1, sx2, sxn, sv1, sv2, svn,
                               si1, si2, sin_, KIND=_kind(self.dtype), DESC=bool(largest), SORTED=bool(sorted_),
                               PARTIAL=k * 64 <= n, BLOCK_N=block_n)
    return _rows_done(values, indices, tv, ti)
