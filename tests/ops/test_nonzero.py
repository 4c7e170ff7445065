"""nonzero over layouts, ranks, stride-0 dims, several blocks and out=."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import check


@pytest.mark.parametrize("shape,layout", [((37,), "contiguous"), ((5, 9), "transposed"), ((3, 4, 5), "strided"),
                                          ((2, 3, 1, 2, 3, 2), "contiguous"), ((0, 4), "contiguous")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
def test_nonzero(shape, layout, dtype):
    x = make_tensor(shape, torch.float32, layout)
    x = (x > 0.5) if dtype == torch.bool else torch.where(x > 0.5, x, torch.zeros_like(x)).to(dtype)
    check(torch.nonzero, x, served=["nonzero.default"])


def test_nonzero_edges():
    check(torch.nonzero, torch.zeros(6, 2), served=["nonzero.default"])
    check(torch.nonzero, torch.tensor(2.0), served=["nonzero.default"])
    check(torch.nonzero, torch.tensor(0), served=["nonzero.default"])
    x = torch.tensor([[0, 1], [2, 0]]).expand(3, 2, 2)   # stride-0 dim
    check(torch.nonzero, x, served=["nonzero.default"])
    big = torch.rand(70000) > 0.3
    check(torch.nonzero, big, served=["nonzero.default"])  # several blocks
    out = poisoned((1, 1), torch.int64)
    run_gems(lambda: torch.nonzero(x, out=out), served=["nonzero.out"])
    assert torch.equal(out, torch.nonzero(x))
