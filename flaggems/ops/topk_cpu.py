"""topk with torch's CPU tie-breaking: the cpu vendor's (interpreter-only) topk.

torch's CPU topk (ATen/native/TopKImpl.h) fills a queue of (value, index) pairs and runs libstdc++'s
std::partial_sort (when k * 64 <= n) or std::nth_element followed by std::sort of the first k - 1 entries.
Which of several equal values it returns, and in what order, is whatever those algorithms leave behind; a
model whose scores tie (ReLU zeros, masked -inf) picks different entries if we break ties any other way.
On the CPU device we therefore run the same algorithms, step for step, as sequential scalar code on a scratch
copy of each row (one program per row): introselect with median-of-three pivots and the heap-select
fallback, introsort with an explicit stack, insertion sorts, libstdc++'s heap routines. The comparator is
the one torch passes (NaN largest), applied to the ordered integer keys (sort_keys.py).

This kernel is for the interpreter only: sort.py picks it when ``runtime.interpreting()`` (never by the tensor's
device type, so the AOT gate, which plans a GPU on CPU tensors, never captures it). Scalar global-memory traffic
is the wrong shape for a GPU, whose torch breaks ties differently anyway.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from .sort_keys import kind_of, ordered_key, rows_done, rows_io


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
        tl.store(kp + cols, ordered_key(x, DESC, KIND), mask=m)
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
    values, indices, rows = rows_io(self, d, k, values, indices)
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
                               si1, si2, sin_, KIND=kind_of(self.dtype), DESC=bool(largest), SORTED=bool(sorted_),
                               PARTIAL=k * 64 <= n, BLOCK_N=block_n)
    return rows_done(values, indices, tv, ti)
