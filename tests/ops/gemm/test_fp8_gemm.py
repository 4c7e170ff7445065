"""fp8_gemm (flaggems.ops.gemm.fp8_gemm): the three kernel paths vs the fp64 block-scaled reference.

Tolerance: the products of e4m3 values (and power-of-two or fp32 scales) are exact in fp32, so the only
error is fp32 accumulation: |C - ref| <= K * 2^-24 * sum|terms| (the recursive-summation bound, with
sum|terms| = the same GEMM on absolute values), plus the final rounding to the output dtype.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems
import flaggems.ops.gemm.fp8_gemm as G8
from flaggems.testing import poison

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
PATHS = ["dot_scaled", "fp8", "dequant"]
FLAGS = {"dot_scaled": dict(use_dot_scaled=True, use_fp8=True), "fp8": dict(use_dot_scaled=False, use_fp8=True),
         "dequant": dict(use_dot_scaled=False, use_fp8=False)}


@pytest.fixture(autouse=True)
def _triton():
    """These tests exercise the Triton implementation (tests/cpp runs the C++ one against the same references)."""
    with flaggems.prefer_impl("triton"):
        yield


def _fp8(shape, g, scale=64.0):
    x = torch.randn(shape, generator=g) * scale
    x = torch.where(x.abs() < 2 ** -6, torch.full_like(x, 0.5), x)       # never zero
    return x.to(E4M3)


def _scales(shape, dtype, g):
    if dtype == E8M0:
        return torch.randint(118, 132, shape, generator=g, dtype=torch.int32).to(torch.uint8).view(E8M0)
    return torch.rand(shape, generator=g) * 1e-2 + 1e-3


def make(M, N, K, a_sdt, b_sdt, seed, lead=()):
    g = torch.Generator().manual_seed(seed)
    kb = -(-K // 128)
    a = _fp8((*lead, M, K), g)
    b = _fp8((N, K), g)
    return a, _scales((*lead, M, kb), a_sdt, g), b, _scales((-(-N // 128), kb), b_sdt, g)


def _abs8(t):
    return t.float().abs().to(t.dtype)


def assert_gemm_close(c, a, a_s, b, b_s, what=""):
    ref = G8.fp8_gemm_ref_f64(a, a_s, b, b_s)
    mag = G8.fp8_gemm_ref_f64(_abs8(a), a_s, _abs8(b), b_s)
    K = a.shape[-1]
    out_ulp = {torch.float32: 2 ** -24, torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11}[c.dtype]
    bound = K * 2 ** -24 * mag + out_ulp * ref.abs() + 1e-30
    err = (c.double() - ref).abs()
    ok = (err <= bound) | (c.double().isnan() & ref.isnan())
    if not bool(ok.all()):
        i = tuple((~ok).nonzero()[0].tolist())
        raise AssertionError(f"{what}: {int((~ok).sum())} of {c.numel()} outside the bound; at {i}: "
                             f"got {c[i].item()!r}, ref {ref[i].item()!r}, bound {bound[i].item():.3g}")


SHAPES = [(1, 16, 128), (3, 33, 200), (16, 130, 256), (5, 7, 64), (17, 129, 384)]
SCALE_DTYPES = [(torch.float32, torch.float32), (E8M0, E8M0), (torch.float32, E8M0)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sdts", SCALE_DTYPES, ids=lambda s: f"{s[0]}-{s[1]}".replace("torch.", ""))
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_fp8_gemm_paths(M, N, K, sdts, path):
    a, a_s, b, b_s = make(M, N, K, *sdts, seed=M * 1000 + N + K)
    c = G8.fp8_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert c.shape == (M, N) and c.dtype == torch.float32
    assert_gemm_close(c, a, a_s, b, b_s, f"{path} {M}x{N}x{K}")


def test_mode_choice():
    f32 = torch.ones(1, 1)
    e8 = f32.to(E8M0)
    assert G8.choose_mode(e8, e8, True, True) == "dot_scaled"
    assert G8.choose_mode(f32, e8, True, True) == "fp8"         # dot_scaled needs E8M0 on both sides
    assert G8.choose_mode(e8, e8, False, True) == "fp8"
    assert G8.choose_mode(e8, e8, False, False) == "dequant"


@pytest.mark.parametrize("caps", [dict(dot_scaled=True, fp8=True), dict(dot_scaled=False, fp8=True)])
def test_op_follows_vendor_capability(caps, monkeypatch):
    seen = []
    orig = G8.choose_mode

    def spy(*args, **kw):
        seen.append(orig(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(G8, "_capability", lambda flag: caps[flag])
    monkeypatch.setattr(G8, "choose_mode", spy)
    a, a_s, b, b_s = make(4, 40, 256, E8M0, E8M0, seed=11)
    with flaggems.record() as rep:
        c = torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s, torch.float32)
    assert rep.served_by("flaggems::fp8_gemm") == {"triton": 1}
    assert seen == ["dot_scaled" if caps["dot_scaled"] else "fp8"]
    assert_gemm_close(c, a, a_s, b, b_s)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, None])
def test_out_dtype_and_batch_dims(out_dtype):
    a, a_s, b, b_s = make(3, 50, 128, E8M0, E8M0, seed=12, lead=(2,))
    c = torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s, out_dtype)
    assert c.shape == (2, 3, 50) and c.dtype == (out_dtype or torch.get_default_dtype())
    assert_gemm_close(c, a, a_s, b, b_s)


def test_default_dtype_output():
    a, a_s, b, b_s = make(2, 20, 128, torch.float32, torch.float32, seed=13)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        c = torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s)
    finally:
        torch.set_default_dtype(prev)
    assert c.dtype == torch.bfloat16


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_inputs(path):
    g = torch.Generator().manual_seed(14)
    M, N, K = 5, 70, 160
    a = _fp8((M, K + 48), g)[:, 16:16 + K]                       # row stride K + 48
    b = _fp8((K, N), g).t()                                       # [N, K] with k-stride N
    a_s = _scales((3, M), E8M0, g).t()                            # [M, 2] column-major
    b_s = _scales((1, 4), E8M0, g)[:, ::2]                        # [1, 2] strided
    assert not (a.is_contiguous() or b.is_contiguous() or a_s.is_contiguous() or b_s.is_contiguous())
    a_s = a_s[:, :2]
    c = G8.fp8_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert_gemm_close(c, a, a_s, b, b_s, path)


@pytest.mark.parametrize("path", PATHS)
def test_writes_every_output(path):
    a, a_s, b, b_s = make(19, 131, 256, E8M0, E8M0, seed=15)
    out = poison(torch.empty(19, 131))
    c = G8.fp8_gemm_triton(a, a_s, b, b_s, torch.float32, out=out, **FLAGS[path])
    assert c.data_ptr() == out.data_ptr()
    assert_gemm_close(out, a, a_s, b, b_s, path)


@pytest.mark.parametrize("path", PATHS)
def test_e8m0_nan_and_extreme_scales(path):
    a, a_s, b, b_s = make(3, 20, 256, E8M0, E8M0, seed=16)
    a_s.view(torch.uint8)[0, 1] = 255          # NaN scale: row 0 is NaN
    a_s.view(torch.uint8)[1, 0] = 0            # 2^-127
    a_s.view(torch.uint8)[2, 1] = 150          # 2^23
    c = G8.fp8_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert c[0].isnan().all() and not c[1:].isnan().any()
    assert_gemm_close(c, a, a_s, b, b_s, path)


def test_empty_and_zero_k():
    a, a_s, b, b_s = make(0, 8, 128, torch.float32, torch.float32, seed=17)
    assert torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s, torch.float32).shape == (0, 8)
    a, a_s, b, b_s = make(2, 8, 0, torch.float32, torch.float32, seed=17)
    assert torch.equal(torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s, torch.float32), torch.zeros(2, 8))


@settings(max_examples=15, deadline=None)
@given(M=st.integers(1, 20), N=st.integers(1, 150), K=st.integers(1, 20).map(lambda k: 16 * k),
       a_e8m0=st.booleans(), b_e8m0=st.booleans(), path=st.sampled_from(["fp8", "dequant"]),
       seed=st.integers(0, 2 ** 16))
def test_fp8_gemm_hypothesis(M, N, K, a_e8m0, b_e8m0, path, seed):
    a, a_s, b, b_s = make(M, N, K, E8M0 if a_e8m0 else torch.float32, E8M0 if b_e8m0 else torch.float32, seed)
    c = G8.fp8_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert_gemm_close(c, a, a_s, b, b_s, f"{path} {M}x{N}x{K}")


def test_fake_tensor():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a, a_s, b, b_s = make(3, 40, 256, E8M0, E8M0, seed=0, lead=(2,))
        c = torch.ops.flaggems.fp8_gemm(a, a_s, b, b_s, torch.bfloat16)
        assert c.shape == (2, 3, 40) and c.dtype == torch.bfloat16


def _bad_cases():
    a, a_s, b, b_s = make(3, 40, 256, E8M0, E8M0, seed=1)
    return [
        ((a.float(), a_s, b, b_s), TypeError, "a must have dtype"),
        ((a, a_s.float().to(torch.float16), b, b_s), TypeError, "a_s must have dtype"),
        ((a, a_s, b[:, :128], b_s), ValueError, r"a.shape\[-1\] \(256\) must equal b.shape\[1\]"),
        ((a, a_s[:, :1], b, b_s), ValueError, "a_s must have shape"),
        ((a, a_s, b, b_s[:, :1]), ValueError, "b_s must have shape"),
        ((a, a_s, b.unsqueeze(0), b_s), ValueError, "b must be 2-D"),
        ((a, a_s, b.to(torch.float8_e5m2), b_s), TypeError, "b must have dtype"),
        ((a, a_s, b, b_s, torch.int32), TypeError, "out_dtype"),
    ]


@pytest.mark.parametrize("i", range(8))
def test_bad_input(i):
    args, exc, match = _bad_cases()[i]
    with pytest.raises(exc, match=match):
        torch.ops.flaggems.fp8_gemm(*args)
