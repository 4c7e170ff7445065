"""any / all over all dims, one dim and several dims; empty reductions give the identity."""
import pytest
import torch

from flaggems.testing import run_gems


@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.int32, torch.uint8])
def test_any_all(dtype):
    x = (torch.rand(6, 300, 2) > 0.97).to(dtype)
    x[1] = 1
    x[2] = 0
    for op in ("any", "all"):
        got, _ = run_gems(getattr(torch, op), x, served=[f"{op}.default"])
        assert torch.equal(got, getattr(torch, op)(x))
        got, _ = run_gems(getattr(torch, op), x, 1, served=[f"{op}.dim"])
        assert torch.equal(got, getattr(torch, op)(x, 1))
        got, _ = run_gems(getattr(torch, op), x, (0, 2), True, served=[f"{op}.dims"])
        assert torch.equal(got, getattr(torch, op)(x, (0, 2), True))
    e = torch.empty(0, 3, dtype=dtype)
    assert torch.equal(run_gems(torch.any, e, 0)[0], torch.zeros(3, dtype=torch.uint8 if dtype == torch.uint8
                                                                   else torch.bool))
    assert torch.equal(run_gems(torch.all, e, 0)[0], torch.ones(3, dtype=torch.uint8 if dtype == torch.uint8
                                                                  else torch.bool))
