"""flaggems.testing.validate / ``python -m flaggems validate``: the per-op accuracy report a vendor runs on its
device. Here: the cpu vendor, a simulated seed vendor without fp64, and a deliberately wrong vendor override."""
import dataclasses
import json

import pytest
import torch

import flaggems
from flaggems import registry
from flaggems.__main__ import main
from flaggems.testing.validate import CASES, validate
from flaggems.vendors import Override
from flaggems.runtime import interpreting

from simulate import seed, simulated

# The simulated vendors serve CPU tensors through the Triton interpreter (on a GPU machine it is off).
pytestmark = pytest.mark.skipif(not interpreting(), reason="needs the Triton interpreter (cpu vendor)")


def test_report_on_cpu_vendor():
    rep = validate(ops=["add", "mm", "_softmax"], dtypes=["fp32", "bf16", "fp64"])
    assert rep.ok, rep.to_markdown()
    assert [(r.op, r.dtype) for r in rep.rows][:3] == [("aten::add.Tensor", "fp32"), ("aten::add.Tensor", "bf16"),
                                                       ("aten::add.Tensor", "fp64")]
    assert all(r.status == "pass" and r.served_by in ("triton", "cpp") for r in rep.rows)
    mm32 = next(r for r in rep.rows if r.op == "aten::mm.default" and r.dtype == "fp32")
    assert mm32.atol == pytest.approx(1e-5 * CASES["mm"].reduce_len ** 0.5)  # fp32 atol scaled by sqrt(K)
    data = json.loads(rep.to_json())
    assert data["vendor"]["name"] == "cpu" and data["ok"] is True and len(data["rows"]) == 9
    md = rep.to_markdown()
    assert "| `aten::mm.default` | bf16 | pass | triton |" in md or "| `aten::mm.default` | bf16 | pass | cpp |" in md
    assert flaggems.registered_ops() == []  # validate leaves flaggems as it found it


def test_vendor_without_fp64_reports_native():
    with registry.override_vendor(simulated(seed("iluvatar"))):
        rep = validate(ops=["mul", "sum"], dtypes=["fp32", "fp64"])
    assert rep.vendor["name"] == "iluvatar" and rep.ok
    by = {(r.op, r.dtype): r for r in rep.rows}
    assert by[("aten::mul.Tensor", "fp32")].status == "pass"
    assert by[("aten::mul.Tensor", "fp64")].status == "native"
    assert by[("aten::mul.Tensor", "fp64")].served_by == "native: vendor lacks fp64"
    assert rep.served_fraction() == 0.5


def test_wrong_override_is_caught():
    """A vendor override that is wrong for some inputs fails the report (and says by how much)."""
    def bad_exp(x):
        return torch.exp(x.float()).to(x.dtype) * 1.001  # 0.1% off: fine for bf16, not for fp32

    base = simulated(seed("metax"))
    plugin = dataclasses.replace(base, name="metax-bad", overrides=(Override("aten::exp.default", bad_exp),))
    with registry.override_vendor(plugin):
        rep = validate(ops=["exp"], dtypes=["fp32", "bf16"])
    by = {r.dtype: r for r in rep.rows}
    assert by["fp32"].status == "FAIL" and by["fp32"].served_by == "triton"
    assert by["fp32"].max_rel > 5e-4 and "outside rtol" in by["fp32"].detail
    assert by["bf16"].status == "pass"
    assert not rep.ok and [r.dtype for r in rep.failures()] == ["fp32"]


def test_cli(capsys, tmp_path):
    out = tmp_path / "report"
    assert main(["validate", "--ops", "neg,where", "--dtypes", "fp16", "--json", "--output", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in data["rows"]] == ["pass", "pass"]
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True
    assert (tmp_path / "report.md").read_text().startswith("# flaggems accuracy report: vendor `cpu`")
