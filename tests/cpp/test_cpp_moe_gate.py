"""moe_gate / moe_gate_hash: C++ and Triton against the fp64 reference (all score functions, ties, hash)."""
import pytest
import torch

import flaggems

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


def _nan_case(E=16):
    """Rows: one NaN logit; two NaN logits; no NaN logit (the bias has one); +-inf logits."""
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(4, E, generator=g)
    logits[0, 5] = logits[1, 2] = logits[1, 9] = float("nan")
    logits[3, 3], logits[3, 11] = float("inf"), float("-inf")
    bias = torch.randn(E, generator=g) * 0.1
    bias[7] = float("nan")
    return logits, bias


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("func", FUNCS)
def test_moe_gate_nan_routed_like_topk(kind, func):
    # issue 13 finding 6: a NaN logit or bias is chosen first (torch.topk ranks NaN above every number),
    # NaNs among themselves by lower expert id, and a chosen NaN score propagates to the weights
    logits, bias = _nan_case()
    w, i = run_op("moe_gate", kind, logits, bias, 4, func, 1.5)
    wr, ir = moe_gate_ref(logits, bias, 4, func, 1.5)
    assert torch.equal(i, ir)
    torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7, equal_nan=True)
    # independent of the reference: the chosen biased scores have torch.topk's NaN pattern
    x = logits.double()
    s = x.softmax(-1) if func == "softmax" else x.sigmoid() if func == "sigmoid" else torch.nn.functional.softplus(x).sqrt()
    choose = s + bias.double()
    assert torch.equal(choose.gather(1, i).isnan(), choose.topk(4).values.isnan())
    assert i[2, 0] == 7                                    # the NaN bias
    if func != "softmax":
        assert w[0].isnan().all() and w[1].isnan().all()  # a chosen NaN score poisons the renormalised row
        assert not w[2].isnan().any()                      # a NaN bias only moves the choice


@pytest.mark.parametrize("kind", KINDS)
def test_moe_gate_hash_nan_logits(kind):
    logits, _ = _nan_case()
    tid2eid = torch.tensor([[5, 1, 2], [0, 1, 3]], dtype=torch.int32)
    ids = torch.tensor([0, 1, 1, 0])
    for func in FUNCS:
        w, i = run_op("moe_gate_hash", kind, logits, tid2eid, ids, func, 1.5)
        wr, ir = moe_gate_hash_ref(logits, tid2eid, ids, func, 1.5)
        assert torch.equal(i, ir)
        torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7, equal_nan=True)
        assert w[0].isnan().all()


@pytest.mark.parametrize("kind", KINDS)
def test_moe_gate_hash_int64_table_does_not_wrap(kind):
    # an int64 entry 2^32 + 3 is outside [0, E), not expert 3 after narrowing to int32
    logits = torch.randn(2, 8)
    tab = torch.tensor([[1, 2], [2**32 + 3, 0]])
    with pytest.raises(ValueError, match=r"expert ids in \[0, E=8\)"):
        run_op("moe_gate_hash", kind, logits, tab, torch.tensor([0, 1]))


def test_moe_gate_hash_bad_ids_on_a_device_poison_rows():
    # issue 15: on an accelerator the Triton kernel reads nothing back: a bad token's row is -1 / NaN
    from flaggems.deepseek.moe_gate import moe_gate_hash_triton
    from flaggems.runtime import planning_as_device

    logits = torch.randn(4, 8)
    tab = torch.tensor([[1, 2], [3, 4], [9, 0]])
    ids = torch.tensor([0, 5, 2, 1])                       # id 5 >= vocab; table row 2 holds expert 9 >= E
    with planning_as_device(), flaggems.prefer_impl("triton"):
        w, i = moe_gate_hash_triton(logits, tab, ids)
    assert i.tolist() == [[1, 2], [-1, -1], [-1, -1], [3, 4]]
    assert w[1:3].isnan().all() and not w[[0, 3]].isnan().any()
    wr, _ = moe_gate_hash_ref(logits[[0, 3]], tab, ids[[0, 3]])
    torch.testing.assert_close(w[[0, 3]], wr, rtol=2e-6, atol=1e-7)


def test_moe_gate_checks_read_no_tensor_values():
    # issue 15: the checks and the C++ wrappers dispatch no torch reduction (no host read on a device, and
    # none of the ~20 µs a torch min/max/index cost per call on the host)
    from torch.utils._python_dispatch import TorchDispatchMode

    from flaggems.cpp.moe_gate import _moe_gate_cpp, _moe_gate_hash_cpp
    from flaggems.deepseek.moe_gate import moe_gate_check, moe_gate_hash_check

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    logits, bias = torch.randn(1, 256), torch.randn(256)
    tab, ids = torch.randint(0, 256, (1000, 6), dtype=torch.int32), torch.tensor([17])
    with Ops() as mode:
        moe_gate_check(logits, bias, 6, "sqrtsoftplus", 1.5)
        moe_gate_hash_check(logits, tab, ids, "sqrtsoftplus", 1.5)
    assert mode.seen == []
    with Ops() as mode:
        _moe_gate_cpp(logits, bias, 6, "sqrtsoftplus", 1.5)
        _moe_gate_hash_cpp(logits, tab, ids, "sqrtsoftplus", 1.5)
    assert set(mode.seen) <= {"aten.empty", "aten.view", "aten.reshape", "aten._reshape_alias"}, mode.seen
