"""index.Tensor (x[i, j, mask]) and index_put(_) / _index_put_impl_."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, run_gems

from .conftest import check, ix, rand, same


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_index_tensor(dtype):
    x = rand((5, 6, 7), dtype)
    cases = [
        lambda: x[ix(4, -1, 0, 4)],                                   # single, negative, duplicates
        lambda: x[:, ix(1, 5)],                                       # None slice before
        lambda: x[ix(0, 2), ix(1, -2)],                               # two adjacent, same shape
        lambda: x[ix([0], [4]), ix(1, 5, 2)],                         # broadcasting between index tensors
        lambda: x[ix(0, 2), :, ix(6, 1)],                             # non-adjacent: broadcast dims go first
        lambda: x[:, ix([1, 2], [3, 0]), ix(0)],                      # adjacent after a slice
        lambda: x[..., ix(3)],
        lambda: x[x.sum(-1) > 0] if dtype != torch.bool else x[x[..., 0]],   # bool mask over two dims
        lambda: x[ix(1, 3), x[0, :, 0] > 0] if dtype != torch.bool else x[ix(1), x[0, :, 0]],
        lambda: x[ix(1, 2).to(torch.int32)],
        lambda: x[torch.empty(0, dtype=torch.long)],
    ]
    for i, fn in enumerate(cases):
        got, _ = run_gems(fn, served=["index.Tensor"])
        same(got, fn(), f"case {i}")


def test_index_tensor_noncontiguous_and_errors():
    x = rand((6, 8), torch.float32, "transposed")
    idx = torch.randint(-6, 6, (4, 3)).t()
    check(lambda: x[:, idx], served=["index.Tensor"])
    check(lambda: x[idx, idx], served=["index.Tensor"])
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x[ix(0, 8)])
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x[ix(0), ix(-9)])
    with pytest.raises(IndexError):
        run_gems(lambda: x[torch.ones(3, dtype=torch.bool)])
    with pytest.raises(IndexError):
        run_gems(lambda: x[ix(0, 1), ix(0, 1, 2)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int64,
                                   torch.int8])
def test_index_put_accumulate(dtype):
    x = rand((6, 5), dtype)
    i, j = torch.randint(-6, 6, (20,)), torch.randint(0, 5, (20,))
    v = rand((20,), dtype)
    got, _ = run_gems(lambda: x.clone().index_put_((i, j), v, accumulate=True), served=["index_put_.default"])
    if dtype.is_floating_point:
        assert_close(got, x.double().index_put_((i, j), v.double(), accumulate=True), dtype, reduce_len=20)
    else:
        assert torch.equal(got, x.clone().index_put_((i, j), v, accumulate=True))
    rows = torch.randint(0, 6, (9,))
    vals = rand((9, 5), dtype)
    got, _ = run_gems(lambda: torch.index_put(x, (rows,), vals, True), served=["index_put.default"])
    if dtype.is_floating_point:
        assert_close(got, torch.index_put(x.double(), (rows,), vals.double(), True), dtype, reduce_len=9)
    else:
        assert torch.equal(got, torch.index_put(x, (rows,), vals, True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_index_put_assign(dtype):
    x = rand((6, 5, 3), dtype)
    rows = torch.randperm(6)[:4]   # unique: no duplicate-order dependence
    cases = [
        (lambda t: t.index_put_((rows,), rand((4, 5, 3), dtype))),
        (lambda t: t.index_put_((rows,), rand((3,), dtype))),                     # broadcast values
        (lambda t: t.__setitem__((slice(None), ix(4, 0)), rand((6, 2, 3), dtype)) or t),
        (lambda t: t.index_put_((x[..., 0] != x[..., 1],), torch.ones((), dtype=dtype))),  # bool mask
        (lambda t: t.__setitem__((rows, slice(None), ix(2)), rand((4, 5), dtype)) or t),   # non-adjacent
    ]
    for k, fn in enumerate(cases):
        torch.manual_seed(k)
        got, _ = run_gems(lambda: fn(x.clone()), served=["index_put_.default"])
        torch.manual_seed(k)
        same(got, fn(x.clone()), f"case {k}")
    t = x.clone().transpose(0, 1)   # non-contiguous destination
    vals = rand((5, 2, 3), dtype)
    got, _ = run_gems(lambda: t.clone().transpose(0, 1).index_put_((ix(1, 3),), vals.transpose(0, 1)),
                      served=["index_put_.default"])
    same(got, t.clone().transpose(0, 1).index_put_((ix(1, 3),), vals.transpose(0, 1)))


def test_index_put_errors():
    x = torch.zeros(4, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x.index_put_((ix(4),), torch.ones(3)))
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x.index_put_((ix(0), ix(-4)), torch.ones(()), accumulate=True))
    with pytest.raises(RuntimeError):
        run_gems(lambda: x.index_put_((ix(0, 1),), torch.ones(5)))   # values do not broadcast


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4),
       st.lists(st.integers(1, 3), min_size=1, max_size=2))
def test_index_hypothesis(shape, which, ishape):
    x = torch.randn(shape)
    indices = [torch.randint(-s, s, ishape) if w else None for s, w in zip(shape, which)]
    while indices and indices[-1] is None:
        indices.pop()
    if not indices:
        indices = [torch.randint(-shape[0], shape[0], ishape)]
    check(lambda: x[tuple(slice(None) if i is None else i for i in indices)], served=["index.Tensor"])
