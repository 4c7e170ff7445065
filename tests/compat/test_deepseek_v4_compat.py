"""flaggems.compat.deepseek_v4: DeepSeek's kernel.py / fast_hadamard_transform API on flaggems ops."""
import importlib
import inspect
import sys
import types

import pytest
import torch

import flaggems
import flaggems.compat.deepseek_v4 as dsv4
import flaggems.ops.gemm.fp4_gemm as G4
import flaggems.ops.gemm.fp8_gemm as G8
import flaggems.deepseek.quant as Q
from flaggems.formats import e8m0_to_float_ref, unpack_fp4_ref

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2
SHIM_NAMES = ("kernel", "fast_hadamard_transform")


def _rand(shape, dtype=torch.bfloat16, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * scale
    return torch.where(x.abs() < 1e-3, torch.full_like(x, 1e-3), x).to(dtype)


# ---------------------------------------------------------------------------------------------- signatures
EXPECTED = {
    "act_quant": [("x", inspect.Parameter.empty), ("block_size", 128), ("scale_fmt", None),
                  ("scale_dtype", torch.float32), ("inplace", False)],
    "fp4_act_quant": [("x", inspect.Parameter.empty), ("block_size", 32), ("inplace", False)],
    "fp8_gemm": [("a", inspect.Parameter.empty), ("a_s", inspect.Parameter.empty), ("b", inspect.Parameter.empty),
                 ("b_s", inspect.Parameter.empty), ("scale_dtype", torch.float32)],
    "fp4_gemm": [("a", inspect.Parameter.empty), ("a_s", inspect.Parameter.empty), ("b", inspect.Parameter.empty),
                 ("b_s", inspect.Parameter.empty), ("scale_dtype", torch.float32)],
    "sparse_attn": [(n, inspect.Parameter.empty) for n in ("q", "kv", "attn_sink", "topk_idxs", "softmax_scale")],
    "hc_split_sinkhorn": [("mixes", inspect.Parameter.empty), ("hc_scale", inspect.Parameter.empty),
                          ("hc_base", inspect.Parameter.empty), ("hc_mult", 4), ("sinkhorn_iters", 20),
                          ("eps", 1e-6)],
    "hadamard_transform": [("x", inspect.Parameter.empty), ("scale", 1.0)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signatures_match_deepseek(name):
    params = inspect.signature(getattr(dsv4, name)).parameters
    assert [(p.name, p.default) for p in params.values()] == EXPECTED[name]


# -------------------------------------------------------------------------------------------- quantisers
def test_act_quant_out_of_place_and_in_place():
    x = _rand((2, 3, 256), seed=1)
    y, s = dsv4.act_quant(x)
    assert y.dtype == E4M3 and s.dtype == torch.float32 and s.shape == (2, 3, 2)
    yr, sr = Q.act_quant_ref(x, 128)
    assert torch.equal(y.view(torch.uint8), yr.view(torch.uint8)) and torch.equal(s, sr)
    y, s = dsv4.act_quant(x, 128, "ue8m0", E8M0)
    assert s.dtype == E8M0
    kv = _rand((2, 5, 512), seed=2)
    expect = kv[..., :448].clone()
    Q.act_quant_inplace_ref(expect, 64, "ue8m0")
    view = kv[..., :448]
    out = dsv4.act_quant(view, 64, "ue8m0", inplace=True)
    assert out is view and torch.equal(kv[..., :448], expect)


def test_fp4_act_quant_out_of_place_and_in_place():
    x = _rand((3, 128), seed=3)
    q, s = dsv4.fp4_act_quant(x)
    assert q.dtype == FP4 and q.shape == (3, 64) and s.dtype == E8M0 and s.shape == (3, 4)
    xi = x.clone()
    assert dsv4.fp4_act_quant(xi, 32, True) is xi
    deq = (unpack_fp4_ref(q).view(3, 4, 32) * e8m0_to_float_ref(s)[..., None]).view(3, 128)
    assert torch.equal(xi, deq.to(torch.bfloat16))


# ------------------------------------------------------------------------------------------------ GEMMs
def _linear_fp8(x, w, w_s, scale_fmt, scale_dtype):
    """model.py's fp8 `linear`: quantise the activation per 128, then fp8_gemm."""
    xq, s = dsv4.act_quant(x, 128, scale_fmt, scale_dtype)
    return dsv4.fp8_gemm(xq, s, w, w_s, scale_dtype), xq, s


@pytest.mark.parametrize("default", [torch.bfloat16, torch.float32])
def test_fp8_linear_like_model(default):
    g = torch.Generator().manual_seed(4)
    w = (torch.randn(160, 256, generator=g) * 100).to(E4M3)
    w_s = torch.randint(115, 122, (2, 2), generator=g, dtype=torch.int32).to(torch.uint8).view(E8M0)
    x = _rand((2, 3, 256), seed=5)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        y, xq, s = _linear_fp8(x, w, w_s, "ue8m0", E8M0)
    finally:
        torch.set_default_dtype(prev)
    assert y.shape == (2, 3, 160) and y.dtype == default
    ref = G8.fp8_gemm_ref_f64(xq, s, w, w_s)
    assert torch.allclose(y.double(), ref, rtol=2 ** -7, atol=1e-6 * ref.abs().max().item())
    # and the quantised linear is close to the bf16 one (quantisation error ~ 2^-4 per element)
    w_deq = w.float() * e8m0_to_float_ref(w_s).repeat_interleave(128, 0).repeat_interleave(128, 1)[:160]
    dense = x.float() @ w_deq.t()
    assert ((y.float() - dense).norm() / dense.norm()).item() < 0.05


@pytest.mark.parametrize("w_dtype", [FP4, torch.int8])
def test_fp4_linear_like_model(w_dtype):
    g = torch.Generator().manual_seed(6)
    codes = torch.randint(0, 256, (48, 128), generator=g, dtype=torch.int32).to(torch.uint8)
    w = codes.view(w_dtype)
    w_s = torch.randint(120, 127, (48, 8), generator=g, dtype=torch.int32).to(torch.uint8).view(E8M0)
    x = _rand((5, 256), seed=7)
    xq, s = dsv4.act_quant(x, 128, "ue8m0", E8M0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        y = dsv4.fp4_gemm(xq, s, w, w_s, E8M0)
    finally:
        torch.set_default_dtype(prev)
    assert y.dtype == torch.bfloat16 and y.shape == (5, 48)
    ref = G4.fp4_gemm_ref_f64(xq, s, codes.view(FP4), w_s)
    assert torch.allclose(y.double(), ref, rtol=2 ** -7, atol=1e-6 * ref.abs().max().item())


def test_gemm_default_output_dtype_is_fp32_by_default():
    xq, s = dsv4.act_quant(_rand((2, 128), seed=8))
    w = _rand((16, 128), torch.float32, seed=9, scale=50).to(E4M3)
    assert dsv4.fp8_gemm(xq, s, w, torch.ones(1, 1)).dtype == torch.get_default_dtype()


# -------------------------------------------------------------------------------------- other kernels
def test_sparse_attn_forwards():
    q = _rand((1, 3, 4, 64), seed=10)
    kv = _rand((1, 9, 64), seed=11)
    sink = torch.randn(4)
    idx = torch.tensor([[[0, 1, -1, 5], [2, -1, -1, -1], [8, 7, 6, 3]]], dtype=torch.int32)
    out = dsv4.sparse_attn(q, kv, sink, idx, 64 ** -0.5)
    assert torch.equal(out, torch.ops.flaggems.sparse_attn(q, kv, sink, idx, 64 ** -0.5))
    assert out.shape == q.shape and out.dtype == q.dtype


def test_hc_split_sinkhorn_forwards():
    mixes = torch.randn(2, 3, 24)
    scale, base = torch.randn(3), torch.randn(24)
    pre, post, comb = dsv4.hc_split_sinkhorn(mixes, scale, base)
    exp = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base, 4, 20, 1e-6)
    assert all(torch.equal(a, b) for a, b in zip((pre, post, comb), exp))
    assert pre.shape == (2, 3, 4) and post.shape == (2, 3, 4) and comb.shape == (2, 3, 4, 4)


def test_hadamard_transform_forwards():
    x = _rand((3, 128), seed=12)
    y = dsv4.hadamard_transform(x, 128 ** -0.5)
    assert torch.equal(y, torch.ops.flaggems.hadamard_transform(x, 128 ** -0.5))
    assert y.dtype == torch.bfloat16 and y.shape == x.shape


# ------------------------------------------------------------------------------------------------ install
@pytest.fixture
def clean_modules(monkeypatch):
    """No kernel / fast_hadamard_transform imported; skip if a real one is importable in this environment."""
    for name in SHIM_NAMES:
        monkeypatch.delitem(sys.modules, name, raising=False)
        if importlib.util.find_spec(name) is not None:
            pytest.skip(f"a real {name!r} module is importable here")
    yield
    dsv4.uninstall()


def test_install_makes_model_imports_resolve(clean_modules):
    mods = dsv4.install()
    assert dsv4.installed() and set(mods) == set(SHIM_NAMES)
    import kernel
    from fast_hadamard_transform import hadamard_transform

    for name in dsv4.KERNEL_NAMES:
        assert getattr(kernel, name) is getattr(dsv4, name)
    assert hadamard_transform is dsv4.hadamard_transform
    assert dsv4.install() is not None and sys.modules["kernel"] is kernel     # idempotent
    # what model.py does at import time
    ns = {}
    exec("from kernel import act_quant, fp4_act_quant, fp8_gemm, fp4_gemm, sparse_attn, hc_split_sinkhorn\n"
         "from fast_hadamard_transform import hadamard_transform\n"
         "y, s = act_quant(x, 128, 'ue8m0', torch.float8_e8m0fnu)\n", {"x": _rand((2, 256)), "torch": torch}, ns)
    dsv4.uninstall()
    assert not any(n in sys.modules for n in SHIM_NAMES)


def test_install_refuses_importable_real_module(clean_modules, tmp_path, monkeypatch):
    (tmp_path / "kernel.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(RuntimeError, match=r"refusing to shadow.*'kernel' from .*kernel\.py.*force=True"):
        dsv4.install()
    assert "kernel" not in sys.modules and "fast_hadamard_transform" not in sys.modules
    dsv4.install(force=True)
    import kernel

    assert not hasattr(kernel, "REAL") and kernel.act_quant is dsv4.act_quant


def test_install_refuses_imported_real_module_and_restores_it(clean_modules, monkeypatch):
    real = types.ModuleType("fast_hadamard_transform")
    real.hadamard_transform = lambda x, scale=1.0: x
    monkeypatch.setitem(sys.modules, "fast_hadamard_transform", real)
    with pytest.raises(RuntimeError, match="fast_hadamard_transform"):
        dsv4.install()
    assert sys.modules["fast_hadamard_transform"] is real
    dsv4.install(force=True)
    assert sys.modules["fast_hadamard_transform"].hadamard_transform is dsv4.hadamard_transform
    dsv4.uninstall()
    assert sys.modules["fast_hadamard_transform"] is real and "kernel" not in sys.modules


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("call,exc,match", [
    (lambda: dsv4.act_quant(torch.ones(2, 128), inplace="yes"), TypeError, "inplace"),
    (lambda: dsv4.act_quant(torch.ones(2, 128), scale_dtype=torch.float16), TypeError, "scale_dtype"),
    (lambda: dsv4.act_quant(torch.ones(2, 100)), ValueError, "block_size"),
    (lambda: dsv4.fp4_act_quant(torch.ones(2, 64), inplace=1), TypeError, "inplace"),
    (lambda: dsv4.fp8_gemm(*(torch.ones(1, 128).to(E4M3), torch.ones(1, 1)) * 2, torch.bfloat16), TypeError,
     "scale_dtype"),
    (lambda: dsv4.fp4_gemm(torch.ones(1, 128).to(E4M3), torch.ones(1, 1), torch.ones(1, 64).to(E4M3),
                           torch.ones(1, 4).to(E8M0)), TypeError, "b must have dtype"),
    (lambda: dsv4.install(force="yes"), TypeError, "force"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
