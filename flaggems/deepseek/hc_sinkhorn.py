"""DeepSeek-V4 manifold-constrained hyper-connection mixing: split the mixes and Sinkhorn the comb matrix.

    flaggems::hc_split_sinkhorn(Tensor mixes, Tensor hc_scale, Tensor hc_base, int hc_mult=4,
                                int sinkhorn_iters=20, float eps=1e-6) -> (Tensor pre, Tensor post, Tensor comb)

mixes [..., (2+hc)*hc] fp32 (laid out as [0:hc] pre, [hc:2hc] post, [2hc:] comb row-major hc x hc),
hc_scale [3] fp32, hc_base [(2+hc)*hc] fp32. Per token, with m the mixes row:

    pre  = sigmoid(m[0:hc]   * scale0 + base[0:hc])   + eps                     [..., hc]
    post = 2 * sigmoid(m[hc:2hc] * scale1 + base[hc:2hc])                       [..., hc]
    C    = (m[2hc:] * scale2 + base[2hc:]).view(hc, hc)
    C    = softmax_row(C) + eps;  C /= (colsum(C) + eps)
    repeat (iters - 1):  C /= (rowsum(C) + eps);  C /= (colsum(C) + eps)     comb = C  [..., hc, hc]

All fp32, as the reference TileLang kernel (1 row softmax, `iters` column and `iters - 1` row
normalisations). Kernel: one program per block of tokens; the hc x hc matrices of the block live in a
[tokens, hc, hc] register tile (hc padded to a power of two, padded entries held at 0).

The two sides of a Block's sub-layer (§3.3) are also provided, X being the hc residual streams [..., hc, D]:

    flaggems::hc_pre(Tensor x, Tensor hc_fn, Tensor hc_scale, Tensor hc_base, int hc_mult=4,
                     int sinkhorn_iters=20, float norm_eps=1e-6, float hc_eps=1e-6)
        -> (Tensor y, Tensor post, Tensor comb)
        xf = flatten(X) in fp32 [..., hc*D];  mixes = (xf @ hc_fn^T) * rsqrt(mean(xf^2) + norm_eps)
        (pre, post, comb) = hc_split_sinkhorn(mixes, hc_scale, hc_base, hc, iters, hc_eps)
        y = sum_i pre[..., i] * X[..., i, :]   (fp32, returned in x's dtype)                 [..., D]

    flaggems::hc_post(Tensor v, Tensor residual, Tensor post, Tensor comb) -> Tensor
        out[..., k, :] = post[..., k] * v + sum_j comb[..., j, k] * residual[..., j, :]
        (fp32, returned in residual's dtype)                                                  [..., hc, D]

hc_pre runs three kernels: the mixes (a K = hc*D reduction with an IEEE fp32 tl.dot, as the model's fp32
F.linear, and the sum of squares from the same loads), the Sinkhorn kernel above, and the weighted stream
sum. hc_post is one elementwise-plus-small-contraction kernel.
"""
from __future__ import annotations

import math
import numbers

import torch
import triton
import triton.language as tl

from flaggems.deepseek.checked import checked
from flaggems.runtime import launch_config
from flaggems.registry import custom_op, implement
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.runtime.autotune import split_launch_options
from flaggems.runtime.checks import check_same_device, check_tensor

OP = "flaggems::hc_split_sinkhorn"
SCHEMA = ("(Tensor mixes, Tensor hc_scale, Tensor hc_base, int hc_mult=4, int sinkhorn_iters=20, "
          "float eps=1e-06) -> (Tensor, Tensor, Tensor)")
OP_PRE = "flaggems::hc_pre"
SCHEMA_PRE = ("(Tensor x, Tensor hc_fn, Tensor hc_scale, Tensor hc_base, int hc_mult=4, int sinkhorn_iters=20, "
              "float norm_eps=1e-06, float hc_eps=1e-06) -> (Tensor, Tensor, Tensor)")
OP_POST = "flaggems::hc_post"
SCHEMA_POST = "(Tensor v, Tensor residual, Tensor post, Tensor comb) -> Tensor"
_FLOATS = (torch.bfloat16, torch.float16, torch.float32)


def hc_split_sinkhorn_check(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    op = "hc_split_sinkhorn"
    check_tensor(op, "mixes", mixes, (torch.float32,))
    check_tensor(op, "hc_scale", hc_scale, (torch.float32,), 1)
    check_tensor(op, "hc_base", hc_base, (torch.float32,), 1)
    check_same_device(op, mixes=mixes, hc_scale=hc_scale, hc_base=hc_base)
    for name, v in (("hc_mult", hc_mult), ("sinkhorn_iters", sinkhorn_iters)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"hc_split_sinkhorn: {name} must be an int, got {v!r}")
    if not 1 <= hc_mult <= 32:
        raise ValueError(f"hc_split_sinkhorn: hc_mult must be in [1, 32], got {hc_mult}")
    if sinkhorn_iters < 1:
        raise ValueError(f"hc_split_sinkhorn: sinkhorn_iters must be >= 1, got {sinkhorn_iters}")
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not math.isfinite(float(eps)) or eps < 0:
        raise ValueError(f"hc_split_sinkhorn: eps must be a finite float >= 0, got {eps!r}")
    width = (2 + hc_mult) * hc_mult
    if mixes.dim() < 1 or mixes.shape[-1] != width:
        raise ValueError(f"hc_split_sinkhorn: mixes must be [..., (2+hc)*hc = {width}] for hc_mult={hc_mult}, "
                         f"got {tuple(mixes.shape)}")
    if hc_scale.shape[0] != 3:
        raise ValueError(f"hc_split_sinkhorn: hc_scale must be [3], got {tuple(hc_scale.shape)}")
    if hc_base.shape[0] != width:
        raise ValueError(f"hc_split_sinkhorn: hc_base must be [{width}], got {tuple(hc_base.shape)}")


def hc_pre_check(x, hc_fn, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, norm_eps=1e-6, hc_eps=1e-6):
    op = "hc_pre"
    check_tensor(op, "x", x, _FLOATS)
    check_tensor(op, "hc_fn", hc_fn, (torch.float32,), 2)
    if not isinstance(hc_mult, numbers.Integral) or isinstance(hc_mult, bool):
        raise TypeError(f"hc_pre: hc_mult must be an int, got {hc_mult!r}")
    if x.dim() < 2 or x.shape[-2] != hc_mult:
        raise ValueError(f"hc_pre: x must be [..., hc={hc_mult}, D], got {tuple(x.shape)}")
    check_same_device(op, x=x, hc_fn=hc_fn)
    width = (2 + hc_mult) * hc_mult
    if tuple(hc_fn.shape) != (width, hc_mult * x.shape[-1]):
        raise ValueError(f"hc_pre: hc_fn must be [(2+hc)*hc = {width}, hc*D = {hc_mult * x.shape[-1]}], "
                         f"got {tuple(hc_fn.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"hc_pre: x must have D >= 1 features, got {tuple(x.shape)}")
    if not isinstance(norm_eps, numbers.Real) or isinstance(norm_eps, bool) or not norm_eps > 0:
        raise ValueError(f"hc_pre: norm_eps must be a float > 0, got {norm_eps!r}")
    hc_split_sinkhorn_check(x.new_empty((0, width), dtype=torch.float32), hc_scale, hc_base, hc_mult,
                            sinkhorn_iters, hc_eps)


def hc_post_check(v, residual, post, comb):
    op = "hc_post"
    check_tensor(op, "v", v, _FLOATS)
    check_tensor(op, "residual", residual, _FLOATS)
    check_tensor(op, "post", post, (torch.float32,))
    check_tensor(op, "comb", comb, (torch.float32,))
    check_same_device(op, v=v, residual=residual, post=post, comb=comb)
    if residual.dim() < 2:
        raise ValueError(f"hc_post: residual must be [..., hc, D], got {tuple(residual.shape)}")
    lead, hc, D = tuple(residual.shape[:-2]), residual.shape[-2], residual.shape[-1]
    if tuple(v.shape) != lead + (D,):
        raise ValueError(f"hc_post: v must be {list(lead + (D,))} for residual {tuple(residual.shape)}, "
                         f"got {tuple(v.shape)}")
    if tuple(post.shape) != lead + (hc,):
        raise ValueError(f"hc_post: post must be {list(lead + (hc,))}, got {tuple(post.shape)}")
    if tuple(comb.shape) != lead + (hc, hc):
        raise ValueError(f"hc_post: comb must be {list(lead + (hc, hc))}, got {tuple(comb.shape)}")
    if hc > 32:
        raise ValueError(f"hc_post: at most 32 streams are supported, got hc={hc}")


def _sinkhorn64(m, hc_scale, hc_base, hc, iters, eps):
    sc, base = hc_scale.double(), hc_base.double()
    pre = torch.sigmoid(m[..., :hc] * sc[0] + base[:hc]) + eps
    post = 2 * torch.sigmoid(m[..., hc:2 * hc] * sc[1] + base[hc:2 * hc])
    c = (m[..., 2 * hc:] * sc[2] + base[2 * hc:]).unflatten(-1, (hc, hc))
    c = torch.softmax(c, dim=-1) + eps
    c = c / (c.sum(dim=-2, keepdim=True) + eps)
    for _ in range(int(iters) - 1):
        c = c / (c.sum(dim=-1, keepdim=True) + eps)
        c = c / (c.sum(dim=-2, keepdim=True) + eps)
    return pre, post, c


def hc_split_sinkhorn_ref(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    """Pure-torch reference in fp64, returned as fp32."""
    pre, post, c = _sinkhorn64(mixes.double(), hc_scale, hc_base, int(hc_mult), sinkhorn_iters, eps)
    return pre.float(), post.float(), c.float()


def hc_pre_ref(x, hc_fn, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, norm_eps=1e-6, hc_eps=1e-6):
    """Pure-torch reference in fp64; y in x's dtype, post / comb fp32."""
    hc = int(hc_mult)
    xf = x.double().flatten(-2)
    r = torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + norm_eps)
    mixes = (xf @ hc_fn.double().t()) * r
    pre, post, comb = _sinkhorn64(mixes, hc_scale, hc_base, hc, sinkhorn_iters, hc_eps)
    y = (pre.unsqueeze(-1) * x.double()).sum(dim=-2)
    return y.to(x.dtype), post.float(), comb.float()


def hc_post_ref(v, residual, post, comb):
    """Pure-torch reference in fp64, returned in residual's dtype."""
    out = post.double().unsqueeze(-1) * v.double().unsqueeze(-2) \
        + torch.einsum("...jk,...jd->...kd", comb.double(), residual.double())
    return out.to(residual.dtype)


def _hc_split_sinkhorn_fake(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    lead = tuple(mixes.shape[:-1])
    return (mixes.new_empty(lead + (hc_mult,)), mixes.new_empty(lead + (hc_mult,)),
            mixes.new_empty(lead + (hc_mult, hc_mult)))


def _hc_pre_fake(x, hc_fn, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, norm_eps=1e-6, hc_eps=1e-6):
    lead = tuple(x.shape[:-2])
    return (x.new_empty(lead + (x.shape[-1],)), x.new_empty(lead + (hc_mult,), dtype=torch.float32),
            x.new_empty(lead + (hc_mult, hc_mult), dtype=torch.float32))


def _hc_post_fake(v, residual, post, comb):
    return residual.new_empty(residual.shape)


custom_op(OP, SCHEMA, reference=hc_split_sinkhorn_ref, fake=_hc_split_sinkhorn_fake, check=hc_split_sinkhorn_check)
custom_op(OP_PRE, SCHEMA_PRE, reference=hc_pre_ref, fake=_hc_pre_fake, check=hc_pre_check)
custom_op(OP_POST, SCHEMA_POST, reference=hc_post_ref, fake=_hc_post_fake, check=hc_post_check)


@triton.jit
def _hc_split_sinkhorn_kernel(
    mix_ptr, scale_ptr, base_ptr, pre_ptr, post_ptr, comb_ptr,
    N, HC, iters, eps, s_mr, s_mc,
    BLOCK_T: tl.constexpr, HC_P: tl.constexpr,
):
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < N
    rows = offs_t.to(tl.int64)
    offs_i = tl.arange(0, HC_P)
    i_mask = offs_i < HC
    vec_mask = t_mask[:, None] & i_mask[None, :]
    row_ptr = mix_ptr + rows[:, None] * s_mr

    scale0 = tl.load(scale_ptr)
    scale1 = tl.load(scale_ptr + 1)
    scale2 = tl.load(scale_ptr + 2)

    m_pre = tl.load(row_ptr + offs_i[None, :] * s_mc, mask=vec_mask, other=0.0)
    b_pre = tl.load(base_ptr + offs_i, mask=i_mask, other=0.0)
    pre = tl.sigmoid(m_pre * scale0 + b_pre[None, :]) + eps
    m_post = tl.load(row_ptr + (HC + offs_i)[None, :] * s_mc, mask=vec_mask, other=0.0)
    b_post = tl.load(base_ptr + HC + offs_i, mask=i_mask, other=0.0)
    post = 2.0 * tl.sigmoid(m_post * scale1 + b_post[None, :])

    ij = offs_i[:, None] * HC + offs_i[None, :]
    ij_mask = i_mask[:, None] & i_mask[None, :]
    mat_mask = t_mask[:, None, None] & ij_mask[None, :, :]
    m_c = tl.load(row_ptr[:, :, None] + (2 * HC + ij)[None, :, :] * s_mc, mask=mat_mask, other=0.0)
    b_c = tl.load(base_ptr + 2 * HC + ij, mask=ij_mask, other=0.0)
    c = tl.where(ij_mask[None, :, :], m_c * scale2 + b_c[None, :, :], float("-inf"))
    c = tl.exp(c - tl.max(c, axis=2)[:, :, None])
    # Padded entries must stay exactly 0 so they never enter a row or column sum.
    c = tl.where(ij_mask[None, :, :], c / tl.sum(c, axis=2)[:, :, None] + eps, 0.0)
    # Padded rows / columns sum to 0: give them a denominator of 1 so eps = 0 cannot make 0/0 = NaN.
    pad_den = (offs_i >= HC).to(tl.float32)[None, :]
    c = c / (tl.sum(c, axis=1) + eps + pad_den)[:, None, :]
    for _ in range(iters - 1):
        c = c / (tl.sum(c, axis=2) + eps + pad_den)[:, :, None]
        c = c / (tl.sum(c, axis=1) + eps + pad_den)[:, None, :]

    out_vec = rows[:, None] * HC + offs_i[None, :]
    tl.store(pre_ptr + out_vec, pre, mask=vec_mask)
    tl.store(post_ptr + out_vec, post, mask=vec_mask)
    tl.store(comb_ptr + rows[:, None, None] * (HC * HC) + ij[None, :, :], c, mask=mat_mask)


@triton.jit
def _hc_mixes_kernel(
    x_ptr, fn_ptr, mix_ptr, N, K, W, norm_eps,
    s_xn, s_xk, s_fw, s_fk,
    BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr, W_P: tl.constexpr,
):
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    rows = offs_t.to(tl.int64)
    t_mask = offs_t < N
    offs_w = tl.arange(0, W_P)
    acc = tl.zeros([BLOCK_T, W_P], tl.float32)
    ssq = tl.zeros([BLOCK_T], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        x = tl.load(x_ptr + rows[:, None] * s_xn + offs_k[None, :] * s_xk,
                    mask=t_mask[:, None] & k_mask[None, :], other=0.0).to(tl.float32)
        f = tl.load(fn_ptr + offs_w[:, None] * s_fw + offs_k[None, :] * s_fk,
                    mask=(offs_w < W)[:, None] & k_mask[None, :], other=0.0)
        # The model's F.linear is an fp32 GEMM: no tf32 here.
        acc += tl.dot(x, tl.trans(f), input_precision="ieee")
        ssq += tl.sum(x * x, axis=1)
    r = 1.0 / tl.sqrt(ssq / K + norm_eps)
    tl.store(mix_ptr + rows[:, None] * W + offs_w[None, :], acc * r[:, None],
             mask=t_mask[:, None] & (offs_w < W)[None, :])


@triton.jit
def _stream_tile(ptr, N, HC, D, s_n, s_h, s_d, BLOCK_T: tl.constexpr, HC_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's tokens (int64 rows and their mask), stream and feature offsets, and the fp32 tile
    ptr[rows, :HC, d-block] of the residual streams (0 outside)."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    rows = offs_t.to(tl.int64)
    t_mask = offs_t < N
    offs_i = tl.arange(0, HC_P)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    x = tl.load(ptr + rows[:, None, None] * s_n + offs_i[None, :, None] * s_h + offs_d[None, None, :] * s_d,
                mask=t_mask[:, None, None] & (offs_i < HC)[None, :, None] & (offs_d < D)[None, None, :],
                other=0.0).to(tl.float32)
    return rows, t_mask, offs_i, offs_d, x


@triton.jit
def _hc_weighted_sum_kernel(
    x_ptr, pre_ptr, y_ptr, N, HC, D,
    s_xn, s_xh, s_xd,
    BLOCK_T: tl.constexpr, HC_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows, t_mask, offs_i, offs_d, x = _stream_tile(x_ptr, N, HC, D, s_xn, s_xh, s_xd, BLOCK_T, HC_P, BLOCK_D)
    pre = tl.load(pre_ptr + rows[:, None] * HC + offs_i[None, :],
                  mask=t_mask[:, None] & (offs_i < HC)[None, :], other=0.0)
    y = tl.sum(pre[:, :, None] * x, axis=1)
    tl.store(y_ptr + rows[:, None] * D + offs_d[None, :], y.to(y_ptr.dtype.element_ty),
             mask=t_mask[:, None] & (offs_d < D)[None, :])


@triton.jit
def _hc_post_kernel(
    v_ptr, r_ptr, post_ptr, comb_ptr, o_ptr, N, HC, D,
    s_vn, s_vd, s_rn, s_rh, s_rd, s_pn, s_ph, s_cn, s_cj, s_ck,
    BLOCK_T: tl.constexpr, HC_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows, t_mask, offs_i, offs_d, res = _stream_tile(r_ptr, N, HC, D, s_rn, s_rh, s_rd, BLOCK_T, HC_P, BLOCK_D)
    i_mask = offs_i < HC
    d_mask = offs_d < D
    v = tl.load(v_ptr + rows[:, None] * s_vn + offs_d[None, :] * s_vd,
                mask=t_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
    post = tl.load(post_ptr + rows[:, None] * s_pn + offs_i[None, :] * s_ph,
                   mask=t_mask[:, None] & i_mask[None, :], other=0.0)
    comb = tl.load(comb_ptr + rows[:, None, None] * s_cn + offs_i[None, :, None] * s_cj + offs_i[None, None, :] * s_ck,
                   mask=t_mask[:, None, None] & i_mask[None, :, None] & i_mask[None, None, :], other=0.0)
    # out[t, k, d] = post[t, k] v[t, d] + sum_j comb[t, j, k] res[t, j, d]   (comb^T applied to the streams)
    mixed = tl.sum(comb[:, :, :, None] * res[:, :, None, :], axis=1)
    out = post[:, :, None] * v[:, None, :] + mixed
    o_off = rows[:, None, None] * (HC * D) + offs_i[None, :, None] * D + offs_d[None, None, :]
    tl.store(o_ptr + o_off, out.to(o_ptr.dtype.element_ty),
             mask=t_mask[:, None, None] & i_mask[None, :, None] & d_mask[None, None, :])




def _sinkhorn_config(n: int, hc_p: int) -> dict:
    """BLOCK_T (tokens per program) and num_warps, config key "hc_split_sinkhorn" (mixes are always fp32)."""
    if interpreting():
        block_t = max(1, min(next_pow2(n), 8192 // (hc_p * hc_p)))
    else:
        block_t = max(1, 512 // (hc_p * hc_p))
    return launch_config("hc_split_sinkhorn", torch.float32, {"BLOCK_T": block_t, "num_warps": 4})


@implement(OP, kind="triton", dtypes={torch.float32})
def _hc_split_sinkhorn_triton(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    """The Triton launcher (the op's check has run). Returns (pre, post, comb), fp32, contiguous."""
    hc = int(hc_mult)
    lead = tuple(mixes.shape[:-1])
    pre = torch.empty(lead + (hc,), dtype=torch.float32, device=mixes.device)
    post = torch.empty_like(pre)
    comb = torch.empty(lead + (hc, hc), dtype=torch.float32, device=mixes.device)
    n = pre.numel() // hc
    if n == 0:
        return pre, post, comb
    m2 = mixes.reshape(n, mixes.shape[-1])  # a view whenever the leading dims allow it
    hc_p = next_pow2(hc)
    cfg = _sinkhorn_config(n, hc_p)
    with device_guard(mixes):
        _hc_split_sinkhorn_kernel[(triton.cdiv(n, cfg["BLOCK_T"]),)](
            m2, hc_scale.contiguous(), hc_base.contiguous(), pre, post, comb,
            n, hc, int(sinkhorn_iters), float(eps), m2.stride(0), m2.stride(1),
            BLOCK_T=cfg["BLOCK_T"], HC_P=hc_p, **split_launch_options(cfg)[1],
        )
    return pre, post, comb


def _stream_config(kernel: str, N: int, hc_p: int, D: int, dtype: torch.dtype) -> dict:
    """BLOCK_T, BLOCK_D and num_warps of a kernel over [tokens, hc, D-block] tiles, config keys
    "hc_weighted_sum" and "hc_post" (whose tile also holds each token's hc x hc comb matrix)."""
    post = kernel == "hc_post"
    per_t = hc_p * hc_p if post else hc_p
    if interpreting():
        block_d = max(16, min(next_pow2(D), 1024))
        block_t = max(1, min(next_pow2(N), ((1 << 17) if post else (1 << 16)) // (per_t * block_d)))
    else:
        block_d = max(16, min(next_pow2(D), 128 if post else 256))
        block_t = max(1, 2048 // (per_t * block_d))
    return launch_config(kernel, dtype, {"BLOCK_T": block_t, "BLOCK_D": block_d, "num_warps": 4})


def _mixes_config(N: int, K: int, dtype: torch.dtype) -> dict:
    """BLOCK_T (tokens) and BLOCK_K (reduction step over hc*D) and num_warps, config key "hc_mixes"."""
    if interpreting():
        default = {"BLOCK_T": max(16, min(next_pow2(N), 64)), "BLOCK_K": max(16, min(next_pow2(K), 4096))}
    else:
        default = {"BLOCK_T": 16, "BLOCK_K": 64}
    return launch_config("hc_mixes", dtype, {**default, "num_warps": 4})


@implement(OP_PRE, kind="triton", dtypes=set(_FLOATS))
def _hc_pre_triton(x, hc_fn, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, norm_eps=1e-6, hc_eps=1e-6):
    """The Triton launcher (the op's check has run): mixes, Sinkhorn and weighted-sum kernels -> (y, post, comb)."""
    hc, D = int(hc_mult), x.shape[-1]
    lead = tuple(x.shape[:-2])
    W, K = (2 + hc) * hc, hc * D
    N = math.prod(lead)
    y = torch.empty(lead + (D,), dtype=x.dtype, device=x.device)
    mixes = torch.empty(lead + (W,), dtype=torch.float32, device=x.device)
    if N == 0:
        return y, mixes.new_empty(lead + (hc,)), mixes.new_empty(lead + (hc, hc))
    x3 = x.reshape(N, hc, D)
    x2 = x.reshape(N, K)  # copies only when the stream and feature dims cannot merge
    cfg = _mixes_config(N, K, x.dtype)
    with device_guard(x):
        _hc_mixes_kernel[(triton.cdiv(N, cfg["BLOCK_T"]),)](
            x2, hc_fn, mixes, N, K, W, float(norm_eps),
            x2.stride(0), x2.stride(1), hc_fn.stride(0), hc_fn.stride(1),
            BLOCK_T=cfg["BLOCK_T"], BLOCK_K=cfg["BLOCK_K"], W_P=max(16, next_pow2(W)), **split_launch_options(cfg)[1],
        )
    pre, post, comb = _hc_split_sinkhorn_triton(mixes, hc_scale, hc_base, hc, sinkhorn_iters, hc_eps)
    hc_p = next_pow2(hc)
    cfg = _stream_config("hc_weighted_sum", N, hc_p, D, x.dtype)
    with device_guard(x):
        _hc_weighted_sum_kernel[(triton.cdiv(N, cfg["BLOCK_T"]), triton.cdiv(D, cfg["BLOCK_D"]))](
            x3, pre, y, N, hc, D, *x3.stride(),
            BLOCK_T=cfg["BLOCK_T"], HC_P=hc_p, BLOCK_D=cfg["BLOCK_D"], **split_launch_options(cfg)[1],
        )
    return y, post, comb


@implement(OP_POST, kind="triton", dtypes=set(_FLOATS))
def _hc_post_triton(v, residual, post, comb):
    """The Triton launcher (the op's check has run)."""
    lead, hc, D = tuple(residual.shape[:-2]), residual.shape[-2], residual.shape[-1]
    out = torch.empty(residual.shape, dtype=residual.dtype, device=residual.device)
    N = math.prod(lead)
    if out.numel() == 0:
        return out
    v2, r3 = v.reshape(N, D), residual.reshape(N, hc, D)
    p2, c3 = post.reshape(N, hc), comb.reshape(N, hc, hc)
    hc_p = next_pow2(hc)
    cfg = _stream_config("hc_post", N, hc_p, D, residual.dtype)
    with device_guard(residual):
        _hc_post_kernel[(triton.cdiv(N, cfg["BLOCK_T"]), triton.cdiv(D, cfg["BLOCK_D"]))](
            v2, r3, p2, c3, out, N, hc, D,
            *v2.stride(), *r3.stride(), *p2.stride(), *c3.stride(),
            BLOCK_T=cfg["BLOCK_T"], HC_P=hc_p, BLOCK_D=cfg["BLOCK_D"], **split_launch_options(cfg)[1],
        )
    return out


hc_split_sinkhorn_triton = checked(hc_split_sinkhorn_check, _hc_split_sinkhorn_triton)
hc_pre_triton = checked(hc_pre_check, _hc_pre_triton)
hc_post_triton = checked(hc_post_check, _hc_post_triton)
