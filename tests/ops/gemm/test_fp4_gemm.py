"""fp4_gemm (flaggems.ops.gemm.fp4_gemm): the three kernel paths vs the fp64 per-32-block reference.

Tolerance: e4m3 x e2m1 products (times power-of-two weight scales) are exact in fp32, so the error is fp32
accumulation: |C - ref| <= K * 2^-24 * sum|terms| (sum|terms| = the same GEMM on absolute values), plus the
final rounding to the output dtype.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems
import flaggems.ops.gemm.fp4_gemm as G4
from flaggems.testing import poison

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2
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
    x = torch.where(x.abs() < 2 ** -6, torch.full_like(x, 0.5), x)
    return x.to(E4M3)


def _fp4(N, K, g, dtype=FP4):
    """Random packed codes, never +-0."""
    codes = torch.randint(1, 8, (N, K), generator=g, dtype=torch.int32)
    codes = codes | (torch.randint(0, 2, (N, K), generator=g, dtype=torch.int32) << 3)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8)
    return packed.view(dtype)


def _e8m0(shape, g, lo=118, hi=132):
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int32).to(torch.uint8).view(E8M0)


def make(M, N, K, a_sdt, seed, lead=(), b_dtype=FP4):
    g = torch.Generator().manual_seed(seed)
    a = _fp8((*lead, M, K), g)
    kb = -(-K // 128)
    a_s = _e8m0((*lead, M, kb), g) if a_sdt == E8M0 else torch.rand((*lead, M, kb), generator=g) * 1e-2 + 1e-3
    return a, a_s, _fp4(N, K, g, b_dtype), _e8m0((N, -(-K // 32)), g)


def _abs_fp4(b):
    return (b.view(torch.uint8) & 0x77).view(b.dtype)


def assert_gemm_close(c, a, a_s, b, b_s, what=""):
    ref = G4.fp4_gemm_ref_f64(a, a_s, b, b_s)
    mag = G4.fp4_gemm_ref_f64(a.float().abs().to(E4M3), a_s, _abs_fp4(b), b_s)
    K = a.shape[-1]
    out_ulp = {torch.float32: 2 ** -24, torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11}[c.dtype]
    bound = K * 2 ** -24 * mag + out_ulp * ref.abs() + 1e-30
    err = (c.double() - ref).abs()
    ok = (err <= bound) | (c.double().isnan() & ref.isnan())
    if not bool(ok.all()):
        i = tuple((~ok).nonzero()[0].tolist())
        raise AssertionError(f"{what}: {int((~ok).sum())} of {c.numel()} outside the bound; at {i}: "
                             f"got {c[i].item()!r}, ref {ref[i].item()!r}, bound {bound[i].item():.3g}")


SHAPES = [(1, 16, 128), (3, 33, 96), (16, 130, 256), (5, 7, 80), (17, 64, 416)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("a_sdt", [torch.float32, E8M0], ids=["a_s-fp32", "a_s-e8m0"])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_fp4_gemm_paths(M, N, K, a_sdt, path):
    a, a_s, b, b_s = make(M, N, K, a_sdt, seed=M * 1000 + N + K)
    c = G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert c.shape == (M, N) and c.dtype == torch.float32
    assert_gemm_close(c, a, a_s, b, b_s, f"{path} {M}x{N}x{K}")


def test_reference_follows_the_spec():
    # one row, K = 64: two 32-blocks with weight scales 2^1 and 2^-2, activation scale 3 (fp32)
    a = torch.ones(1, 64).to(E4M3)
    a_s = torch.tensor([[3.0]])
    codes = torch.tensor([[1] * 32 + [15] * 32], dtype=torch.uint8)          # 0.5 ..., then -6 ...
    b = (codes[:, 0::2] | (codes[:, 1::2] << 4)).view(FP4)
    b_s = torch.tensor([[128, 125]], dtype=torch.uint8).view(E8M0)
    expect = 3.0 * (32 * 0.5 * 2.0 + 32 * -6.0 * 0.25)
    assert G4.fp4_gemm_ref(a, a_s, b, b_s, torch.float32).item() == expect
    assert G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32).item() == expect


def test_low_nibble_is_the_even_element():
    a = torch.zeros(1, 32)
    a[0, 0] = 1.0                                                             # only element 0 of K
    a = a.to(E4M3)
    b = torch.zeros(1, 16, dtype=torch.uint8)
    b[0, 0] = 0x1F                                                            # lo = 15 (-6), hi = 1 (0.5)
    b_s = torch.full((1, 1), 127, dtype=torch.uint8).view(E8M0)
    for path in ("fp8", "dequant"):
        c = G4.fp4_gemm_triton(a, torch.ones(1, 1), b.view(FP4), b_s, torch.float32, **FLAGS[path])
        assert c.item() == -6.0, path


@pytest.mark.parametrize("b_dtype", [torch.int8, torch.uint8])
def test_int8_checkpoint_weights(b_dtype):
    a, a_s, b, b_s = make(4, 24, 128, E8M0, seed=21)
    c_fp4 = torch.ops.flaggems.fp4_gemm(a, a_s, b, b_s, torch.float32)
    c_int = torch.ops.flaggems.fp4_gemm(a, a_s, b.view(b_dtype), b_s, torch.float32)
    assert torch.equal(c_fp4, c_int)
    assert_gemm_close(c_int, a, a_s, b, b_s)


def test_mode_choice():
    assert G4.choose_mode(True, True) == "dot_scaled"
    assert G4.choose_mode(True, False) == "dot_scaled"
    assert G4.choose_mode(False, True) == "fp8"
    assert G4.choose_mode(False, False) == "dequant"


@pytest.mark.parametrize("caps", [dict(dot_scaled=True, fp8=True), dict(dot_scaled=False, fp8=True)])
def test_op_follows_vendor_capability(caps, monkeypatch):
    seen = []
    orig = G4.choose_mode

    def spy(*args, **kw):
        seen.append(orig(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(G4, "_capability", lambda flag: caps[flag])
    monkeypatch.setattr(G4, "choose_mode", spy)
    a, a_s, b, b_s = make(4, 40, 256, E8M0, seed=22)
    with flaggems.record() as rep:
        c = torch.ops.flaggems.fp4_gemm(a, a_s, b, b_s, torch.float32)
    assert rep.served_by("flaggems::fp4_gemm") == {"triton": 1}
    assert seen == ["dot_scaled" if caps["dot_scaled"] else "fp8"]
    assert_gemm_close(c, a, a_s, b, b_s)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, None])
def test_out_dtype_and_batch_dims(out_dtype):
    a, a_s, b, b_s = make(3, 50, 128, E8M0, seed=23, lead=(2,))
    c = torch.ops.flaggems.fp4_gemm(a, a_s, b, b_s, out_dtype)
    assert c.shape == (2, 3, 50) and c.dtype == (out_dtype or torch.get_default_dtype())
    assert_gemm_close(c, a, a_s, b, b_s)


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_inputs(path):
    g = torch.Generator().manual_seed(24)
    M, N, K = 5, 40, 160
    a = _fp8((M, K + 32), g)[:, 32:]
    b = _fp4(N + 8, K, g)[4:4 + N].view(torch.uint8).t().contiguous().t().view(FP4)   # column-major bytes
    a_s = torch.rand(2, M, generator=g).t() * 1e-2
    b_s = _e8m0((N, 10), g)[:, ::2]
    assert not (a.is_contiguous() or b.is_contiguous() or a_s.is_contiguous() or b_s.is_contiguous())
    c = G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert_gemm_close(c, a, a_s, b, b_s, path)


@pytest.mark.parametrize("path", PATHS)
def test_writes_every_output(path):
    a, a_s, b, b_s = make(19, 131, 128, E8M0, seed=25)
    out = poison(torch.empty(19, 131))
    G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32, out=out, **FLAGS[path])
    assert_gemm_close(out, a, a_s, b, b_s, path)


@pytest.mark.parametrize("path", PATHS)
def test_e8m0_nan_scale(path):
    a, a_s, b, b_s = make(3, 20, 128, E8M0, seed=26)
    b_s.view(torch.uint8)[4, 2] = 255          # NaN weight scale: column 4 is NaN
    c = G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert c[:, 4].isnan().all() and not c[:, :4].isnan().any()
    assert_gemm_close(c, a, a_s, b, b_s, path)


@settings(max_examples=15, deadline=None)
@given(M=st.integers(1, 20), N=st.integers(1, 140), K=st.integers(1, 24).map(lambda k: 16 * k),
       a_e8m0=st.booleans(), path=st.sampled_from(["fp8", "dequant"]), seed=st.integers(0, 2 ** 16))
def test_fp4_gemm_hypothesis(M, N, K, a_e8m0, path, seed):
    a, a_s, b, b_s = make(M, N, K, E8M0 if a_e8m0 else torch.float32, seed)
    c = G4.fp4_gemm_triton(a, a_s, b, b_s, torch.float32, **FLAGS[path])
    assert_gemm_close(c, a, a_s, b, b_s, f"{path} {M}x{N}x{K}")


def test_fake_tensor():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a, a_s, b, b_s = make(3, 40, 256, E8M0, seed=0, lead=(2,))
        c = torch.ops.flaggems.fp4_gemm(a, a_s, b, b_s, torch.bfloat16)
        assert c.shape == (2, 3, 40) and c.dtype == torch.bfloat16


def _bad_cases():
    a, a_s, b, b_s = make(3, 40, 256, E8M0, seed=1)
    return [
        ((a.float(), a_s, b, b_s), TypeError, "a must have dtype"),
        ((a, a_s, b.view(torch.uint8).to(torch.int16), b_s), TypeError, "b must have dtype"),
        ((a, a_s, b[:, :64], b_s), ValueError, r"b must be \[N, K/2\]"),
        ((a, a_s[:, :1], b, b_s), ValueError, "a_s must have shape"),
        ((a, a_s, b, b_s[:, :4]), ValueError, "b_s must have shape"),
        ((a, a_s, b, b_s.float()), TypeError, "b_s must have dtype"),
        ((a[:, :255], a_s, b, b_s), ValueError, "b must be"),
        ((a, a_s, b, b_s, torch.float64), TypeError, "out_dtype"),
    ]


@pytest.mark.parametrize("i", range(8))
def test_bad_input(i):
    args, exc, match = _bad_cases()[i]
    with pytest.raises(exc, match=match):
        torch.ops.flaggems.fp4_gemm(*args)
