"""flaggems::hadamard_transform against an fp64 matmul with the explicit Sylvester matrix."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems  # noqa: F401
from flaggems.deepseek.hadamard import hadamard_matrix, hadamard_transform_ref, hadamard_transform_triton
from flaggems.testing import assert_close, tolerance

# Exact ±1 products summed in fp32: the only roundings are the fp32 accumulation and the final cast, so
# the output is within one ulp of its dtype (a value near a rounding midpoint may round either way after
# fp32 vs fp64 accumulation: bf16 ulp <= 2^-7 relative, fp16 <= 2^-10) or ~1e-6 relative for fp32.
# Outputs that cancel to near 0 carry the absolute fp32 accumulation error, ~1e-7 * n * |scale| at most here.
RTOL = {torch.bfloat16: 2 ** -7, torch.float16: 2 ** -9, torch.float32: 2e-6}


def tol(dtype, n, scale):
    return dict(rtol=RTOL[dtype], atol=max(1e-6, 1e-7 * n * abs(scale)))


def test_reference_matrix_is_natural_order():
    for n in (1, 2, 8, 64):
        i = torch.arange(n)
        parity = torch.tensor([[bin(int(a) & int(b)).count("1") % 2 for b in i] for a in i])
        assert torch.equal(hadamard_matrix(n), (1 - 2 * parity).double())
        h = hadamard_matrix(n)
        assert torch.equal(h @ h, n * torch.eye(n, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_matches_reference(n, dtype):
    x = torch.randn(3, 5, n).to(dtype)
    scale = n ** -0.5
    y = torch.ops.flaggems.hadamard_transform(x, scale)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, hadamard_transform_triton(x, scale))
    assert_close(y, hadamard_transform_ref(x, scale), dtype, **tol(dtype, x.shape[-1], scale))


@pytest.mark.parametrize("shape", [(128,), (1, 128), (7, 3, 128), (2, 1, 1, 64), (33, 256)])
def test_leading_shapes_and_fp16(shape):
    x = torch.randn(shape).half()
    y = torch.ops.flaggems.hadamard_transform(x, 0.5)
    assert y.shape == x.shape and y.dtype == torch.float16
    assert_close(y, hadamard_transform_ref(x, 0.5), torch.float16, **tol(torch.float16, x.shape[-1], 0.5))


def test_involution_and_default_scale():
    x = torch.randn(4, 512)
    y = torch.ops.flaggems.hadamard_transform(x)        # scale defaults to 1.0
    assert_close(y, hadamard_transform_ref(x), torch.float32, **tol(torch.float32, 512, 1.0))
    back = torch.ops.flaggems.hadamard_transform(y, 1.0 / 512)
    assert_close(back, x, torch.float32, **tolerance(torch.float32, 512).__dict__)


def test_empty_and_non_contiguous():
    assert torch.ops.flaggems.hadamard_transform(torch.empty(0, 64, dtype=torch.bfloat16), 1.0).shape == (0, 64)
    g = torch.Generator().manual_seed(7)
    cases = [
        torch.randn(6, 256, generator=g).to(torch.bfloat16)[:, ::2],     # column stride 2, n = 128
        torch.randn(64, 5, generator=g).t(),                             # [5, 64], column stride 5
        torch.randn(4, 6, 256, generator=g).transpose(0, 1),             # leading dims not mergeable
        torch.randn(4, 16, generator=g).to(torch.bfloat16)[::2],         # row stride 32
    ]
    for x in cases:
        assert not x.is_contiguous()
        y = torch.ops.flaggems.hadamard_transform(x, 0.25)
        assert y.is_contiguous() and y.shape == x.shape
        assert_close(y, hadamard_transform_ref(x, 0.25), x.dtype, **tol(x.dtype, x.shape[-1], 0.25))


def test_model_usage_bf16_128():
    # the indexer's rotate_activation: bf16 [B, S, H, 128], scale 128^-0.5
    x = torch.randn(2, 3, 4, 128).to(torch.bfloat16)
    y = torch.ops.flaggems.hadamard_transform(x, 128 ** -0.5)
    assert_close(y, hadamard_transform_ref(x, 128 ** -0.5), torch.bfloat16, **tol(torch.bfloat16, 128, 128 ** -0.5))


@settings(max_examples=12, deadline=None)
@given(log_n=st.integers(0, 11), lead=st.lists(st.integers(1, 6), min_size=0, max_size=3),
       dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float32]),
       scale=st.sampled_from([1.0, 0.125, -2.0]), seed=st.integers(0, 2**16))
def test_hypothesis(log_n, lead, dtype, scale, seed):
    x = torch.randn(*lead, 1 << log_n, generator=torch.Generator().manual_seed(seed)).to(dtype)
    y = torch.ops.flaggems.hadamard_transform(x, scale)
    assert_close(y, hadamard_transform_ref(x, scale), dtype, **tol(dtype, x.shape[-1], scale))


def test_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y = torch.ops.flaggems.hadamard_transform(torch.empty(2, 3, 128, dtype=torch.bfloat16), 0.1)
        assert y.shape == (2, 3, 128) and y.dtype == torch.bfloat16


@pytest.mark.parametrize("fn", [torch.ops.flaggems.hadamard_transform, hadamard_transform_triton])
def test_bad_inputs(fn):
    cases = [
        ((torch.randn(4, 96), 1.0), ValueError, "power of two"),
        ((torch.randn(4, 0), 1.0), ValueError, "power of two"),
        ((torch.randn(2, 1 << 16), 1.0), ValueError, "power of two"),
        ((torch.randn(()), 1.0), ValueError, "at least 1 dimension"),
        ((torch.randn(4, 64).double(), 1.0), TypeError, "x must have dtype"),
        ((torch.randint(0, 3, (4, 64)), 1.0), TypeError, "x must have dtype"),
        ((torch.randn(4, 64), math.inf), TypeError, "scale"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)
