"""copy_ / _to_copy / clone casts and layouts; fills and factories; arange."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int8,
          torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2]


@pytest.mark.parametrize("src_dt", DTYPES)
@pytest.mark.parametrize("dst_dt", [torch.float32, torch.bfloat16, torch.int32, torch.bool, torch.float8_e4m3fn])
def test_to_copy_casts_match_torch(src_dt, dst_dt):
    base = torch.cat([torch.randn(200) * 300, torch.tensor([0.0, -0.0, 1.5, -2.5, 449.0, -1e6, 0.3])])
    if src_dt.is_floating_point:
        x = base.to(src_dt)
    else:
        x = base.clamp(-100, 100).to(torch.int64).to(src_dt) if src_dt != torch.bool else base > 0
    if dst_dt in (torch.int32, torch.bool) and src_dt.is_floating_point:
        x = x.float().clamp(-1e3, 1e3).to(src_dt)  # float->int of out-of-range values is UB in torch too
    got, _ = run_gems(lambda: x.to(dst_dt, copy=True), served=["_to_copy.default"])
    want = x.to(dst_dt)
    assert got.dtype == dst_dt
    bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[dst_dt.itemsize]
    if dst_dt == torch.bool:
        assert torch.equal(got, want)
    else:
        assert torch.equal(got.view(bits), want.view(bits)), (x[got.view(bits) != want.view(bits)][:5])


def test_copy_broadcast_strided_dst():
    dst = poisoned((6, 4), torch.float32).t()  # [4, 6], column-major
    src = make_tensor((6,), torch.bfloat16)
    run_gems(lambda: dst.copy_(src), served=["copy_.default"])
    assert torch.equal(dst, src.float().expand(4, 6))
    a = make_tensor((3, 5), torch.float32, "transposed")
    got, _ = run_gems(lambda: a.contiguous(), served=["clone.default"])
    assert got.is_contiguous() and torch.equal(got, a)
    got, _ = run_gems(lambda: a.clone(), served=["clone.default"])
    assert got.stride() == a.clone().stride() and torch.equal(got, a)


def test_copy_falls_back_for_overlap_and_complex():
    d = torch.zeros(1).expand(3)
    with pytest.raises(RuntimeError):
        run_gems(lambda: d.copy_(torch.ones(3)))
    c = torch.randn(3, dtype=torch.complex64)
    got, rep = run_gems(lambda: c.clone())
    assert torch.equal(got, c) and rep.fallbacks()["aten::clone.default"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.float8_e4m3fn])
def test_fills_and_factories(dtype):
    x = poisoned((3, 4), dtype)
    run_gems(lambda: x.fill_(1), served=["fill_.Scalar"])
    assert torch.equal(x, torch.ones(3, 4, dtype=dtype))
    run_gems(lambda: x.zero_(), served=["zero_.default"])
    assert torch.equal(x, torch.zeros(3, 4, dtype=dtype))
    got, _ = run_gems(lambda: torch.full((2, 5), 3 if dtype != torch.bool else True, dtype=dtype),
                      served=["full.default"])
    assert torch.equal(got, torch.full((2, 5), 3 if dtype != torch.bool else True, dtype=dtype))
    for name, fn in (("zeros", lambda: torch.zeros(4, dtype=dtype)), ("ones", lambda: torch.ones(2, 3, dtype=dtype)),
                     ("zeros_like", lambda: torch.zeros_like(x)), ("ones_like", lambda: torch.ones_like(x)),
                     ("full_like", lambda: torch.full_like(x, 2)), ("new_zeros", lambda: x.new_zeros(5)),
                     ("new_ones", lambda: x.new_ones((2, 2))), ("new_full", lambda: x.new_full((3,), 1))):
        got, _ = run_gems(fn, served=[f"{name}.default"])
        assert got.dtype == fn().dtype and torch.equal(got, fn()), name


def test_fill_tensor_value_and_python_defaults():
    x = torch.empty(5)
    run_gems(lambda: x.fill_(torch.tensor(2.25)), served=["fill_.Tensor"])
    assert torch.equal(x, torch.full((5,), 2.25))
    got, _ = run_gems(lambda: torch.full((3,), 7), served=["full.default"])
    assert got.dtype == torch.int64 and got.tolist() == [7, 7, 7]
    got, _ = run_gems(lambda: torch.full((2,), 0.1, dtype=torch.float64), served=["full.default"])
    assert got.tolist() == [0.1, 0.1]


@pytest.mark.parametrize("args,kw", [((10,), {}), ((3, 17), {}), ((-5, 20, 3), {}), ((0.5, 3.0, 0.25), {}),
                                     ((0, 1, 0.1), {"dtype": torch.float64}), ((10, 0, -3), {}),
                                     ((0, 100), {"dtype": torch.bfloat16}), ((2 ** 33, 2 ** 33 + 5), {}),
                                     ((5, 5), {}), ((1, 4), {"dtype": torch.float32})])
def test_arange(args, kw):
    got, _ = run_gems(lambda: torch.arange(*args, **kw))
    want = torch.arange(*args, **kw)
    assert got.dtype == want.dtype and torch.equal(got, want)


def test_arange_errors_like_torch():
    with pytest.raises(RuntimeError):
        run_gems(lambda: torch.arange(0, 10, 0))
    with pytest.raises(RuntimeError):
        run_gems(lambda: torch.arange(10, 0, 1))


@pytest.mark.parametrize("value,dtype", [(2.5, None), (3, None), (True, torch.bool), (-7, torch.int32),
                                         (1e3, torch.bfloat16), (float("nan"), torch.float16)])
def test_scalar_tensor(value, dtype):
    got, _ = run_gems(lambda: torch.scalar_tensor(value, dtype=dtype), served=["scalar_tensor.default"])
    want = torch.scalar_tensor(value, dtype=dtype)
    assert got.dtype == want.dtype and got.shape == () and torch.equal(got, want) | (got.isnan() & want.isnan())
