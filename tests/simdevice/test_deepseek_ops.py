"""The DeepSeek-V4 custom ops on fgsim tensors, for each implementation kind: served by that kind (never by the
pure-torch reference), results on the device, bit-identical to the same implementation run on CPU tensors
(device memory is host memory: the same kernel must give the same bits) and close to the op's reference."""
import pytest
import torch
from torch.utils._pytree import tree_map

import flaggems
from flaggems import registry
from flaggems.testing import assert_close

E4M3, E8M0, FP4 = torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _e8m0(shape, g):
    return torch.randint(118, 134, shape, generator=g, dtype=torch.uint8).view(E8M0)


def _fp8(shape, g):
    return (torch.randn(shape, generator=g) * 64).clamp(-448, 448).to(E4M3)


def _fp8_gemm(g):
    M, N, K = 5, 40, 256
    return (_fp8((M, K), g), _e8m0((M, K // 128), g), _fp8((N, K), g), _e8m0((1, K // 128), g), torch.float32)


def _fp4_gemm(g):
    M, N, K = 5, 24, 256
    b = torch.randint(0, 256, (N, K // 2), generator=g, dtype=torch.uint8).view(FP4)
    return (_fp8((M, K), g), _e8m0((M, K // 128), g), b, _e8m0((N, K // 32), g), torch.float32)


def _sparse_attn(g):
    b, m, h, d, n, k = 1, 3, 4, 64, 9, 6
    idx = torch.randint(0, n, (b, m, k), generator=g, dtype=torch.int32)
    idx[torch.rand(b, m, k, generator=g) < 0.3] = -1
    return (torch.randn(b, m, h, d, generator=g).bfloat16(), torch.randn(b, n, d, generator=g).bfloat16(),
            torch.randn(h, generator=g), idx, d ** -0.5)


def _indexer(g):
    B, S, H, D, T = 1, 4, 2, 32, 12
    return (torch.randn(B, S, H, D, generator=g).bfloat16(), torch.randn(B, T, D, generator=g).bfloat16(),
            (torch.randn(B, S, H, generator=g) * (H * D) ** -0.5).bfloat16(), 4, 0, 4)


def _moe_gate(g):
    return torch.randn(6, 16, generator=g) * 3, torch.randn(16, generator=g) * 0.5, 4, "sqrtsoftplus", 1.5


def _moe_gate_hash(g):
    tid2eid = torch.stack([torch.randperm(16, generator=g)[:4] for _ in range(20)]).int()
    return torch.randn(6, 16, generator=g) * 3, tid2eid, torch.randint(0, 20, (6,), generator=g), "sqrtsoftplus", 1.5


def _sinkhorn(g):
    hc = 4
    return (torch.randn(2, 3, (2 + hc) * hc, generator=g) * 2, torch.rand(3, generator=g) + 0.5,
            torch.randn((2 + hc) * hc, generator=g), hc, 20, 1e-6)


def _hc_pre(g):
    hc, D = 4, 64
    width = (2 + hc) * hc
    return (torch.randn(2, 3, hc, D, generator=g).bfloat16(), torch.randn(width, hc * D, generator=g) * (hc * D) ** -0.5,
            torch.rand(3, generator=g) + 0.5, torch.randn(width, generator=g), hc, 20, 1e-6, 1e-6)


def _hc_post(g):
    hc, D = 4, 64
    return (torch.randn(2, 3, D, generator=g).bfloat16(), torch.randn(2, 3, hc, D, generator=g).bfloat16(),
            torch.rand(2, 3, hc, generator=g) * 2, torch.rand(2, 3, hc, hc, generator=g))


def _fp4_weight(g):
    # ragged N and K (130 x 288): a partial 128x128 block on both axes; scales spread over 2^8 (exact in FP8)
    N, K = 130, 288
    w = torch.randint(0, 256, (N, K // 2), generator=g, dtype=torch.uint8).view(FP4)
    return w, torch.randint(120, 129, (N, K // 32), generator=g, dtype=torch.uint8).view(E8M0)


def _fp8_weight(g):
    N, K = 130, 200
    return _fp8((N, K), g), torch.randint(110, 140, (2, 2), generator=g, dtype=torch.uint8).view(E8M0)


def _quant_input(g):
    return (torch.randn(3, 256, generator=g) * 4).bfloat16()


# op: (inputs, index of the argument an in-place op writes, tolerance dtype for the reference check)
CASES = {
    "fp8_gemm": (_fp8_gemm, None, torch.float32),
    "fp4_gemm": (_fp4_gemm, None, torch.float32),
    "act_quant": (lambda g: (_quant_input(g), 128, "ue8m0", E8M0), None, None),
    "act_quant_inplace": (lambda g: (_quant_input(g), 64, None), 0, None),
    "fp4_act_quant": (lambda g: (_quant_input(g), 32), None, None),
    "fp4_act_quant_inplace": (lambda g: (_quant_input(g), 32), 0, None),
    "sparse_attn": (_sparse_attn, None, torch.bfloat16),
    "indexer_topk": (_indexer, None, None),
    "moe_gate": (_moe_gate, None, torch.float32),
    "moe_gate_hash": (_moe_gate_hash, None, torch.float32),
    "hc_split_sinkhorn": (_sinkhorn, None, torch.float32),
    "hc_pre": (_hc_pre, None, torch.bfloat16),
    "hc_post": (_hc_post, None, torch.bfloat16),
    "hadamard_transform": (lambda g: ((torch.randn(3, 128, generator=g)).bfloat16(), 128 ** -0.5), None,
                           torch.bfloat16),
    # exact conversions: the reference check compares bits (no tolerance dtype)
    "fp4_to_fp8": (_fp4_weight, None, None),
    "fp8_to_bf16": (_fp8_weight, None, None),
    "fp4_to_bf16": (_fp4_weight, None, None),
}


def test_every_custom_op_has_a_case():
    declared = {q.split("::")[1].split(".")[0] for q in registry.entries() if q.startswith("flaggems::")}
    assert declared == set(CASES)


def _to(device):
    return lambda t: t.to(device) if isinstance(t, torch.Tensor) else t


def _bits(t):
    t = t.cpu().contiguous()
    return t.view(torch.uint8) if t.element_size() == 1 else t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _outputs(result, args, inplace):
    if inplace is not None:
        return [args[inplace]]
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _params():
    for name in sorted(CASES):
        for kind in ("cpp", "triton"):
            yield pytest.param(name, kind, id=f"{name}-{kind}")


@pytest.mark.parametrize("name,kind", list(_params()))
def test_custom_op_on_fgsim(name, kind, fgsim):
    make, inplace, tol_dtype = CASES[name]
    entry = registry.entries()[f"flaggems::{name}.default"]
    impls = [i for i in entry.impls if i.kind == kind] or entry.impls   # triton-only ops under "cpp" too
    impl = impls[0]
    cpu_args = make(_g(0))
    dev_args = tree_map(_to(fgsim), cpu_args)
    with flaggems.use_gems(), flaggems.prefer_impl(kind), flaggems.record() as rep:
        result = getattr(torch.ops.flaggems, name)(*dev_args)
    assert rep.served_by(f"flaggems::{name}") == {impl.kind: 1}, rep.to_markdown()
    got = _outputs(result, dev_args, inplace)
    assert all(t.device.type == "fgsim" for t in got), [t.device for t in got]
    # the same implementation on CPU tensors (called directly: on CPU the sim vendor would use the reference)
    host_args = tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, cpu_args)
    with flaggems.prefer_impl(kind):
        expected = _outputs(impl.fn(*host_args), host_args, inplace)
    for a, e in zip(got, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        assert torch.equal(_bits(a), _bits(e)), f"{name} ({impl.kind}) differs between fgsim and cpu"
    # and the reference (the CPU tests check every case; this checks the wiring); exact ops: bit for bit
    ref_args = tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, cpu_args)
    if tol_dtype is None and name.startswith(("fp4_to", "fp8_to")):
        ref = _outputs(entry.reference(*ref_args), ref_args, inplace)
        for a, r in zip(got, ref):
            assert a.dtype == r.dtype and torch.equal(_bits(a), _bits(r)), f"{name} ({impl.kind}) vs reference"
    elif tol_dtype is not None:
        ref = _outputs(entry.reference(*ref_args), ref_args, inplace)
        for a, r in zip(got, ref):
            if a.is_floating_point():
                scale = max(1.0, float(r.float().abs().max()))
                assert_close(a.cpu().float(), r.float(), tol_dtype, atol=2e-2 * scale if tol_dtype != torch.float32
                             else 1e-4 * scale, rtol=2e-2 if tol_dtype != torch.float32 else 1e-4)
            else:
                assert torch.equal(a.cpu(), r), name


@pytest.mark.parametrize("kind", ["cpp", "triton"])
def test_compat_shim_runs_on_fgsim(fgsim, kind):
    """flaggems.compat.deepseek_v4 (DeepSeek's kernel.py API) on device tensors: same results as the ops."""
    import flaggems.compat.deepseek_v4 as dsv4

    x = _quant_input(_g(1)).to(fgsim)
    with flaggems.use_gems(), flaggems.prefer_impl(kind):
        y, s = dsv4.act_quant(x, 128, "ue8m0", E8M0)
        y2, s2 = torch.ops.flaggems.act_quant(x, 128, "ue8m0", E8M0)
        h = dsv4.hadamard_transform(x, 0.5)
        h2 = torch.ops.flaggems.hadamard_transform(x, 0.5)
        a, a_s, b, b_s, _ = tree_map(_to(fgsim), _fp8_gemm(_g(2)))
        c = dsv4.fp8_gemm(a, a_s, b, b_s, E8M0)
    assert y.device.type == h.device.type == c.device.type == "fgsim"
    assert torch.equal(_bits(y), _bits(y2)) and torch.equal(_bits(s), _bits(s2)) and torch.equal(h.cpu(), h2.cpu())
