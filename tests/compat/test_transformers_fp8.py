"""transformers' FP8 / FP4 DeepSeek-V4 path on flaggems (flaggems/integrations): the finegrained-fp8 provider
against the contract, and ``DeepseekV4ForCausalLM.from_pretrained`` of a tiny checkpoint quantised like the
release (FP8 128x128 linears, FP4 experts with e8m0 per 32) with ``flaggems.integrations.transformers.install()``:
weights stay quantised in memory, the flaggems GEMMs serve them, greedy tokens match the BF16-dequantised load.
"""
import pytest
import torch

pytest.importorskip("accelerate", reason="transformers' FP8 quantizer needs accelerate (in the [test] extra)")
transformers = pytest.importorskip("transformers")

import flaggems  # noqa: E402
from flaggems.integrations import finegrained_fp8 as P  # noqa: E402
from flaggems.integrations import transformers as fgt  # noqa: E402
from transformers.integrations import finegrained_fp8 as tf_fp8  # noqa: E402

from . import dsv4_checkpoint as CK  # noqa: E402
from . import hub_reference as HR  # noqa: E402

E4M3, E8M0 = torch.float8_e4m3fn, torch.float8_e8m0fnu


@pytest.fixture(autouse=True)
def _uninstalled():
    fgt.uninstall()
    yield
    fgt.uninstall()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("dsv4_fp8")
    CK.write(path, seed=0)
    return path


def _load(path, **kw):
    # dtype given: transformers' dtype="auto" probe cannot read F8_E8M0 tensors
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, **kw).eval()


def _prompt(seed=0, n=12):
    return torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------
# the provider against the contract (hub_reference.py)

def _fp8(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 0.5).to(E4M3)


def _ue8m0(shape, seed, lo=118, hi=126):
    return torch.randint(lo, hi, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8).view(E8M0)


def _close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    err = (got.double() - want.double()).abs().max().item()
    assert err <= 1e-5 * want.double().abs().max().item() + 1e-30 or torch.equal(got, want), err


CASES = [  # (name, M, N, K, block_size, weights, scales)
    ("block128_ue8m0", 5, 256, 384, [128, 128], "fp8", "ue8m0"),
    ("block128_fp32_ragged", 3, 200, 320, [128, 128], "fp8", "fp32"),
    ("block256", 4, 256, 512, [256, 256], "fp8", "fp32"),
    ("block64_off_grid", 4, 128, 192, [64, 64], "fp8", "fp32"),
    ("tensor_wide", 3, 192, 256, None, "fp8", "scalar"),
    ("mxfp4", 6, 192, 256, None, "fp4", "mx"),
    ("mxfp8", 2, 64, 96, [128, 128], "fp8", "mx"),
]


@pytest.mark.parametrize("name,M,N,K,block,wt,st", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_matmul_2d_matches_contract(name, M, N, K, block, wt, st, dtype):
    A = torch.randn(2, M, K, generator=torch.Generator().manual_seed(M + K)).to(dtype)
    A[0, 0, :40] = 0                                             # a zero group (amax floor)
    B = torch.randint(-128, 128, (N, K // 2), dtype=torch.int8) if wt == "fp4" else _fp8((N, K), N)
    if st == "mx":
        Bs = _ue8m0((N, K // 32), K)
    elif st == "scalar":
        Bs = torch.tensor(0.015)
    else:
        nb = (-(-N // block[0]), -(-K // block[1]))
        Bs = _ue8m0(nb, N) if st == "ue8m0" else torch.rand(nb, generator=torch.Generator().manual_seed(3)) * 0.01
    _close(P.matmul_2d(A, B, Bs, block), HR.matmul_2d(A, B, Bs, block))
    _close(P.matmul_2d(A, B, Bs, block, torch.float32), HR.matmul_2d(A, B, Bs, block, torch.float32))


def test_static_activation_scale_and_refusals():
    A = torch.randn(3, 256, dtype=torch.bfloat16)
    B, Bs, As = _fp8((128, 256), 1), _ue8m0((1, 2), 2), torch.tensor(0.01)
    _close(P.matmul_2d(A, B, Bs, [128, 128], activation_scale=As), HR.matmul_2d(A, B, Bs, [128, 128], None, As))
    with pytest.raises(NotImplementedError, match="MX"):
        P.matmul_2d(A, torch.zeros(64, 128, dtype=torch.int8), _ue8m0((64, 8), 1), None, activation_scale=As)
    with pytest.raises(ValueError, match="Bs shape"):
        P.matmul_2d(A, B, Bs[:, :1], [128, 128])


@pytest.mark.parametrize("wt", ["fp8", "fp4"])
def test_batched_and_grouped_match_contract(wt):
    E, N, K = 3, 256, 256
    if wt == "fp4":
        B = torch.randint(-128, 128, (E, N, K // 2), dtype=torch.int8)
        Bs = _ue8m0((E, N, K // 32), 4)
    else:
        B, Bs = _fp8((E, N, K), 5), _ue8m0((E, 2, 2), 6)
    A = torch.randn(7, K, dtype=torch.bfloat16)
    ids = torch.tensor([2, 0, 2, 1, 5, 0, 2])                  # 5: an EP sentinel (no local expert)
    got = P.matmul_batched(A, B, Bs, ids, [128, 128])
    _close(got, HR.matmul_batched(A, B, Bs, ids, [128, 128]))
    assert got[4].eq(0).all()
    offs = torch.tensor([2, 2, 5], dtype=torch.int32)          # expert 1 empty, rows 5.. past the last expert
    got = P.matmul_grouped(A, B, Bs, offs, torch.tensor([2, 0, 3]), [128, 128])
    _close(got, HR.matmul_grouped(A, B, Bs, offs, torch.tensor([2, 0, 3]), [128, 128]))
    assert got[5:].eq(0).all()


def test_provider_runs_on_flaggems_ops():
    A = torch.randn(4, 256, dtype=torch.bfloat16)
    with flaggems.record() as rep:
        P.matmul_2d(A, _fp8((128, 256), 1), _ue8m0((1, 2), 2), [128, 128])
        P.matmul_2d(A, torch.zeros(64, 128, dtype=torch.int8), _ue8m0((64, 8), 1), None)
    for op in ("act_quant", "fp8_gemm", "fp4_gemm"):
        served = rep.served_by(f"flaggems::{op}")
        assert served and not served.get("reference"), (op, served)


# ----------------------------------------------------------------------------------------------------------
# transformers end to end

def test_install_registers_provider_without_hub(monkeypatch):
    from transformers.integrations import hub_kernels

    fgt.install()
    assert hub_kernels._KERNEL_MODULE_MAPPING["finegrained-fp8"] is P
    assert tf_fp8.load_finegrained_fp8_kernel().matmul is P.matmul_2d
    # with the `kernels` package present, transformers' lookup goes through the mapping: still no download
    monkeypatch.setattr(tf_fp8, "is_kernels_available", lambda: True)
    monkeypatch.setattr(tf_fp8, "_FINEGRAINED_FP8", None)
    k = tf_fp8.load_finegrained_fp8_kernel()
    assert (k.matmul, k.batched_matmul, k.grouped_matmul) == (P.matmul_2d, P.matmul_batched, P.matmul_grouped)
    fgt.uninstall()
    assert "finegrained-fp8" not in hub_kernels._KERNEL_MODULE_MAPPING


def test_without_install_transformers_dequantises(ckpt):
    """The quantizer's no-GPU fallback: everything BF16 (what install() prevents)."""
    model = _load(ckpt)
    assert not any(p.dtype in (E4M3, torch.int8) for p in model.parameters())


def test_quantised_in_memory_and_tokens_match_dequantised(ckpt, record_property):
    deq = _load(ckpt)
    fgt.install()
    q = _load(ckpt)
    experts = q.model.layers[1].mlp.experts
    assert type(experts).__name__.startswith("FP8Experts") and experts.gate_up_proj.dtype == torch.int8
    assert experts.gate_up_proj_scale_inv.dtype == E8M0 and experts.gate_up_proj_scale_inv.shape[-1] == 256 // 32
    lin = q.model.layers[1].self_attn.q_a_proj
    assert lin.weight.dtype == E4M3 and lin.weight_scale_inv.dtype == E8M0
    mem_q, mem_deq = CK.param_bytes(q), CK.param_bytes(deq)
    record_property("param_bytes_quantised", mem_q)
    record_property("param_bytes_dequantised", mem_deq)
    assert mem_q < 0.5 * mem_deq
    ids = _prompt()
    with torch.no_grad(), flaggems.record() as rep:
        got = q.generate(ids, max_new_tokens=6, do_sample=False)
    want = deq.generate(ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(got, want)
    for op in ("fp8_gemm", "fp4_gemm", "act_quant"):
        assert rep.served_by(f"flaggems::{op}") and not rep.served_by(f"flaggems::{op}").get("reference")
    # the flaggems provider computes the contract: same logits as the fp64 reference provider
    with torch.no_grad():
        mine = q(ids).logits
        tf_fp8._FINEGRAINED_FP8 = tf_fp8.FineGrainedFP8(HR.matmul_2d, HR.matmul_batched, HR.matmul_grouped)
        ref = q(ids).logits
    assert (mine.float() - ref.float()).abs().max().item() <= 0.02 * ref.float().abs().max().item()
    assert torch.equal(mine.argmax(-1), ref.argmax(-1))


def test_explicit_dequantize_is_honoured(ckpt):
    fgt.install()
    model = _load(ckpt, quantization_config=transformers.FineGrainedFP8Config(dequantize=True))
    assert not any(p.dtype in (E4M3, torch.int8) for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["grouped_mm", "batched_mm"])
def test_experts_implementations(ckpt, impl):
    fgt.install()
    q = _load(ckpt)
    ids = _prompt(1)
    with torch.no_grad():
        want = q.generate(ids, max_new_tokens=4, do_sample=False)
        q.set_experts_implementation(impl)
        got = q.generate(ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(got, want)
