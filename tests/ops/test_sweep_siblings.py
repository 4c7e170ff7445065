"""Siblings of issue 13's findings that the adversarial sweep found (docs/adversarial.md): where torch raises,
flaggems raises the same class with torch's message (the op is left to torch for those inputs)."""
import pytest
import torch

import flaggems

CASES = {
    # S10: sub with a bool operand
    "sub_bool_tensor_number": lambda: torch.sub(torch.tensor([True, False]), 1),
    "sub_bool_tensors": lambda: torch.tensor([True]) - torch.tensor([False]),
    # S9: histc over an infinite range
    "histc_inf_min": lambda: torch.histc(torch.randn(5), 4, float("-inf"), 1.0),
    "histc_inf_max": lambda: torch.histc(torch.randn(5), 4, 0.0, float("inf")),
    # S15: in-place clamp whose bound broadcasts beyond self
    "clamp_min__broadcast_beyond_self": lambda: torch.zeros(0, 1, 3).clamp_min_(torch.zeros(0, 10, 3)),
    "clamp_max__broadcast_beyond_self": lambda: torch.zeros(2, 1).clamp_max_(torch.zeros(2, 3)),
}


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e), str(e)
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_raises_like_torch(name):
    native = _error(CASES[name])
    assert native is not None, "torch accepts this input: the case is wrong"
    with flaggems.use_gems():
        ours = _error(CASES[name])
    assert ours == native


def test_valid_neighbours_are_still_served():
    x = torch.randn(4, 5)
    with flaggems.use_gems(), flaggems.record() as rep:
        torch.sub(x, 1)
        torch.histc(x, 4, -1.0, 1.0)
        x.clone().clamp_min_(torch.zeros(5))
    for op in ("aten::sub.Tensor", "aten::histc.default", "aten::clamp_min_.Tensor"):
        assert rep.served_by(op), (op, rep.to_markdown())
