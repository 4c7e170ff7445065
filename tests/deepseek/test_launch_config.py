"""DeepSeek kernels take their block sizes through runtime.launch_config (flaggems/runtime/__init__.py).

Defaults: every launch's parameters, under the interpreter and on a device, equal the ones pinned in
launch_defaults.json (what the launchers chose before the block sizes became configurable); the kernels are
replaced by recorders, so nothing runs and the device branch is exercised on CPU.
Vendor data: an entry in the vendor's tuned-config file reaches the kernel's launch (the per-dtype entry
first), and the kernel still computes the right result with it.
"""
import dataclasses
import itertools
import json
from pathlib import Path

import pytest
import torch

import flaggems  # noqa: F401
import flaggems.deepseek.hadamard as HD
import flaggems.deepseek.hc_sinkhorn as HC
import flaggems.deepseek.indexer as IX
import flaggems.deepseek.moe_gate as MG
import flaggems.deepseek.quant as Q
import flaggems.deepseek.sparse_attn as SA
from flaggems import vendors
from flaggems.runtime import launch_config
from flaggems.testing import assert_close

MODULES = (SA, IX, HC, MG, HD, Q)
PINNED = json.loads((Path(__file__).parent / "launch_defaults.json").read_text())
BF16, F32 = torch.bfloat16, torch.float32


class Recorder:
    """Stands in for a Triton kernel: ``kernel[grid](*args, **meta)`` records (name, grid, meta) and, when
    given the real kernel, launches it."""

    def __init__(self, name, log, kernel=None):
        self.name, self.log, self.kernel = name, log, kernel

    def __getitem__(self, grid):
        def launch(*args, **meta):
            self.log.append([self.name, list(grid), dict(meta)])
            if self.kernel is not None:
                return self.kernel[grid](*args, **meta)
        return launch


def _kernels(module):
    return [name for name, v in vars(module).items() if name.endswith("_kernel") and hasattr(v, "__getitem__")]


def _zeros(*shape, dtype=F32):
    return torch.zeros(shape, dtype=dtype)


def _unrun_output_ok(call):
    """The hash gate's launcher looks at its output under the interpreter (poisoned rows -> ValueError); with the
    kernel replaced by a recorder that output is uninitialised memory, so only that error is expected."""
    try:
        call()
    except ValueError as e:
        assert str(e).startswith("moe_gate_hash:"), e


def _sparse_attn(b, m, h, d, n, k, dtype):
    return lambda: SA.sparse_attn_triton(_zeros(b, m, h, d, dtype=dtype), _zeros(b, n, d, dtype=dtype),
                                         _zeros(h), _zeros(b, m, k, dtype=torch.int32), 0.1)


def _indexer(B, S, H, D, T, topk, ratio=0):
    return lambda: IX.indexer_topk_triton(_zeros(B, S, H, D, dtype=BF16), _zeros(B, T, D, dtype=BF16),
                                          _zeros(B, S, H, dtype=BF16), topk, 0, ratio)


def _sinkhorn(n, hc):
    return lambda: HC.hc_split_sinkhorn_triton(_zeros(n, (2 + hc) * hc), torch.ones(3), _zeros((2 + hc) * hc), hc)


def _hc_pre(lead, hc, D):
    w = (2 + hc) * hc
    return lambda: HC.hc_pre_triton(_zeros(*lead, hc, D, dtype=BF16), _zeros(w, hc * D), torch.ones(3), _zeros(w), hc)


def _hc_post(lead, hc, D):
    return lambda: HC.hc_post_triton(_zeros(*lead, D, dtype=BF16), _zeros(*lead, hc, D, dtype=BF16),
                                     _zeros(*lead, hc), _zeros(*lead, hc, hc))


CALLS = {
    "sparse_attn_bf16": _sparse_attn(2, 3, 16, 128, 300, 96, BF16),
    "sparse_attn_d512": _sparse_attn(1, 2, 64, 512, 600, 512, BF16),
    "sparse_attn_fp32": _sparse_attn(1, 1, 20, 72, 9, 5, F32),
    "indexer_small": _indexer(1, 4, 4, 64, 50, 8),
    "indexer_prefill": _indexer(2, 16, 64, 128, 700, 512, ratio=4),
    "indexer_decode": _indexer(1, 1, 64, 128, 5000, 2048),
    "sinkhorn_hc4": _sinkhorn(300, 4),
    "sinkhorn_hc8": _sinkhorn(2, 8),
    "hc_pre_d4096": _hc_pre((2, 50), 4, 4096),
    "hc_pre_tiny": _hc_pre((1,), 2, 7),
    "hc_post_d4096": _hc_post((2, 50), 4, 4096),
    "hc_post_hc8": _hc_post((70,), 8, 300),
    "moe_gate_decode": lambda: MG.moe_gate_triton(_zeros(1, 256), _zeros(256), 6),
    "moe_gate_prefill": lambda: MG.moe_gate_triton(_zeros(5000, 384), _zeros(384), 6),
    "moe_gate_hash": lambda: _unrun_output_ok(lambda: MG.moe_gate_hash_triton(
        _zeros(100, 64), _zeros(30, 8, dtype=torch.int32), _zeros(100, dtype=torch.int64))),
    "hadamard_n8": lambda: HD.hadamard_transform_triton(_zeros(1000, 8, dtype=BF16)),
    "hadamard_n128": lambda: HD.hadamard_transform_triton(_zeros(1000, 128, dtype=BF16)),
    "hadamard_n32768": lambda: HD.hadamard_transform_triton(_zeros(2, 32768)),
    "act_quant": lambda: Q.act_quant_triton(_zeros(1000, 7168), 128, "ue8m0", torch.float8_e8m0fnu),
    "act_quant_inplace": lambda: Q.act_quant_inplace_triton(_zeros(4, 6), 3, None),
    "fp4_act_quant": lambda: Q.fp4_act_quant_triton(_zeros(500, 4096), 32),
    "fp4_act_quant_inplace": lambda: Q.fp4_act_quant_inplace_triton(_zeros(1, 6), 2),
}


def test_every_pinned_case_is_called():
    assert set(CALLS) == set(PINNED) - {"_comment"}


@pytest.mark.parametrize("branch", ["interp", "gpu"])
@pytest.mark.parametrize("case", sorted(CALLS))
def test_default_launches_are_pinned(monkeypatch, case, branch):
    log = []
    for module in MODULES:
        monkeypatch.setattr(module, "interpreting", lambda: branch == "interp")
        for name in _kernels(module):
            monkeypatch.setattr(module, name, Recorder(name, log))
    CALLS[case]()
    assert log == PINNED[case][branch]


_NAMES = itertools.count()


@pytest.fixture
def tuned(tmp_path, monkeypatch):
    """Make the active vendor's tuned-config file hold ``entries`` (a fresh file each call: they are cached)."""
    def use(entries):
        path = tmp_path / f"tuned{next(_NAMES)}.json"
        path.write_text(json.dumps(entries))
        plugin = dataclasses.replace(vendors.active(), tuned_configs=str(path))
        monkeypatch.setattr(vendors, "active", lambda: plugin)
    return use


@pytest.fixture
def launches(monkeypatch):
    """Record every DeepSeek kernel launch while still running the kernels."""
    log = []
    for module in MODULES:
        for name in _kernels(module):
            monkeypatch.setattr(module, name, Recorder(name, log, getattr(module, name)))
    return log


def test_dtype_entry_comes_before_the_kernel_entry(tuned):
    default = {"BLOCK_H": 16, "BLOCK_K": 64, "num_warps": 4}
    assert launch_config("sparse_attn", BF16, default) == default
    tuned({"sparse_attn": [{"BLOCK_K": 32}, {"BLOCK_K": 128}], "sparse_attn.bfloat16": [{"BLOCK_H": 64}]})
    assert launch_config("sparse_attn", BF16, default) == {"BLOCK_H": 64, "BLOCK_K": 64, "num_warps": 4}
    assert launch_config("sparse_attn", F32, default) == {"BLOCK_H": 16, "BLOCK_K": 32, "num_warps": 4}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _run_sparse_attn():
    g = _gen()
    q, kv = torch.randn(2, 3, 4, 64, generator=g), torch.randn(2, 40, 64, generator=g)
    sink, idx = torch.randn(4, generator=g), torch.randint(-1, 40, (2, 3, 50), generator=g)
    assert_close(SA.sparse_attn_triton(q, kv, sink, idx, 0.125), SA.sparse_attn_ref(q, kv, sink, idx, 0.125),
                 F32, atol=1e-5, rtol=1e-5)


def _indexer_inputs():
    g = _gen(1)
    return (torch.randn(1, 5, 4, 32, generator=g), torch.randn(1, 70, 32, generator=g),
            torch.rand(1, 5, 4, generator=g))


def _run_indexer():
    q, k, w = _indexer_inputs()
    assert torch.equal(IX.indexer_topk_triton(q, k, w, 9, 3, 2), IX.indexer_topk_ref(q, k, w, 9, 3, 2))


def _run_indexer_sort():
    q, k, w = _indexer_inputs()
    out = torch.empty(1, 5, 9, dtype=torch.int32)
    IX._topk_from_scores(IX.indexer_scores_ref(q, k, w), out, 3, sort=True)
    assert torch.equal(out, IX.indexer_topk_ref(q, k, w, 9, 3))


def _run_sinkhorn():
    g = _gen(2)
    mixes, scale, base = torch.randn(7, 24, generator=g), torch.rand(3, generator=g) + 0.5, torch.randn(24, generator=g)
    for o, r in zip(HC.hc_split_sinkhorn_triton(mixes, scale, base), HC.hc_split_sinkhorn_ref(mixes, scale, base)):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-6)


def _run_hc_pre():
    g = _gen(3)
    x, fn = torch.randn(5, 4, 48, generator=g), torch.randn(24, 192, generator=g) * 0.1
    scale, base = torch.rand(3, generator=g) + 0.5, torch.randn(24, generator=g)
    for o, r in zip(HC.hc_pre_triton(x, fn, scale, base), HC.hc_pre_ref(x, fn, scale, base)):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


def _run_hc_post():
    g = _gen(4)
    v, res = torch.randn(5, 48, generator=g), torch.randn(5, 4, 48, generator=g)
    post, comb = torch.rand(5, 4, generator=g), torch.rand(5, 4, 4, generator=g)
    torch.testing.assert_close(HC.hc_post_triton(v, res, post, comb), HC.hc_post_ref(v, res, post, comb),
                               rtol=1e-5, atol=1e-5)


def _run_moe_gate():
    g = _gen(5)
    logits, bias = torch.randn(7, 64, generator=g), torch.randn(64, generator=g) * 0.1
    w, i = MG.moe_gate_triton(logits, bias, 6)
    wr, ir = MG.moe_gate_ref(logits, bias, 6)
    assert torch.equal(i, ir)
    torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7)


def _run_moe_gate_hash():
    g = _gen(6)
    logits, tab, ids = torch.randn(7, 64, generator=g), torch.randint(0, 64, (30, 6), generator=g), \
        torch.randint(0, 30, (7,), generator=g)
    w, i = MG.moe_gate_hash_triton(logits, tab, ids)
    wr, ir = MG.moe_gate_hash_ref(logits, tab, ids)
    assert torch.equal(i, ir)
    torch.testing.assert_close(w, wr, rtol=2e-6, atol=1e-7)


def _run_hadamard():
    x = torch.randn(9, 64, generator=_gen(7))
    assert_close(HD.hadamard_transform_triton(x, 0.125), HD.hadamard_transform_ref(x, 0.125), F32, reduce_len=64)


def _quant_input():
    return torch.randn(6, 256, generator=_gen(8)) * 5


def _run_act_quant():
    x = _quant_input()
    y, s = Q.act_quant_triton(x, 64, "ue8m0")
    yr, sr = Q.act_quant_ref(x, 64, "ue8m0")
    assert torch.equal(y.view(torch.uint8), yr.view(torch.uint8)) and torch.equal(s, sr)


def _run_fp4_act_quant():
    x = _quant_input()
    q, s = Q.fp4_act_quant_triton(x, 32)
    qr, sr = Q.fp4_act_quant_ref(x, 32)
    assert torch.equal(q.view(torch.uint8), qr.view(torch.uint8)) and torch.equal(s.view(torch.uint8),
                                                                                   sr.view(torch.uint8))


# config key -> (the kernel it configures, an override unlike its default here, a run checked against the reference)
VENDOR_CASES = {
    "sparse_attn": ("_sparse_attn_kernel", {"BLOCK_H": 32, "BLOCK_K": 16}, _run_sparse_attn),
    "indexer_score": ("_indexer_score_kernel", {"BLOCK_S": 2, "BLOCK_T": 16}, _run_indexer),
    "indexer_topk_rank": ("_indexer_topk_rank_kernel", {"BLOCK_R": 2, "BLOCK_I": 16, "BLOCK_J": 32}, _run_indexer),
    "indexer_topk_sort": ("_indexer_topk_sort_kernel", {"BLOCK_R": 2, "CHUNK": 32}, _run_indexer_sort),
    "hc_split_sinkhorn": ("_hc_split_sinkhorn_kernel", {"BLOCK_T": 2}, _run_sinkhorn),
    "hc_mixes": ("_hc_mixes_kernel", {"BLOCK_T": 16, "BLOCK_K": 32}, _run_hc_pre),
    "hc_weighted_sum": ("_hc_weighted_sum_kernel", {"BLOCK_T": 2, "BLOCK_D": 16}, _run_hc_pre),
    "hc_post": ("_hc_post_kernel", {"BLOCK_T": 2, "BLOCK_D": 16}, _run_hc_post),
    "moe_gate": ("_moe_gate_kernel", {"BLOCK_T": 2}, _run_moe_gate),
    "moe_gate_hash": ("_moe_gate_hash_kernel", {"BLOCK_T": 2}, _run_moe_gate_hash),
    "hadamard": ("_hadamard_kernel", {"BLOCK_R": 2}, _run_hadamard),
    "act_quant": ("_act_quant_kernel", {"BLOCK_M": 2, "G": 1}, _run_act_quant),
    "fp4_act_quant": ("_fp4_act_quant_kernel", {"BLOCK_M": 2, "G": 1}, _run_fp4_act_quant),
}


@pytest.mark.parametrize("key", sorted(VENDOR_CASES))
def test_vendor_config_reaches_the_kernel(tuned, launches, key):
    kernel, override, run = VENDOR_CASES[key]
    run()
    defaults = [meta for name, _, meta in launches if name == kernel]
    assert defaults and all(any(m[k] != v for k, v in override.items()) for m in defaults), \
        f"{key}: the override {override} must differ from the defaults {defaults} to show anything"
    launches.clear()
    tuned({key: [override]})
    run()
    tuned_meta = [meta for name, _, meta in launches if name == kernel]
    assert tuned_meta and all(m[k] == v for m in tuned_meta for k, v in override.items()), tuned_meta
