"""hadamard_transform and hc_split_sinkhorn: C++ (every SIMD path) and Triton against the fp64 references."""
import pytest
import torch

from flaggems.cpp import hadamard_transform_cpp, hc_split_sinkhorn_cpp
from flaggems.deepseek.hadamard import hadamard_transform_ref
from flaggems.deepseek.hc_sinkhorn import hc_split_sinkhorn_ref
from flaggems.testing import assert_close

from .conftest import KINDS, run_op


@pytest.mark.parametrize("n", [1, 2, 16, 128, 2048])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_hadamard_cpp(isa, n, dtype):
    x = torch.randn(3, 5, n).to(dtype)
    out = hadamard_transform_cpp(x, n ** -0.5)
    assert_close(out, hadamard_transform_ref(x, n ** -0.5), dtype, reduce_len=n)


@pytest.mark.parametrize("kind", KINDS)
def test_hadamard_kinds(kind):
    x = torch.randn(4, 2, 128).to(torch.bfloat16)[:, 0]      # strided rows
    out = run_op("hadamard_transform", kind, x, 128 ** -0.5)
    assert_close(out, hadamard_transform_ref(x, 128 ** -0.5), torch.bfloat16, reduce_len=128)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hc,iters,lead", [(4, 20, (2, 7)), (3, 1, (5,)), (8, 5, (1, 1))])
def test_hc_split_sinkhorn(kind, hc, iters, lead):
    g = torch.Generator().manual_seed(hc)
    w = (2 + hc) * hc
    mixes = torch.randn(*lead, w, generator=g)
    scale, base = torch.rand(3, generator=g) + 0.5, torch.randn(w, generator=g)
    out = run_op("hc_split_sinkhorn", kind, mixes, scale, base, hc, iters, 1e-6)
    ref = hc_split_sinkhorn_ref(mixes, scale, base, hc, iters, 1e-6)
    for o, r in zip(out, ref):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-6)


def test_hc_split_sinkhorn_many_tokens(isa):
    mixes = torch.randn(300, 24)
    scale, base = torch.rand(3) + 0.5, torch.randn(24)
    for o, r in zip(hc_split_sinkhorn_cpp(mixes, scale, base), hc_split_sinkhorn_ref(mixes, scale, base)):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-6)
