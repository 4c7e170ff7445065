"""cumsum along each dim, dtype= casts, long rows, out= and in-place."""
import pytest
import torch

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import check, rand


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32,
                                   torch.int64, torch.bool])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dtype, dim):
    x = rand((6, 33, 5), dtype, "transposed")
    got, _ = run_gems(torch.cumsum, x, dim, served=["cumsum.default"])
    want = torch.cumsum(x, dim)
    assert got.dtype == want.dtype
    if want.is_floating_point():
        assert_close(got, torch.cumsum(x.double(), dim), dtype, reduce_len=x.size(dim))
        if dtype == torch.float32 or dtype == torch.float64:
            assert torch.equal(got, want)   # both accumulate in double on CPU
    else:
        assert torch.equal(got, want)


def test_cumsum_dtype_long_rows_out_inplace():
    x = make_tensor((8,), torch.float32) * 3
    check(torch.cumsum, x, 0, dtype=torch.int32, served=["cumsum.default"])    # cast first, then sum
    long_row = torch.randint(-3, 4, (2, 9000))
    check(torch.cumsum, long_row, 1, served=["cumsum.default"])
    out = poisoned((2, 9000), torch.int64)
    run_gems(lambda: torch.cumsum(long_row, 1, out=out), served=["cumsum.out"])
    assert torch.equal(out, long_row.cumsum(1))
    check(lambda: long_row.clone().cumsum_(0), served=["cumsum_.default"])
    check(torch.cumsum, torch.tensor(3.0), 0, served=["cumsum.default"])
    check(torch.cumsum, torch.empty(0, 3), 0, served=["cumsum.default"])


def test_device_plan_accumulator_and_warps(monkeypatch):
    """Planning as a device (what the AOT gate captures on CPU tensors): fp32 accumulates in fp32 like torch's GPU
    kernels (it took the CPU rule, fp64, from the tensor's device type: rule 13), and 64-bit accumulators launch
    with twice the warps (int64 spilled 688 B on sm_90 in 4 warps: rule 14). Results stay right either way."""
    from flaggems import runtime
    from flaggems.ops import cumsum as cumsum_mod

    launches = []
    real = cumsum_mod._cumsum_kernel

    class Recorder:
        def __getitem__(self, grid):
            def launch(*args, **kw):
                launches.append((str(kw["ACC"]), kw.get("num_warps", 4)))
                return real[grid](*args, **kw)
            return launch

    monkeypatch.setattr(cumsum_mod, "_cumsum_kernel", Recorder())
    x = make_tensor((8, 40), torch.float32)
    i = torch.randint(-9, 9, (8, 40))
    with runtime.planning_as_device():
        got, _ = run_gems(torch.cumsum, x, 1, served=["cumsum.default"])
        goti, _ = run_gems(torch.cumsum, i, 1, served=["cumsum.default"])
    assert_close(got, torch.cumsum(x.double(), 1), torch.float32, reduce_len=40)
    assert torch.equal(goti, torch.cumsum(i, 1))
    assert launches == [("fp32", 4), ("int64", 8)], launches
