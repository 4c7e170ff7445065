"""The loader path (flaggems.compat.deepseek_v4 / flaggems/compat/checkpoint.py) and ``python -m flaggems convert``:
a tiny DeepSeek-V4 checkpoint quantised like the release (FP8 128x128 linears, FP4 experts with e8m0 per 32),
converted for a vendor without FP4 (experts -> FP8) or without FP8 (everything -> BF16), streamed shard by shard.
"""
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import flaggems
from flaggems.compat import checkpoint as CP
from flaggems.compat import deepseek_v4 as dsv4
from flaggems.vendors.base import Capabilities

from . import dsv4_checkpoint as CK
from . import official_tiny as OT
from ..deepseek.convert_data import fp4_weight

ROOT = Path(__file__).resolve().parents[2]
E4M3, E8M0 = torch.float8_e4m3fn, torch.float8_e8m0fnu


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("dsv4_src")
    CK.write(path, seed=0)
    return path


def test_target_follows_capabilities():
    caps = Capabilities()
    assert CP.target_for(caps) is None
    assert CP.target_for(caps.replace(fp4=False)) == "fp8"
    assert CP.target_for(caps.replace(fp8=False)) == "bf16"
    assert CP.target_for(caps.replace(fp8=False, fp4=False)) == "bf16"
    assert CP.target_for() == CP.target_for(flaggems.vendor().capabilities)


def test_official_model_fp4_vs_converted_fp8(ckpt):
    """(a) experts converted FP4 -> FP8: same logits as the FP4 run up to GEMM summation order (the values are
    identical, so are the activations' quantisation), 0 inexact values."""
    sd = load_file(str(ckpt / "model.safetensors"))
    conv, rep = dsv4.convert_state_dict(sd, to="fp8")
    assert rep.inexact == 0 and not rep.fallbacks
    experts = [t for t in rep.tensors if t.kind == "fp4"]
    assert len(experts) == 2 * 8 * 3 and all(t.result == "fp8" for t in experts)
    assert all(t.result == "unchanged" for t in rep.tensors if t.kind == "fp8")   # FP8 linears stay
    w1 = "model.layers.1.ffn.experts.3.w1"
    assert conv[w1 + ".weight"].dtype == E4M3 and conv[w1 + ".scale"].shape == (1, 2)
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    with flaggems.record() as r:
        l4 = OT.Model(sd, 2, 8)(ids)
        l8 = OT.Model(conv, 2, 8)(ids)
    assert r.served_by("flaggems::fp4_gemm") and r.served_by("flaggems::fp8_gemm")
    err = (l4 - l8).abs().max().item()
    assert err <= 1e-2 * l4.abs().max().item(), err
    assert torch.equal(l4.argmax(-1), l8.argmax(-1))
    # the BF16 target: every quantised weight dequantised exactly (the FP4 experts value for value)
    b16, rb = dsv4.convert_state_dict(sd, to="bf16")
    assert rb.inexact == 0 and not any(k.endswith(".scale") for k in b16)
    via8, _ = dsv4.convert_state_dict(conv, to="bf16")
    assert torch.equal(via8[w1 + ".weight"], b16[w1 + ".weight"])


def _run_cli(*args):
    r = subprocess.run([sys.executable, "-m", "flaggems", "convert", *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    return r.returncode, r.stdout + r.stderr


def test_cli_fp8_streams_shards(ckpt, tmp_path):
    """Two shards (a weight's scale in the other shard), side files copied, config and index updated."""
    src = tmp_path / "src"
    src.mkdir()
    sd = load_file(str(ckpt / "model.safetensors"))
    moved = "model.layers.1.ffn.experts.0.w1.scale"          # in shard 2, its weight in shard 1
    in_first = {k for k in sd if "layers.1." not in k} | {"model.layers.1.ffn.experts.0.w1.weight"}
    first = {k: sd[k] for k in sorted(in_first)}
    second = {k: sd[k] for k in sorted(sd) if k not in in_first}
    assert moved in second
    save_file(first, str(src / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(second, str(src / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    (src / "config.json").write_text((ckpt / "config.json").read_text())
    (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    (src / "tokenizer.json").write_text("{}")
    dst = tmp_path / "dst"
    rc, out = _run_cli("--to", "fp8", src, dst)
    assert rc == 0, out
    assert re.search(r"inexact values: 0\b", out) and "peak RSS" in out
    assert (dst / "tokenizer.json").exists()
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["quantization_config"]["expert_dtype"] == "fp8"
    idx = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    assert idx[moved] == idx["model.layers.1.ffn.experts.0.w1.weight"] == "model-00001-of-00002.safetensors"
    got = {}
    for p in sorted(dst.glob("*.safetensors")):
        got.update(load_file(str(p)))
    want, _ = CP.convert_state_dict(sd, to="fp8")
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k].view(torch.uint8) if got[k].element_size() == 1
                                                               else got[k], want[k].view(torch.uint8)
                                                               if want[k].element_size() == 1 else want[k]), k


def _wide_spread_checkpoint(path):
    w, s = fp4_weight(128, 256, 20, seed=4)                      # some 1x32 scales 2^20 below the block's top
    good_w, good_s = fp4_weight(128, 256, 6, seed=5)
    save_file({"e.0.w1.weight": w.view(torch.int8), "e.0.w1.scale": s,
               "e.1.w1.weight": good_w.view(torch.int8), "e.1.w1.scale": good_s,
               "norm.weight": torch.ones(8, dtype=torch.bfloat16)}, str(path))


def test_inexact_policies(tmp_path):
    src = tmp_path / "wide.safetensors"
    _wide_spread_checkpoint(src)
    rc, out = _run_cli("--to", "fp8", src, tmp_path / "a.safetensors")
    assert rc == 2 and "e.0.w1.weight: FP4 -> FP8 would round" in out
    assert not (tmp_path / "a.safetensors").exists() and not list(tmp_path.glob("*.data"))
    rc, out = _run_cli("--to", "fp8", "--on-inexact", "bf16", src, tmp_path / "b.safetensors")
    assert rc == 0 and "kept in BF16: e.0.w1.weight" in out
    b = load_file(str(tmp_path / "b.safetensors"))
    assert b["e.0.w1.weight"].dtype == torch.bfloat16 and "e.0.w1.scale" not in b
    assert b["e.1.w1.weight"].dtype == E4M3 and b["e.1.w1.scale"].dtype == E8M0
    exact = torch.ops.flaggems.fp4_to_bf16(*[load_file(str(src))[k] for k in ("e.0.w1.weight", "e.0.w1.scale")])[0]
    assert torch.equal(b["e.0.w1.weight"], exact)
    rc, out = _run_cli("--to", "fp8", "--on-inexact", "round", src, tmp_path / "c.safetensors")
    n = int(re.search(r"inexact values: (\d+)", out).group(1))
    assert rc == 0 and n > 0
    c = load_file(str(tmp_path / "c.safetensors"))
    assert c["e.0.w1.weight"].dtype == E4M3


def test_cli_auto_follows_vendor(tmp_path, monkeypatch):
    src = tmp_path / "x.safetensors"
    w, s = fp4_weight(128, 128, 3)
    save_file({"l.weight": w.view(torch.int8), "l.scale": s}, str(src))
    rc, out = _run_cli(src, tmp_path / "y.safetensors")           # the cpu vendor has fp8 and fp4: nothing
    assert rc == 0 and "converted 0" in out
    y = load_file(str(tmp_path / "y.safetensors"))
    assert torch.equal(y["l.weight"], w.view(torch.int8))
    from flaggems import registry, vendors

    v = vendors.active()
    with registry.override_vendor(replace(v, capabilities=v.capabilities.replace(fp8=False))):
        sd, rep = dsv4.convert_state_dict({"l.weight": w.view(torch.int8), "l.scale": s})
    assert rep.target == "bf16" and sd["l.weight"].dtype == torch.bfloat16 and "l.scale" not in sd


def test_update_config():
    official = {"dtype": "fp8", "expert_dtype": "fp4", "dim": 256}
    assert CP.update_config(official, "fp8") == {"dtype": "fp8", "expert_dtype": None, "dim": 256}
    assert CP.update_config(official, "bf16") == {"dtype": "bf16", "expert_dtype": None, "dim": 256}
    hf = {"quantization_config": {"quant_method": "fp8", "expert_dtype": "fp4"}}
    assert CP.update_config(hf, "fp8")["quantization_config"]["expert_dtype"] == "fp8"
    assert "quantization_config" not in CP.update_config(hf, "bf16")
    assert CP.update_config(hf, None) == hf


@pytest.mark.parametrize("to", ["fp8", "bf16"])
def test_transformers_loads_converted(ckpt, tmp_path, to):
    """(b) for converted checkpoints: FP8 experts (to="fp8") stay FP8 in memory under flaggems; BF16 ones load
    plain; greedy tokens equal the original FP4 checkpoint's."""
    pytest.importorskip("accelerate")
    import transformers

    from flaggems.integrations import transformers as fgt

    dst = tmp_path / to
    rep = CP.convert_checkpoint(ckpt, dst, to=to)
    assert rep.inexact == 0
    ids = torch.randint(0, 256, (1, 10), generator=torch.Generator().manual_seed(2))
    fgt.install()
    try:
        kw = dict(dtype=torch.bfloat16)
        orig = transformers.AutoModelForCausalLM.from_pretrained(ckpt, **kw).eval()
        conv = transformers.AutoModelForCausalLM.from_pretrained(dst, **kw).eval()
        experts = conv.model.layers[1].mlp.experts
        assert experts.gate_up_proj.dtype == (E4M3 if to == "fp8" else torch.bfloat16)
        with torch.no_grad():
            want = orig.generate(ids, max_new_tokens=5, do_sample=False)
            got = conv.generate(ids, max_new_tokens=5, do_sample=False)
        assert torch.equal(got, want)
    finally:
        fgt.uninstall()


def _big_fp4_checkpoint(path, n=16, N=2048, K=4096):
    """n FP4 tensors of N x K (K/2 bytes a row) in one shard, written one at a time."""
    tensors = {}
    for i in range(n):
        w, s = fp4_weight(N, K, 6, seed=i)
        tensors[f"layers.{i}.w.weight"], tensors[f"layers.{i}.w.scale"] = w.view(torch.int8), s
    save_file(tensors, str(path))
    return sum(t.numel() * t.element_size() for t in tensors.values())


def test_cli_peak_memory_is_about_one_tensor(tmp_path):
    """Peak RSS growth while converting stays near one tensor's input + output, far below the model's size."""
    src = tmp_path / "big.safetensors"
    in_bytes = _big_fp4_checkpoint(src)
    rc, out = _run_cli("--to", "fp8", src, tmp_path / "big8.safetensors")
    assert rc == 0, out
    m = re.search(r"peak RSS (\d+) MiB \(before converting (\d+) MiB, \+(\d+) MiB; largest tensor ([\d.]+) MiB\)", out)
    assert m, out
    grow, largest = int(m.group(3)), float(m.group(4))
    out_mib = 2 * in_bytes / 2**20                                  # FP8 holds twice the FP4 bytes
    print(f"convert {in_bytes / 2**20:.0f} MiB FP4 -> {out_mib:.0f} MiB FP8: peak RSS +{grow} MiB, "
          f"largest tensor {largest:.1f} MiB")
    assert grow < 4 * largest + 48 and grow < 0.5 * out_mib, out
    with safe_open(str(tmp_path / "big8.safetensors"), framework="pt") as f:
        assert f.get_slice("layers.15.w.weight").get_dtype() == "F8_E4M3"


def test_fp8_with_other_scales_is_refused_for_bf16():
    """V3-style FP8 (fp32 scale_inv) is not DeepSeek-V4's format: to="bf16" refuses instead of leaving it FP8."""
    sd = {"l.weight": torch.zeros(128, 128, dtype=E4M3), "l.weight_scale_inv": torch.ones(1, 1)}
    with pytest.raises(ValueError, match="only DeepSeek's format"):
        CP.convert_state_dict(sd, to="bf16")
    out, rep = CP.convert_state_dict(sd, to="fp8")
    assert out["l.weight"] is sd["l.weight"] and rep.converted == 0
