"""The AOT gate: specialization rules, capture under a GPU vendor's planning, real compiles, cache, report.

Compiles use the installed Triton's own compilers (ptxas and the AMD linker ship in the wheel); no GPU needed.
"""
import argparse
import json
import os
import sys

import pytest
import torch

import flaggems
from flaggems import vendors
from flaggems.aot import cache, capture, gate, pool, selection
from flaggems.aot import spec as S
from flaggems.aot.report import make_row
from flaggems.aot.targets import parse_target, planning_capabilities

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIR)  # --import-mode=importlib leaves sys.path alone; the tiny kernels live beside us
import aot_kernels  # noqa: E402


# ---------------------------------------------------------------------------------------------- rules

def test_targets_and_limits():
    h = parse_target("cuda:90")
    assert (h.backend, h.arch, h.shared_limit, h.warp_size) == ("cuda", "90", 227 * 1024, 32)
    assert parse_target("cuda:sm_100").gpu_target_args() == ("cuda", 100, 32)
    amd = parse_target("hip:gfx942")
    assert (amd.shared_limit, amd.warp_size) == (64 * 1024, 64)
    npu = parse_target("npu:Ascend910B4")
    assert npu.stop_after == "ttadapter" and npu.shared_limit is None
    for bad in ("cuda", "cuda:hopper", "hip:942", "tpu:v5"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_nvidia_capabilities_follow_the_target_arch():
    nv = vendors.builtin("nvidia")
    c90, c100 = planning_capabilities(nv, parse_target("cuda:90")), planning_capabilities(nv, parse_target("cuda:100"))
    assert c90.fp8 and not c90.dot_scaled
    assert c100.fp8 and c100.dot_scaled
    amd = vendors.builtin("amd")
    assert planning_capabilities(amd, parse_target("hip:gfx942")) == amd.capabilities


@pytest.mark.parametrize("value, specialize, expect", [
    (1, True, ("constexpr", "", 1)),           # the value-1 specialisation GPUs apply
    (1, False, ("i32", "", None)),             # ... unless do_not_specialize
    (32, True, ("i32", "D", None)),
    (17, True, ("i32", "", None)),
    (2 ** 31 + 3, True, ("i64", "", None)),
    (2 ** 32, True, ("i64", "D", None)),
    (-5, True, ("i32", "", None)),
    (2 ** 63, True, ("u64", "D", None)),
    (True, True, ("u1", "", None)),
    (0.5, True, ("fp32", "", None)),
    (None, True, ("constexpr", "", None)),
])
def test_scalar_arguments(value, specialize, expect):
    assert S.describe_arg(value, specialize=specialize, align=True) == expect


def test_pointer_arguments():
    x = torch.empty(64, dtype=torch.float8_e4m3fn)
    ty, hint, _ = S.describe_arg(x, specialize=True, align=True)
    assert ty == "*fp8e4nv" and hint == ("D" if x.data_ptr() % 16 == 0 else "") + "S"
    assert S.describe_arg(torch.empty(4, dtype=torch.uint8)[1:], specialize=True, align=True)[:2] == ("*u8", "S")
    assert S.describe_arg(torch.empty(4, dtype=torch.bfloat16), specialize=True, align=True)[0] == "*bf16"
    with pytest.raises(TypeError):
        S.describe_arg(torch.empty(2, dtype=torch.complex64), specialize=True, align=True)


def test_constexpr_encoding():
    import triton.language as tl

    assert S.encode_constexpr(tl.float32) == {"dtype": "fp32"}
    assert S.encode_constexpr(aot_kernels.add_kernel) == {"jit": "aot_kernels:add_kernel"}
    assert S.encode_constexpr(tl.constexpr(8)) == 8
    with pytest.raises(S.UnencodableConstexpr):
        S.encode_constexpr(object())


def _spec(fn, *args, **kwargs):
    return capture.Recorder().describe(fn, args, kwargs)


def test_describe_launch():
    x, y, out = (torch.empty(100) for _ in range(3))
    s = _spec(aot_kernels.add_kernel, x, y, out, 100, BLOCK=64, num_warps=2)
    assert s.kernel == "aot_kernels:add_kernel" and s.file.endswith("tests/aot_kernels.py")
    assert s.line == 7  # the def line, not the decorator
    assert s.signature == {"x_ptr": "*fp32", "y_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"}
    assert s.constexprs == {"BLOCK": 64} and s.options == {"num_warps": 2}
    one = _spec(aot_kernels.mean_kernel, x, out, 1, BLOCK=16)
    assert one.signature["N"] == "constexpr" and one.constexprs["N"] == 1
    assert one.key != _spec(aot_kernels.mean_kernel, x, out, 7, BLOCK=16).key


def test_capture_under_gpu_planning():
    """The nvidia plan: every tuned mm candidate recorded, fp8/uint8 pointers typed, GPU branches taken."""
    rec = capture.Recorder()
    with capture.planning(vendors.builtin("nvidia"), parse_target("cuda:90"), rec), flaggems.use_gems():
        a, b = torch.randn(20, 32, dtype=torch.float16), torch.randn(32, 24, dtype=torch.float16)
        torch.mm(a, b)
        torch.randn(64).to(torch.float8_e4m3fn)
        torch.add(torch.ones(40, dtype=torch.uint8), torch.ones(40, dtype=torch.uint8))
        assert flaggems.runtime.interpreting() is False
    assert flaggems.runtime.interpreting() is True
    mm = [s for s in rec.specs.values() if s.kernel == "flaggems.ops.gemm.kernel:gemm_kernel"]
    n_cfg = len(vendors.builtin("nvidia").configs()["mm"])
    assert len(mm) == n_cfg and sum(not s.candidate_only for s in mm) == 1
    assert all(s.signature["a_ptr"] == "*fp16" and "aten::mm.default" in s.routed_ops for s in mm)
    assert {(s.constexprs["BLOCK_M"], s.options.get("num_warps")) for s in mm} == \
        {(c["BLOCK_M"], c.get("num_warps")) for c in vendors.builtin("nvidia").configs()["mm"]}
    # generated pointwise kernels: recorded under their importable reference, with a real source file
    pw = [s for s in rec.specs.values() if s.kernel.startswith("flaggems.ops.pointwise_codegen:pointwise_")]
    assert all(os.path.exists(s.file) and s.line > 1 for s in pw)
    assert any(s.kernel_name == "pointwise_identity_1" and s.signature["out_ptr"] == "*fp8e4nv" for s in pw)
    assert any(s.kernel_name == "pointwise_add_unit_2" and s.signature["out_ptr"] == "*u8"
               and s.signature["a_ptr"] == "*u8" for s in pw)
    # no @triton.jit function passed as a constexpr (triton-ascend's launcher refuses them)
    assert not any(isinstance(v, dict) and "jit" in v for s in pw for v in s.constexprs.values())


def test_vendor_filter_and_sampling():
    base = dict(file="f.py", line=1, params=["x"], constexprs={}, hints={}, options={})
    routed = S.Specialization(kernel="m:k", signature={"x": "*fp64"}, routed_ops=["aten::add.Tensor"], **base)
    direct = S.Specialization(kernel="m:k", signature={"x": "*fp64"}, direct=True, **base)
    fine = S.Specialization(kernel="m:k", signature={"x": "*bf16"}, direct=True, **base)
    kept, dropped = selection.vendor_filter([routed, direct, fine], vendors.builtin("ascend").capabilities)
    assert kept == [routed] and sum(len(v) for v in dropped.values()) == 2
    assert any("fp64 data on a vendor without fp64" in reason for reason in dropped)
    many = [S.Specialization(kernel="m:k", signature={"x": f"*{dt}"}, constexprs={"B": b}, **{k: v for k, v in base.items()
                             if k != "constexprs"}) for dt in ("fp16", "fp32") for b in range(5)]
    chosen, skipped = selection.sample(many, 4)
    assert len(chosen) == 4 and skipped == {"m:k": 6}
    assert {s.signature["x"] for s in chosen} == {"*fp16", "*fp32"}  # both variants before any repeat
    assert selection.ops_filter([routed, fine], ["add"]) == [routed]


# ---------------------------------------------------------------------------------------------- compiles

@pytest.fixture(scope="module")
def compiled():
    """One worker compiles: the add kernel for sm_90 and gfx942, the mean kernel with N = 7 and N = 1."""
    x, out = torch.empty(64), torch.empty(1)
    add = _spec(aot_kernels.add_kernel, x, x, x, 64, BLOCK=64, num_warps=4)
    mean7 = _spec(aot_kernels.mean_kernel, x, out, 7, BLOCK=64)
    mean1 = _spec(aot_kernels.mean_kernel, x, out, 1, BLOCK=64)
    jobs = [("add", add, "cuda:90"), ("add", add, "hip:gfx942"), ("mean7", mean7, "cuda:90"),
            ("mean1", mean1, "cuda:90")]
    payload = [{"id": f"{n}@{t}", "spec": s.to_dict(), "target": parse_target(t).to_dict()} for n, s, t in jobs]
    res = pool.run_jobs(sys.executable, payload, 1)
    return {f"{n}@{t}": make_row(s, parse_target(t), res[f"{n}@{t}"], False) for n, s, t in jobs}


def test_compile_reports_resources(compiled):
    nv, amd = compiled["add@cuda:90"], compiled["add@hip:gfx942"]
    assert nv.status == "compiled" and nv.ok, nv.error
    assert nv.usage["registers"] > 0 and nv.usage["spill_store_bytes"] == 0 and nv.spill == 0
    assert nv.shared is not None and nv.shared <= nv.shared_limit == 227 * 1024 and not nv.overflow
    assert amd.status == "compiled" and amd.usage["vgprs"] > 0 and amd.usage["vgpr_spill_count"] == 0
    assert amd.shared_limit == 64 * 1024 and nv.seconds > 0


def test_value_one_specialisation_fails_like_on_a_gpu(compiled):
    assert compiled["mean7@cuda:90"].ok
    bad = compiled["mean1@cuda:90"]
    assert bad.status == "failed" and not bad.ok
    assert "has no attribute 'to'" in bad.error
    with open(os.path.join(TESTS_DIR, "aot_kernels.py")) as f:
        line = next(i for i, text in enumerate(f, 1) if "N.to(tl.float32)" in text)
    assert bad.error_at.endswith(f"tests/aot_kernels.py:{line}")


def _gate_args(tmp_path, capture_file, **kw):
    ns = argparse.Namespace(targets="cuda:90", vendor=None, ops=None, output=str(tmp_path / "out"), python=None,
                            jobs=1, workloads=None, tests=None, test_args="", test_sample=0, capture=str(capture_file),
                            capture_only=False, sample=0, cache=str(tmp_path / "cache"), no_cache=False, timeout=600,
                            report_only=False)
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_gate_end_to_end_and_cache_hit(tmp_path):
    x = torch.empty(64)
    specs = [_spec(aot_kernels.add_kernel, x, x, x, 64, BLOCK=32), _spec(aot_kernels.mean_kernel, x, x, 1, BLOCK=32)]
    cap = tmp_path / "cap.json"
    S.save(specs, str(cap), {"vendor": "nvidia"})
    loaded, meta = S.load(str(cap))
    assert [s.key for s in loaded] == [s.key for s in specs] and meta["vendor"] == "nvidia"

    assert gate.run(_gate_args(tmp_path, cap), log=lambda *_: None) == 1          # mean with N == 1 fails
    assert gate.run(_gate_args(tmp_path, cap, report_only=True), log=lambda *_: None) == 0
    with open(tmp_path / "out" / "aot-report.json") as f:
        rep = json.load(f)
    assert rep["summary"][0]["cache_hits"] == 2 and rep["summary"][0]["failed"] == 1
    assert [f["kernel"] for f in rep["failures"]] == ["mean_kernel"]
    md = (tmp_path / "out" / "aot-report.md").read_text()
    assert "mean_kernel" in md and "FAIL" in md

    # another Triton version or target misses the cache; an unchanged kernel hits it
    h = cache.source_hash(specs[0])
    assert cache.result_key(specs[0], h, "cuda:90", "3.9.0") != cache.result_key(specs[0], h, "cuda:90", "3.6.0")
    assert cache.result_key(specs[0], h, "cuda:90", "3.9.0") != cache.result_key(specs[0], h, "cuda:100", "3.9.0")
    assert cache.source_hash(specs[0]) != cache.source_hash(specs[1])


def test_cli_rejects_unknown_targets_and_vendors(tmp_path):
    from flaggems.__main__ import main

    with pytest.raises(SystemExit, match="unknown backend 'tpu'"):
        main(["aot", "--targets", "tpu:1", "--capture-only", "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="unknown vendor 'nvidai'"):
        main(["aot", "--vendor", "nvidai", "--capture-only", "--output", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


ASCEND = os.environ.get("FLAGGEMS_AOT_ASCEND_PYTHON", "/work/venvs/ascend/bin/python")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(ASCEND), reason="triton-ascend venv not set up (docs/portability.md)")
def test_ascend_front_end():
    x = torch.empty(64)
    add = _spec(aot_kernels.add_kernel, x, x, x, 64, BLOCK=64)
    rec = capture.Recorder()
    with capture.planning(vendors.builtin("ascend"), parse_target("npu:Ascend910B4"), rec), flaggems.use_gems():
        torch.add(torch.randn(8), torch.randn(8))
    pw = next(s for s in rec.specs.values() if s.kernel_name == "pointwise_add_unit_2")
    npu = parse_target("npu:Ascend910B4")
    jobs = [{"id": "add", "spec": add.to_dict(), "target": npu.to_dict()},
            {"id": "pw", "spec": pw.to_dict(), "target": npu.to_dict()}]
    res = pool.run_jobs(ASCEND, jobs, 1)
    assert res["add"]["status"] == "compiled" and res["add"]["stages"] == ["ttir", "ttadapter"], res["add"]
    # the generated pointwise kernel passes the front end (it used to take its op as a callable constexpr)
    assert res["pw"]["status"] == "compiled" and res["pw"]["stages"] == ["ttir", "ttadapter"], res["pw"]


def test_summary_joins_reports(tmp_path):
    from flaggems.aot import summary

    def row(target, status, spill=0, over=False, error=None):
        return {"target": target, "kernel": "k", "where": "flaggems/x.py:3", "status": status, "spill": spill,
                "overflow": over, "error": error, "error_at": "flaggems/x.py:9" if error else None}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"rows": [row("cuda:90", "compiled", spill=64), row("cuda:90", "compiled", over=True)]}))
    b.write_text(json.dumps({"rows": [row("npu:Ascend910B4", "failed", error="unexpected type fp8")]}))
    md = summary.to_markdown(summary.load_rows([str(a), str(b)]))
    assert "| `k (flaggems/x.py:3)` | 2 specs, 1 spill (≤64B), 1 over limit | 1 specs, **1 fail** |" in md
    assert "flaggems/x.py:9: unexpected type fp8" in md


def test_test_sampling_keeps_spread_parametrizations():
    class Item:
        def __init__(self, fn, i):
            self.path, self.originalname, self.name = "t.py", fn, f"{fn}[{i}]"

    class Hook:
        def pytest_deselected(self, items):
            self.dropped = items

    class Config:
        hook = Hook()

    items = [Item("a", i) for i in range(9)] + [Item("b", 0)]
    plugin = capture._PytestOrigin(capture.Recorder(), capture.WorkloadResult("tests", 0.0), per_test=3)
    plugin.pytest_collection_modifyitems(None, Config, items)
    assert [it.name for it in items] == ["a[0]", "a[3]", "a[6]", "b[0]"]
    assert plugin.deselected == 6 and len(Config.hook.dropped) == 6


TRITON36 = os.environ.get("FLAGGEMS_AOT_TRITON36_PYTHON", "/work/venvs/triton36/bin/python")


@pytest.mark.skipif(not os.path.exists(TRITON36), reason="triton 3.6 venv not set up (docs/portability.md)")
def test_probe_reads_the_other_venvs_triton():
    # venv interpreters all resolve to one base binary: the probe must run the venv's python, not trust a path
    assert pool.probe(TRITON36)["triton"].startswith("3.6")
    import triton

    assert pool.probe(sys.executable)["triton"] == triton.__version__


def test_launches_under_a_test_swapped_vendor_are_not_routed():
    from flaggems import registry

    rec = capture.Recorder()
    ascend = vendors.builtin("ascend")
    with capture.planning(ascend, parse_target("npu:Ascend910B4"), rec), flaggems.use_gems():
        torch.add(torch.randn(8), torch.randn(8))
        # what tests/*::test_op_follows_vendor_capability does: another plugin (other flags) for a while
        other = capture.planning_plugin(vendors.builtin("nvidia"), parse_target("cuda:90"))
        with registry.override_vendor(other):
            torch.mul(torch.randn(8), torch.randn(8))
    ops = {op for s in rec.specs.values() for op in s.routed_ops}
    assert "aten::add.Tensor" in ops and "aten::mul.Tensor" not in ops
    assert any(s.direct for s in rec.specs.values())
