"""Capability flags, deny lists and preferred kinds of the seed plugins decide which implementation serves
an op. Each plugin's data is simulated on CPU tensors (``simulate.simulated``): same name, flags, deny list,
configs and kinds, device type cpu, kernels through the Triton interpreter."""
import pytest
import torch

import flaggems
import flaggems.ops.gemm.fp8_gemm as G8
from flaggems import registry, vendors
from flaggems.testing import assert_close
from flaggems.runtime import interpreting

from simulate import seed, simulated

# The simulated vendors serve CPU tensors through the Triton interpreter (on a GPU machine it is off).
pytestmark = pytest.mark.skipif(not interpreting(), reason="needs the Triton interpreter (cpu vendor)")

SEEDS = vendors.SEEDS


def _run(plugin, fn, *args):
    with registry.override_vendor(plugin):
        with flaggems.use_gems():
            with flaggems.record() as rep:
                out = fn(*args)
    return out, rep


@pytest.mark.parametrize("name", SEEDS)
def test_fp64_follows_the_flag(name):
    """fp64 add: our Triton kernel where the vendor has fp64, the native kernel (with the reason) where not."""
    p = seed(name)
    x = torch.randn(33, dtype=torch.float64)
    out, rep = _run(simulated(p), torch.add, x, x)
    assert torch.equal(out, x + x)
    if p.capabilities.fp64:
        assert rep.served_by("add.Tensor") == {"triton": 1}
    else:
        assert rep.served_by("add.Tensor") == {}
        assert rep.fallbacks()["aten::add.Tensor"] == {"vendor lacks fp64": 1}
    # fp32 is served everywhere
    _, rep32 = _run(simulated(p), torch.add, x.float(), x.float())
    assert rep32.served_by("add.Tensor") == {"triton": 1}


@pytest.mark.parametrize("flag,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("int64", torch.int64)])
def test_dtype_flags_route_to_native(flag, dtype):
    """The same op and inputs: served with the flag on (every seed declares it), native with it off
    (e.g. a Cambricon MLU370 plugin would declare bf16=False)."""
    x = (torch.randn(5, 7) * 4).to(dtype)
    with_flag = simulated(seed("cambricon"))
    without = simulated(seed("cambricon", **{flag: False}))
    a, rep_on = _run(with_flag, torch.mul, x, x)
    b, rep_off = _run(without, torch.mul, x, x)
    assert torch.equal(a, x * x) and torch.equal(b, x * x)
    assert rep_on.served_by("mul.Tensor") == {"triton": 1}
    assert rep_off.served_by("mul.Tensor") == {}
    assert rep_off.fallbacks()["aten::mul.Tensor"] == {f"vendor lacks {flag}": 1}


def test_bf16_op_on_every_seed():
    x = torch.randn(4, 64).bfloat16()
    for name in SEEDS:
        out, rep = _run(simulated(seed(name)), torch.nn.functional.silu, x)
        assert rep.served_by("silu") == {"triton": 1}, name
        assert_close(out, torch.nn.functional.silu(x.double()), torch.bfloat16)


@pytest.mark.parametrize("name,op,call", [
    ("ascend", "sort", lambda x: torch.sort(x, dim=-1)),
    ("ascend", "topk", lambda x: torch.topk(x, 3)),
    ("kunlunxin", "cumsum", lambda x: torch.cumsum(x, -1)),
])
def test_deny_list(monkeypatch, name, op, call):
    """A denied op is never patched on that vendor and its calls go native; another seed serves it.

    Served calls are counted with a spy on the op's implementations (record() alone would also see the native
    kernel's own inner calls to patched ops such as copy_)."""
    import dataclasses

    entry = registry.entries()[f"aten::{op}.default"]
    calls = []

    def spy(impl):
        def fn(*a, **k):
            calls.append(impl.kind)
            return impl.fn(*a, **k)
        return dataclasses.replace(impl, fn=fn)

    monkeypatch.setattr(entry, "impls", [spy(i) for i in entry.impls])
    registry.clear_caches()
    x = torch.randn(4, 32)
    want = call(x)
    for vendor, served in ((name, False), ("metax", True)):
        calls.clear()
        with registry.override_vendor(simulated(seed(vendor))):
            with flaggems.use_gems():
                patched = flaggems.registered_ops()
                got = call(x)
        assert (f"aten::{op}.default" in patched) is served, vendor
        assert bool(calls) is served, (vendor, calls)
        for g, w in zip(*(t if isinstance(t, tuple) else (t,) for t in (got, want))):
            assert torch.equal(g, w)
    registry.clear_caches()


# ---- flaggems::fp8_gemm: the kernel path follows fp8 / dot_scaled -------------------------------------

def _fp8_inputs(e8m0: bool, M=16, N=128, K=256):
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(M, K, generator=g) * 2).to(torch.float8_e4m3fn)
    b = (torch.randn(N, K, generator=g) * 2).to(torch.float8_e4m3fn)
    kb = K // 128
    if e8m0:
        a_s = torch.randint(120, 130, (M, kb), generator=g, dtype=torch.uint8).view(torch.float8_e8m0fnu)
        b_s = torch.randint(120, 130, (1, kb), generator=g, dtype=torch.uint8).view(torch.float8_e8m0fnu)
    else:
        a_s = torch.rand(M, kb, generator=g) + 0.5
        b_s = torch.rand(1, kb, generator=g) + 0.5
    return a, a_s, b, b_s


@pytest.mark.parametrize("fp8,dot_scaled,e8m0,expect", [
    (False, False, False, "dequant"),      # every seed as declared: no fp8 -> decode in registers, plain dot
    (True, False, True, "fp8"),            # fp8 tl.dot, scales on the fp32 partials
    (True, True, True, "dot_scaled"),      # tl.dot_scaled with the E8M0 scales
    (True, True, False, "fp8"),            # dot_scaled needs E8M0 scales: fp32 scales take the fp8 path
])
def test_fp8_gemm_path_follows_flags(monkeypatch, fp8, dot_scaled, e8m0, expect):
    modes = []
    real = G8.choose_mode
    monkeypatch.setattr(G8, "choose_mode", lambda *a, **k: modes.append(real(*a, **k)) or modes[-1])
    a, a_s, b, b_s = _fp8_inputs(e8m0)
    plugin = simulated(seed("ascend", fp8=fp8, dot_scaled=dot_scaled))
    out, rep = _run(plugin, torch.ops.flaggems.fp8_gemm, a, a_s, b, b_s, torch.float32)
    if expect is None:
        assert modes == []
        assert rep.fallbacks()["flaggems::fp8_gemm.default"] == {"vendor lacks fp8": 1}
    else:
        assert modes == [expect]
        assert rep.served_by("flaggems::fp8_gemm") == {"triton": 1}
    assert_close(out, G8.fp8_gemm_ref_f64(a, a_s, b, b_s), torch.float32, reduce_len=256)


def test_preferred_kind_comes_from_the_plugin():
    """fp8_gemm has a cpp and a triton implementation: the cpu vendor prefers cpp, the seeds prefer triton."""
    pytest.importorskip("flaggems.cpp")
    from flaggems import cpp

    if not getattr(cpp, "available", lambda: False)():
        pytest.skip("flaggems._C not built")
    a, a_s, b, b_s = _fp8_inputs(True)
    caps = dict(fp8=True, dot_scaled=False)
    _, rep_cpu = _run(simulated(vendors.builtin("cpu")), torch.ops.flaggems.fp8_gemm, a, a_s, b, b_s, torch.float32)
    _, rep_seed = _run(simulated(seed("metax", **caps)), torch.ops.flaggems.fp8_gemm, a, a_s, b, b_s, torch.float32)
    assert rep_cpu.served_by("flaggems::fp8_gemm") == {"cpp": 1}
    assert rep_seed.served_by("flaggems::fp8_gemm") == {"triton": 1}


@pytest.mark.parametrize("name", vendors.DETECTION_ORDER)
def test_mm_runs_with_each_vendors_tuned_configs(name):
    """mm takes its first config from the active vendor's tuned-config file: each file's config is usable."""
    a, b = torch.randn(24, 40), torch.randn(40, 20)
    out, rep = _run(simulated(vendors.builtin(name)), torch.mm, a, b)
    assert rep.served_by("mm"), rep.to_markdown()
    assert_close(out, a.double() @ b.double(), torch.float32, reduce_len=40)


def test_fp64_scalar_compare_on_vendor_without_fp64():
    """Native eq.Scalar (fp64 falls back) converts its wrapped scalar with _to_copy, which reaches our override
    as a Python number: it must stay native, not crash a predicate."""
    b = torch.tensor([1.0, 255.0], dtype=torch.float64)
    out, rep = _run(simulated(seed("ascend")), lambda t: t == 255, b)
    assert out.tolist() == [False, True]
    assert "vendor lacks fp64" in rep.fallbacks()["aten::eq.Scalar"]


@pytest.mark.parametrize("flag,dtype", [("fp64", torch.float64), ("fp8", torch.float8_e4m3fn)])
def test_result_dtype_keyword_follows_the_flags(flag, dtype):
    """A dtype= keyword is a dtype the kernel computes in: _to_copy / full into fp64 or fp8 stay native on a
    vendor without the flag (the AOT gate found triton-ascend refusing these pointwise_identity kernels)."""
    without = simulated(seed("cambricon", **{flag: False}))
    x = torch.randn(9)
    cases = (("_to_copy.default", lambda: x.to(dtype)), ("full.default", lambda: torch.full((4,), 2.0, dtype=dtype)))
    for op, fn in cases:
        got, rep = _run(without, fn)
        assert torch.equal(got.float(), fn().float())
        assert rep.served_by(op) == {}, op
        assert rep.fallbacks()[f"aten::{op}"] == {f"vendor lacks {flag}": 1}, op
        _, rep_on = _run(simulated(seed("cambricon", **{flag: True})), fn)
        assert rep_on.served_by(op) == {"triton": 1}, op
