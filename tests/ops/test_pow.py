"""pow: fp32 accuracy over wide exponent ranges against fp64 (issue 13 finding 19), pow / pow_ / out= agreeing on
negative bf16 bases (finding 20), tensor exponents (pow.Tensor_Tensor, pow.Scalar) and C pow's special cases."""
import math

import pytest
import torch

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

F32_TINY = torch.finfo(torch.float32).tiny


def _ulp_error(got, x, e):
    """Max error in fp32 ulps of the fp64 reference, over results in fp32's normal range."""
    ref = torch.pow(x.double(), e)
    normal = torch.isfinite(ref) & (ref.abs() >= F32_TINY) & (ref.abs() <= torch.finfo(torch.float32).max)
    ulp = torch.pow(2.0, torch.floor(torch.log2(ref.abs())) - 23)
    return ((got.double() - ref).abs() / ulp)[normal].max().item()


@pytest.mark.parametrize("e", [100.001, -100.001, 2.5, 37.25, -7.3, 0.3333, 11.0, -13.0, 1e-3, 127.9])
def test_fp32_pow_accuracy_against_fp64(e):
    # randn spans |x| in ~(1e-5, 5): |e * log2|x|| reaches the over/underflow range for the large exponents
    x = torch.randn(60, 400, generator=torch.Generator().manual_seed(19))
    got, _ = run_gems(torch.pow, x, e, served=["pow.Tensor_Scalar"])
    native = torch.pow(x, e)
    # correctly rounded would be 0.5 ulp; torch's CPU pow (std::pow in double) is within 1 ulp; the old
    # exp2(e*log2|x|) was off by up to ~120 ulp at e = 100.001, and e rounded to fp32 alone by ~8 ulp
    assert _ulp_error(got, x, e) <= 1.0, _ulp_error(got, x, e)
    # outside the normal range (inf, 0, subnormals) the same class of result as native
    assert torch.equal(torch.isinf(got), torch.isinf(native)) and torch.equal(got == 0, native == 0)
    assert torch.equal(torch.isnan(got), torch.isnan(native))


def test_fp32_pow_accuracy_over_bases_and_exponents():
    # a grid of bases over fp32's whole exponent range (subnormals included) and exponents of both signs
    x = torch.cat([torch.logspace(-44, 38, 400, dtype=torch.float64).float(), torch.tensor([0.5, 1.5, 2.0, 10.0])])
    for e in (0.5000001, 1.0000001, 3.3, -2.75, 0.07, -0.9, 17.0, 2.0 ** -12):
        got, _ = run_gems(torch.pow, x, e, served=["pow.Tensor_Scalar"])
        assert _ulp_error(got, x, e) <= 1.0, (e, _ulp_error(got, x, e))


def test_pow_special_values_match_native():
    vals = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, float("inf"), -float("inf"), float("nan"), 1e-45, -3.0]
    x = torch.tensor(vals)
    for e in (0, 1, 2, 3, -1, -2, 0.5, -0.5, 2.5, -2.5, 3.0, 5.0, -3.0, -5.0, 1e-3, 0.75, 1e30, -1e30):
        got, _ = run_gems(torch.pow, x, e, served=["pow.Tensor_Scalar"])
        want = torch.pow(x, e)
        assert torch.equal(torch.isnan(got), torch.isnan(want)), e
        assert torch.equal(got.nan_to_num(), want.nan_to_num()), (e, got, want)
        assert torch.equal(torch.signbit(got[~torch.isnan(got)]), torch.signbit(want[~torch.isnan(want)])), e


@pytest.mark.parametrize("e", [2.5, 3, 3.0, -1, 0.5, 7, -2, 4.2, 0, 1])
def test_pow_and_pow_inplace_agree_on_negative_bf16(e):
    x = -make_tensor((64,), torch.bfloat16, low=0.1, high=9)
    x[:8] = torch.tensor([-0.0, -1.0, -2.0, -float("inf"), 0.0, 1.0, 3.0, float("nan")], dtype=torch.bfloat16)
    functional, _ = run_gems(torch.pow, x, e, served=["pow.Tensor_Scalar"])
    y = x.clone()
    res, _ = run_gems(lambda: y.pow_(e), served=["pow_.Scalar"])
    out = poisoned((64,), torch.bfloat16)
    run_gems(lambda: torch.pow(x, e, out=out), served=["pow.Tensor_Scalar_out"])
    assert res is y
    for got in (y, out):
        assert torch.equal(got.view(torch.int16), functional.view(torch.int16)), e
    # and native torch computes the same bf16 values
    want = torch.pow(x, e)
    assert torch.equal(functional.float().nan_to_num(), want.float().nan_to_num()), e


def test_pow_inplace_integer_and_dtype_rules():
    i = torch.arange(-4, 5, dtype=torch.int32)
    y = i.clone()
    run_gems(lambda: y.pow_(3), served=["pow_.Scalar"])
    assert torch.equal(y, i ** 3)
    with pytest.raises(RuntimeError):  # the float result cannot be written into an int tensor (torch raises)
        run_gems(lambda: i.clone().pow_(2.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_pow_tensor_exponent(dtype):
    base = torch.cat([make_tensor((60,), dtype, low=-3, high=3), torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0],
                                                                               dtype=dtype)])
    exp = torch.cat([make_tensor((60,), dtype, low=-4, high=4), torch.tensor([-1.0, 3.0, float("nan"),
                                                                              float("inf"), -float("inf")],
                                                                             dtype=dtype)])
    exp[::3] = exp[::3].round()  # integer exponents on negative bases
    got, _ = run_gems(torch.pow, base, exp, served=["pow.Tensor_Tensor"])
    want = torch.pow(base.double(), exp.double())
    assert got.dtype == dtype
    assert_close(got, want, dtype, rtol=4e-6 if dtype == torch.float32 else None)
    assert torch.equal(torch.isnan(got), torch.isnan(torch.pow(base, exp)))
    # broadcast exponent row, Python-number base (pow.Scalar), in-place and out=
    got, _ = run_gems(torch.pow, 2.0, exp, served=["pow.Scalar"])
    assert_close(got, torch.pow(2.0, exp.double()), dtype, rtol=4e-6 if dtype == torch.float32 else None)
    functional, _ = run_gems(torch.pow, base, exp, served=["pow.Tensor_Tensor"])
    y = base.clone()
    run_gems(lambda: y.pow_(exp), served=["pow_.Tensor"])
    out = poisoned(base.shape, dtype)
    run_gems(lambda: torch.pow(base, exp, out=out), served=["pow.Tensor_Tensor_out"])
    for twin in (y, out):  # in-place and out= twins agree with the functional op bit for bit
        assert torch.equal(twin.nan_to_num(), functional.nan_to_num())


def test_pow_integer_tensor_exponent_stays_native():
    # integer results stay native (C++ integer pow: 1 ** -1 == 1, 2 ** -1 == 0, no error for tensor exponents)
    a, b = torch.tensor([1, 2, -1, -2, 3]), torch.tensor([-1, -1, -1, 2, 3])
    got, rep = run_gems(torch.pow, a, b)
    assert torch.equal(got, torch.tensor([1, 0, -1, 4, 27])) and rep.fallbacks()["aten::pow.Tensor_Tensor"]


def test_pow_fp32_matches_exp_log_identities():
    # exact cases: powers of two with integer exponents and integer roots
    x = torch.tensor([2.0, 4.0, 0.25, 1024.0, 3.0])
    got, _ = run_gems(torch.pow, x, 10.0, served=["pow.Tensor_Scalar"])
    assert got.tolist() == [1024.0, 1048576.0, 2.0 ** -20, 2.0 ** 100, 59049.0]
    got, _ = run_gems(torch.pow, torch.tensor([8.0, 27.0, 1e-30]), 1.0 / 3.0, served=["pow.Tensor_Scalar"])
    assert_close(got, torch.tensor([8.0, 27.0, 1e-30], dtype=torch.float64) ** (1.0 / 3.0), torch.float32)
    assert math.isclose(got[0].item(), 2.0, rel_tol=1.2e-7)
