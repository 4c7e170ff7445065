"""flaggems::sparse_attn against its fp64 reference: -1 anywhere, all-invalid rows, ragged K, any h, d <= 512."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems  # noqa: F401
from flaggems.deepseek.sparse_attn import sparse_attn_ref, sparse_attn_triton
from flaggems.testing import assert_close

# bf16 output with the probabilities rounded to bf16 before P.kv (as the TileLang kernel does): relative
# error stays within bf16's own tolerance (rtol 1.6e-2); fp32 inputs run the dots at IEEE precision.
TOL = {torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.float32: dict(rtol=1e-5, atol=1e-5)}


def make(b, m, h, d, n, K, dtype, p_invalid=0.3, gen=None):
    q = torch.randn(b, m, h, d, generator=gen).to(dtype)
    kv = torch.randn(b, n, d, generator=gen).to(dtype)
    sink = torch.randn(h, generator=gen)
    idx = torch.randint(0, max(n, 1), (b, m, K), generator=gen, dtype=torch.int32)
    idx[torch.rand(b, m, K, generator=gen) < p_invalid] = -1
    if n == 0:
        idx.fill_(-1)
    return q, kv, sink, idx


def run_both(q, kv, sink, idx, scale):
    out_op = torch.ops.flaggems.sparse_attn(q, kv, sink, idx, scale)
    out_launch = sparse_attn_triton(q, kv, sink, idx, scale)
    assert torch.equal(out_op, out_launch)   # same kernel, deterministic
    return out_op


@pytest.mark.parametrize("b,m,h,d,n,K,dtype", [
    (1, 1, 1, 16, 1, 1, torch.bfloat16),
    (2, 3, 5, 64, 40, 70, torch.bfloat16),      # K not a multiple of any block, odd h
    (1, 2, 16, 512, 300, 130, torch.bfloat16),  # the model's head dim
    (2, 2, 3, 48, 10, 5, torch.float32),        # d not a power of two
    (1, 3, 7, 32, 17, 33, torch.float16),
])
def test_matches_reference(b, m, h, d, n, K, dtype):
    q, kv, sink, idx = make(b, m, h, d, n, K, dtype)
    idx[0, 0] = -1                       # an all-invalid row
    idx[-1, -1, : min(K, 64)] = -1       # the first 64 indices invalid, later ones valid
    scale = d ** -0.5
    out = run_both(q, kv, sink, idx, scale)
    assert out.dtype == dtype and out.shape == (b, m, h, d)
    assert not out.isnan().any()
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, scale), dtype, **TOL[dtype])
    assert torch.equal(out[0, 0].float(), torch.zeros(h, d))


def test_all_invalid_and_sink_edge_cases():
    q, kv, sink, idx = make(2, 3, 4, 32, 8, 20, torch.bfloat16)
    idx.fill_(-1)
    out = run_both(q, kv, sink, idx, 0.2)
    assert torch.equal(out.float(), torch.zeros_like(out, dtype=torch.float32))
    # no valid index and a -inf sink: 0/0 in the formula, defined as 0
    out = run_both(q, kv, torch.full((4,), float("-inf")), idx, 0.2)
    assert torch.equal(out.float(), torch.zeros_like(out, dtype=torch.float32))
    # a -inf sink with valid indices is plain softmax; a huge sink drives the output to ~0, finitely
    q, kv, sink, idx = make(1, 2, 4, 32, 8, 20, torch.float32, p_invalid=0.5)
    for s in (torch.full((4,), float("-inf")), torch.full((4,), 60.0)):
        out = run_both(q, kv, s, idx, 0.2)
        assert torch.isfinite(out).all()
        assert_close(out, sparse_attn_ref(q, kv, s, idx, 0.2), torch.float32, **TOL[torch.float32])


def test_large_logits_and_duplicates():
    q, kv, sink, idx = make(1, 4, 3, 64, 12, 40, torch.bfloat16, p_invalid=0.2)
    q = (q.float() * 40).to(torch.bfloat16)          # logits in the hundreds: online softmax must rescale
    idx[:, :, 1::2] = idx[:, :, 0::2][..., : idx[:, :, 1::2].shape[-1]]  # duplicate indices count twice
    out = run_both(q, kv, sink, idx, 64 ** -0.5)
    assert torch.isfinite(out.float()).all()
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, 64 ** -0.5), torch.bfloat16, **TOL[torch.bfloat16])


def test_empty_shapes():
    q, kv, sink, idx = make(2, 3, 4, 32, 8, 0, torch.bfloat16)     # K = 0: nothing to attend to
    assert torch.equal(run_both(q, kv, sink, idx, 0.1).float(), torch.zeros(2, 3, 4, 32))
    q, kv, sink, idx = make(2, 0, 4, 32, 8, 5, torch.bfloat16)     # no queries
    assert run_both(q, kv, sink, idx, 0.1).shape == (2, 0, 4, 32)
    q, kv, sink, idx = make(1, 2, 4, 32, 0, 6, torch.bfloat16)     # empty kv, all -1
    assert torch.equal(run_both(q, kv, sink, idx, 0.1).float(), torch.zeros(1, 2, 4, 32))


def test_non_contiguous_inputs():
    g = torch.Generator().manual_seed(1)
    b, m, h, d, n, K = 2, 3, 5, 64, 30, 37
    q = torch.randn(b, h, m, d, generator=g).to(torch.bfloat16).transpose(1, 2)        # [b,m,h,d] strided
    kv = torch.randn(b, n, 2 * d, generator=g).to(torch.bfloat16)[:, :, ::2]           # column stride 2
    sink = torch.randn(2 * h, generator=g)[::2]
    idx = torch.randint(-1, n, (b, K, m), generator=g, dtype=torch.int32).transpose(1, 2)
    assert not (q.is_contiguous() or kv.is_contiguous() or sink.is_contiguous() or idx.is_contiguous())
    out = run_both(q, kv, sink, idx, 0.125)
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, 0.125), torch.bfloat16, **TOL[torch.bfloat16])


def test_int64_indices():
    q, kv, sink, idx = make(1, 2, 3, 32, 9, 11, torch.bfloat16)
    out = run_both(q, kv, sink, idx.long(), 0.3)
    assert torch.equal(out, sparse_attn_triton(q, kv, sink, idx, 0.3))


@settings(max_examples=10, deadline=None)
@given(b=st.integers(1, 2), m=st.integers(1, 3), h=st.integers(1, 9), d=st.sampled_from([16, 24, 64, 128]),
       n=st.integers(1, 50), K=st.integers(0, 80), p_invalid=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**16))
def test_hypothesis(b, m, h, d, n, K, p_invalid, dtype, seed):
    q, kv, sink, idx = make(b, m, h, d, n, K, dtype, p_invalid, torch.Generator().manual_seed(seed))
    out = torch.ops.flaggems.sparse_attn(q, kv, sink, idx, d ** -0.5)
    assert not out.isnan().any()
    assert_close(out, sparse_attn_ref(q, kv, sink, idx, d ** -0.5), dtype, **TOL[dtype])


def test_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(2, 3, 4, 64, dtype=torch.bfloat16)
        out = torch.ops.flaggems.sparse_attn(q, torch.empty(2, 9, 64, dtype=torch.bfloat16), torch.empty(4),
                                             torch.empty(2, 3, 7, dtype=torch.int32), 0.1)
        assert out.shape == (2, 3, 4, 64) and out.dtype == torch.bfloat16


@pytest.mark.parametrize("fn", [torch.ops.flaggems.sparse_attn, sparse_attn_triton])
def test_bad_inputs(fn):
    q, kv, sink, idx = make(1, 2, 3, 32, 8, 5, torch.bfloat16)
    cases = [
        ((q[0], kv, sink, idx, 0.1), ValueError, "q must be 4-D"),
        ((q, kv.float(), sink, idx, 0.1), TypeError, "kv dtype"),
        ((q.to(torch.int32), kv, sink, idx, 0.1), TypeError, "q must have dtype"),
        ((q, kv[:, :, :16], sink, idx, 0.1), ValueError, "kv must be"),
        ((q, kv, sink.half(), idx, 0.1), TypeError, "attn_sink"),
        ((q, kv, sink[:2], idx, 0.1), ValueError, "attn_sink must be"),
        ((q, kv, sink, idx.float(), 0.1), TypeError, "topk_idxs"),
        ((q, kv, sink, idx[:, :1], 0.1), ValueError, "topk_idxs must be"),
        ((q, kv, sink, torch.full_like(idx, 8), 0.1), ValueError, r"\[-1, n=8\)"),
        ((q, kv, sink, torch.full_like(idx, -2), 0.1), ValueError, r"\[-1, n=8\)"),
        ((q, kv, sink, idx, math.nan), TypeError, "softmax_scale"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)
    big = torch.zeros(1, 1, 1, 2048, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="head dim"):
        fn(big, torch.zeros(1, 2, 2048, dtype=torch.bfloat16), torch.zeros(1),
           torch.zeros(1, 1, 1, dtype=torch.int32), 1.0)
