"""Python scalars torch refuses for a dtype (issue 13 findings 2, 3, 15 and their siblings): the same exception
as native, never a silently wrapped or truncated value; and the values torch accepts are still served."""
import pytest
import torch

from flaggems.testing import run_gems

I8 = torch.int8
MASK = torch.tensor([True, False, True])


def _native_error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001  (the class is what we compare)
        return type(e)
    return None


def raises_like_native(fn):
    """fn raises under flaggems exactly the exception class it raises natively (and it does raise)."""
    want = _native_error(fn)
    assert want is not None, "the case is expected to raise natively"
    with pytest.raises(want):
        run_gems(fn)


RAISING = {
    # finding 3: integer scalars overflowing the dtype
    "full": lambda: torch.full((2,), 300, dtype=I8),
    "full_uint8_neg": lambda: torch.full((2,), -256, dtype=torch.uint8),
    "fill_": lambda: torch.zeros(3, dtype=I8).fill_(300),
    "fill": lambda: torch.fill(torch.zeros(3, dtype=I8), 300),
    "new_full": lambda: torch.zeros(1, dtype=I8).new_full((3,), 300),
    "full_like": lambda: torch.full_like(torch.zeros(3, dtype=I8), -129),
    "masked_fill": lambda: torch.zeros(3, dtype=I8).masked_fill(MASK, 300),
    "masked_fill_": lambda: torch.zeros(3, dtype=I8).masked_fill_(MASK, 300),
    "masked_fill_tensor_value": lambda: torch.zeros(3, dtype=torch.float16).masked_fill(MASK, torch.tensor(1e10)),
    "masked_fill_fp16": lambda: torch.zeros(3, dtype=torch.float16).masked_fill(MASK, 1e10),
    "clamp": lambda: torch.zeros(3, dtype=I8).clamp(300),
    "clamp_max": lambda: torch.zeros(3, dtype=I8).clamp(max=-300),
    "clamp_": lambda: torch.zeros(3, dtype=I8).clamp_(-300, 5),
    "clamp_min": lambda: torch.clamp_min(torch.zeros(3, dtype=I8), 128),
    "clamp_fp16": lambda: torch.zeros(3, dtype=torch.float16).clamp(1e10),
    "clamp_fp32": lambda: torch.zeros(3).clamp(max=1e300),
    "where_scalar": lambda: torch.where(MASK, torch.zeros(3, dtype=I8), 300),
    # finding 15: non-finite values into integer dtypes
    "full_nan_int32": lambda: torch.full((1,), float("nan"), dtype=torch.int32),
    "fill_inf_int64": lambda: torch.zeros(2, dtype=torch.int64).fill_(float("inf")),
    "full_float_past_int8": lambda: torch.full((1,), 127.5, dtype=I8),
    "full_fp32_past_range": lambda: torch.full((1,), 1e300, dtype=torch.float32),
    # fp16 / bf16 / fp8 are checked too once the tensor has more than one element
    "full_fp16_past_max": lambda: torch.full((3,), 65520.0, dtype=torch.float16),
    "fill_e4m3_inf": lambda: torch.zeros(4, dtype=torch.float8_e4m3fn).fill_(float("inf")),
    "full_empty_checked": lambda: torch.full((0,), 1e39, dtype=torch.bfloat16),
    # finding 2: alpha torch refuses for the result dtype
    "add_float_alpha_int": lambda: torch.add(torch.tensor([1, 2]), torch.tensor([10, 10]), alpha=0.5),
    "sub_float_alpha_int": lambda: torch.sub(torch.tensor([1, 2]), 3, alpha=0.5),
    "add_bool_alpha": lambda: torch.add(torch.ones(2), torch.ones(2), alpha=True),
    "add_alpha_overflows": lambda: torch.add(torch.ones(2, dtype=I8), torch.ones(2, dtype=I8), alpha=300),
    "add_alpha_overflows_fp16": lambda: torch.add(torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.float16),
                                                  alpha=1e10),
    "add_out_float_alpha_int": lambda: torch.add(torch.tensor([1, 2]), torch.tensor([1, 2]), alpha=0.5,
                                                 out=torch.empty(2, dtype=torch.int64)),
    "add__float_alpha_int": lambda: torch.tensor([1, 2]).add_(torch.tensor([1, 2]), alpha=0.5),
    "rsub_float_alpha_int": lambda: torch.rsub(torch.tensor([1, 2]), torch.tensor([1, 2]), alpha=0.5),
}


@pytest.mark.parametrize("case", sorted(RAISING))
def test_raises_like_native(case):
    raises_like_native(RAISING[case])


ACCEPTED = {
    # a one-element fp16 / bf16 / fp8 fill is unchecked (through float: inf or saturation); bool takes anything
    "full_fp16_inf": (lambda: torch.full((1,), 70000.0, dtype=torch.float16), "full.default"),
    "full_bf16_huge": (lambda: torch.full((1, 1), 1e300, dtype=torch.bfloat16), "full.default"),
    "full_e4m3_saturates": (lambda: torch.full((1,), 1e6, dtype=torch.float8_e4m3fn), "full.default"),
    "full_e5m2_inf": (lambda: torch.full((3,), float("-inf"), dtype=torch.float8_e5m2), "full.default"),
    "full_bf16_rounds": (lambda: torch.full((3,), 65520.0, dtype=torch.bfloat16), "full.default"),
    "fill_bool_nan": (lambda: torch.zeros(3, dtype=torch.bool).fill_(float("nan")), "fill_.Scalar"),
    "full_uint8_neg_wraps": (lambda: torch.full((3,), -1, dtype=torch.uint8), "full.default"),
    "full_int8_float_truncates": (lambda: torch.full((3,), -128.9 + 1, dtype=I8), "full.default"),
    # fill_ with a 0-dim tensor casts like a copy (no check)
    "fill_tensor_wraps": (lambda: torch.zeros(3, dtype=I8).fill_(torch.tensor(300)), "fill_.Tensor"),
    "masked_fill_int8_float": (lambda: torch.zeros(3, dtype=I8).masked_fill(MASK, 2.5), "masked_fill.Scalar"),
    "clamp_int8_float_bound": (lambda: torch.zeros(3, dtype=I8).clamp(300.5), "clamp.default"),
    "where_fp16_inf": (lambda: torch.where(MASK, torch.zeros(3, dtype=torch.float16), 1e10), "where.ScalarOther"),
    # arithmetic with an overflowing Python int wraps in torch (int8 + 300 adds 44)
    "add_int8_300": (lambda: torch.zeros(3, dtype=I8) + 300, "add.Tensor"),
    "alpha_int": (lambda: torch.add(torch.ones(3, dtype=I8), torch.ones(3, dtype=I8), alpha=-128), "add.Tensor"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_values_are_served_like_native(case):
    fn, op = ACCEPTED[case]
    got, _ = run_gems(fn, served=[op])
    want = fn()
    assert got.dtype == want.dtype
    assert torch.equal(got.float().nan_to_num(), want.float().nan_to_num()), (got, want)


def test_fill_tensor_nan_into_int_does_not_crash():
    # fill_.Tensor casts on the device like a copy; int(nan) on the host used to raise ValueError
    x = torch.zeros(4, dtype=torch.int32)
    run_gems(lambda: x.fill_(torch.tensor(7.9)), served=["fill_.Tensor"])
    assert x.tolist() == [7, 7, 7, 7]
    run_gems(lambda: x.fill_(torch.tensor(float("nan"))), served=["fill_.Tensor"])
