"""FP4 -> FP8 / FP8 -> BF16 / FP4 -> BF16 conversions (flaggems/deepseek/convert.py).

The exactness rule is checked from first principles (every e2m1 code at every scale offset, in fp64), the
reference against it, and the Triton kernels (this directory's default kind) against the reference bit for bit.
"""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import flaggems
import flaggems.deepseek.convert as CV

from .convert_data import E8M0, FP4, fp4_weight, same

E4M3 = torch.float8_e4m3fn
E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _on_e4m3_grid(v: float) -> bool:
    """|v| <= 448 and a normal with <= 3 mantissa bits, or a multiple of 2^-9 (subnormal)."""
    a = abs(v)
    if a == 0 or (a < 2.0 ** -6 and (a / 2.0 ** -9).is_integer()):
        return True
    if a < 2.0 ** -6 or a > 448:
        return False
    m, e = __import__("math").frexp(a)          # a = m * 2^e, m in [0.5, 1)
    return (m * 16).is_integer()


def test_rule_every_code_and_offset():
    """One 128x128 block: the top sub-block at exponent 127, the rest at 127 - d. Each value's FP8 result is
    exact iff q * 2^(6 - d) lies on the e4m3 grid (normal: d <= 6 for every code; subnormal: up to d = 14)."""
    for d in range(0, 22):
        codes = torch.arange(16, dtype=torch.uint8).repeat(128 * 128 // 16).view(128, 128)
        w = (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous().view(FP4)
        s = torch.full((128, 4), 127 - d, dtype=torch.uint8)
        s[0, 0] = 127
        y, bs, cnt = CV.fp4_to_fp8_ref(w, s.view(E8M0))
        assert bs.view(torch.uint8).item() == 127 - 6            # the largest scale / 2^6
        vals = y.float()[1:]                                       # rows whose sub-blocks sit d below
        want = torch.tensor([(-1 if c & 8 else 1) * E2M1[c & 7] for c in range(16)], dtype=torch.float64)
        exact_codes = [_on_e4m3_grid(float(q) * 2.0 ** (6 - d)) for q in want]
        got = vals.double().view(127, 8, 16)
        target = (want * 2.0 ** (6 - d)).expand_as(got)
        for c in range(16):
            hit = torch.equal(got[..., c], target[..., c])
            assert hit == exact_codes[c], (d, c)
        # the rule: spread <= 2^6 keeps every value normal; up to 2^14 still exact; beyond, some codes round
        n_inexact_codes = sum(not x for x in exact_codes)
        assert (n_inexact_codes == 0) == (d <= 14), d
        assert int(cnt.sum()) == n_inexact_codes * (127 * 8 + 6)     # + row 0 past its top sub-block
        if d <= 6:
            assert vals[vals != 0].abs().min() >= 2.0 ** -6       # all e4m3 normals
    # the top code 6.0 at offset 0 lands on 384 = 1.5 * 2^8 (e4m3 0x7C), inside 448
    w = torch.full((1, 16), 0x77, dtype=torch.uint8).view(FP4)
    y, _, cnt = CV.fp4_to_fp8_ref(w, torch.full((1, 1), 127, dtype=torch.uint8).view(E8M0))
    assert y.float().eq(384).all() and y.view(torch.uint8).eq(0x7C).all() and cnt.sum() == 0


@pytest.mark.parametrize("N,K,spread,lead", [(256, 256, 6, ()), (200, 320, 6, ()), (130, 96, 20, ()),
                                             (128, 128, 15, ()), (70, 80, 6, (2, 1))])
def test_triton_matches_reference(N, K, spread, lead):
    w, s = fp4_weight(N, K, spread, lead, seed=N + K)
    for got, ref in zip(torch.ops.flaggems.fp4_to_fp8(w, s), CV.fp4_to_fp8_ref(w, s)):
        assert same(got, ref)
    for got, ref in zip(torch.ops.flaggems.fp4_to_bf16(w, s), CV.fp4_to_bf16_ref(w, s)):
        assert same(got, ref)
    y, bs, cnt = CV.fp4_to_fp8_ref(w, s)
    for got, ref in zip(torch.ops.flaggems.fp8_to_bf16(y, bs), CV.fp8_to_bf16_ref(y, bs)):
        assert same(got, ref)
    assert (int(cnt.sum()) == 0) == (spread <= 14)


def test_round_trip_is_exact_on_real_like_data():
    """FP4 -> FP8 -> BF16 equals FP4 -> BF16, value for value, with 0 inexact anywhere (spread <= 2^6)."""
    w, s = fp4_weight(384, 512, 6, (3,), seed=7)
    y, bs, cnt = torch.ops.flaggems.fp4_to_fp8(w, s)
    assert int(cnt.sum()) == 0 and y.dtype == E4M3 and bs.dtype == E8M0 and bs.shape == (3, 3, 4)
    via_fp8, c1 = torch.ops.flaggems.fp8_to_bf16(y, bs)
    direct, c2 = torch.ops.flaggems.fp4_to_bf16(w, s)
    assert int(c1.sum()) == 0 and int(c2.sum()) == 0
    assert same(via_fp8, direct)
    # and against the plain fp64 dequantisation
    v = CV.unpack_fp4_ref(w).double() * CV.e8m0_to_float_ref(s).double().repeat_interleave(32, -1)
    assert torch.equal(direct.double(), v)


def test_nan_scales():
    """A NaN (byte 255) sub-block gives e4m3 NaN codes and does not set its block's scale; an all-NaN block has a
    NaN scale; BF16 gets NaN there; none of it counts as inexact."""
    w, s = fp4_weight(256, 256, 4, seed=3)
    sb = s.view(torch.uint8).clone()
    sb[5, 2] = 255                                 # one sub-block of block (0, 0)
    sb[128:, 4:] = 255                             # all of block (1, 1)
    s2 = sb.view(E8M0)
    y, bs, cnt = torch.ops.flaggems.fp4_to_fp8(w, s2)
    yr, bsr, cr = CV.fp4_to_fp8_ref(w, s2)
    assert same(y, yr) and same(bs, bsr) and torch.equal(cnt, cr) and int(cnt.sum()) == 0
    assert (y.view(torch.uint8)[5, 64:96] == 0x7F).all() and (y.view(torch.uint8)[128:, 128:] == 0x7F).all()
    assert bs.view(torch.uint8)[1, 1] == 255
    finite = sb[:128, :4][sb[:128, :4] != 255]
    assert bs.view(torch.uint8)[0, 0] == max(int(finite.max()) - 6, 0)
    b16, c16 = torch.ops.flaggems.fp4_to_bf16(w, s2)
    assert torch.isnan(b16[5, 64:96]).all() and torch.isnan(b16[128:, 128:]).all() and int(c16.sum()) == 0
    back, cb = torch.ops.flaggems.fp8_to_bf16(y, bs)
    assert same(back, b16) and int(cb.sum()) == 0


def test_extreme_scales():
    """Scale byte 0 (2^-127) and the top bytes: FP4 -> BF16 is exact up to byte 252 and counts overflows;
    FP8 -> BF16 counts underflow below bf16's smallest subnormal and overflow."""
    codes = torch.arange(16, dtype=torch.uint8).repeat(2)
    w = (codes[0::2] | (codes[1::2] << 4)).view(1, 16).repeat(4, 1).contiguous().view(FP4)
    s = torch.tensor([[0], [252], [253], [254]], dtype=torch.uint8).view(E8M0)
    y, cnt = torch.ops.flaggems.fp4_to_bf16(w, s)
    assert same(y, CV.fp4_to_bf16_ref(w, s)[0])
    n_over = sum(1 for b in (253, 254) for c in range(32) if abs(E2M1[codes[c] & 7] * 2.0 ** (b - 127)) > 3.3895e38)
    assert int(cnt.sum()) == n_over > 0
    assert torch.isinf(y[3]).sum() > 0 and not torch.isinf(y[:2]).any()
    assert y[0, 1].item() == 2.0 ** -128          # code 1 (0.5) times 2^-127: a bf16 subnormal, exact
    f8 = torch.arange(256, dtype=torch.uint8).view(2, 128).view(E4M3)
    for byte, bad in ((0, True), (127, False), (254, True)):
        yb, cb = torch.ops.flaggems.fp8_to_bf16(f8, torch.tensor([[byte]], dtype=torch.uint8).view(E8M0))
        yr, cr = CV.fp8_to_bf16_ref(f8, torch.tensor([[byte]], dtype=torch.uint8).view(E8M0))
        assert same(yb, yr) and torch.equal(cb, cr) and (int(cb.sum()) > 0) == bad


def test_outputs_fully_written(monkeypatch):
    """Outputs come from garbage-filled buffers: every element is still the reference's."""
    monkeypatch.setattr(CV, "_alloc", _fill)
    w, s = fp4_weight(140, 192, 8, seed=11)
    for got, ref in zip(torch.ops.flaggems.fp4_to_fp8(w, s), CV.fp4_to_fp8_ref(w, s)):
        assert same(got, ref)
    for got, ref in zip(torch.ops.flaggems.fp4_to_bf16(w, s), CV.fp4_to_bf16_ref(w, s)):
        assert same(got, ref)


def _fill(shape, dtype, device):
    t = torch.empty(shape, dtype=dtype, device=device)
    t.reshape(-1).view(torch.uint8).fill_(0xA5)
    return t


@pytest.mark.parametrize("shape", [(0, 64), (5, 0), (0, 3, 16)])
def test_empty(shape):
    w = torch.zeros(shape, dtype=torch.uint8).view(FP4)
    s = torch.zeros((*shape[:-1], -(-2 * shape[-1] // 32)), dtype=torch.uint8).view(E8M0)
    y, bs, cnt = torch.ops.flaggems.fp4_to_fp8(w, s)
    assert y.shape == (*shape[:-1], 2 * shape[-1]) and int(cnt.sum()) == 0
    assert bs.shape == CV.blocks_shape(w, True)


def test_fake_kernels_and_checks():
    with FakeTensorMode():
        w = torch.empty(3, 256, 128, dtype=torch.int8)
        s = torch.empty(3, 256, 8, dtype=E8M0)
        y, bs, cnt = torch.ops.flaggems.fp4_to_fp8(w, s)
        assert y.shape == (3, 256, 256) and y.dtype == E4M3 and bs.shape == (3, 2, 2) and cnt.dtype == torch.int32
        b16, c = torch.ops.flaggems.fp8_to_bf16(y, bs)
        assert b16.shape == y.shape and b16.dtype == torch.bfloat16 and c.shape == (3, 2, 2)
        b4, c4 = torch.ops.flaggems.fp4_to_bf16(w, s)
        assert b4.shape == (3, 256, 256)
    w, s = fp4_weight(128, 128, 2)
    with pytest.raises(ValueError, match="s must have shape"):
        torch.ops.flaggems.fp4_to_fp8(w, s[:, :3])
    with pytest.raises(TypeError, match="w must have dtype"):
        torch.ops.flaggems.fp4_to_bf16(w.view(torch.uint8).float(), s)
    with pytest.raises(ValueError, match="one scale per 128x128 block"):
        torch.ops.flaggems.fp8_to_bf16(torch.zeros(130, 128, dtype=E4M3), torch.zeros(1, 1, dtype=E8M0))
    with pytest.raises(TypeError, match="s must have dtype"):
        torch.ops.flaggems.fp8_to_bf16(torch.zeros(128, 128, dtype=E4M3), torch.ones(1, 1))


def test_served_by_triton_without_fp8_or_fp4_hardware():
    """The kernels decode with integer ops: a vendor lacking fp8 and fp4 still runs them (not the reference)."""
    import dataclasses

    from flaggems import registry, vendors

    v = vendors.active()
    poor = dataclasses.replace(v, capabilities=v.capabilities.replace(fp8=False, fp4=False))
    w, s = fp4_weight(128, 128, 3)
    with registry.override_vendor(poor), flaggems.record() as rep:
        y, _ = torch.ops.flaggems.fp4_to_bf16(w, s)
        torch.ops.flaggems.fp4_to_fp8(w, s)
    assert rep.served_by("flaggems::fp4_to_bf16").get("triton") and rep.served_by("flaggems::fp4_to_fp8").get("triton")
    assert same(y, CV.fp4_to_bf16_ref(w, s)[0])
