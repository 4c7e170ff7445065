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
