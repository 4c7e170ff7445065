"""transformers' grouped_mm experts path (experts_implementation="grouped_mm") on a tiny random Qwen3-MoE:
same logits with and without flaggems, and aten::_grouped_mm served by flaggems (forward and backward)."""
import pytest
import torch

import flaggems
from flaggems.ops.gemm import grouped as _gmm  # noqa: F401  (declares aten::_grouped_mm)
from flaggems.testing import assert_close

transformers = pytest.importorskip("transformers")


def _tiny_model(dtype):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(vocab_size=96, hidden_size=64, intermediate_size=96, moe_intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         num_experts=8, num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[],
                         max_position_embeddings=64, norm_topk_prob=True)
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM._from_config(cfg, experts_implementation="grouped_mm", dtype=dtype)
    with torch.no_grad():                       # random weights with a useful scale
        for p in model.parameters():
            p.normal_(0.0, 0.08)
    return model.eval()


@pytest.mark.parametrize("dtype,include", [(torch.float32, ["_grouped_mm"]), (torch.bfloat16, ["_grouped_mm"]),
                                           (torch.float32, None)])
def test_qwen3_moe_grouped_mm_experts(dtype, include):
    """``include=None``: every flaggems op on (attention, norms, matmuls...), not only the experts' GEMMs."""
    model = _tiny_model(dtype)
    assert model.config._experts_implementation == "grouped_mm"
    ids = torch.randint(0, 96, (2, 7))
    with torch.no_grad():
        want = model(ids).logits
        with flaggems.use_gems(include=include):
            with flaggems.record() as rep:
                got = model(ids).logits
    row = rep._find("_grouped_mm")
    # 2 layers x (up, down), by whichever kind the vendor prefers (cpu: the C++ kernel)
    assert sum(dict(row["served"]).values()) == 4 and not row["fallback"], f"_grouped_mm not served: {row}"
    assert not row["fallback"], row["fallback"]
    assert_close(got, want.double(), dtype, reduce_len=64)


def test_qwen3_moe_grouped_mm_backward():
    model = _tiny_model(torch.float32).train()
    ids = torch.randint(0, 96, (1, 6))

    def grads():
        model.zero_grad()
        model(ids).logits.float().square().mean().backward()
        return [p.grad.clone() for p in model.model.layers[0].mlp.experts.parameters()]

    want = grads()
    with flaggems.use_gems(include=["_grouped_mm"]):
        with flaggems.record() as rep:
            got = grads()
    assert not rep._find("_grouped_mm")["fallback"]
    assert rep._find("_grouped_mm")["served"]
    for g, w in zip(got, want):
        assert_close(g, w.double(), torch.float32, reduce_len=64, rtol=1e-4, atol=1e-6)
