"""flaggems::moe_gate and moe_gate_hash against their fp64 references (§3.8 rules per score function)."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems  # noqa: F401
from flaggems.deepseek.moe_gate import (_scores_ref, _weights_ref, moe_gate_hash_ref, moe_gate_hash_triton,
                                       moe_gate_ref, moe_gate_triton)
from flaggems.testing import assert_close

FUNCS = ["sqrtsoftplus", "sigmoid", "softmax"]
# fp32 kernel vs fp64 reference over E-term sums (softmax denominator, renormalisation).
RTOL, ATOL = 2e-6, 1e-6


def make(T, E, dtype=torch.float32, scale=3.0, gen=None):
    logits = (torch.randn(T, E, generator=gen) * scale).to(dtype)
    bias = torch.randn(E, generator=gen) * 0.5
    return logits, bias


def model_gate(logits, bias, topk, score_func, route_scale):
    """The model's gate, op for op (fp32), as a cross-check of the reference's reading of §3.8."""
    x = logits.float()
    s = x.softmax(-1) if score_func == "softmax" else x.sigmoid() if score_func == "sigmoid" else F.softplus(x).sqrt()
    idx = (s + bias if bias is not None else s).topk(topk, dim=-1)[1]
    w = s.gather(1, idx)
    if score_func != "softmax":
        w = w / w.sum(dim=-1, keepdim=True)
    return w * route_scale, idx


@pytest.mark.parametrize("score_func", FUNCS)
@pytest.mark.parametrize("T,E,topk,dtype,use_bias", [
    (37, 40, 6, torch.float32, True),
    (1, 8, 2, torch.bfloat16, True),
    (5, 3, 3, torch.float32, False),    # topk = E
    (19, 256, 6, torch.float32, True),  # Flash's expert count
])
def test_matches_reference(score_func, T, E, topk, dtype, use_bias):
    logits, bias = make(T, E, dtype)
    bias = bias if use_bias else None
    w, i = torch.ops.flaggems.moe_gate(logits, bias, topk, score_func, 1.5)
    w2, i2 = moe_gate_triton(logits, bias, topk, score_func=score_func, route_scale=1.5)
    assert torch.equal(w, w2) and torch.equal(i, i2)
    rw, ri = moe_gate_ref(logits, bias, topk, score_func, 1.5)
    assert w.dtype == torch.float32 and i.dtype == torch.int64 and w.shape == (T, topk)
    assert torch.equal(i, ri)
    assert_close(w, rw, torch.float32, rtol=RTOL, atol=ATOL)
    mw, mi = model_gate(logits, bias, topk, score_func, 1.5)
    assert torch.equal(i, mi)
    assert_close(w, mw, torch.float32, rtol=1e-5, atol=1e-6)


def test_bias_changes_choice_not_weights():
    logits, _ = make(16, 12)
    bias = torch.zeros(12)
    bias[3] = 100.0                       # expert 3 always chosen, first
    w, i = torch.ops.flaggems.moe_gate(logits, bias, 4, "sigmoid", 1.0)
    assert (i[:, 0] == 3).all()
    s = logits.sigmoid()
    expect = s.gather(1, i)
    assert_close(w, expect / expect.sum(-1, keepdim=True), torch.float32, rtol=RTOL, atol=ATOL)


def test_softmax_not_renormalised_and_route_scale():
    logits, bias = make(9, 10)
    w, i = torch.ops.flaggems.moe_gate(logits, None, 3, "softmax", 2.5)
    assert_close(w, logits.softmax(-1).gather(1, i) * 2.5, torch.float32, rtol=RTOL, atol=ATOL)
    assert (w.sum(-1) < 2.5).all()
    w, _ = torch.ops.flaggems.moe_gate(logits, bias, 3, "sqrtsoftplus", 2.5)
    assert_close(w.sum(-1), torch.full((9,), 2.5), torch.float32, rtol=RTOL, atol=ATOL)


def test_ties_pick_lower_expert_and_extreme_logits():
    logits = torch.zeros(4, 8)
    logits[:, 5] = 1.0
    w, i = torch.ops.flaggems.moe_gate(logits, None, 3, "sigmoid", 1.0)
    assert i.tolist() == [[5, 0, 1]] * 4
    # softplus's threshold branch (x > 20) and the tiny-log1p branch (x << 0)
    logits = torch.tensor([[30.0, 25.0, -20.0, -40.0, 0.0, 19.0, 21.0, -87.0]])
    for f in FUNCS:
        w, i = torch.ops.flaggems.moe_gate(logits, None, 5, f, 1.0)
        s = _scores_ref(logits, f)
        # sigmoid(19) == sigmoid(21) == 1 in fp32: a real tie there, so compare chosen scores as sets
        assert_close(s.gather(1, i).sort(-1).values, s.topk(5).values.sort(-1).values, torch.float32,
                     rtol=1e-6, atol=1e-12)
        assert_close(w, _weights_ref(s, i, f, 1.0), torch.float32, rtol=1e-5, atol=1e-12)
    # all-negative logits: weights are ratios of tiny softplus values (log1p(exp(x)) ~ exp(x)), where a
    # naive log(1 + exp(x)) would return 0 and the renormalisation 0/0
    logits = torch.tensor([[-20.0, -30.0, -40.0, -25.0, -60.0]])
    w, i = torch.ops.flaggems.moe_gate(logits, None, 4, "sqrtsoftplus", 1.0)
    rw, ri = moe_gate_ref(logits, None, 4, "sqrtsoftplus", 1.0)
    assert torch.equal(i, ri)
    assert_close(w, rw, torch.float32, rtol=1e-5, atol=1e-12)


def test_empty_and_non_contiguous():
    logits, bias = make(0, 8)
    w, i = torch.ops.flaggems.moe_gate(logits, bias, 2, "sqrtsoftplus", 1.0)
    assert w.shape == (0, 2) and i.shape == (0, 2)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(16, 11, generator=g).t()          # [11, 16] transposed
    bias = torch.randn(32, generator=g)[::2]
    w, i = torch.ops.flaggems.moe_gate(logits, bias, 5, "sqrtsoftplus", 1.5)
    rw, ri = moe_gate_ref(logits, bias, 5, "sqrtsoftplus", 1.5)
    assert torch.equal(i, ri)
    assert_close(w, rw, torch.float32, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("score_func", FUNCS)
@pytest.mark.parametrize("tab_dtype", [torch.int32, torch.int64])
def test_hash_matches_reference(score_func, tab_dtype):
    T, E, V, K = 23, 16, 50, 6
    logits, _ = make(T, E)
    tid2eid = torch.stack([torch.randperm(E)[:K] for _ in range(V)]).to(tab_dtype)
    ids = torch.randint(0, V, (T,))
    w, i = torch.ops.flaggems.moe_gate_hash(logits, tid2eid, ids, score_func, 1.5)
    w2, i2 = moe_gate_hash_triton(logits, tid2eid, ids.int(), score_func, 1.5)
    assert torch.equal(w, w2) and torch.equal(i, i2)
    rw, ri = moe_gate_hash_ref(logits, tid2eid, ids, score_func, 1.5)
    assert i.dtype == torch.int64 and torch.equal(i, ri) and torch.equal(i, tid2eid[ids].long())
    assert_close(w, rw, torch.float32, rtol=RTOL, atol=ATOL)


def test_hash_non_contiguous_and_2d_ids():
    g = torch.Generator().manual_seed(6)
    T, E, V = 12, 8, 20
    logits = torch.randn(E, T, generator=g).t()
    tid2eid = torch.randint(0, E, (3, V), generator=g).t()       # [V, 3] transposed
    ids = torch.randint(0, V, (3, 4), generator=g)               # any shape with T elements
    w, i = torch.ops.flaggems.moe_gate_hash(logits, tid2eid, ids, "sqrtsoftplus", 1.0)
    rw, ri = moe_gate_hash_ref(logits, tid2eid, ids, "sqrtsoftplus", 1.0)
    assert torch.equal(i, ri)
    assert_close(w, rw, torch.float32, rtol=RTOL, atol=ATOL)


@settings(max_examples=12, deadline=None)
@given(T=st.integers(0, 40), E=st.integers(1, 70), data=st.data(), score_func=st.sampled_from(FUNCS),
       use_bias=st.booleans(), bf16=st.booleans(), route_scale=st.sampled_from([1.0, 1.5, 2.5]),
       seed=st.integers(0, 2**16))
def test_hypothesis(T, E, data, score_func, use_bias, bf16, route_scale, seed):
    topk = data.draw(st.integers(1, E))
    logits, bias = make(T, E, torch.bfloat16 if bf16 else torch.float32, gen=torch.Generator().manual_seed(seed))
    bias = bias if use_bias else None
    w, i = torch.ops.flaggems.moe_gate(logits, bias, topk, score_func, route_scale)
    _, ri = moe_gate_ref(logits, bias, topk, score_func, route_scale)
    # Two biased scores one fp32 ulp apart may order differently than in fp64: compare the chosen
    # biased scores as sorted sets, then the weights at the kernel's own choice.
    s = _scores_ref(logits, score_func)
    choose = s + bias.double() if bias is not None else s
    assert i.unique(dim=-1).shape[-1] == topk if T else True
    assert_close(choose.gather(1, i).sort(-1).values, choose.gather(1, ri).sort(-1).values, torch.float32,
                 rtol=RTOL, atol=ATOL)
    assert_close(w, _weights_ref(s, i, score_func, route_scale), torch.float32, rtol=RTOL, atol=ATOL)


def test_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        w, i = torch.ops.flaggems.moe_gate(torch.empty(7, 16), torch.empty(16), 6, "sqrtsoftplus", 1.5)
        assert w.shape == (7, 6) and w.dtype == torch.float32 and i.dtype == torch.int64
        w, i = torch.ops.flaggems.moe_gate_hash(torch.empty(7, 16), torch.empty(30, 6, dtype=torch.int32),
                                                torch.empty(7, dtype=torch.int64), "sigmoid", 1.0)
        assert w.shape == (7, 6) and i.shape == (7, 6)


@pytest.mark.parametrize("fn", [torch.ops.flaggems.moe_gate, moe_gate_triton])
def test_bad_inputs(fn):
    logits, bias = make(4, 8)
    cases = [
        ((logits[0], bias, 2, "sigmoid", 1.0), ValueError, "logits must be 2-D"),
        ((logits.int(), bias, 2, "sigmoid", 1.0), TypeError, "logits must have dtype"),
        ((logits, bias[:4], 2, "sigmoid", 1.0), ValueError, "bias must be"),
        ((logits, bias.bfloat16(), 2, "sigmoid", 1.0), TypeError, "bias"),
        ((logits, bias, 9, "sigmoid", 1.0), ValueError, "topk"),
        ((logits, bias, 0, "sigmoid", 1.0), ValueError, "topk"),
        ((logits, bias, 2, "relu", 1.0), ValueError, "score_func"),
        ((logits, bias, 2, "sigmoid", float("inf")), TypeError, "route_scale"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)


@pytest.mark.parametrize("fn", [torch.ops.flaggems.moe_gate_hash, moe_gate_hash_triton])
def test_hash_bad_inputs(fn):
    logits, _ = make(4, 8)
    tab = torch.randint(0, 8, (10, 3), dtype=torch.int32)
    ids = torch.randint(0, 10, (4,))
    cases = [
        ((logits, tab.float(), ids), TypeError, "tid2eid"),
        ((logits, tab, ids[:3]), ValueError, "input_ids must hold"),
        ((logits, tab, torch.tensor([0, 1, 2, 10])), ValueError, r"input_ids must be in \[0, vocab=10\)"),
        ((logits, tab, torch.tensor([0, 1, -1, 2])), ValueError, "input_ids must be in"),
        ((logits, torch.full((10, 3), 8, dtype=torch.int32), ids), ValueError, r"expert ids in \[0, E=8\)"),
        ((logits, torch.zeros(10, 9, dtype=torch.int32), ids), ValueError, "tid2eid must be"),
        ((logits, tab, ids, "tanh"), ValueError, "score_func"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)
