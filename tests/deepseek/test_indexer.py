"""flaggems::indexer_topk: scores with the model's bf16 roundings, causal masking, top-k with -1 and offset.

bf16 scores tie often, and a one-ulp difference in a score (fp32 summation order) can swap which of two
near-equal keys is picked, so end-to-end checks compare the *reference scores of the selected keys*
(sorted) instead of raw index order; the top-k stage itself is checked exactly on given scores.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems  # noqa: F401
from flaggems.deepseek.indexer import (_topk_from_scores, indexer_scores, indexer_scores_ref, indexer_topk_ref,
                                       indexer_topk_triton)
from flaggems.testing import assert_close


def make(B, S, H, D, T, dtype=torch.bfloat16, wdtype=None, gen=None):
    q = torch.randn(B, S, H, D, generator=gen).to(dtype)
    k = torch.randn(B, T, D, generator=gen).to(dtype)
    w = (torch.randn(B, S, H, generator=gen) * (H * D) ** -0.5).to(wdtype or dtype)
    return q, k, w


def check_selection(out, q, k, w, topk, offset, ratio, start_pos=0):
    """out must pick, per row, keys whose reference scores equal the best possible ones (up to one ulp)."""
    B, S = q.shape[:2]
    T = k.shape[1]
    kk = min(topk, T)
    assert out.shape == (B, S, kk) and out.dtype == torch.int32
    ref_scores = indexer_scores_ref(q, k, w, ratio, start_pos)
    ref = indexer_topk_ref(q, k, w, topk, offset, ratio, start_pos)
    # masked picks: the number of -1 entries per row is fixed by the mask alone
    assert torch.equal((out == -1).sum(-1), (ref == -1).sum(-1))
    valid = out != -1
    t = (out.long() - offset).clamp(0, max(T - 1, 0))
    assert ((t >= 0) & (t < T))[valid].all()
    assert (out.long() - offset)[valid].ge(0).all() and (out.long() - offset)[valid].lt(T).all()
    for b in range(B):
        for s in range(S):
            sel = t[b, s][valid[b, s]]
            assert sel.unique().numel() == sel.numel(), "duplicate index in one row"
            got = ref_scores[b, s, sel]
            assert torch.isfinite(got).all(), "a masked key was returned as valid"
            exp = ref_scores[b, s, (ref[b, s][ref[b, s] != -1].long() - offset)]
            # scores are bf16 values: allow one bf16 ulp for summation-order differences
            assert_close(got.sort(descending=True).values, exp.sort(descending=True).values, torch.bfloat16,
                         rtol=2 ** -7, atol=1e-6, msg=f"row ({b},{s})")
    # valid picks come first, in non-increasing score order
    for b in range(B):
        for s in range(S):
            v = valid[b, s]
            n = int(v.sum())
            assert v[:n].all()
            sc = ref_scores[b, s, t[b, s][:n]]
            assert (sc[:-1] >= sc[1:] - sc[1:].abs() * 2 ** -7).all()


@pytest.mark.parametrize("B,S,H,D,T,topk,ratio,offset,dtype,wdtype", [
    (2, 20, 4, 64, 5, 8, 4, 20, torch.bfloat16, torch.bfloat16),   # prefill, topk > T: k = T, masked picks -1
    (1, 7, 3, 32, 300, 16, 0, 128, torch.bfloat16, torch.float32),  # decode-like: no mask, fp32 weights
    (2, 9, 4, 64, 40, 50, 4, 9, torch.float32, torch.float32),
    (1, 1, 1, 16, 1, 1, 0, 0, torch.bfloat16, torch.bfloat16),
    (1, 13, 5, 48, 3, 2, 4, 13, torch.float16, torch.float16),
])
def test_matches_reference(B, S, H, D, T, topk, ratio, offset, dtype, wdtype):
    q, k, w = make(B, S, H, D, T, dtype, wdtype)
    out = torch.ops.flaggems.indexer_topk(q, k, w, topk, offset, ratio)
    out2 = indexer_topk_triton(q, k, w, topk, offset=offset, causal_ratio=ratio)
    assert torch.equal(out, out2)
    check_selection(out, q, k, w, topk, offset, ratio)


def test_scores_follow_model_rounding():
    q, k, w = make(2, 6, 4, 64, 33)
    got = indexer_scores(q, k, w, 4)
    ref = indexer_scores_ref(q, k, w, 4)
    assert torch.equal(torch.isneginf(got), torch.isneginf(ref))
    fin = torch.isfinite(ref)
    # bf16 values stored in fp32: equal up to one bf16 ulp (summation order inside the dot)
    assert torch.equal(got[fin].to(torch.bfloat16).float(), got[fin])
    assert_close(got[fin], ref[fin], torch.bfloat16, rtol=2 ** -7, atol=1e-6)
    # the model's op sequence in bf16, verbatim: relu(einsum) * w, summed over heads
    model = (torch.einsum("bshd,btd->bsht", q, k).relu_() * w.unsqueeze(-1)).sum(dim=2).float()
    assert_close(got[fin], model[fin], torch.bfloat16, rtol=2 ** -7, atol=1e-6)


def test_causal_mask_prefill_rows():
    # prefill row s sees keys t < (s+1)//4: rows 0..2 see none (all -1), row 4*j+3 sees j+1 keys
    q, k, w = make(1, 12, 2, 32, 3)
    out = torch.ops.flaggems.indexer_topk(q, k, w, 8, 12, 4)
    assert out.shape == (1, 12, 3)
    n_valid = (out != -1).sum(-1)[0]
    assert n_valid.tolist() == [(s + 1) // 4 for s in range(12)]
    assert ((out[0] >= 12) | (out[0] == -1)).all()
    # start_pos shifts the limit: (start_pos + s + 1) // ratio
    out = torch.ops.flaggems.indexer_topk(q, k, w, 8, 0, 4, 4)
    assert (out != -1).sum(-1)[0].tolist() == [min(3, (4 + s + 1) // 4) for s in range(12)]


@pytest.mark.parametrize("sort", [False, True])
def test_topk_stage_exact_with_ties(sort):
    # Ties everywhere (few distinct values), -0.0 vs +0.0, -inf (masked) entries; the order is fully
    # specified (descending score, then lower t), so the result must match the stable sort exactly.
    g = torch.Generator().manual_seed(3)
    for R, T, kk in [(3, 5, 5), (4, 70, 16), (2, 40, 33)]:
        sc = torch.randint(-3, 4, (1, R, T), generator=g).float() * 0.5
        sc[sc == 0] = -0.0
        sc[0, 0, T // 2:] = float("-inf")
        sc[0, -1, 0] = 0.0
        out = torch.full((1, R, kk), 12345, dtype=torch.int32)   # poisoned: every slot must be written
        _topk_from_scores(sc, out, 7, sort=sort)
        v, i = torch.sort(sc, dim=-1, descending=True, stable=True)
        ref = torch.where(torch.isneginf(v[..., :kk]), -1, i[..., :kk] + 7).to(torch.int32)
        assert torch.equal(out, ref), (R, T, kk)


def test_empty_and_zero_topk():
    q, k, w = make(2, 3, 2, 32, 0)
    assert torch.ops.flaggems.indexer_topk(q, k, w, 4).shape == (2, 3, 0)
    q, k, w = make(2, 3, 2, 32, 7)
    assert torch.ops.flaggems.indexer_topk(q, k, w, 0).shape == (2, 3, 0)
    q, k, w = make(2, 0, 2, 32, 7)
    assert torch.ops.flaggems.indexer_topk(q, k, w, 4).shape == (2, 0, 4)


def test_non_contiguous_inputs():
    g = torch.Generator().manual_seed(5)
    B, S, H, D, T = 2, 5, 3, 32, 21
    q = torch.randn(B, H, S, D, generator=g).to(torch.bfloat16).transpose(1, 2)
    k = torch.randn(B, T, 2 * D, generator=g).to(torch.bfloat16)[:, :, D:]
    w = (torch.randn(B, H, S, generator=g) * 0.1).to(torch.bfloat16).transpose(1, 2)
    assert not (q.is_contiguous() or k.is_contiguous() or w.is_contiguous())
    out = torch.ops.flaggems.indexer_topk(q, k, w, 6, 5, 4)
    assert torch.equal(out, indexer_topk_triton(q.contiguous(), k.contiguous(), w.contiguous(), 6, 5, 4))
    check_selection(out, q, k, w, 6, 5, 4)


@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 2), S=st.integers(1, 9), H=st.integers(1, 6), D=st.sampled_from([16, 32, 64]),
       T=st.integers(1, 70), topk=st.integers(1, 40), ratio=st.sampled_from([0, 1, 4]),
       offset=st.integers(0, 200), wfp32=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis(B, S, H, D, T, topk, ratio, offset, wfp32, seed):
    q, k, w = make(B, S, H, D, T, torch.bfloat16, torch.float32 if wfp32 else None,
                   torch.Generator().manual_seed(seed))
    out = torch.ops.flaggems.indexer_topk(q, k, w, topk, offset, ratio)
    check_selection(out, q, k, w, topk, offset, ratio)


def test_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(2, 5, 4, 64, dtype=torch.bfloat16)
        out = torch.ops.flaggems.indexer_topk(q, torch.empty(2, 9, 64, dtype=torch.bfloat16),
                                              torch.empty(2, 5, 4), 16, 5, 4)
        assert out.shape == (2, 5, 9) and out.dtype == torch.int32


@pytest.mark.parametrize("fn", [torch.ops.flaggems.indexer_topk, indexer_topk_triton])
def test_bad_inputs(fn):
    q, k, w = make(1, 4, 2, 32, 6)
    cases = [
        ((q[0], k, w, 4), ValueError, "q must be 4-D"),
        ((q, k.float(), w, 4), TypeError, "k dtype"),
        ((q, k[:, :, :16], w, 4), ValueError, "k must be"),
        ((q, k, w[:, :, :1], 4), ValueError, "weights must be"),
        ((q, k, w.to(torch.int32), 4), TypeError, "weights must have dtype"),
        ((q, k, w, -1), ValueError, "topk"),
        ((q, k, w, 4, -1), ValueError, "offset"),
        ((q, k, w, 4, 2**31 - 3), ValueError, "int32"),
        ((q, k, w, 4, 0, -4), ValueError, "causal_ratio"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)


@pytest.mark.parametrize("sort", [False, True])
def test_topk_nan_scores_rank_first(sort):
    # issue 13 finding 6: NaN (either sign bit) ranks above +inf as in torch.topk / a descending sort,
    # NaNs among themselves by lower t; -NaN used to land below -inf (and then read as a masked pick)
    neg_nan = torch.tensor([0xFFC00000], dtype=torch.int64).to(torch.int32).view(torch.float32)[0]
    sc = torch.randn(1, 3, 10)
    sc[0, 0, 7], sc[0, 0, 2], sc[0, 0, 4] = float("nan"), neg_nan, float("inf")
    sc[0, 1, 5] = neg_nan
    sc[0, 1, 6:] = float("-inf")
    sc[0, 2, :] = float("nan")
    out = torch.full((1, 3, 4), 12345, dtype=torch.int32)
    _topk_from_scores(sc, out, 3, sort=sort)
    v, i = torch.sort(sc, dim=-1, descending=True, stable=True)
    ref = torch.where(torch.isneginf(v[..., :4]), -1, i[..., :4] + 3).to(torch.int32)
    assert out[0, 0, :3].tolist() == [2 + 3, 7 + 3, 4 + 3]
    assert out[0, 1, 0] == 5 + 3 and out[0, 2].tolist() == [3, 4, 5, 6]
    assert torch.equal(out, ref)
    # torch.topk's own pick among NaNs is unordered; its values say NaN comes first
    assert sc.topk(1).values.isnan().all()


def test_indexer_topk_nan_inputs_like_reference():
    # a NaN key row and a NaN weight: relu keeps NaN (torch), so those scores are NaN and picked first
    g = torch.Generator().manual_seed(6)
    q, k, w = make(1, 6, 2, 32, 12, dtype=torch.float32, gen=g)
    k[0, 9, 3] = float("nan")
    w[0, 4, 1] = float("nan")
    for ratio in (0, 1):
        out = indexer_topk_triton(q, k, w, 5, 100, ratio)
        ref = indexer_topk_ref(q, k, w, 5, 100, ratio)
        assert torch.equal(out, ref), ratio
    out = indexer_topk_triton(q, k, w, 5, 100)
    assert (out[0, :, 0] == 109).tolist() == [True, True, True, True, False, True]
    assert out[0, 4].tolist() == list(range(100, 105))       # every score of row 4 is NaN: lower t first
