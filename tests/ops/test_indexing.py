"""Indexing / data-movement ops against torch's native CPU results (exact: they move data, no arithmetic),
accumulating ops against fp64 references where float additions may be reordered."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.bool]


def rand(shape, dtype, layout="contiguous"):
    if dtype == torch.bool:
        return make_tensor(shape, torch.float32, layout) > 0
    return make_tensor(shape, dtype, layout)


def same(got, want, msg=""):
    if isinstance(want, (tuple, list)):
        for g, w in zip(got, want):
            same(g, w, msg)
        return
    assert got.dtype == want.dtype and got.shape == want.shape, f"{msg}: {got.dtype}{tuple(got.shape)} vs " \
                                                                f"{want.dtype}{tuple(want.shape)}"
    assert torch.equal(got, want) or (got.is_floating_point() and torch.equal(got.nan_to_num(), want.nan_to_num())), \
        f"{msg}: {(got != want).nonzero()[:5].tolist()}"


def check(fn, *args, served=(), **kw):
    got, _ = run_gems(fn, *args, served=served, **kw)
    same(got, fn(*args, **kw), str(served))
    return got


# ---------------------------------------------------------------------------------------------------- gather
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dtype, dim):
    x = rand((6, 9, 5), dtype)
    idx = torch.randint(0, x.size(dim), (4, 7, 3))
    check(torch.gather, x, dim, idx, served=["gather.default"])


def test_gather_layouts_out_and_errors():
    x = rand((7, 8), torch.float32, "transposed")
    idx = torch.randint(0, 7, (6, 5)).t()   # non-contiguous index, shape (5, 6)
    check(torch.gather, x, 0, idx, served=["gather.default"])
    out = poisoned((5, 6), torch.float32)
    got, _ = run_gems(lambda: torch.gather(x, 0, idx, out=out), served=["gather.out"])
    assert got is out and torch.equal(out, torch.gather(x, 0, idx))
    check(torch.gather, x, 1, torch.empty(0, 3, dtype=torch.long), served=["gather.default"])
    for bad in (8, -1):
        with pytest.raises(RuntimeError, match="out of bounds"):
            run_gems(torch.gather, x, 1, torch.tensor([[0, bad]]))


# ---------------------------------------------------------------------------------------------------- scatter
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_scatter_src_value(dtype):
    x = rand((5, 8), dtype)
    src = rand((5, 8), dtype)
    # unique indices per row so the result does not depend on which duplicate wins
    idx = torch.stack([torch.randperm(8)[:3] for _ in range(5)])
    check(torch.scatter, x, 1, idx, src, served=["scatter.src"])
    check(torch.scatter, x, 1, idx, 1, served=["scatter.value"])
    check(lambda: x.clone().scatter_(1, idx, src), served=["scatter_.src"])
    check(lambda: x.clone().scatter_(-1, idx, 0), served=["scatter_.value"])
    out = poisoned(x.shape, dtype)
    got, _ = run_gems(lambda: torch.scatter(x, 1, idx, src, out=out), served=["scatter.src_out"])
    same(got, torch.scatter(x, 1, idx, src))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32,
                                   torch.int64, torch.int8])
def test_scatter_add_duplicates(dtype):
    x = rand((4, 6), dtype)
    src = rand((4, 10), dtype)
    idx = torch.randint(0, 6, (4, 10))   # many duplicates
    want = torch.scatter_add(x.double(), 1, idx, src.double())
    for fn, name in ((lambda: torch.scatter_add(x, 1, idx, src), "scatter_add.default"),
                     (lambda: x.clone().scatter_add_(1, idx, src), "scatter_add_.default"),
                     (lambda: torch.scatter(x, 1, idx, src, reduce="add"), "scatter.reduce")):
        got, _ = run_gems(fn, served=[name])
        assert got.dtype == dtype
        if dtype.is_floating_point:
            assert_close(got, want, dtype, reduce_len=10)
        else:
            assert torch.equal(got, torch.scatter_add(x, 1, idx, src))  # integer adds wrap the same way


def test_scatter_errors_and_noncontiguous():
    x = torch.zeros(6, 5).t()      # (5, 6) non-contiguous destination
    idx = torch.tensor([[0, 5], [2, 2]])
    check(lambda: x.clone().scatter_(1, idx, 2.5), served=["scatter_.value"])
    check(lambda: torch.zeros(5, 6).t().scatter_add_(0, idx.t().contiguous(), torch.ones(2, 2)),
          served=["scatter_add_.default"])
    with pytest.raises(RuntimeError, match="out of bounds"):
        run_gems(lambda: torch.zeros(3, 4).scatter_(1, torch.tensor([[4]]), 1.0))
    with pytest.raises(RuntimeError):
        run_gems(lambda: torch.zeros(3, 4).scatter_(1, torch.tensor([[-1]]), 1.0))


def test_one_hot_goes_through_scatter():
    got, rep = run_gems(torch.nn.functional.one_hot, torch.tensor([[1, 3], [0, 4]]), 6, served=["scatter_.value"])
    assert torch.equal(got, torch.nn.functional.one_hot(torch.tensor([[1, 3], [0, 4]]), 6))


# ------------------------------------------------------------------------------------------ index_select / embedding
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


# ---------------------------------------------------------------------------------------------------- index.Tensor
def _i(*v):
    return torch.tensor(v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_index_tensor(dtype):
    x = rand((5, 6, 7), dtype)
    cases = [
        lambda: x[_i(4, -1, 0, 4)],                                   # single, negative, duplicates
        lambda: x[:, _i(1, 5)],                                       # None slice before
        lambda: x[_i(0, 2), _i(1, -2)],                               # two adjacent, same shape
        lambda: x[_i([0], [4]), _i(1, 5, 2)],                         # broadcasting between index tensors
        lambda: x[_i(0, 2), :, _i(6, 1)],                             # non-adjacent: broadcast dims go first
        lambda: x[:, _i([1, 2], [3, 0]), _i(0)],                      # adjacent after a slice
        lambda: x[..., _i(3)],
        lambda: x[x.sum(-1) > 0] if dtype != torch.bool else x[x[..., 0]],   # bool mask over two dims
        lambda: x[_i(1, 3), x[0, :, 0] > 0] if dtype != torch.bool else x[_i(1), x[0, :, 0]],
        lambda: x[_i(1, 2).to(torch.int32)],
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
        run_gems(lambda: x[_i(0, 8)])
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x[_i(0), _i(-9)])
    with pytest.raises(IndexError):
        run_gems(lambda: x[torch.ones(3, dtype=torch.bool)])
    with pytest.raises(IndexError):
        run_gems(lambda: x[_i(0, 1), _i(0, 1, 2)])


# ---------------------------------------------------------------------------------------------------- index_put
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
        (lambda t: t.__setitem__((slice(None), _i(4, 0)), rand((6, 2, 3), dtype)) or t),
        (lambda t: t.index_put_((x[..., 0] != x[..., 1],), torch.ones((), dtype=dtype))),  # bool mask
        (lambda t: t.__setitem__((rows, slice(None), _i(2)), rand((4, 5), dtype)) or t),   # non-adjacent
    ]
    for k, fn in enumerate(cases):
        torch.manual_seed(k)
        got, _ = run_gems(lambda: fn(x.clone()), served=["index_put_.default"])
        torch.manual_seed(k)
        same(got, fn(x.clone()), f"case {k}")
    t = x.clone().transpose(0, 1)   # non-contiguous destination
    vals = rand((5, 2, 3), dtype)
    got, _ = run_gems(lambda: t.clone().transpose(0, 1).index_put_((_i(1, 3),), vals.transpose(0, 1)),
                      served=["index_put_.default"])
    same(got, t.clone().transpose(0, 1).index_put_((_i(1, 3),), vals.transpose(0, 1)))


def test_index_put_errors():
    x = torch.zeros(4, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x.index_put_((_i(4),), torch.ones(3)))
    with pytest.raises(IndexError, match="out of bounds"):
        run_gems(lambda: x.index_put_((_i(0), _i(-4)), torch.ones(()), accumulate=True))
    with pytest.raises(RuntimeError):
        run_gems(lambda: x.index_put_((_i(0, 1),), torch.ones(5)))   # values do not broadcast


# ---------------------------------------------------------------------------------------------------- index_add
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
    check(lambda: torch.zeros(5, 3).t().index_add_(0, _i(2, 0), torch.ones(2, 5)), served=["index_add_.default"])
    with pytest.raises(IndexError, match="index out of range"):
        run_gems(lambda: torch.zeros(3, 2).index_add_(0, _i(3), torch.ones(1, 2)))


# ---------------------------------------------------------------------------------------------------- nonzero
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


# ---------------------------------------------------------------------------------------------------- cat / stack
def test_cat_stack():
    a = rand((3, 4, 5), torch.float32, "transposed")
    b = rand((3, 2, 5), torch.float32)
    check(torch.cat, [a[:, :2], b], 1, served=["cat.default"])
    check(torch.cat, [a, b.to(torch.bfloat16)[:, :1]], -2, served=["cat.default"])     # promotion
    check(torch.cat, [b.to(torch.int32), b.to(torch.bool)], 0, served=["cat.default"])
    check(torch.cat, [torch.empty(0), b, torch.empty(0)], 1, served=["cat.default"])   # legacy empty inputs
    check(torch.cat, [b, b[:, :0]], 1, served=["cat.default"])
    check(torch.cat, [torch.arange(3)], 0, served=["cat.default"])
    out = poisoned((3, 4, 5), torch.float32)
    run_gems(lambda: torch.cat([b, b], 1, out=out), served=["cat.out"])
    assert torch.equal(out, torch.cat([b, b], 1))
    for d in (0, 2, -1, 3):
        check(torch.stack, [b, b * 2, b.transpose(0, 2).contiguous().transpose(0, 2)], d, served=["stack.default"])
    out = poisoned((2, 3, 2, 5), torch.float32)
    run_gems(lambda: torch.stack([b, b], 0, out=out), served=["stack.out"])
    assert torch.equal(out, torch.stack([b, b]))
    with pytest.raises(RuntimeError):
        run_gems(torch.cat, [a, b], 0)


# ---------------------------------------------------------------------------------------------------- pad / masked_fill
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_constant_pad(dtype):
    x = rand((3, 4, 5), dtype, "transposed")
    val = True if dtype == torch.bool else 3
    for pad in ([0, 2], [1, 2, 0, 3], [-1, 2, 1, -2], [2, 2, 2, 2, 2, 2], [-5, 1], [0, 0]):
        check(lambda: torch.constant_pad_nd(x, pad, val), served=["constant_pad_nd.default"])
    check(lambda: torch.nn.functional.pad(x, (1, 1), value=-1.5 if dtype.is_floating_point else 0),
          served=["constant_pad_nd.default"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                   torch.bool])
def test_masked_fill(dtype):
    x = rand((4, 6), dtype)
    m = torch.rand(4, 6) > 0.5
    v = True if dtype == torch.bool else (float("-inf") if dtype.is_floating_point else -7)
    check(torch.masked_fill, x, m, v, served=["masked_fill.Scalar"])
    check(torch.masked_fill, x, m[:1], v, served=["masked_fill.Scalar"])          # broadcast mask
    check(torch.masked_fill, x[:1], m, v, served=["masked_fill.Scalar"])          # broadcast self
    check(torch.masked_fill, x.t(), m.t(), torch.tensor(1), served=["masked_fill.Tensor"])
    check(lambda: x.clone().masked_fill_(m[0], v), served=["masked_fill_.Scalar"])
    check(lambda: x.clone().masked_fill_(m, torch.tensor(0.25)), served=["masked_fill_.Tensor"])


# ---------------------------------------------------------------------------------------------------- isin
def test_isin():
    e = torch.randint(0, 20, (5, 7))
    t = torch.randint(0, 20, (9,))
    check(torch.isin, e, t, served=["isin.Tensor_Tensor"])
    check(torch.isin, e.t(), t, invert=True, served=["isin.Tensor_Tensor"])
    check(torch.isin, e, 3, served=["isin.Tensor_Scalar"])
    check(torch.isin, 4, t, served=["isin.Scalar_Tensor"])
    check(torch.isin, e, torch.tensor(5), served=["isin.Tensor_Tensor"])
    f = torch.tensor([0.5, float("nan"), -0.0, 1.0, 3.0])
    check(torch.isin, f, torch.tensor([0.0, float("nan"), 3.0], dtype=torch.float64), served=["isin.Tensor_Tensor"])
    check(torch.isin, f.to(torch.bfloat16), e.reshape(-1)[:3].to(torch.int32), served=["isin.Tensor_Tensor"])
    check(torch.isin, e, torch.randint(0, 20, (3000,)), served=["isin.Tensor_Tensor"])   # several test blocks
    check(torch.isin, torch.empty(0, dtype=torch.long), t, served=["isin.Tensor_Tensor"])


# ---------------------------------------------------------------------------------------------------- cumsum
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


# ---------------------------------------------------------------------------------------------------- bincount / histc
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


def test_high_rank_goes_native_with_reason():
    x = torch.randn(2, 1, 2, 3, 1, 2, 2)
    idx = torch.zeros(2, 1, 2, 3, 1, 2, 1, dtype=torch.long)
    got, rep = run_gems(torch.gather, x, 6, idx)
    assert torch.equal(got, torch.gather(x, 6, idx))
    assert "rank > 6" in str(dict(rep._find("gather.default")["fallback"]))
    # 7 dims that merge are fine for pointwise-shaped data movement
    check(torch.cat, [x, x], 3, served=["cat.default"])
    got, _ = run_gems(lambda: x[:, :, :, :, :, :, _i(1, 0)])
    assert torch.equal(got, x[:, :, :, :, :, :, _i(1, 0)])


# ---------------------------------------------------------------------------------------------------- hypothesis
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 3), st.data())
def test_gather_scatter_add_hypothesis(shape, dim_seed, data):
    dim = dim_seed % len(shape)
    x = torch.randn(shape)
    ishape = [data.draw(st.integers(0 if d == dim else 1, s if d != dim else 7)) for d, s in enumerate(shape)]
    idx = torch.randint(0, shape[dim], ishape)
    check(torch.gather, x, dim, idx, served=["gather.default"])
    src = torch.randint(-5, 5, ishape)
    xi = torch.randint(-5, 5, shape)
    check(torch.scatter_add, xi, dim, idx, src, served=["scatter_add.default"])


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
