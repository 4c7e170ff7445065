"""Flash-attention forward (SDPA) against the fp64 reference ``sdpa_ref`` and torch's native CPU kernel.

Tolerances: the output is a convex combination of V rows, so its error is the dtype's rounding of the result
plus the rounding of the probabilities fed to the second matmul (P is cast to the input dtype, as on GPU):
``assert_close`` with the dtype's table and reduce_len=S covers both. The logsumexp is computed in fp32 from
exactly representable inputs, so it is compared with the fp64 reference at fp32 tolerances whatever the input
dtype (torch's native kernel rounds intermediates to half types: compared with it at the input dtype's).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from flaggems.ops.attention import sdpa_ref
from flaggems.testing import assert_close, run_gems
from flaggems.testing.strategies import make_tensor

CPU_OP = "_scaled_dot_product_flash_attention_for_cpu.default"
FLASH_OP = "_scaled_dot_product_flash_attention.default"
EFF_OP = "_scaled_dot_product_efficient_attention.default"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
aten = torch.ops.aten


def _qkv(B, H, L, S, E, dtype, Hk=None, layout="contiguous", Ev=None):
    """q [B, H, L, E], k/v [B, Hk, S, E]; 'bshd' builds them as transformers does: [B, T, H, E].transpose(1, 2)."""
    Hk = Hk or H
    Ev = Ev or E
    if layout == "bshd":
        q = make_tensor((B, L, H, E), dtype, low=-1, high=1).transpose(1, 2)
        k = make_tensor((B, S, Hk, E), dtype, low=-1, high=1).transpose(1, 2)
        v = make_tensor((B, S, Hk, Ev), dtype, low=-1, high=1).transpose(1, 2)
        return q, k, v
    return (make_tensor((B, H, L, E), dtype, layout, low=-1, high=1),
            make_tensor((B, Hk, S, E), dtype, layout, low=-1, high=1),
            make_tensor((B, Hk, S, Ev), dtype, layout, low=-1, high=1))


def _lse_close(got, want, msg=""):
    # fp32 arithmetic on exact inputs; E terms in the scores
    assert_close(got, want, torch.float32, rtol=1e-5, atol=1e-5, msg=msg)


def _check_cpu_op(q, k, v, attn_mask=None, is_causal=False, scale=None, ref_mask=None):
    """Serve the CPU op through flaggems; compare with the fp64 reference and with torch's native kernel."""
    kw = dict(is_causal=is_causal, attn_mask=attn_mask, scale=scale)
    (out, lse), _ = run_gems(aten._scaled_dot_product_flash_attention_for_cpu, q, k, v, served=[CPU_OP], **kw)
    n_out, n_lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, **kw)
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        # torch's CPU kernel assumes unit stride in the head dim and returns garbage otherwise (F.sdpa makes
        # such inputs contiguous before calling it): compare with native on contiguous copies
        n_out, n_lse = aten._scaled_dot_product_flash_attention_for_cpu(
            q.contiguous(), k.contiguous(), v.contiguous(), **kw)
    r_out, r_lse = sdpa_ref(q, k, v, ref_mask if ref_mask is not None else attn_mask, is_causal, scale)
    r_lse = torch.where(torch.isneginf(r_lse), torch.zeros_like(r_lse), r_lse)  # torch's CPU convention
    S = k.shape[2]
    assert out.dtype == n_out.dtype and out.shape == n_out.shape
    assert out.stride() == torch.empty_like(q).stride()  # torch: output laid out like the query
    assert lse.dtype == n_lse.dtype and lse.shape == n_lse.shape and lse.stride() == n_lse.stride()
    assert_close(out, r_out, q.dtype, reduce_len=S, msg="out vs ref")
    assert_close(out, n_out.double(), q.dtype, reduce_len=S, msg="out vs native")
    _lse_close(lse, r_lse, "lse vs ref")
    # torch's CPU kernel rounds intermediate scores to half types: the input dtype's tolerance
    assert_close(lse, n_lse.double(), q.dtype if q.dtype in (torch.float16, torch.bfloat16) else torch.float32,
                 rtol=None if q.dtype in (torch.float16, torch.bfloat16) else 1e-5, atol=None if
                 q.dtype in (torch.float16, torch.bfloat16) else 1e-5, msg="lse vs native")
    return out, lse


SHAPES = [  # B, H, L, S, E
    (1, 2, 16, 16, 16),
    (2, 3, 7, 19, 64),     # L < S, odd sizes
    (1, 2, 37, 11, 80),    # L > S, E not a power of two
    (2, 2, 1, 45, 128),    # decode
    (1, 1, 130, 300, 16),  # several key blocks and query blocks on the interpreter's tiles
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
def test_shapes_dtypes_causal(dtype, shape, causal):
    B, H, L, S, E = shape
    _check_cpu_op(*_qkv(B, H, L, S, E, dtype), is_causal=causal)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_sdpa_transformers_layout(dtype):
    """F.scaled_dot_product_attention on [B, T, H, E].transpose(1, 2) inputs, as transformers builds them."""
    q, k, v = _qkv(2, 4, 9, 9, 64, dtype, layout="bshd")
    for causal in (False, True):
        got, _ = run_gems(F.scaled_dot_product_attention, q, k, v, is_causal=causal, served=[CPU_OP])
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert got.stride() == want.stride()
        assert_close(got, sdpa_ref(q, k, v, is_causal=causal)[0], dtype, reduce_len=9)
        assert_close(got, want.double(), dtype, reduce_len=9)


@pytest.mark.parametrize("layout", ["bshd", "strided", "transposed"])
def test_non_contiguous(layout):
    if layout == "transposed":  # fully reversed memory order
        q, k, v = (make_tensor(s, torch.float32, "transposed", low=-1, high=1)
                   for s in ((2, 3, 5, 32), (2, 3, 12, 32), (2, 3, 12, 32)))
    else:
        q, k, v = _qkv(2, 3, 5, 12, 32, torch.float32, layout=layout)
    _check_cpu_op(q, k, v, is_causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mshape", [(6, 13), (2, 1, 6, 13), (1, 3, 1, 13), (2, 1, 1, 13), (2, 3, 6, 13)])
def test_masks_bool_and_float(dtype, mshape):
    q, k, v = _qkv(2, 3, 6, 13, 16, dtype)
    keep = torch.rand(mshape) > 0.3
    keep[..., 0] = True  # at least one visible key per row (fully masked rows: their own test)
    # bool through F.sdpa (torch turns it into an additive mask before the op)
    got, _ = run_gems(F.scaled_dot_product_attention, q, k, v, attn_mask=keep, served=[CPU_OP])
    assert_close(got, sdpa_ref(q, k, v, keep)[0], dtype, reduce_len=13)
    assert_close(got, F.scaled_dot_product_attention(q, k, v, attn_mask=keep).double(), dtype, reduce_len=13)
    # additive float mask straight to the op, in the query dtype and (half queries) in fp32
    bias = torch.randn(mshape).masked_fill(~keep, float("-inf"))
    for mdt in {dtype, torch.float32}:
        _check_cpu_op(q, k, v, attn_mask=bias.to(mdt), is_causal=(mdt is torch.float32))


def test_fully_masked_rows_match_torch():
    q, k, v = _qkv(1, 2, 5, 70, 16, torch.float32)
    keep = torch.rand(5, 70) > 0.5
    keep[1] = False
    keep[3, :] = False
    keep[3, 69] = True  # only the last key, in the last block
    additive = torch.zeros(5, 70).masked_fill(~keep, float("-inf"))
    out, lse = _check_cpu_op(q, k, v, attn_mask=additive, ref_mask=keep)
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1])) and torch.equal(lse[:, :, 1], torch.zeros(1, 2))
    got, _ = run_gems(F.scaled_dot_product_attention, q, k, v, attn_mask=keep, served=[CPU_OP])
    assert torch.equal(got, F.scaled_dot_product_attention(q, k, v, attn_mask=keep)) or \
        torch.allclose(got, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), atol=1e-6, equal_nan=True)


def test_finfo_min_mask_is_not_minus_inf():
    """transformers-style masks use finfo.min: a row masked that way everywhere averages V (torch does too)."""
    q, k, v = _qkv(1, 1, 4, 9, 16, torch.float32)
    m = torch.zeros(4, 9)
    m[2] = torch.finfo(torch.float32).min
    out, lse = _check_cpu_op(q, k, v, attn_mask=m)
    assert_close(out[0, 0, 2], v[0, 0].double().mean(0), torch.float32, reduce_len=9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("L", [1, 7])
def test_gqa(dtype, L):
    q, k, v = _qkv(2, 8, L, 21, 64, dtype, Hk=2)
    _check_cpu_op(q, k, v, is_causal=L > 1)
    got, _ = run_gems(F.scaled_dot_product_attention, q, k, v, enable_gqa=True, served=[CPU_OP])
    assert_close(got, sdpa_ref(q, k, v)[0], dtype, reduce_len=21)


def test_scale_and_head_dims():
    for E in (16, 64, 80, 128, 256):
        q, k, v = _qkv(1, 2, 5, 9, E, torch.float32)
        _check_cpu_op(q, k, v, scale=0.3)
        _check_cpu_op(q, k, v)


@pytest.mark.parametrize("case", ["plain", "causal_mask", "gqa", "half"])
def test_backward_through_our_forward(case):
    """Native backward (_scaled_dot_product_flash_attention_for_cpu_backward) from our out/lse == all native."""
    dtype = torch.float16 if case == "half" else torch.float32
    Hk = 2 if case == "gqa" else 4
    q, k, v = _qkv(2, 4, 11, 17, 32, dtype, Hk=Hk)
    mask = torch.randn(11, 17).to(dtype) if case == "causal_mask" else None
    kw = dict(attn_mask=mask, is_causal=case != "plain", enable_gqa=case == "gqa")
    g = make_tensor((2, 4, 11, 32), dtype)

    def fwd_bwd(q, k, v):
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, **kw)
        out.backward(g)
        return out, q.grad, k.grad, v.grad

    got, _ = run_gems(fwd_bwd, q, k, v, served=[CPU_OP])
    want = fwd_bwd(q, k, v)
    names = ("out", "dq", "dk", "dv")
    for n, a, b in zip(names, got, want):
        tol = 1e-4 if dtype is torch.float32 else 2e-2  # backward sums over L or S products
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"{case} {n}: {m}")


@pytest.mark.parametrize("case", ["causal_L<S", "causal_L>S", "mask", "gqa_decode"])
def test_small_tiles_online_softmax(monkeypatch, case):
    """16x16 tiles (the GPU's smallest): many key blocks per row, causal block skipping, rescaling across blocks."""
    import flaggems.ops.attention as attn

    monkeypatch.setattr(attn, "_blocks", lambda L, S, D, DV: (16, 16, {}))
    dtype = torch.bfloat16 if case == "mask" else torch.float32
    L, S = {"causal_L<S": (21, 70), "causal_L>S": (70, 21), "mask": (33, 50), "gqa_decode": (1, 77)}[case]
    q, k, v = _qkv(1, 4, L, S, 24, dtype, Hk=2 if case == "gqa_decode" else 4)
    q = q * 4  # peaky softmax: a wrong rescale between blocks shows
    mask = None
    if case == "mask":
        keep = torch.rand(L, S) > 0.4
        keep[:, 40] = True
        keep[3] = False  # fully masked row spanning all blocks
        mask = torch.zeros(L, S, dtype=dtype).masked_fill(~keep, float("-inf"))
    _check_cpu_op(q, k, v, attn_mask=mask, is_causal=case.startswith("causal"))


def test_empty_sequences():
    q, k, v = _qkv(1, 2, 0, 5, 16, torch.float32)
    (out, lse), _ = run_gems(aten._scaled_dot_product_flash_attention_for_cpu, q, k, v, served=[CPU_OP])
    assert out.shape == (1, 2, 0, 16) and lse.shape == (1, 2, 0)
    # no keys: torch's own CPU kernel divides by zero (SIGFPE); we return the fully-masked-row values
    q, k, v = _qkv(1, 2, 3, 0, 16, torch.float32)
    (out, lse), _ = run_gems(aten._scaled_dot_product_flash_attention_for_cpu, q, k, v, served=[CPU_OP])
    assert torch.equal(out, torch.zeros(1, 2, 3, 16)) and torch.equal(lse, torch.zeros(1, 2, 3))


def _fell_back(rep, op):
    row = rep._find(op)
    assert not row["served"] and row["fallback"], row
    return next(iter(row["fallback"]))


def test_bad_inputs_raise_torch_errors():
    q, k, v = _qkv(1, 4, 5, 7, 16, torch.float32)
    op = aten._scaled_dot_product_flash_attention_for_cpu
    cases = [
        ((q, k, v, 0.1), {}),                                              # dropout
        ((q, k, v), {"attn_mask": torch.ones(5, 7, dtype=torch.bool)}),    # bool mask to the op itself
        ((q, k, v), {"attn_mask": torch.zeros(5, 7, dtype=torch.float16)}),  # mask dtype
        ((q, k, v), {"attn_mask": torch.zeros(3, 7)}),                     # not broadcastable
        ((q, k, v), {"attn_mask": torch.zeros(7)}),                        # 1-D mask
        ((q[0], k[0], v[0]), {}),                                          # 3-D
        ((q, k.half(), v.half()), {}),                                     # mixed dtypes
        ((q, k, v[..., :8]), {}),                                          # value head dim
        ((q, k[:, :3], v[:, :3]), {}),                                     # heads not a multiple
        ((q, k[..., :4, :], v), {}),                                       # key/value lengths differ
    ]
    for args, kw in cases:
        with pytest.raises(RuntimeError):
            run_gems(op, *args, **kw)


def test_unsupported_head_dim_goes_native():
    q, k, v = _qkv(1, 1, 3, 4, 288, torch.float32)
    (out, lse), rep = run_gems(aten._scaled_dot_product_flash_attention_for_cpu, q, k, v)
    assert "head dim" in _fell_back(rep, CPU_OP)
    assert_close(out, sdpa_ref(q, k, v)[0], torch.float32, reduce_len=4)


def test_fp64_goes_native():
    q, k, v = _qkv(1, 1, 3, 4, 16, torch.float64)
    (out, _), rep = run_gems(aten._scaled_dot_product_flash_attention_for_cpu, q, k, v)
    assert "float64" in _fell_back(rep, CPU_OP)


def test_cuda_flash_op_schema_outputs():
    """The CUDA flash entry point (registered at the vendor key; torch has no CPU kernel for it)."""
    q, k, v = _qkv(2, 4, 19, 19, 64, torch.float16, Hk=2, layout="bshd")
    r, _ = run_gems(aten._scaled_dot_product_flash_attention, q, k, v, 0.0, True, served=[FLASH_OP])
    out, lse, cq, ck, mq, mk, rng, unused, dbg = r
    assert out.shape == q.shape and out.stride() == q.stride() and out.dtype == q.dtype
    assert lse.shape == (2, 4, 19) and lse.dtype == torch.float32 and lse.is_contiguous()
    assert cq is None and ck is None and (mq, mk) == (19, 19)
    assert rng.dtype == torch.uint64 and rng.shape == (2,) and unused.shape == () and dbg.numel() == 0
    r_out, r_lse = sdpa_ref(q, k, v, is_causal=True)
    assert_close(out, r_out, torch.float16, reduce_len=19)
    _lse_close(lse, r_lse)
    for args in ((q, k, v, 0.0, False, True), (q, k, v, 0.2), (q, k[:, :, :7], v[:, :, :7], 0.0, True),
                 (q.float(), k.float(), v.float())):
        # debug mask / dropout / bottom-right causal / fp32: native only (no CPU kernel: torch's error)
        with pytest.raises(NotImplementedError):
            run_gems(aten._scaled_dot_product_flash_attention, *args)


def test_cuda_efficient_op_schema_outputs():
    q, k, v = _qkv(2, 3, 37, 20, 32, torch.float32, Ev=24)
    bias = torch.randn(2, 1, 37, 20)
    bias[0, 0, 5] = float("-inf")
    r, _ = run_gems(aten._scaled_dot_product_efficient_attention, q, k, v, bias, True, 0.0, True, served=[EFF_OP])
    out, lse, seed, offset = r
    assert out.shape == (2, 3, 37, 24) and out.transpose(1, 2).is_contiguous()
    assert lse.shape == (2, 3, 64) and torch.isinf(lse[..., 37:]).all() and (lse[..., 37:] > 0).all()
    assert seed.dtype == offset.dtype == torch.int64 and seed.shape == ()
    r_out, r_lse = sdpa_ref(q, k, v, bias, is_causal=True)
    assert_close(out, r_out, torch.float32, reduce_len=20)
    _lse_close(lse[..., :37], r_lse)  # the fully masked row: -inf on both sides
    (out2, lse2, _, _), _ = run_gems(aten._scaled_dot_product_efficient_attention, q, k, v, None, False,
                                     served=[EFF_OP])
    assert lse2.shape == (2, 3, 0)
    assert_close(out2, sdpa_ref(q, k, v)[0], torch.float32, reduce_len=20)


@given(B=st.integers(1, 2), Hk=st.integers(1, 3), group=st.integers(1, 3), L=st.integers(1, 40),
       S=st.integers(1, 70), E=st.sampled_from([8, 16, 24, 64, 96]), causal=st.booleans(),
       masked=st.booleans(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(["contiguous", "bshd"]))
def test_hypothesis_shapes(B, Hk, group, L, S, E, causal, masked, dtype, layout):
    q, k, v = _qkv(B, Hk * group, L, S, E, dtype, Hk=Hk, layout=layout)
    mask = None
    if masked:
        keep = torch.rand(B, 1, L, S) > 0.2
        keep[..., 0] = True
        mask = torch.zeros(B, 1, L, S, dtype=dtype).masked_fill(~keep, float("-inf"))
    _check_cpu_op(q, k, v, attn_mask=mask, is_causal=causal, scale=1 / math.sqrt(E) * 1.5)
