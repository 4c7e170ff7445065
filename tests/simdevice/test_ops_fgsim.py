"""Ops the models need on a device whose only kernels are flaggems' (issue 12): each against a torch reference
computed on the CPU, on fgsim tensors."""
import pytest
import torch

import flaggems


def _served(rep, op):
    return {k: v for name in rep.compute_ops() if name.startswith(op + ".") for k, v in rep.served_by(name).items()}


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.int16])
def test_histc_integer_input_like_cuda(fgsim, dtype):
    """transformers' grouped_mm experts: torch.histc(expert_ids.int(), bins=E, min=0, max=E-1) on any non-CPU
    device. torch's CUDA semantics: integer bins ((x - min) * bins // (max - min)), out-of-range values dropped,
    counts in the input dtype."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 12, (300,), generator=g).to(dtype)
    bins, lo, hi = 7, 1, 10
    inside = (x >= lo) & (x <= hi)
    b = ((x[inside].long() - lo) * bins) // (hi - lo)
    want = torch.bincount(b.clamp(max=bins - 1), minlength=bins).to(dtype)
    with flaggems.use_gems(), flaggems.record() as rep:
        got = torch.histc(x.to(fgsim), bins=bins, min=lo, max=hi)
    assert _served(rep, "aten::histc") == {"triton": 1}, rep.to_markdown()
    assert got.device.type == "fgsim" and got.dtype == dtype
    assert torch.equal(got.cpu(), want)


def test_histc_expert_counts(fgsim):
    E = 8
    ids = torch.randint(0, E, (50,), generator=torch.Generator().manual_seed(1))
    with flaggems.use_gems():
        got = torch.histc(ids.int().to(fgsim), bins=E, min=0, max=E - 1)
    assert torch.equal(got.cpu(), torch.bincount(ids, minlength=E).int())


def test_sdpa_math_path_on_the_device(fgsim):
    """F.scaled_dot_product_attention on PrivateUse1 takes torch's math path: the causal mask from tril (and
    scalar_tensor / where), the weights from _safe_softmax — all flaggems' on fgsim."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 5, 16, generator=g) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    qd, kd, vd = q.to(fgsim), k.to(fgsim), v.to(fgsim)
    with flaggems.use_gems(), flaggems.record() as rep:
        got = torch.nn.functional.scaled_dot_product_attention(qd, kd, vd, is_causal=True)
    assert rep.fallback_calls() == 0, rep.to_markdown()
    assert _served(rep, "aten::_safe_softmax") and _served(rep, "aten::tril"), rep.to_markdown()
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)
