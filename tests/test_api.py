"""Public API: enable / disable / use_gems / registered_ops / vendor / record."""
import json
import warnings

import pytest
import torch

import flaggems
from flaggems import registry
from flaggems.testing import assert_close, run_gems
from flaggems.vendors import Capabilities


def test_enable_disable_registered_ops():
    assert flaggems.registered_ops() == []
    flaggems.enable()
    ops = flaggems.registered_ops()
    assert ops == sorted(ops)
    assert "aten::add.Tensor" in ops and "aten::mm.default" in ops and "aten::mm.out" in ops
    assert all(o.startswith("aten::") and "." in o for o in ops)
    flaggems.disable()
    assert flaggems.registered_ops() == []


def test_exclude_every_overload():
    flaggems.enable(exclude=["mm"])
    ops = flaggems.registered_ops()
    assert not [o for o in ops if o.startswith("aten::mm.")]
    assert "aten::addmm.default" in ops
    a, b = torch.randn(4, 5), torch.randn(5, 3)
    with flaggems.record() as rep:
        torch.mm(a, b)
    assert rep.fallbacks()["aten::mm.default"] == {"excluded": 1}


def test_exclude_one_overload_and_aten_prefix():
    flaggems.enable(exclude=["aten::mm.out"])
    ops = flaggems.registered_ops()
    assert "aten::mm.default" in ops and "aten::mm.out" not in ops


def test_include_only():
    flaggems.enable(include=["add", "mul.Tensor"])
    ops = flaggems.registered_ops()
    assert "aten::mul.Tensor" in ops and "aten::mul.Scalar" not in ops
    assert {o for o in ops if o.startswith("aten::add")} >= {"aten::add.Tensor", "aten::add.Scalar", "aten::add.out"}
    assert not any(o.startswith("aten::mm") for o in ops)


def test_unknown_names_raise_with_close_matches():
    with pytest.raises(ValueError, match="no_such_op"):
        flaggems.enable(include=["no_such_op"])
    with pytest.raises(ValueError, match="softmax"):
        flaggems.enable(include=["sofmax"])
    with pytest.raises(ValueError, match="unknown op name"):
        flaggems.enable(exclude=["mmm_not_an_op"])
    # a real ATen op flaggems does not serve: including it is an error, excluding it is a harmless no-op
    with pytest.raises(ValueError, match="no implementation"):
        flaggems.enable(include=["aten::lgamma"])
    flaggems.enable(exclude=["lgamma"])
    with pytest.raises(TypeError):
        flaggems.enable(include="mm")
    assert flaggems.registered_ops()  # the exclude-only call above is active


def test_use_gems_nests_and_restores_on_exception():
    assert flaggems.registered_ops() == []
    with flaggems.use_gems(include=["add"]):
        outer = flaggems.registered_ops()
        with flaggems.use_gems(exclude=["add"]):
            inner = flaggems.registered_ops()
            assert "aten::add.Tensor" not in inner and "aten::mm.default" in inner
        assert flaggems.registered_ops() == outer
        with pytest.raises(RuntimeError, match="boom"):
            with flaggems.use_gems():
                raise RuntimeError("boom")
        assert flaggems.registered_ops() == outer
    assert flaggems.registered_ops() == []
    flaggems.enable(exclude=["mm"])
    before = flaggems.registered_ops()
    with flaggems.use_gems():
        pass
    assert flaggems.registered_ops() == before


def test_vendor_info():
    v = flaggems.vendor()
    assert v.name == "cpu" and v.device_type == "cpu" and v.dispatch_key == "CPU"
    assert isinstance(v.capabilities, Capabilities)
    info = v.info()
    assert set(info["capabilities"]) >= {"fp64", "bf16", "fp8", "fp4", "int64"}


def test_mlp_acceptance_bf16():
    """Unmodified Sequential(Linear, SiLU, Linear) in bf16 + softmax(out + x) under use_gems()."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.SiLU(), torch.nn.Linear(96, 64)).to(torch.bfloat16)
    x = torch.randn(8, 64, dtype=torch.bfloat16)

    def fwd(x):
        out = model(x)
        return torch.softmax(out + x, dim=-1)

    native = fwd(x)
    ref = torch.softmax(torch.nn.functional.linear(torch.nn.functional.silu(torch.nn.functional.linear(
        x.double(), model[0].weight.double(), model[0].bias.double())).to(torch.bfloat16).double(),
        model[2].weight.double(), model[2].bias.double()) + x.double(), dim=-1)
    with torch.no_grad():
        got, rep = run_gems(fwd, x, served=["aten::silu.default", "aten::_softmax.default", "aten::add.Tensor",
                                            "aten::addmm.default"], kind="triton")
    assert got.dtype == torch.bfloat16
    assert_close(got, native.double(), torch.bfloat16, reduce_len=96)
    assert_close(got, ref, torch.bfloat16, reduce_len=96)
    assert rep.served_by("addmm") == {"triton": 2}
    assert flaggems.registered_ops() == []


def test_autograd_still_works_through_overrides():
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    with flaggems.use_gems():
        with flaggems.record() as rep:
            y = torch.nn.functional.silu(lin(x)).sum()
            y.backward()
    g_ours = x.grad.clone()
    x.grad = None
    torch.nn.functional.silu(lin(x)).sum().backward()
    assert_close(g_ours, x.grad.double(), torch.float32, reduce_len=16)
    assert rep.served_by("mm")  # the backward matmuls are ATen ops we serve too


def test_unsupported_inputs_fall_back_with_reason():
    a = torch.randn(5, dtype=torch.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with flaggems.use_gems():
            with flaggems.record() as rep:
                out = a + a
                flaggems_bool = torch.tensor([True, False]) + torch.tensor([True, True])
    assert torch.equal(out, a * 2)
    assert flaggems_bool.tolist() == [True, True]
    reason = rep.fallbacks()["aten::add.Tensor"]
    assert any("complex64" in r for r in reason), reason
    assert rep.coverage() == 0.0


def test_fp64_falls_back_on_vendor_without_fp64():
    no_fp64 = flaggems.vendor().__class__(**{**flaggems.vendor().__dict__,
                                             "capabilities": flaggems.vendor().capabilities.replace(fp64=False),
                                             "name": "cpu-nofp64"})
    x = torch.randn(7, dtype=torch.float64)
    with flaggems.use_gems():
        with registry.override_vendor(no_fp64):
            assert flaggems.vendor().name == "cpu-nofp64"
            with flaggems.record() as rep:
                y = x + x
                z = x.float() + 1
    assert torch.equal(y, x * 2)
    assert rep.fallbacks()["aten::add.Tensor"] == {"vendor lacks fp64": 1}
    assert rep.served_by("add.Tensor") == {"triton": 1}
    assert torch.equal(z, x.float() + 1)
    assert flaggems.vendor().name == "cpu"


def test_vendor_deny_list():
    v = flaggems.vendor()
    denying = v.__class__(**{**v.__dict__, "deny": frozenset({"mm"}), "name": "cpu-deny"})
    with registry.override_vendor(denying):
        flaggems.enable()
        assert not any(o.startswith("aten::mm.") for o in flaggems.registered_ops())
        with flaggems.record() as rep:
            torch.mm(torch.randn(2, 3), torch.randn(3, 2))
        assert rep.fallbacks()["aten::mm.default"] == {"denied by vendor cpu-deny": 1}
        flaggems.disable()


def test_vendor_override_is_explicit():
    from flaggems.vendors import Override

    calls = []

    def my_neg(x):
        calls.append(x.shape)
        return torch.ops.aten.mul.Tensor(x, -1.0)

    v = flaggems.vendor()
    plugin = v.__class__(**{**v.__dict__, "name": "cpu-ovr",
                            "overrides": (Override("aten::neg.default", my_neg, kind="cpp"),)})
    x = torch.randn(3)
    with registry.override_vendor(plugin):
        with flaggems.use_gems():
            with flaggems.record() as rep:
                y = -x
    assert calls == [torch.Size([3])]
    assert torch.equal(y, -x)
    assert rep.served_by("neg") == {"cpp": 1}
    # gone with the plugin
    with flaggems.use_gems():
        -x
    assert len(calls) == 1


def test_no_recursion_when_impl_calls_its_own_op():
    entry = registry.entries().get("aten::atan2.default")
    assert entry is None or not entry.impls

    @registry.implement("aten::atan2.default", kind="triton", dtypes={torch.float32})
    def bad_atan2(a, b):
        return torch.atan2(a, b) * 1.0  # calls itself: must reach the native kernel, not recurse

    try:
        a, b = torch.randn(6), torch.randn(6)
        with flaggems.use_gems():
            with flaggems.record() as rep:
                out = torch.atan2(a, b)
        assert torch.equal(out, torch.atan2(a, b))
        assert rep.served_by("atan2") == {"triton": 1}
    finally:
        registry.entries()["aten::atan2.default"].impls.clear()
        registry.clear_caches()


def test_python_scalar_fallback_rewrap_is_exact():
    """Python numbers reaching a fallback are re-wrapped so dtype and value match torch exactly."""
    h = torch.randn(4, dtype=torch.bfloat16)
    z0 = torch.tensor(1.5, dtype=torch.bfloat16)
    b = torch.tensor([True, False, True])
    want = [h + 3.1, z0 + 3.1, b + 2.5, b * 3, h * 1e-3]
    v = flaggems.vendor()
    nobf16 = v.__class__(**{**v.__dict__, "name": "nobf16", "capabilities": v.capabilities.replace(bf16=False)})
    with registry.override_vendor(nobf16):
        with flaggems.use_gems():
            with flaggems.record() as rep:
                got = [h + 3.1, z0 + 3.1, b + 2.5, b * 3, h * 1e-3]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert torch.equal(g, w), (g, w)
    assert rep.fallbacks()["aten::add.Tensor"]


def test_record_report_formats():
    a, b = torch.randn(3, 4), torch.randn(4, 2)
    with flaggems.use_gems(exclude=["mm.default"]):
        with flaggems.record() as rep:
            c = a @ b
            d = c.t().contiguous()
            e = torch.sigmoid(d)
            torch.lgamma(e)
    data = json.loads(rep.to_json())
    assert data["ops"]["aten::mm.default"]["fallback"] == {"excluded": 1}
    assert data["ops"]["aten::sigmoid.default"]["served"] == {"triton": 1}
    assert data["ops"]["aten::lgamma.default"]["fallback"] == {"not implemented": 1}
    assert data["ops"]["aten::t.default"]["view_or_metadata"] is True
    md = rep.to_markdown()
    assert "| `aten::sigmoid.default` | 1 | triton: 1 | - |" in md
    assert "Coverage:" in md
    served, fb = rep.served_calls(), rep.fallback_calls()
    assert rep.coverage() == pytest.approx(served / (served + fb))
    with flaggems.record() as rep2:
        torch.sigmoid(e)
    assert rep2.fallbacks() == {"aten::sigmoid.default": {"flaggems not enabled": 1}}


def test_hot_path_is_cached():
    a = torch.randn(16)
    with flaggems.use_gems():
        a + a
        entry = registry.entries()["aten::add.Tensor"]
        n = len(entry.cache)
        for _ in range(5):
            a + a
        assert len(entry.cache) == n


def test_prefer_impl_switch():
    with pytest.raises(ValueError):
        with flaggems.prefer_impl("cuda"):
            pass
    with flaggems.prefer_impl("triton"):
        assert registry.kind_order()[0] == "triton"
    with flaggems.prefer_impl("cpp"):
        assert registry.kind_order()[0] == "cpp"


def test_record_does_not_credit_an_op_with_its_internals():
    """A denied op whose native kernel calls patched ops internally is still reported as native."""
    v = flaggems.vendor()
    denying = v.__class__(**{**v.__dict__, "deny": frozenset({"sort"}), "name": "cpu-nosort"})
    x = torch.randn(50)
    with registry.override_vendor(denying):
        with flaggems.use_gems():
            with flaggems.record() as rep:
                vals, idx = torch.sort(x)
    assert torch.equal(vals, torch.sort(x).values)
    assert not rep.served_by("sort"), rep.to_markdown()
    assert rep.fallbacks()["aten::sort.default"]


def test_rsub():
    a = torch.randn(5)
    got, _ = run_gems(lambda: 2.0 - a, served=["rsub.Scalar"])
    assert torch.equal(got, 2.0 - a)
    got, _ = run_gems(lambda: torch.rsub(a, a * 3, alpha=2), served=["rsub.Tensor"])
    assert_close(got, (a * 3).double() - 2 * a.double(), torch.float32)
