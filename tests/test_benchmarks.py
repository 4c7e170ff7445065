"""The benchmark harness (benchmarks/): a smoke run with one tiny case per kind, its outputs and their fields, and
an import graph without cycles.

No timing assertions: speed is what `python -m benchmarks` reports, never what a test checks.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import flaggems

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:          # benchmarks/ is a top-level package of the checkout, not installed
    sys.path.insert(0, ROOT)

BENCH = os.path.join(ROOT, "benchmarks")
MODULES = sorted(f[:-3] for f in os.listdir(BENCH) if f.endswith(".py") and f != "__init__.py")

ROW_FIELDS = {"op", "kind", "shape", "dtype", "impl", "ms", "speedup", "tflops", "gbps", "roofline_frac", "device",
              "versions", "measures", "torch_ms", "timer"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from benchmarks.__main__ import main

    out = tmp_path_factory.mktemp("bench")
    ops = "fp8_gemm,_grouped_mm,moe_gate,overhead,add.Tensor,sum.dim_IntList"
    assert main(["--smoke", "--ops", ops, "--output", str(out), "--no-progress"]) == 0
    with open(out / "results.json") as f:
        return out, json.load(f)


def test_outputs_exist(smoke_run):
    out, _ = smoke_run
    for name in ("results.json", "results.md", "speedup.png", "roofline.png"):
        p = out / name
        assert p.exists() and p.stat().st_size > 0, name
    for png in ("speedup.png", "roofline.png"):
        with open(out / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_json_fields(smoke_run):
    _, res = smoke_run
    assert set(res) >= {"meta", "ceilings", "rows", "skipped", "goals"}
    meta = res["meta"]
    assert meta["device"]["type"] == flaggems.vendor().device_type
    assert {"torch", "triton", "flaggems"} <= set(meta["versions"])
    assert res["ceilings"]["bandwidth"]["gbps"] > 0
    assert any(k != "bandwidth" and v["tflops"] > 0 for k, v in res["ceilings"].items())
    assert res["rows"], res["skipped"]
    for r in res["rows"]:
        missing = ROW_FIELDS - set(r)
        assert not missing, (r["op"], missing)
        assert r["ms"] > 0
        if r["torch_ms"] is not None:
            assert r["speedup"] == pytest.approx(r["torch_ms"] / r["ms"], rel=1e-3)
        if r["roofline_frac"] is not None:
            assert r["roofline_frac"] > 0
    kinds = {r["kind"] for r in res["rows"]} | {s["kind"] for s in res["skipped"]}
    assert {"deepseek", "moe", "overhead", "elementwise", "reduction"} <= kinds
    ov = [r for r in res["rows"] if r["kind"] == "overhead"]
    assert ov and all("overhead_us" in r for r in ov)
    for s in res["skipped"]:
        assert s["reason"]


def test_cpu_rows(smoke_run):
    _, res = smoke_run
    if res["meta"]["device"]["type"] != "cpu":
        pytest.skip("CPU-specific expectations")
    from flaggems.cpp import available

    if not available():
        pytest.skip("flaggems._C not built")
    ops = {r["op"] for r in res["rows"]}
    assert {"fp8_gemm", "_grouped_mm", "moe_gate"} <= ops
    # Triton rows are never timed under the interpreter: they are listed as skipped with the reason
    tri = [s for s in res["skipped"] if s["kind"] in ("elementwise", "reduction")]
    assert tri and all("interpreter" in s["reason"] for s in tri)
    gemm = next(r for r in res["rows"] if r["op"] == "fp8_gemm")
    assert gemm["impl"] == "cpp"
    assert gemm["peak_mem_bytes"] is not None and gemm["torch_peak_mem_bytes"] is not None
    assert gemm["peak_mem_method"] in ("cpu", "cpu-fallback")
    assert {g["op"] for g in res["goals"]} >= {"fp8_gemm", "moe_gate"}


def test_markdown(smoke_run):
    out, res = smoke_run
    md = (out / "results.md").read_text()
    assert "| op | shape | dtype | impl | ms |" in md
    assert "Host overhead per call" in md
    assert "ceilings measured in this run" in md
    for r in res["rows"]:
        assert r["op"] in md


def test_cpu_kernels_keeps_its_api():
    from benchmarks import cpu_kernels

    assert callable(cpu_kernels.run) and callable(cpu_kernels.to_markdown)
    md = cpu_kernels.to_markdown([{"op": "x", "shape": "s", "dtype": "d", "ms": 1.0, "baseline_ms": 2.0,
                                   "speedup": 2.0, "peak_mem_bytes": None, "baseline_peak_mem_bytes": 2 ** 20}])
    assert "| x | s | d | 1.000 | 2.000 | 2.00 | – | 1.00 |" in md


def _package_imports(module: str) -> set:
    """The benchmarks modules ``module`` imports, at the top or inside functions."""
    with open(os.path.join(BENCH, module + ".py")) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
    return out & set(MODULES)


def test_benchmarks_import_graph_has_no_cycle():
    """Function-level imports included: the registry (cases) and the leaves import nothing of the package, and the
    case modules never reach back to the runner."""
    graph = {m: _package_imports(m) for m in MODULES}
    assert graph["cases"] == set(), graph["cases"]
    for case_module in ("cases_aten", "cases_deepseek", "cases_moe"):
        assert not graph[case_module] & {"runner", "catalog", "memory", "__main__"}, (case_module, graph[case_module])
    done, path = set(), []

    def visit(m):
        assert m not in path, "import cycle: " + " -> ".join(path[path.index(m):] + [m])
        if m in done:
            return
        path.append(m)
        for d in sorted(graph[m]):
            visit(d)
        path.pop()
        done.add(m)

    for m in MODULES:
        visit(m)


def test_every_benchmarks_module_imports_alone():
    """Each module imported first, in a fresh interpreter: a cycle of top-level imports fails whichever side comes
    first. A few at a time, so the interpreters' start-up overlaps without holding many torch imports at once."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))

    def imports(module):
        r = subprocess.run([sys.executable, "-c", f"import benchmarks.{module}"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        return module, r.returncode, (r.stderr.strip().splitlines() or ["?"])[-1]

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = {m: err for m, rc, err in pool.map(imports, MODULES) if rc != 0}
    assert not failed, failed
