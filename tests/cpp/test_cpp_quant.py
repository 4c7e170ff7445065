"""act_quant / fp4_act_quant (+ in place): C++ and Triton must match the references bit for bit."""
import pytest
import torch

from flaggems.cpp import act_quant_cpp, fp4_act_quant_cpp
from flaggems.deepseek.quant import act_quant_inplace_ref, act_quant_ref, fp4_act_quant_inplace_ref, fp4_act_quant_ref

from .conftest import KINDS, run_op

FLOATS = [torch.bfloat16, torch.float16, torch.float32]


def _x(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.rand(shape[:-1] + (1,), generator=g) * 20
    x[..., :3] = 0.0                 # zero block start
    x.view(-1, shape[-1])[0, :] = 0  # an all-zero row (amax clamp)
    return x.to(dtype)


def _bytes(t):
    return t.view(torch.uint8) if t.dtype != torch.float32 else t


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,block", [((3, 256), 128), ((2, 5, 64), 64), ((1, 96), 32)])
@pytest.mark.parametrize("fmt,sdt", [(None, None), ("ue8m0", None), ("ue8m0", torch.float8_e8m0fnu)])
def test_act_quant(kind, dtype, shape, block, fmt, sdt):
    x = _x(shape, dtype)
    y, s = run_op("act_quant", kind, x, block, fmt, sdt)
    yr, sr = act_quant_ref(x, block, fmt, sdt)
    assert torch.equal(_bytes(y), _bytes(yr)) and torch.equal(_bytes(s), _bytes(sr))
    xi, xr = x.clone(), x.clone()
    run_op("act_quant_inplace", kind, xi, block, fmt)
    act_quant_inplace_ref(xr, block, fmt)
    assert torch.equal(xi, xr)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,block", [((3, 128), 32), ((2, 3, 64), 16), ((1, 6), 2)])
def test_fp4_act_quant(kind, dtype, shape, block):
    x = _x(shape, dtype, seed=1)
    q, s = run_op("fp4_act_quant", kind, x, block)
    qr, sr = fp4_act_quant_ref(x, block)
    assert q.dtype == torch.float4_e2m1fn_x2 and s.dtype == torch.float8_e8m0fnu
    assert torch.equal(_bytes(q), _bytes(qr)) and torch.equal(_bytes(s), _bytes(sr))
    xi, xr = x.clone(), x.clone()
    run_op("fp4_act_quant_inplace", kind, xi, block)
    fp4_act_quant_inplace_ref(xr, block)
    assert torch.equal(xi, xr)


def test_fp4_rounding_ties():
    # grid ties go to the even code; negative values keep the sign bit (-0 = code 8)
    v = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.1, 6.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    q, s = fp4_act_quant_cpp(v, 32)
    qr, sr = fp4_act_quant_ref(v, 32)
    assert torch.equal(q.view(torch.uint8), qr.view(torch.uint8)) and torch.equal(s.view(torch.uint8), sr.view(torch.uint8))


def test_noncontiguous_inplace_and_large():
    base = _x((256, 8), torch.bfloat16, seed=2)
    v, r = base.t(), base.t().clone()            # [8, 256] non-contiguous view
    run_op("act_quant_inplace", "cpp", v, 128, "ue8m0")
    act_quant_inplace_ref(r, 128, "ue8m0")
    assert torch.equal(v, r)
    x = _x((300, 512), torch.bfloat16, seed=3)    # spans several threads
    y, s = act_quant_cpp(x, 128, "ue8m0", torch.float8_e8m0fnu)
    yr, sr = act_quant_ref(x, 128, "ue8m0", torch.float8_e8m0fnu)
    assert torch.equal(_bytes(y), _bytes(yr)) and torch.equal(_bytes(s), _bytes(sr))


def _nonfinite_x(dtype):
    """Row 0: a NaN block (block 1 finite); row 1: +inf; row 2: -inf and a NaN in another block."""
    x = _x((3, 64), torch.float32, seed=4)
    x[0, 3] = float("nan")
    x[1, 5] = float("inf")
    x[2, 7], x[2, 40] = float("-inf"), float("nan")
    return x.to(dtype)


def _same(a, b):
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt,sdt", [(None, None), ("ue8m0", None), ("ue8m0", torch.float8_e8m0fnu)])
def test_act_quant_nan_inf(kind, dtype, fmt, sdt):
    # issue 13 finding 4: NaN / +-Inf poison their own block (never saturate to +-448), the same in every kind
    x = _nonfinite_x(dtype)
    y, s = run_op("act_quant", kind, x, 32, fmt, sdt)
    yr, sr = act_quant_ref(x, 32, fmt, sdt)
    assert _same(y.float(), yr.float())
    assert _same(s, sr) if s.dtype == torch.float32 else torch.equal(_bytes(s), _bytes(sr))
    yf = y.float().view(3, 2, 32)
    assert yf[0, 0].isnan().all() and yf[2, 1].isnan().all() and not yf[0, 1].isnan().any()
    assert yf[1, 0, 5].isnan() and yf[2, 0, 7].isnan()              # inf / inf
    assert (yf[1, 0].nan_to_num() == 0).all()                         # finite / inf = +-0
    sf = s.float().view(3, 2) if sdt is None else s.view(torch.uint8).view(3, 2)
    if sdt is None:
        assert sf[0, 0].isnan() and sf[1, 0] == float("inf") and sf[2, 1].isnan() and sf[0, 1].isfinite()
    else:
        assert sf[0, 0] == 255 and sf[1, 0] == 255 and sf[2, 0] == 255 and sf[0, 1] != 255
    xi, xr = x.clone(), x.clone()
    run_op("act_quant_inplace", kind, xi, 32, fmt)
    act_quant_inplace_ref(xr, 32, fmt)
    assert _same(xi.float(), xr.float())
    xv = xi.float().view(3, 2, 32)
    assert xv[:, 0].isnan().all() and xv[2].isnan().all() and not xv[:2, 1].isnan().any()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_fp4_act_quant_nan_inf(kind, dtype):
    # issue 13 finding 4: e2m1 has no NaN: a non-finite block gets the E8M0 NaN scale (255) and code 0 for a
    # NaN quotient (+Inf used to be stored as -6, so in place it came back as -inf)
    x = _nonfinite_x(dtype)
    q, s = run_op("fp4_act_quant", kind, x, 32)
    qr, sr = fp4_act_quant_ref(x, 32)
    assert torch.equal(_bytes(q), _bytes(qr)) and torch.equal(_bytes(s), _bytes(sr))
    assert s.view(torch.uint8).view(3, 2)[:, 0].tolist() == [255, 255, 255]
    codes = torch.stack([q.view(torch.uint8) & 15, q.view(torch.uint8) >> 4], -1).view(3, 64)
    assert codes[1, 5] == 0 and codes[2, 7] == 0 and (codes[0, :32] == 0).all()
    xi, xr = x.clone(), x.clone()
    run_op("fp4_act_quant_inplace", kind, xi, 32)
    fp4_act_quant_inplace_ref(xr, 32)
    assert _same(xi.float(), xr.float())
    xv = xi.float().view(3, 2, 32)
    assert xv[:, 0].isnan().all() and xv[2].isnan().all() and not xv[:2, 1].isnan().any()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op,args", [("act_quant_inplace", (32, "ue8m0")), ("fp4_act_quant_inplace", (32,))])
def test_inplace_rejects_internal_overlap(kind, op, args):
    # issue 13 finding 8: an expanded x has aliased elements; torch's in-place ops raise, so do both kinds
    base = torch.randn(1, 64)
    x = base.expand(4, 64)
    before = base.clone()
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        run_op(op, kind, x, *args)
    assert torch.equal(base, before)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        getattr(torch.ops.flaggems, op)(torch.zeros(64).as_strided((2, 64), (0, 1)), *args)
    # a 1-row expand (no aliasing) and a non-contiguous but non-overlapping x are fine
    y = torch.randn(64).expand(1, 64)
    run_op(op, kind, y, *args)
    run_op(op, kind, torch.randn(64, 4).t(), *args)
