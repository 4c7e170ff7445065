"""moe_gate / moe_gate_hash: C++ and Triton against the fp64 reference (all score functions, ties, hash)."""
import pytest
import torch

from flaggems.cpp import moe_gate_cpp, moe_gate_hash_cpp
from flaggems.deepseek.moe_gate import moe_gate_hash_ref, moe_gate_ref

from .conftest import KINDS, run_op

FUNCS = ["sqrtsoftplus", "sigmoid", "softmax"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("T,E,k,bias", [(1, 256, 6, True), (9, 64, 8, False), (5, 20, 20, True)])
def test_moe_gate(kind, func, T, E, k, bias):
    g = torch.Generator().manual_seed(T * E)
    logits = torch.randn(T, E, generator=g) * 3
    b = torch.randn(E, generator=g) * 0.1 if bias else None
    w, i = run_op("moe_gate", kind, logits, b, k, func, 1.5)
    wr, ir = moe_gate_ref(logits, b, k, func, 1.5)
    assert i.dtype == torch.int64 and torch.equal(i, ir)
    torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7)


def test_moe_gate_ties_bf16_large_k():
    logits = torch.zeros(3, 32, dtype=torch.bfloat16)      # all tied: lowest ids first
    logits[1, 5] = 30.0                                     # softplus threshold branch
    for k in (4, 20):
        w, i = moe_gate_cpp(logits, None, k, "sqrtsoftplus", 2.5)
        wr, ir = moe_gate_ref(logits, None, k, "sqrtsoftplus", 2.5)
        assert torch.equal(i, ir)
        torch.testing.assert_close(w, wr)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("tab_dtype", [torch.int32, torch.int64])
def test_moe_gate_hash(kind, func, tab_dtype):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 64, generator=g)
    tid2eid = torch.randint(0, 64, (100, 6), generator=g).to(tab_dtype)
    ids = torch.randint(0, 100, (1, 7), generator=g)
    w, i = run_op("moe_gate_hash", kind, logits, tid2eid, ids, func, 1.5)
    wr, ir = moe_gate_hash_ref(logits, tid2eid, ids, func, 1.5)
    assert torch.equal(i, ir)
    torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7)


def test_moe_gate_hash_bad_ids():
    logits = torch.randn(2, 8)
    with pytest.raises(ValueError, match="outside"):
        moe_gate_hash_cpp(logits, torch.randint(0, 8, (4, 2)), torch.tensor([1, 9]))
    with pytest.raises(ValueError, match="outside"):
        moe_gate_hash_cpp(logits, torch.full((4, 2), 8), torch.tensor([1, 2]))
