"""The ``*_cpp`` functions called directly validate exactly like the custom ops (one check, written once in
flaggems/deepseek), and never hand a non-CPU tensor to the C++ kernels."""
import pytest
import torch

import flaggems  # noqa: F401
from flaggems import cpp


def _bad_inputs():
    f32, bf16 = torch.float32, torch.bfloat16
    q, kv = torch.randn(1, 2, 4, 64), torch.randn(1, 10, 64)
    sink, idx = torch.zeros(4), torch.zeros(1, 2, 3, dtype=torch.int32)
    logits = torch.randn(3, 8)
    return [
        ("sparse_attn", (q, kv.to(bf16), sink, idx, 0.1)),                      # kv dtype != q dtype
        ("sparse_attn", (q, kv, sink, idx + 10, 0.1)),                           # index past n
        ("sparse_attn", (q, kv, sink, idx, float("nan"))),
        ("moe_gate", (logits, None, 9)),                                          # topk > E
        ("moe_gate", (logits, torch.zeros(8, dtype=bf16), 2)),                   # bias not fp32
        ("moe_gate", (logits, None, 2, "relu")),
        ("moe_gate_hash", (logits, torch.zeros(5, 2, dtype=torch.int32), torch.tensor([0, 1, 5]))),  # id >= vocab
        ("moe_gate_hash", (logits, torch.full((5, 2), 8), torch.tensor([0, 1, 2]))),                # expert >= E
        ("act_quant", (torch.randn(2, 100), 128)),
        ("act_quant", (torch.randn(2, 128), 128, None, torch.float8_e8m0fnu)),   # e8m0 scales need ue8m0
        ("act_quant_inplace", (torch.randn(2, 128, dtype=torch.float64), 128)),
        ("fp4_act_quant", (torch.randn(2, 30), 15)),
        ("fp4_act_quant_inplace", (torch.randn(2, 48), 32)),
        ("hadamard_transform", (torch.randn(3, 12),)),
        ("hc_split_sinkhorn", (torch.randn(2, 23, dtype=f32), torch.ones(3), torch.zeros(24))),
        ("hc_split_sinkhorn", (torch.randn(2, 24), torch.ones(3), torch.zeros(24), 4, 0)),
    ]


def _error(fn, args):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("op,args", _bad_inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_direct_call_checks_like_the_op(op, args):
    direct = getattr(cpp, f"{op}_cpp")
    assert _error(direct, args) == _error(getattr(torch.ops.flaggems, op), args)


def test_direct_call_refuses_non_host_tensors():
    x = torch.empty(2, 128, device="meta")
    with pytest.raises(ValueError, match="x must be in host memory"):
        cpp.act_quant_cpp(x, 128)
    with pytest.raises(ValueError, match="must be in host memory"):
        cpp.hadamard_transform_cpp(torch.empty(3, 16, device="meta"))
