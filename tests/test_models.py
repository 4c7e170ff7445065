"""An unmodified transformers DeepseekV4ForCausalLM (and other causal LMs) on flaggems: parity and coverage."""
import json

import pytest
import torch

from flaggems import coverage
from flaggems.__main__ import main as cli

transformers = pytest.importorskip("transformers")


def _check_fallbacks_have_reasons(res):
    for op, reasons in res.report.fallbacks().items():
        assert reasons and all(isinstance(r, str) and r for r in reasons), (op, reasons)


def test_deepseek_v4_tiny_fp32_parity_and_coverage():
    """Prefill + 8 greedy decode steps with the cache: identical tokens, logits within 1e-3 relative."""
    res = coverage.run(model="deepseek-v4-tiny", dtype="fp32", prompt_len=20, steps=8)
    assert res.tokens_match
    assert res.max_rel_logit_err <= 1e-3, res.summary()
    assert res.coverage >= 0.95, res.report.fallbacks()
    _check_fallbacks_have_reasons(res)
    ops = res.report.ops
    # every layer type and both MoE kinds really ran through our kernels
    for op in ("aten::mm.default", "aten::_softmax.default", "aten::topk.default", "aten::sum.dim_IntList"):
        if op in ops:
            assert sum(ops[op]["served"].values()) > 0, (op, ops[op])


def test_deepseek_v4_tiny_bf16_grouped_mm_experts():
    res = coverage.run(model="deepseek-v4-tiny", dtype="bf16", experts="grouped_mm", prompt_len=20, steps=8)
    assert res.tokens_match, res.summary()
    # bf16 end to end: each op rounds to 8 bits; across 4 layers the logits agree to a few bf16 ulps of the max
    assert res.max_rel_logit_err <= 5e-2, res.summary()
    assert res.coverage >= 0.9, res.report.fallbacks()
    _check_fallbacks_have_reasons(res)


def test_coverage_cli_on_a_non_deepseek_config(tmp_path, capsys):
    cfg = transformers.Qwen3MoeConfig(**coverage.QWEN3_MOE_TINY)
    cfg.save_pretrained(tmp_path / "qwen3moe")
    rc = cli(["coverage", "--config", str(tmp_path / "qwen3moe" / "config.json"), "--steps", "3",
              "--prompt-len", "9", "--output", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "coverage" in text and "parity vs native" in text and "greedy tokens identical" in text
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md")
    data = json.loads((tmp_path / "out" / files[0]).read_text())
    assert data["summary"]["tokens_match"] is True
    assert 0.0 < data["summary"]["coverage"] <= 1.0
    # honest: every op that fell back is listed with its reason in the markdown
    md = (tmp_path / "out" / files[1]).read_text()
    for op, reasons in data["report"]["ops"].items():
        if reasons["fallback"] and not reasons["view_or_metadata"]:
            assert f"`{op}`" in md


def test_load_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown built-in model"):
        coverage.load_config(model="gpt-17")
    with pytest.raises(FileNotFoundError):
        coverage.load_config(config=str(tmp_path / "missing.json"))
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ValueError, match="model_type"):
        coverage.load_config(config=str(tmp_path / "c.json"))


@pytest.mark.slow
def test_deepseek_v4_small_longer_generation():
    res = coverage.run(model="deepseek-v4-small", dtype="fp32", prompt_len=48, steps=24)
    assert res.tokens_match
    assert res.max_rel_logit_err <= 1e-3
    assert res.coverage >= 0.95, res.report.fallbacks()


@pytest.mark.slow
def test_llama_tiny_bf16():
    res = coverage.run(model="llama-tiny", dtype="bf16", prompt_len=16, steps=8)
    assert res.tokens_match
    assert res.coverage >= 0.9, res.report.fallbacks()
