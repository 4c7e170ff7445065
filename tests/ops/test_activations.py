"""gelu (erf and tanh) and softplus against fp64 references."""
import pytest
import torch
import torch.nn.functional as F

from flaggems.testing import assert_close, run_gems
from flaggems.testing.strategies import make_tensor

SPECIAL = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 3.5, -2.5, 1e-30, 88.0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu(approximate, dtype):
    x = make_tensor((6, 40), dtype, low=-6, high=6)
    got, _ = run_gems(F.gelu, x, approximate=approximate, served=["gelu.default"])
    assert_close(got, F.gelu(x.double(), approximate=approximate), dtype, rtol=4e-6 if dtype == torch.float32 else None)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus(beta, threshold):
    x = torch.cat([make_tensor((50,), torch.float32, low=-30, high=30), SPECIAL])
    got, _ = run_gems(F.softplus, x, beta, threshold, served=["softplus.default"])
    assert_close(got, F.softplus(x.double(), beta, threshold), torch.float32, rtol=4e-6)
    h = make_tensor((64,), torch.bfloat16, low=-10, high=10)
    got, _ = run_gems(F.softplus, h, served=["softplus.default"])
    assert_close(got, F.softplus(h.double()), torch.bfloat16)
