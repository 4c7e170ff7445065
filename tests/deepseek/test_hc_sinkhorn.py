"""flaggems::hc_split_sinkhorn against its fp64 reference (the exact iteration order of §4)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flaggems  # noqa: F401
from flaggems.deepseek.hc_sinkhorn import hc_split_sinkhorn_ref, hc_split_sinkhorn_triton
from flaggems.testing import assert_close

# fp32 kernel vs fp64 reference: exp/sigmoid ulps and ~40 normalisation rounds stay well under 2e-6.
RTOL, ATOL = 2e-6, 1e-6


def make(lead, hc, gen=None):
    width = (2 + hc) * hc
    mixes = torch.randn(*lead, width, generator=gen) * 2
    scale = torch.rand(3, generator=gen) + 0.5
    base = torch.randn(width, generator=gen)
    return mixes, scale, base


def compare(got, ref):
    for name, a, e in zip(("pre", "post", "comb"), got, ref):
        assert a.dtype == torch.float32 and a.shape == e.shape, name
        assert_close(a, e, torch.float32, rtol=RTOL, atol=ATOL, msg=name)


@pytest.mark.parametrize("lead,hc,iters,eps", [
    ((2, 7), 4, 20, 1e-6),     # the model's shape
    ((1, 1), 4, 20, 1e-6),
    ((37,), 4, 1, 1e-6),       # one iteration: softmax + one column normalisation only
    ((3, 5), 3, 7, 1e-3),      # hc not a power of two
    ((2, 2), 1, 5, 1e-6),
    ((2, 3, 4), 8, 20, 0.0),
])
def test_matches_reference(lead, hc, iters, eps):
    mixes, scale, base = make(lead, hc)
    got = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base, hc, iters, eps)
    got2 = hc_split_sinkhorn_triton(mixes, scale, base, hc_mult=hc, sinkhorn_iters=iters, eps=eps)
    for a, b in zip(got, got2):
        assert torch.equal(a, b)
    compare(got, hc_split_sinkhorn_ref(mixes, scale, base, hc, iters, eps))


def test_defaults_and_properties():
    mixes, scale, base = make((4, 9), 4)
    pre, post, comb = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base)
    compare((pre, post, comb), hc_split_sinkhorn_ref(mixes, scale, base))
    assert (pre > 0).all() and (pre <= 1 + 1e-6).all() and (post >= 0).all() and (post <= 2).all()
    # the last step is a column normalisation: columns sum to ~1, rows approximately
    assert torch.allclose(comb.sum(-2), torch.ones(4, 9, 4), atol=1e-4)
    assert torch.allclose(comb.sum(-1), torch.ones(4, 9, 4), atol=1e-2)


def test_extreme_mixes_stay_finite():
    mixes, scale, base = make((3, 4), 4)
    mixes = mixes * 200        # saturating sigmoids, one-hot softmax rows
    got = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base)
    assert all(torch.isfinite(t).all() for t in got)
    compare(got, hc_split_sinkhorn_ref(mixes, scale, base))


def test_empty_and_non_contiguous():
    mixes, scale, base = make((0, 3), 4)
    pre, post, comb = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base)
    assert pre.shape == (0, 3, 4) and comb.shape == (0, 3, 4, 4)
    g = torch.Generator().manual_seed(2)
    big = torch.randn(5, 2, 48, generator=g)
    mixes = big[:, :, ::2]                  # column stride 2
    mixes_t = torch.randn(3, 5, 24, generator=g).transpose(0, 1)    # rows not mergeable into one stride
    scale = torch.rand(6, generator=g)[::2] + 0.5
    base = torch.randn(24, generator=g)
    for m in (mixes, mixes_t):
        assert not m.is_contiguous()
        compare(torch.ops.flaggems.hc_split_sinkhorn(m, scale, base), hc_split_sinkhorn_ref(m, scale, base))


@settings(max_examples=12, deadline=None)
@given(lead=st.lists(st.integers(1, 9), min_size=1, max_size=3), hc=st.sampled_from([1, 2, 3, 4, 5, 8]),
       iters=st.integers(1, 25), eps=st.sampled_from([0.0, 1e-6, 1e-3]), mag=st.sampled_from([0.1, 1.0, 10.0]),
       seed=st.integers(0, 2**16))
def test_hypothesis(lead, hc, iters, eps, mag, seed):
    mixes, scale, base = make(tuple(lead), hc, torch.Generator().manual_seed(seed))
    mixes = mixes * mag
    compare(torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base, hc, iters, eps),
            hc_split_sinkhorn_ref(mixes, scale, base, hc, iters, eps))


def test_fake_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        pre, post, comb = torch.ops.flaggems.hc_split_sinkhorn(torch.empty(2, 3, 24), torch.empty(3), torch.empty(24))
        assert pre.shape == (2, 3, 4) and post.shape == (2, 3, 4) and comb.shape == (2, 3, 4, 4)


@pytest.mark.parametrize("fn", [torch.ops.flaggems.hc_split_sinkhorn, hc_split_sinkhorn_triton])
def test_bad_inputs(fn):
    mixes, scale, base = make((2, 3), 4)
    cases = [
        ((mixes.double(), scale, base), TypeError, "mixes must have dtype"),
        ((mixes[..., :20], scale, base), ValueError, "mixes must be"),
        ((mixes, scale[:2], base), ValueError, "hc_scale must be"),
        ((mixes, scale.bfloat16(), base), TypeError, "hc_scale"),
        ((mixes, scale, base[:20]), ValueError, "hc_base must be"),
        ((mixes, scale, base, 3), ValueError, "mixes must be"),
        ((mixes, scale, base, 4, 0), ValueError, "sinkhorn_iters"),
        ((mixes, scale, base, 4, 20, -1.0), ValueError, "eps"),
        ((mixes, scale, base, 0), ValueError, "hc_mult"),
    ]
    for args, exc, pat in cases:
        with pytest.raises(exc, match=pat):
            fn(*args)


# ------------------------------------------------------------------------------------------------------------
# hc_pre / hc_post (§3.3)

from flaggems.deepseek.hc_sinkhorn import hc_post_ref, hc_post_triton, hc_pre_ref, hc_pre_triton  # noqa: E402


def make_pre(lead, hc, D, dtype, gen=None):
    width = (2 + hc) * hc
    x = torch.randn(*lead, hc, D, generator=gen).to(dtype)
    fn = torch.randn(width, hc * D, generator=gen) * (hc * D) ** -0.5
    scale = torch.rand(3, generator=gen) + 0.5
    base = torch.randn(width, generator=gen)
    return x, fn, scale, base


def compare_pre(got, ref, dtype, K):
    y, post, comb = got
    ry, rpost, rcomb = ref
    assert y.dtype == dtype and post.dtype == torch.float32 and comb.dtype == torch.float32
    # y: hc fp32 terms then one rounding to dtype; post / comb inherit the mixes' K-term fp32 sums
    assert_close(y, ry, dtype, rtol=2 ** -7 if dtype != torch.float32 else 1e-5, atol=1e-5)
    assert_close(post, rpost, torch.float32, reduce_len=K)
    assert_close(comb, rcomb, torch.float32, reduce_len=K)


@pytest.mark.parametrize("lead,hc,D,dtype", [
    ((2, 7), 4, 256, torch.bfloat16),
    ((1, 1), 4, 16, torch.float32),
    ((3,), 3, 40, torch.bfloat16),      # hc and D not powers of two
    ((2, 3), 4, 200, torch.float16),
])
def test_hc_pre_matches_reference(lead, hc, D, dtype):
    x, fn, scale, base = make_pre(lead, hc, D, dtype)
    got = torch.ops.flaggems.hc_pre(x, fn, scale, base, hc, 20, 1e-6, 1e-6)
    got2 = hc_pre_triton(x, fn, scale, base, hc_mult=hc)
    for a, b in zip(got, got2):
        assert torch.equal(a, b)
    compare_pre(got, hc_pre_ref(x, fn, scale, base, hc), dtype, hc * D)
    # the model's own op sequence (fp32 linear, then sinkhorn, then the weighted sum) agrees too
    xf = x.flatten(-2).float()
    mixes = torch.nn.functional.linear(xf, fn) * torch.rsqrt(xf.square().mean(-1, keepdim=True) + 1e-6)
    pre, post, comb = torch.ops.flaggems.hc_split_sinkhorn(mixes, scale, base, hc, 20, 1e-6)
    assert_close(got[1], post, torch.float32, reduce_len=hc * D)
    assert_close(got[0], (pre.unsqueeze(-1) * x.float()).sum(-2), dtype, rtol=2 ** -7, atol=1e-5)


@pytest.mark.parametrize("lead,hc,D,dtype", [((2, 7), 4, 256, torch.bfloat16), ((5,), 3, 33, torch.float32),
                                             ((1,), 1, 16, torch.float16)])
def test_hc_post_matches_reference(lead, hc, D, dtype):
    g = torch.Generator().manual_seed(9)
    v = torch.randn(*lead, D, generator=g).to(dtype)
    res = torch.randn(*lead, hc, D, generator=g).to(dtype)
    post = torch.rand(*lead, hc, generator=g) * 2
    comb = torch.rand(*lead, hc, hc, generator=g)
    out = torch.ops.flaggems.hc_post(v, res, post, comb)
    assert torch.equal(out, hc_post_triton(v, res, post, comb))
    assert out.dtype == dtype and out.shape == res.shape
    assert_close(out, hc_post_ref(v, res, post, comb), dtype, rtol=2 ** -7 if dtype != torch.float32 else 1e-5,
                 atol=1e-5)
    model = post.unsqueeze(-1) * v.float().unsqueeze(-2) + (comb.unsqueeze(-1) * res.float().unsqueeze(-2)).sum(-3)
    assert_close(out, model, dtype, rtol=2 ** -7 if dtype != torch.float32 else 1e-5, atol=1e-5)


def test_hc_pre_post_non_contiguous_and_empty():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, 2, 64, generator=g).to(torch.bfloat16).permute(2, 0, 1, 3)     # [2, 3, 4, 64] strided
    fn = torch.randn(48, 2 * 256, generator=g)[:24, ::2]
    scale, base = torch.rand(3, generator=g) + 0.5, torch.randn(24, generator=g)
    assert not (x.is_contiguous() or fn.is_contiguous())
    compare_pre(torch.ops.flaggems.hc_pre(x, fn, scale, base), hc_pre_ref(x, fn, scale, base), torch.bfloat16, 256)
    v = torch.randn(2, 3, 128, generator=g).to(torch.bfloat16)[:, :, ::2]
    post = torch.rand(2, 3, 8, generator=g)[..., ::2]
    comb = torch.rand(2, 3, 4, 4, generator=g).transpose(-1, -2)
    out = torch.ops.flaggems.hc_post(v, x, post, comb)
    assert_close(out, hc_post_ref(v, x, post, comb), torch.bfloat16, rtol=2 ** -7, atol=1e-5)
    x, fn, scale, base = make_pre((0, 3), 4, 16, torch.bfloat16)
    y, post, comb = torch.ops.flaggems.hc_pre(x, fn, scale, base)
    assert y.shape == (0, 3, 16) and post.shape == (0, 3, 4) and comb.shape == (0, 3, 4, 4)
    assert torch.ops.flaggems.hc_post(y, x, post, comb).shape == (0, 3, 4, 16)


def test_hc_pre_post_bad_inputs():
    x, fn, scale, base = make_pre((2,), 4, 16, torch.bfloat16)
    for fn_, args, exc, pat in [
        (torch.ops.flaggems.hc_pre, (x[..., 0, :], fn, scale, base), ValueError, "x must be"),
        (hc_pre_triton, (x, fn[:, :32], scale, base), ValueError, "hc_fn must be"),
        (hc_pre_triton, (x, fn.double(), scale, base), TypeError, "hc_fn"),
        (torch.ops.flaggems.hc_pre, (x, fn, scale[:2], base), ValueError, "hc_scale"),
        (torch.ops.flaggems.hc_pre, (x, fn, scale, base, 4, 20, 0.0), ValueError, "norm_eps"),
        (torch.ops.flaggems.hc_post, (x[..., 0, :8], x, scale.new_ones(2, 4), scale.new_ones(2, 4, 4)),
         ValueError, "v must be"),
        (hc_post_triton, (x[..., 0, :], x, scale.new_ones(2, 3), scale.new_ones(2, 4, 4)), ValueError, "post must be"),
        (hc_post_triton, (x[..., 0, :], x, scale.new_ones(2, 4), scale.new_ones(2, 4, 3)), ValueError, "comb must be"),
        (hc_post_triton, (x[..., 0, :], x, scale.new_ones(2, 4).half(), scale.new_ones(2, 4, 4)), TypeError, "post"),
    ]:
        with pytest.raises(exc, match=pat):
            fn_(*args)


def test_hc_pre_post_fake():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 3, 4, 64, dtype=torch.bfloat16)
        y, post, comb = torch.ops.flaggems.hc_pre(x, torch.empty(24, 256), torch.empty(3), torch.empty(24))
        assert y.shape == (2, 3, 64) and y.dtype == torch.bfloat16 and comb.shape == (2, 3, 4, 4)
        assert torch.ops.flaggems.hc_post(y, x, post, comb).shape == (2, 3, 4, 64)
