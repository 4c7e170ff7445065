"""tanh and the expressions around it (gelu's 1 + tanh, the derivative's sech^2), without libdevice and without
cancellation. With e = exp(-2|z|) (in (0, 1], never overflowing):

    tanh(z)     = sign(z) (1 - e) / (1 + e)                 for |z| >= 0.25 (fp32) / 0.01 (fp64)
                = z - z^3/3 + 2z^5/15 - 17z^7/315 + 62z^9/2835    below (1 - e would cancel: relative error
                  ~ ulp / 2|z|; the series' next term is < 2**-28 (fp32) / 2**-60 (fp64) of the value there)
    1 + tanh(z) = 2 / (1 + e) for z >= 0,  2e / (1 + e) for z < 0
    sech^2(z)   = 1 - tanh(z)^2 = 4e / (1 + e)^2

(``1 - 2/(exp(2z) + 1)``, the former tanh, lost all relative precision as z -> 0 and in 1 + tanh for z << 0.)
NaN propagates through every formula; +-inf give +-1, 0 / 2, 0.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tanh(z):
    az = tl.abs(z)
    e = tl.exp(-2.0 * az)
    big = (1.0 - e) / (1.0 + e)
    z2 = z * z
    small = z * (1.0 + z2 * (-0.3333333333333333 + z2 * (0.13333333333333333 + z2 * (
        -0.05396825396825397 + z2 * 0.021869488536155203))))
    if z.dtype == tl.float64:
        use_series = az < 0.01
    else:
        use_series = az < 0.25
    return tl.where(use_series, small, tl.where(z < 0, -big, big))


@triton.jit
def one_plus_tanh(z):
    e = tl.exp(-2.0 * tl.abs(z))
    return tl.where(z < 0, 2.0 * e, 2.0) / (1.0 + e)


@triton.jit
def sech2(z):
    e = tl.exp(-2.0 * tl.abs(z))
    d = 1.0 + e
    return 4.0 * e / (d * d)
