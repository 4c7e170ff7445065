"""bincount (weights, minlength, negative input) and histc (range edges, NaN)."""
import pytest
import torch

from flaggems.testing import assert_close, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import check


def test_bincount_histc():
    x = torch.randint(0, 9, (50,))
    check(torch.bincount, x, served=["bincount.default"])
    check(torch.bincount, x, minlength=15, served=["bincount.default"])
    w = make_tensor((50,), torch.float32)
    got, _ = run_gems(torch.bincount, x, w, served=["bincount.default"])
    assert_close(got, torch.bincount(x, w.double()), torch.float32, reduce_len=50)
    check(torch.bincount, torch.empty(0, dtype=torch.long), served=["bincount.default"])
    with pytest.raises(RuntimeError):
        run_gems(torch.bincount, torch.tensor([1, -1]))
    ids = torch.randint(0, 8, (40,)).float()
    check(torch.histc, ids, 8, 0, 7, served=["histc.default"])
    v = make_tensor((300,), torch.float32)
    check(torch.histc, v, 13, -2.5, 2.0, served=["histc.default"])
    check(torch.histc, torch.tensor([float("nan"), 1.0, 5.0, -1.0]), 4, 0, 4, served=["histc.default"])
