"""act_quant / fp4_act_quant (flaggems.deepseek.quant): Triton kernels vs the pure-torch references.

The quantisers are deterministic elementwise math after a block max, so the kernels must match the
references bit for bit (same fp32 operations, RNE casts); the references themselves are checked against
hand-computed values and properties from the spec.
"""
import zlib

import pytest
import torch
import triton
import triton.language as tl
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems
import flaggems.deepseek.quant as Q
from flaggems.deepseek.quant import f32_to_e4m3
from flaggems.testing import poison

E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2


def _rand(shape, dtype, seed, spread=3.0):
    """Random values with magnitudes spread over 10^-spread..10^spread (never zeros)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    mag = torch.exp(torch.empty(shape).uniform_(-spread * 2.3, spread * 2.3, generator=g))
    x = x.sign() * (x.abs() + 0.1) * mag
    return x.to(dtype)


def _bits(t):
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])


def _assert_same_bits(actual, expected, what):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
        f"{what}: {actual.dtype}{tuple(actual.shape)} vs {expected.dtype}{tuple(expected.shape)}"
    a, e = _bits(actual), _bits(expected)
    bad = (a != e).nonzero()
    if bad.numel():
        i = tuple(bad[0].tolist())
        raise AssertionError(f"{what}: {bad.shape[0]} of {a.numel()} elements differ; first at {i}: "
                             f"actual bits {a[i].item():#x} expected {e[i].item():#x}")


# ---------------------------------------------------------------------------------------------------- act_quant
ACT_CASES = [
    # (shape, block, scale_fmt, scale_dtype)
    ((1, 128), 128, None, torch.float32),
    ((3, 5, 256), 128, "ue8m0", E8M0),
    ((7, 448), 64, "ue8m0", torch.float32),     # the KV simulation's block
    ((9, 192), 96, None, torch.float32),        # block not a power of two
    ((2, 3, 64), 32, "ue8m0", E8M0),
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape,block,fmt,sdt", ACT_CASES)
def test_act_quant_matches_ref(shape, block, fmt, sdt, dtype):
    spread = 2.0 if dtype == torch.float16 else 3.0
    x = _rand(shape, dtype, seed=zlib.crc32(repr((shape, block, dtype)).encode()), spread=spread)
    with flaggems.record() as rep:
        y, s = torch.ops.flaggems.act_quant(x, block, fmt, sdt)
    assert rep.served_by("flaggems::act_quant") == {"triton": 1}
    yr, sr = Q.act_quant_ref(x, block, fmt, sdt)
    assert y.shape == x.shape and y.dtype == torch.float8_e4m3fn
    assert s.shape == (*shape[:-1], shape[-1] // block) and s.dtype == sdt
    _assert_same_bits(y, yr, "y")
    _assert_same_bits(s, sr, "scales")


def test_act_quant_ref_semantics():
    # one row, two blocks of 4: amax 3.5 and 1e-6 (clamped to 1e-4)
    x = torch.tensor([[1.0, -3.5, 0.25, 2.0, 1e-6, -1e-6, 5e-7, 0.0]])
    y, s = Q.act_quant_ref(x, 4)
    f = torch.tensor(1 / 448, dtype=torch.float32)
    assert s[0, 0] == torch.tensor(3.5) * f and s[0, 1] == torch.tensor(1e-4) * f
    assert y.float()[0, 1] == -448.0  # the block max maps to (clamped) +-448
    y, s = Q.act_quant_ref(x, 4, "ue8m0", E8M0)
    # 3.5/448 = 2^-7 exactly -> s = 2^-7; 1e-4/448 in (2^-23, 2^-22] -> 2^-22
    assert Q.e8m0_to_float_ref(s).tolist() == [[2.0 ** -7, 2.0 ** -22]]
    assert y.float()[0, :4].tolist() == [128.0, -448.0, 32.0, 256.0]


@pytest.mark.parametrize("fmt", [None, "ue8m0"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_act_quant_inplace_matches_ref(fmt, dtype):
    x = _rand((5, 3, 256), dtype, seed=3)
    xr = x.clone()
    out = torch.ops.flaggems.act_quant_inplace(x, 64, fmt)
    assert out is None
    Q.act_quant_inplace_ref(xr, 64, fmt)
    _assert_same_bits(x, xr, "in-place result")
    # the round trip is a quantisation: within half an e4m3 ulp (2^-4 relative, 2^-10 * s absolute in the
    # subnormal range) plus the final rounding to x's dtype
    x0 = _rand((5, 3, 256), dtype, seed=3)
    _, s = Q.act_quant_ref(x0, 64, fmt)
    s = s.repeat_interleave(64, -1)
    x0 = x0.float()
    assert ((x.float() - x0).abs() <= x0.abs() * (2 ** -4 + 2 ** -8) + s * 2 ** -10).all()


def test_act_quant_inplace_kv_slice_leaves_rope_dims():
    # model.py: act_quant(kv[..., :448], 64, "ue8m0", inplace=True) on kv [B, S, 512]
    kv = _rand((2, 5, 512), torch.bfloat16, seed=4)
    rope = kv[..., 448:].clone()
    expect = kv[..., :448].clone()
    Q.act_quant_inplace_ref(expect, 64, "ue8m0")
    torch.ops.flaggems.act_quant_inplace(kv[..., :448], 64, "ue8m0")
    _assert_same_bits(kv[..., :448], expect, "quantised dims")
    _assert_same_bits(kv[..., 448:], rope, "rope dims (must be untouched)")


def test_act_quant_non_contiguous():
    base = _rand((6, 4, 256), torch.bfloat16, seed=5)
    x = base.transpose(0, 1)                    # no [M, N] view exists
    y, s = torch.ops.flaggems.act_quant(x, 128, "ue8m0", E8M0)
    yr, sr = Q.act_quant_ref(x.contiguous(), 128, "ue8m0", E8M0)
    _assert_same_bits(y, yr, "y")
    _assert_same_bits(s, sr, "s")
    xi, xr = x.clone().transpose(0, 1).contiguous().transpose(0, 1), x.contiguous()
    assert not xi.is_contiguous()
    torch.ops.flaggems.act_quant_inplace(xi, 128, None)   # copy-back path
    Q.act_quant_inplace_ref(xr, 128, None)
    _assert_same_bits(xi.contiguous(), xr, "in-place non-contiguous")


@pytest.mark.parametrize("s_e8m0", [False, True])
def test_act_quant_writes_every_output(s_e8m0):
    x = _rand((37, 320), torch.bfloat16, seed=6)
    y = torch.full((37, 320), 0x7F, dtype=torch.uint8).view(torch.float8_e4m3fn)   # NaN
    s = torch.full((37, 5), 255, dtype=torch.uint8).view(E8M0) if s_e8m0 else poison(torch.empty(37, 5))
    Q._act_quant_launch(x, 64, True, s_e8m0, False, y, s)
    yr, sr = Q.act_quant_ref(x, 64, "ue8m0", E8M0 if s_e8m0 else torch.float32)
    _assert_same_bits(y, yr, "y")
    _assert_same_bits(s, sr, "s")


def test_act_quant_empty_rows():
    y, s = torch.ops.flaggems.act_quant(torch.empty(0, 128, dtype=torch.bfloat16), 128)
    assert y.shape == (0, 128) and s.shape == (0, 1)


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 9), nblocks=st.integers(1, 4), block=st.sampled_from([16, 32, 64, 128, 48]),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), fmt=st.sampled_from([None, "ue8m0"]),
       e8m0=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_act_quant_hypothesis(rows, nblocks, block, dtype, fmt, e8m0, seed):
    sdt = E8M0 if (e8m0 and fmt) else torch.float32
    x = _rand((rows, nblocks * block), dtype, seed)
    y, s = Q.act_quant_triton(x, block, fmt, sdt)
    yr, sr = Q.act_quant_ref(x, block, fmt, sdt)
    _assert_same_bits(y, yr, "y")
    _assert_same_bits(s, sr, "s")
    xi, xr = x.clone(), x.clone()
    Q.act_quant_inplace_triton(xi, block, fmt)
    Q.act_quant_inplace_ref(xr, block, fmt)
    _assert_same_bits(xi, xr, "in place")


# ---------------------------------------------------------------------------------------------- fp4_act_quant
def test_e2m1_rounding_ties_to_even():
    # amax 6 -> s = 1: x/s is exactly these values
    vals = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0,      # ties and the max
            0.2, 0.3, 0.7, 1.3, 2.6, 3.4, 4.9, 5.1,          # near ties
            -0.25, -0.75, -1.75, -5.0, -6.0, -1e-3, 0.0, 1.0,
            0.5, 1.5, 2.0, 3.0, 4.0, -0.5, -3.0, -4.0]
    expect = [0, 2, 2, 4, 4, 6, 6, 7,
              0, 1, 1, 3, 5, 5, 6, 7,
              8, 10, 12, 14, 15, 8, 0, 2,
              1, 3, 4, 5, 6, 9, 13, 14]
    x = torch.tensor([vals])
    for impl in (Q.fp4_act_quant_ref, Q.fp4_act_quant_triton):
        q, s = impl(x, 32)
        assert s.view(torch.uint8).tolist() == [[127]]
        b = q.view(torch.uint8)[0]
        codes = torch.stack([b & 0xF, b >> 4], -1).flatten().tolist()    # low nibble = element 2j
        assert codes == expect, impl.__name__


def test_fp4_scale_semantics():
    # block 0: amax 12 -> 2^ceil(log2 2) = 2; block 1: amax 13 -> 2^ceil(log2 13/6) = 4; block 2: zeros
    x = torch.zeros(1, 96)
    x[0, 5] = -12.0
    x[0, 40] = 13.0
    q, s = Q.fp4_act_quant_triton(x, 32)
    assert Q.e8m0_to_float_ref(s).tolist() == [[2.0, 4.0, 2.0 ** -126]]
    v = Q.unpack_fp4_ref(q)
    assert v[0, 5] == -6.0 and v[0, 40] == 3.0 and (v[0, 64:] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape,block", [((1, 32), 32), ((3, 5, 128), 32), ((7, 96), 16), ((4, 144), 48)])
def test_fp4_act_quant_matches_ref(shape, block, dtype):
    x = _rand(shape, dtype, seed=shape[-1] + block, spread=2.0 if dtype == torch.float16 else 3.0)
    with flaggems.record() as rep:
        q, s = torch.ops.flaggems.fp4_act_quant(x, block)
    assert rep.served_by("flaggems::fp4_act_quant") == {"triton": 1}
    assert q.dtype == FP4 and q.shape == (*shape[:-1], shape[-1] // 2)
    assert s.dtype == E8M0 and s.shape == (*shape[:-1], shape[-1] // block)
    qr, sr = Q.fp4_act_quant_ref(x, block)
    _assert_same_bits(q, qr, "packed fp4")
    _assert_same_bits(s, sr, "scales")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_fp4_act_quant_inplace(dtype):
    x = _rand((3, 4, 128), dtype, seed=8)
    x0, xr = x.clone(), x.clone()
    torch.ops.flaggems.fp4_act_quant_inplace(x, 32)
    Q.fp4_act_quant_inplace_ref(xr, 32)
    _assert_same_bits(x, xr, "in place")
    # consistent with the packed form: x == value(q) * s
    q, s = Q.fp4_act_quant_ref(x0, 32)
    deq = (Q.unpack_fp4_ref(q).view(3, 4, 4, 32) * Q.e8m0_to_float_ref(s)[..., None]).view(3, 4, 128)
    assert torch.equal(x.float(), deq.to(dtype).float())


def test_fp4_act_quant_non_contiguous_and_poisoned():
    base = _rand((64, 10), torch.bfloat16, seed=9)
    x = base.t()                                     # [10, 64], column stride 10
    q = torch.full((10, 32), 0xAB, dtype=torch.uint8)
    s = torch.full((10, 2), 255, dtype=torch.uint8)
    Q._fp4_act_quant_launch(x, 32, False, q, s)
    qr, sr = Q.fp4_act_quant_ref(x.contiguous(), 32)
    _assert_same_bits(q, qr.view(torch.uint8), "packed fp4")
    _assert_same_bits(s, sr.view(torch.uint8), "scales")
    xi, xr = x.clone().t().contiguous().t(), x.contiguous()
    torch.ops.flaggems.fp4_act_quant_inplace(xi, 16)
    Q.fp4_act_quant_inplace_ref(xr, 16)
    _assert_same_bits(xi.contiguous(), xr, "in place, strided")


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 9), nblocks=st.integers(1, 4), block=st.sampled_from([2, 16, 32, 64, 24]),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2 ** 16))
def test_fp4_act_quant_hypothesis(rows, nblocks, block, dtype, seed):
    x = _rand((rows, nblocks * block), dtype, seed)
    q, s = Q.fp4_act_quant_triton(x, block)
    qr, sr = Q.fp4_act_quant_ref(x, block)
    _assert_same_bits(q, qr, "packed fp4")
    _assert_same_bits(s, sr, "scales")
    xi, xr = x.clone(), x.clone()
    Q.fp4_act_quant_inplace_triton(xi, block)
    Q.fp4_act_quant_inplace_ref(xr, block)
    _assert_same_bits(xi, xr, "in place")


# ------------------------------------------------------------------------------------------- fake / bad input
def test_fake_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 3, 256, dtype=torch.bfloat16)
        y, s = torch.ops.flaggems.act_quant(x, 128, "ue8m0", E8M0)
        assert y.shape == (2, 3, 256) and y.dtype == torch.float8_e4m3fn and s.shape == (2, 3, 2) and s.dtype == E8M0
        q, s4 = torch.ops.flaggems.fp4_act_quant(x, 32)
        assert q.shape == (2, 3, 128) and q.dtype == FP4 and s4.shape == (2, 3, 8) and s4.dtype == E8M0
        torch.ops.flaggems.act_quant_inplace(x, 64, None)
        with pytest.raises(ValueError, match="block_size"):
            torch.ops.flaggems.fp4_act_quant(x, 48)


BAD = [
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 128, dtype=torch.int32), 128), TypeError, "x must"),
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 100), 128), ValueError, "block_size"),
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 128), 0), ValueError, "block_size"),
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 128), 128, "e4m3"), ValueError, "scale_fmt"),
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 128), 128, None, E8M0), ValueError, "scale_dtype"),
    (lambda: torch.ops.flaggems.act_quant(torch.ones(2, 128), 128, None, torch.float16), TypeError,
     "scale_dtype"),
    (lambda: torch.ops.flaggems.act_quant_inplace(torch.ones(2, 96), 64), ValueError, "block_size"),
    (lambda: torch.ops.flaggems.fp4_act_quant(torch.ones(2, 30), 15), ValueError, "block_size must be even"),
    (lambda: torch.ops.flaggems.fp4_act_quant(torch.ones(2, 64, dtype=torch.float64), 32), TypeError, "x must"),
    (lambda: torch.ops.flaggems.fp4_act_quant_inplace(torch.ones(2, 48), 32), ValueError, "block_size"),
    (lambda: torch.ops.flaggems.fp4_act_quant(torch.tensor(1.0), 32), ValueError, "x must have"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input(i):
    fn, exc, match = BAD[i]
    with pytest.raises(exc, match=match):
        fn()


@triton.jit
def _e4m3_encode_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + o, f32_to_e4m3(tl.load(x_ptr + o, mask=o < n, other=0.0)), mask=o < n)


def test_f32_to_e4m3_matches_torch_cast():
    # issue 11: the act_quant kernel encodes e4m3 with integer ops (no fp8 type: Ascend's Triton has none);
    # every e4m3 value, every midpoint between neighbours (ties to even) and points around them, +-0, NaN
    grid = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    fin = grid[grid.isfinite() & (grid >= 0)].sort().values
    mids = (fin[1:] + fin[:-1]) / 2
    near = torch.cat([mids * (1 + 2 ** -20), mids * (1 - 2 ** -20), fin * (1 + 2 ** -12), fin * (1 - 2 ** -12)])
    x = torch.cat([fin, mids, near, torch.tensor([2 ** -10, 2 ** -12, 1e-30, 0.0, float("nan")])])
    x = torch.cat([x, -x]).clamp(-448, 448).contiguous()
    y = torch.empty(x.shape, dtype=torch.int32)
    _e4m3_encode_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
    want = x.to(torch.float8_e4m3fn).view(torch.uint8).to(torch.int32)
    nan = x.isnan()
    assert torch.equal(y[~nan], want[~nan])
    assert ((y[nan] & 0x7F) == 0x7F).all()
