"""pow(x, y) for fp32 (and fp16/bf16 through fp32) without libdevice, accurate to ~1 ulp for large |y|.

    pow(x, y) = sign * 2^(y * log2|x|)

The exponent Y = y * log2|x| is formed in float-float (a value held as hi + lo, ~2**-35 relative): an error
d in Y becomes a relative error ln2 * d in the result, and |Y| reaches ~150 before the result overflows, so
fp32 alone (exp2(y * log2|x|), the old formula) lost up to ~70 ulp at y = 100.

- log2|x|: |x| = m * 2^k with m in [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^24 first);
  log2(m) = 2 atanh(s) / ln2 = C1 s + C3 s^3 + s^5 (C5 + C7 s^2 + ... + C13 s^8), s = (m - 1) / (m + 1),
  |s| <= 0.1716; s, s^2, the C1 and C3 terms in float-float, the rest (< 2**-13 of the total) in fp32.
- 2^Y: n = round(Y), r = (Yh - n) + Yl in [-1/2, 1/2]; 2^r = 1 + z + z^2(1/2 + ... + z^5/6!), z = r ln2 in
  float-float (degree 7, truncation < 2**-27; 1 + zh exact as a float-float sum, so one final rounding);
  times 2^n in two exact power-of-two steps (over/underflow to inf/0 as in C); |Y| > 400 is clamped first.
- C pow's special cases (y == 0 or x == 1 give 1; NaN propagates; +-0 and +-inf bases; y = +-inf; a negative
  base with a non-integer y is NaN; odd integer y keeps the base's sign, -0 included).

Float-float products split each factor into 12-bit halves by masking (Dekker): every partial product is exact,
so the result does not depend on whether the compiler contracts multiply-adds into FMAs (NVIDIA's backend
fuses aggressively; the interpreter never does). Only fp32 arithmetic, integer bit operations and bitcasts:
nothing a backend lacks (Ascend has no fp64, the interpreter has no libdevice).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _split(x):
    # top 12 significand bits (low 12 mantissa bits masked off) and the exact rest
    hi = (x.to(tl.int32, bitcast=True) & -4096).to(tl.float32, bitcast=True)
    return hi, x - hi


@triton.jit
def _fast_two_sum(a, b):
    # |a| >= |b|: s + e == a + b exactly
    s = a + b
    return s, b - (s - a)


@triton.jit
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@triton.jit
def _add_ff(ah, al, bh, bl):
    s, e = _two_sum(ah, bh)
    return _fast_two_sum(s, e + (al + bl))


@triton.jit
def _mul_ff(ah, al, bh, bl):
    # (ah + al)(bh + bl): ah*bh from exact 12-bit partial products, the cross terms in fp32
    a1, a2 = _split(ah)
    b1, b2 = _split(bh)
    lo = ((a1 * b2 + a2 * b1) + a2 * b2) + (ah * bl + al * bh)
    return _fast_two_sum(a1 * b1, lo)


@triton.jit
def _mul_ln2_ff(ah, al):
    # (ah + al) ln2 as hi + lo: _mul_ff with ln2 = 0.693115234375 + 3.1948089599609375e-05 (its fp32 value split
    # in 12-bit halves, as constants) + -1.904654323148236e-09
    a1, a2 = _split(ah)
    lo = ((a1 * 3.1948089599609375e-05 + a2 * 0.693115234375) + a2 * 3.1948089599609375e-05) + (
        ah * -1.904654323148236e-09 + al * 0.6931471824645996)
    return _fast_two_sum(a1 * 0.693115234375, lo)


@triton.jit
def _log2_ff(x):
    """log2(x) for finite x > 0 as hi + lo."""
    tiny = x < 1.1754943508222875e-38
    x = tl.where(tiny, x * 16777216.0, x)
    bits = x.to(tl.int32, bitcast=True)
    k = ((bits >> 23) & 255) - tl.where(tiny, 151, 127)
    m = ((bits & 8388607) | 1065353216).to(tl.float32, bitcast=True)
    big = m > 1.4142135381698608
    m = tl.where(big, m * 0.5, m)
    k = tl.where(big, k + 1, k)
    f = m - 1.0
    # s = f / (m + 1) as hi + lo: the quotient's remainder f - sh*(m + 1) is (nearly) exact
    uh, ul = _two_sum(m, 1.0)
    sh = f / uh
    ph, pl = _mul_ff(sh, 0.0, uh, 0.0)
    sl = (((f - ph) - pl) - sh * ul) / uh
    th, tl_ = _mul_ff(sh, sl, sh, sl)
    p = 0.5770780444145203 + th * (0.41219857335090637 + th * (0.32059890031814575 + th * (
        0.26230818033218384 + th * 0.22195307910442352)))
    vh, vl = _add_ff(0.9617967009544373, -7.028461368463468e-09, th * p, 0.0)
    wh, wl = _mul_ff(th, tl_, vh, vl)
    uh2, ul2 = _add_ff(2.885390043258667, 3.851926067000022e-08, wh, wl)
    lh, ll = _mul_ff(sh, sl, uh2, ul2)
    return _add_ff(k.to(tl.float32), 0.0, lh, ll)


@triton.jit
def _pow2i(n):
    # 2^n for integer n in [-126, 127], built from its exponent bits
    return ((n + 127) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _exp2_ff(yh, yl):
    """2^(yh + yl); inf / 0 past fp32's range."""
    # past |Y| = 400 the result is inf / 0 whatever the low part: clamp there, so that a low part of a huge Y
    # (1e30 * log2 x) cannot leak into r (NaN stays NaN: its comparison is false)
    huge = tl.abs(yh) > 400.0
    yh = tl.where(huge, tl.where(yh > 0, 400.0, -400.0), yh)
    yl = tl.where(huge, 0.0, yl)
    n = tl.floor(yh + 0.5)
    rh, rl = _two_sum(yh - n, yl)  # yh - n is exact
    # z = r ln2 in float-float, and 2^r = 1 + zh + (zl + zh^2 (1/2 + zh/6 + ...)): the fp32 rounding of z alone
    # cost up to ~0.5 ulp of the result on top of the final rounding
    zh, zl = _mul_ln2_ff(rh, rl)
    q = zl + zh * zh * (0.5 + zh * (0.1666666716337204 + zh * (0.0416666679084301 + zh * (
        0.008333333767950535 + zh * (0.0013888889225199819 + zh * 0.00019841270113829523)))))
    eh, el = _fast_two_sum(1.0, zh)
    e = eh + (el + q)
    # 2^n in two steps, each a normal power of two; |n| > 254 is past inf / 0 anyway
    n = tl.where(n != n, 0.0, tl.minimum(tl.maximum(n, -252.0), 254.0)).to(tl.int32)
    n1 = n >> 1
    return (e * _pow2i(n1)) * _pow2i(n - n1)


@triton.jit
def pow_special(x, y, mag, y_lo):
    """C pow's sign and special cases around mag = |x|^(y + y_lo) (computed for finite nonzero x and finite y);
    y_lo is the low part of a float-float exponent (0 otherwise)."""
    inf = float("inf")
    ax = tl.abs(x)
    # y + y_lo is an integer when both parts are (1e30's low part is), odd when exactly one part is odd
    y_int = (y == tl.floor(y)) & (y_lo == tl.floor(y_lo))
    half = y * 0.5
    half_lo = y_lo * 0.5
    odd = y_int & ((half != tl.floor(half)) != (half_lo != tl.floor(half_lo)))
    # +-0 and +-inf bases (the exp2/log2 path does not see them)
    mag = tl.where(ax == 0, tl.where(y > 0, 0.0, inf), mag)
    mag = tl.where(ax == inf, tl.where(y > 0, inf, 0.0), mag)
    # y = +-inf: |x| > 1 grows, |x| < 1 vanishes, |x| == 1 stays 1
    mag = tl.where(y == inf, tl.where(ax > 1, inf, tl.where(ax < 1, 0.0, 1.0)), mag)
    mag = tl.where(y == -inf, tl.where(ax > 1, 0.0, tl.where(ax < 1, inf, 1.0)), mag)
    # the base's sign survives odd integer exponents (-0 included: signbit, not x < 0)
    if x.dtype == tl.float64:
        neg = x.to(tl.int64, bitcast=True) < 0
    else:
        neg = x.to(tl.int32, bitcast=True) < 0
    r = tl.where(neg & odd, -mag, mag)
    r = tl.where((x < 0) & (x > -inf) & (y_int == 0) & (tl.abs(y) < inf), float("nan"), r)
    r = tl.where((x != x) | (y != y), x + y, r)
    return tl.where((y == 0) | (x == 1), 1.0, r)


@triton.jit
def powf(x, y, y_lo):
    """pow(x, y + y_lo) for fp32 x, y and y_lo (elementwise, any may be a splat scalar); y_lo is the low part of
    an exponent held in float-float (0 for an fp32 exponent), |y_lo| <= ulp(y) / 2."""
    ax = tl.abs(x)
    # 1 for the lanes the special cases own, so the main path stays finite there
    safe = tl.where((ax == 0) | (ax == float("inf")) | (ax != ax), 1.0, ax)
    gh, gl = _log2_ff(safe)
    yh, yl = _mul_ff(y, y_lo, gh, gl)
    return pow_special(x, y, _exp2_ff(yh, yl), y_lo)
