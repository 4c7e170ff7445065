"""sparse_attn: C++ (every SIMD path) and Triton against the fp64 reference, with -1 anywhere, all-invalid rows."""
import pytest
import torch

from flaggems.cpp import sparse_attn_cpp
from flaggems.deepseek.sparse_attn import sparse_attn_ref
from flaggems.testing import assert_close

from .conftest import KINDS, run_op


def make(b, m, h, d, n, K, dtype, seed=0, idx_dtype=torch.int32, p_invalid=0.3):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, m, h, d, generator=g).to(dtype)
    kv = torch.randn(b, n, d, generator=g).to(dtype)
    sink = torch.randn(h, generator=g)
    idx = torch.randint(0, n, (b, m, K), generator=g)
    idx[torch.rand(b, m, K, generator=g) < p_invalid] = -1
    idx[0, 0, :] = -1                                  # an all-invalid row -> zeros
    if K > 64:
        idx[-1, -1, :64] = -1                          # first 64 invalid, the rest valid
    return q, kv, sink, idx.to(idx_dtype)


def _tol(dtype, d):
    return dict(dtype=dtype, reduce_len=1) if dtype != torch.float32 else dict(dtype=dtype, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 4, 64, 50, 20), (2, 3, 5, 72, 40, 70), (1, 2, 16, 512, 300, 130)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_sparse_attn_cpp(isa, shape, dtype):
    q, kv, sink, idx = make(*shape, dtype)
    out = sparse_attn_cpp(q, kv, sink, idx, shape[3] ** -0.5)
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, shape[3] ** -0.5), **_tol(dtype, shape[3]))
    assert torch.all(out[0, 0] == 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("idx_dtype", [torch.int32, torch.int64])
def test_sparse_attn_kinds(kind, idx_dtype):
    q, kv, sink, idx = make(2, 2, 4, 64, 80, 96, torch.bfloat16, seed=1, idx_dtype=idx_dtype)
    out = run_op("sparse_attn", kind, q, kv, sink, idx, 0.125)
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, 0.125), torch.bfloat16)
    assert torch.all(out[0, 0] == 0)


def test_sparse_attn_strided_and_sink_extremes():
    q, kv, sink, idx = make(2, 3, 4, 64, 40, 33, torch.bfloat16, seed=2)
    cache = torch.randn(2, 60, 64).to(torch.bfloat16)
    cache[:, 10:50] = kv
    kv_view = cache[:, 10:50]                           # a slice of a bigger cache (row stride kept)
    qs = torch.randn(2, 3, 8, 64).to(torch.bfloat16)[:, :, ::2]   # strided heads
    for s in (sink, torch.full((4,), -float("inf")), torch.full((4,), 60.0)):
        out = sparse_attn_cpp(qs, kv_view, s, idx, 0.125)
        assert_close(out, sparse_attn_ref(qs, kv, s, idx, 0.125), torch.bfloat16)
        assert not torch.isnan(out).any()


def test_sparse_attn_all_invalid_and_empty():
    q, kv, sink, idx = make(1, 2, 4, 64, 10, 8, torch.float32, seed=3)
    idx.fill_(-1)
    assert torch.all(sparse_attn_cpp(q, kv, sink, idx, 0.1) == 0)
    assert sparse_attn_cpp(q[:, :0], kv, sink, idx[:, :0], 0.1).shape == (1, 0, 4, 64)


def _nonfinite_case():
    """b=1, m=6 queries, h=4 heads, d=32, n=12 rows; every query row has valid indices except query 5."""
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 6, 4, 32, generator=g)
    kv = torch.randn(1, 12, 32, generator=g)
    sink = torch.randn(4, generator=g)
    idx = torch.randint(1, 10, (1, 6, 8), generator=g)
    q[0, 0, 1, 3] = float("nan")                       # query 0 head 1: NaN scores
    sink[2] = float("nan")                             # head 2: NaN sink
    sink[3] = float("inf")                             # head 3: +inf sink (inf - inf in the softmax)
    kv[0, 10, 7] = float("inf")                        # row 10: used by query 1 only
    q[0, 1, :, 7] = -1.0                               # ... where its score is -inf (term dropped, 0·inf = NaN)
    idx[0, 1, 2] = 10
    kv[0, 0, :] = float("nan")                         # row 0: only behind skipped slots (clamped to by -1)
    idx[0, 2, 5] = -1
    kv[0, 11, :] = -3e38                               # row 11: a -inf score for query 3 (q . kv overflows)
    q[0, 3:5] = q[0, 3:5].abs() + 0.1
    idx[0, 3, 0] = 11
    idx[0, 4, :] = -1                                  # query 4: its only valid score is -inf -> 0 beside a
    idx[0, 4, 3] = 11                                  # finite sink (torch: softmax([-inf, sink]) = [0, 1])
    idx[0, 5, :] = -1                                  # query 5: nothing valid -> zeros, even beside a NaN sink
    return q, kv, sink, idx.to(torch.int32)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_attn_nan_inf_like_reference(kind):
    # issue 13 finding 5: non-finite q / sink / kv propagate as in torch's softmax(cat(s, sink)) @ kv, identically
    # in both kinds and the reference
    q, kv, sink, idx = _nonfinite_case()
    out = run_op("sparse_attn", kind, q, kv, sink, idx, 32 ** -0.5)
    ref = sparse_attn_ref(q, kv, sink, idx, 32 ** -0.5)
    assert torch.equal(out.isnan(), ref.isnan()), (out.isnan().nonzero().tolist(), ref.isnan().nonzero().tolist())
    assert_close(out.nan_to_num(), ref.nan_to_num(), dtype=torch.float32, atol=1e-5, rtol=1e-5)
    nan = out.isnan()
    assert nan[0, :5, 2:].all() and (out[0, 5] == 0).all()             # NaN / +inf sinks, empty query 5
    assert nan[0, 0, 1].all() and not nan[0, 0, 0].any()               # NaN q: only its own head
    assert nan[0, 1, :2, 7].all() and not nan[0, 1, :2, :7].any()      # inf in kv: its column (p·kv)
    assert not nan[0, 2:4, :2].any()                                   # skipped NaN row; a -inf score
    assert (out[0, 4, :2] == 0).all()                                  # only -inf scores: exp(-inf) = 0


# bf16 q . kv products are exact in fp32 and P is rounded to bf16 for P . V (as in DeepSeek's TileLang kernel):
# the result must stay within the same bf16 output tolerance as the fp32 kernel, against the fp64 reference.
@pytest.mark.parametrize("shape", [(1, 1, 4, 64, 50, 20), (2, 3, 5, 72, 40, 70), (1, 2, 16, 512, 300, 130),
                                   (3, 1, 3, 100, 70, 65), (1, 1, 64, 512, 700, 640), (2, 1, 1, 34, 9, 1)])
def test_sparse_attn_bf16_dot(bf16_dot, shape):
    for seed, p_invalid in ((0, 0.3), (1, 0.0)):
        q, kv, sink, idx = make(*shape, torch.bfloat16, seed=seed, p_invalid=p_invalid)
        out = sparse_attn_cpp(q, kv, sink, idx, shape[3] ** -0.5)
        assert_close(out, sparse_attn_ref(q, kv, sink, idx, shape[3] ** -0.5), torch.bfloat16)
        assert torch.all(out[0, 0] == 0)


def test_sparse_attn_bf16_dot_strided_and_sink_extremes(bf16_dot):
    test_sparse_attn_strided_and_sink_extremes()


def test_sparse_attn_bf16_dot_nan_inf(bf16_dot):
    # issue 13 finding 5 on the bf16 dot-product path: same NaN pattern as the reference, 0 for only -inf scores
    q, kv, sink, idx = _nonfinite_case()
    q, kv = q.bfloat16(), kv.bfloat16()
    out = sparse_attn_cpp(q, kv, sink, idx, 32 ** -0.5)
    ref = sparse_attn_ref(q, kv, sink, idx, 32 ** -0.5)
    assert torch.equal(out.isnan(), ref.isnan())
    assert (out[0, 4, :2] == 0).all() and (out[0, 5] == 0).all()
