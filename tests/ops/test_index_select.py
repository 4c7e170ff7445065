"""index_select, embedding, index_add (exact, or against fp64 where additions may reorder)."""
import pytest
import torch

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import DTYPES, check, ix, rand


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dtype, dim):
    x = rand((5, 7, 3), dtype, "strided")
    idx = torch.randint(0, x.size(dim), (9,), dtype=torch.int32 if dim else torch.int64)
    check(torch.index_select, x, dim, idx, served=["index_select.default"])


def test_index_select_out_scalar_index_errors():
    x = rand((5, 7), torch.float32)
    out = poisoned((5, 2), torch.float32)
    idx = torch.tensor([6, 0])
    got, _ = run_gems(lambda: torch.index_select(x, 1, idx, out=out), served=["index_select.out"])
    assert torch.equal(out, torch.index_select(x, 1, idx))
    check(torch.index_select, x, 0, torch.tensor(3), served=["index_select.default"])
    check(torch.index_select, x, 0, torch.empty(0, dtype=torch.long), served=["index_select.default"])
    with pytest.raises(IndexError, match="index out of range"):
        run_gems(torch.index_select, x, 1, torch.tensor([7]))


@pytest.mark.parametrize("idt", [torch.int32, torch.int64])
def test_embedding(idt):
    w = make_tensor((11, 6), torch.float32)
    ids = torch.randint(0, 11, (3, 4, 2), dtype=idt)
    check(torch.nn.functional.embedding, ids, w, served=["embedding.default"])
    check(torch.nn.functional.embedding, ids, w, padding_idx=0, served=["embedding.default"])
    check(torch.nn.functional.embedding, torch.tensor(5, dtype=idt), w.t().contiguous().t(),
          served=["embedding.default"])
    for bad in (11, -1):
        with pytest.raises(IndexError, match="index out of range"):
            run_gems(torch.nn.functional.embedding, torch.tensor([0, bad], dtype=idt), w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32,
                                   torch.int64, torch.int16])
def test_index_add(dtype):
    x = rand((7, 4, 3), dtype)
    idx = torch.randint(0, 4, (9,))            # duplicates along dim 1
    src = rand((7, 9, 3), dtype)
    alpha = 2 if not dtype.is_floating_point else 0.5
    want = x.double().index_add(1, idx, src.double(), alpha=alpha)
    for fn, name in ((lambda: x.clone().index_add_(1, idx, src, alpha=alpha), "index_add_.default"),
                     (lambda: torch.index_add(x, -2, idx, src, alpha=alpha), "index_add.default")):
        got, _ = run_gems(fn, served=[name])
        if dtype.is_floating_point:
            assert_close(got, want, dtype, reduce_len=9)
        else:
            assert torch.equal(got, x.index_add(1, idx, src, alpha=alpha))
    out = poisoned(x.shape, dtype)
    run_gems(lambda: torch.index_add(x, 1, idx, src, alpha=alpha, out=out), served=["index_add.out"])
    if not dtype.is_floating_point:
        assert torch.equal(out, x.index_add(1, idx, src, alpha=alpha))


def test_index_add_exact_without_duplicates_and_errors():
    # the MoE combine pattern: unique rows, fp32 and bf16 must match torch bit for bit
    for dtype in (torch.float32, torch.bfloat16):
        x = rand((20, 64), dtype)
        idx = torch.randperm(20)[:7]
        src = rand((7, 64), dtype)
        check(lambda: x.clone().index_add_(0, idx, src), served=["index_add_.default"])
    check(lambda: torch.zeros(5, 3).t().index_add_(0, ix(2, 0), torch.ones(2, 5)), served=["index_add_.default"])
    # torch's index_add raises RuntimeError (issue 13 finding 15: flaggems raised IndexError)
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 0 with size 3"):
        run_gems(lambda: torch.zeros(3, 2).index_add_(0, ix(3), torch.ones(1, 2)))
