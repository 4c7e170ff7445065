"""The GEMM kernel: every matmul in flaggems (dense, grouped, scaled, DeepSeek fp8/fp4) launches this one.

One program computes one [BLOCK_M, BLOCK_N] tile of C for batch (or group) b::

    acc = 0
    for k0 in [k_lo, k_hi) step BLOCK_K:
        A' = decode(A[b][m, k0:k0+BLOCK_K]) * pre_a(m, k)          decode: as loaded, e4m3 bytes or e2m1 pairs
        B' = decode(B[b][k0:k0+BLOCK_K, n]) * pre_b(n, k)          pre: block scales folded per K group
        P  = A' · B'                                               tl.dot in the DOT dtype, or tl.dot_scaled
                                                                   with the pre scales as its MX scales
        acc += P * post_a(m, k0) * post_b(n, k0)                   post: one scale per K block (fp32 partial)
    C[b][m, n] = (acc * sa(m) * sb(n) * gs * alpha + beta * bias[b][m, n]) / scale_result

Each operand's scales apply at one place (``*_AT``): nowhere, once on the accumulator (tensor/row-wise), per K
block on the partial product (DeepSeek's "2x accumulation"), or before the dot (MX / NVFP4). Scale value (r, k)
is ``decode(s[r // DIV, k // GROUP])`` at strided or MX-swizzled offsets, in fp32 / e8m0 / e4m3.

Layouts (``LAYOUT``): TILES, program_id(1) is the batch; ROWS, rows of A and C are grouped by ``offs`` and group
g multiplies B[g] (``group_of_tile`` maps a virtual row tile to its group; the tail past offs[-1] is written as
zeros); KSPLIT, group g = program_id(1) contracts over K in [offs[g-1], offs[g]) into C[g]. Offsets are clamped
to the extent so every access stays in bounds whatever ``offs`` holds.

M, N, K are runtime values (no recompilation per shape); block sizes, formats and flags are constexprs.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ...formats import decode, e2m1_to_f32, swizzled_offset

# Format codes (A_FMT, B_FMT, SA_FMT, SB_FMT) are flaggems.formats': 0 as loaded, 1 e8m0 bytes, 2 e4m3 bytes,
# 3 e2m1 pairs. Where an operand's scales apply (SA_AT, SB_AT):
UNSCALED, ON_ACC, PER_BLOCK, PRE_DOT = 0, 1, 2, 3
# grid layouts
TILES, ROWS, KSPLIT = 0, 1, 2


@triton.jit
def group_of_tile(offs_ptr, pid, G, R, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr):
    """Virtual row-tile ``pid`` -> (group, first row, end row, live).

    Groups are [offs[g-1], offs[g]) clamped to [0, R]; group G is the tail [offs[G-1], R) (written as zeros).
    Tiles are numbered group after group; ``live`` is False for the spare programs of the upper-bound grid.
    """
    gi = tl.arange(0, BLOCK_G)
    prev = tl.load(offs_ptr + gi - 1, mask=(gi >= 1) & (gi <= G), other=0)
    cur = tl.load(offs_ptr + gi, mask=gi < G, other=0)
    cur = tl.where(gi == G, R, cur)
    start = tl.minimum(tl.maximum(prev, 0), R)
    end = tl.minimum(tl.maximum(cur, 0), R)
    size = tl.where(gi <= G, tl.maximum(end - start, 0), 0)
    tiles = (size + BLOCK_R - 1) // BLOCK_R
    cum = tl.cumsum(tiles, 0)
    total = tl.sum(tiles, 0)
    g = tl.sum((cum <= pid).to(tl.int32), 0)
    sel = gi == g
    t0 = tl.sum(tl.where(sel, cum - tiles, 0), 0)
    r0 = tl.sum(tl.where(sel, start, 0), 0)
    r1 = tl.sum(tl.where(sel, end, 0), 0)
    return g, r0 + (pid - t0) * BLOCK_R, r1, pid < total


@triton.jit
def _operand(t, FMT: tl.constexpr, K_AXIS: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Operand tile -> fp32 [ROWS, COLS]; e2m1 pairs (half as many bytes along K, axis K_AXIS) unpacked low
    nibble first."""
    if FMT == 3:
        code = t.to(tl.int32)
        v = tl.join(e2m1_to_f32(code & 0xF), e2m1_to_f32((code >> 4) & 0xF))
        if K_AXIS == 0:
            v = tl.permute(v, (0, 2, 1))            # [K/2, N, 2] -> [K/2, 2, N]: the pair stays adjacent along K
        v = tl.reshape(v, (ROWS, COLS))
    else:
        v = decode(t, FMT)
    return v


@triton.jit
def _scale_tile(base, r, rmask, k0, K, s_row, s_k, GROUP: tl.constexpr, UNIT: tl.constexpr, SWZ: tl.constexpr,
                ONE: tl.constexpr, BLOCK_K: tl.constexpr):
    """Scales of rows r for the K block at k0, one per UNIT elements: [len(r), BLOCK_K / UNIT] raw values."""
    kg = tl.cdiv(K, GROUP)
    c = (k0 + tl.arange(0, BLOCK_K // UNIT) * UNIT) // GROUP
    if SWZ:
        off = swizzled_offset(r[:, None], c[None, :], (kg + 3) // 4)
    else:
        off = r[:, None].to(tl.int64) * s_row + c[None, :].to(tl.int64) * s_k
    return tl.load(base + off, mask=rmask[:, None] & (c < kg)[None, :], other=ONE)


@triton.jit
def _block_scale(base, r, rmask, k0, s_row, s_k, FMT: tl.constexpr, GROUP: tl.constexpr, ONE: tl.constexpr):
    """fp32 scales of rows r for the K block at k0 (one K group per block)."""
    s = tl.load(base + r.to(tl.int64) * s_row + (k0 // GROUP) * s_k, mask=rmask, other=ONE)
    if FMT != 0:
        s = decode(s, FMT)
    return s


@triton.jit
def gemm_kernel(
        a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, bias_ptr, gs_ptr, sr_ptr, offs_ptr,
        M, N, K, G, alpha, beta,
        s_ab, s_am, s_ak, s_bb, s_bk, s_bn, s_cb, s_cm, s_cn,
        s_sab, s_sar, s_sak, s_sbb, s_sbr, s_sbk, s_xb, s_xm, s_xn,
        LAYOUT: tl.constexpr, A_FMT: tl.constexpr, B_FMT: tl.constexpr, DOT: tl.constexpr, ACC: tl.constexpr,
        PRECISION: tl.constexpr, DOT_SCALED: tl.constexpr, A_DS: tl.constexpr, B_DS: tl.constexpr,
        SA_AT: tl.constexpr, SA_FMT: tl.constexpr, SA_GROUP: tl.constexpr, SA_UNIT: tl.constexpr,
        SA_DIV: tl.constexpr, SA_SWZ: tl.constexpr, SA_ONE: tl.constexpr,
        SB_AT: tl.constexpr, SB_FMT: tl.constexpr, SB_GROUP: tl.constexpr, SB_UNIT: tl.constexpr,
        SB_DIV: tl.constexpr, SB_SWZ: tl.constexpr, SB_ONE: tl.constexpr,
        HAS_BIAS: tl.constexpr, SCALE: tl.constexpr, HAS_GS: tl.constexpr, OUT_DIV: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
        BLOCK_G: tl.constexpr):
    if LAYOUT == 1:
        g, r0, m_end, live = group_of_tile(offs_ptr, tl.program_id(0), G, M, BLOCK_M, BLOCK_G)
        pid_n = tl.program_id(1)
        rm = r0 + tl.arange(0, BLOCK_M)
        bt = g.to(tl.int64)
        work = g < G
        k_lo = 0
        k_hi = K
    else:
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BLOCK_M)
        num_n = tl.cdiv(N, BLOCK_N)
        # grouped ordering: GROUP_M row-tiles share each column tile while it is hot in L2
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        size_m = tl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % size_m
        pid_n = (pid % group) // size_m
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        m_end = M
        live = True
        work = True
        bt = tl.program_id(1).to(tl.int64)
        if LAYOUT == 2:
            k_lo = tl.minimum(tl.maximum(tl.load(offs_ptr + bt - 1, mask=bt > 0, other=0), 0), K)
            k_hi = tl.minimum(tl.maximum(tl.load(offs_ptr + bt), 0), K)
        else:
            k_lo = 0
            k_hi = K
    if live:
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mmask = rm < m_end
        nmask = rn < N
        rm64 = rm.to(tl.int64)
        rn64 = rn.to(tl.int64)
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
        if work:
            a_base = a_ptr + bt * s_ab + rm64[:, None] * s_am
            b_base = b_ptr + bt * s_bb + rn64[None, :] * s_bn
            sa_base = sa_ptr + bt * s_sab
            sb_base = sb_ptr + bt * s_sbb
            ra = rm // SA_DIV
            rb = rn // SB_DIV
            for k0 in range(k_lo, k_hi, BLOCK_K):
                if A_FMT == 3 or B_FMT == 3:
                    kh = k0 // 2 + tl.arange(0, BLOCK_K // 2)
                    khmask = kh < k_hi // 2
                if A_FMT != 3 or B_FMT != 3:
                    kk = k0 + tl.arange(0, BLOCK_K)
                    kmask = kk < k_hi
                if A_FMT == 3:
                    a = tl.load(a_base + kh[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & khmask[None, :],
                                other=0)
                else:
                    a = tl.load(a_base + kk[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & kmask[None, :],
                                other=0.0)
                if B_FMT == 3:
                    b = tl.load(b_base + kh[:, None].to(tl.int64) * s_bk, mask=khmask[:, None] & nmask[None, :],
                                other=0)
                else:
                    b = tl.load(b_base + kk[:, None].to(tl.int64) * s_bk, mask=kmask[:, None] & nmask[None, :],
                                other=0.0)
                if SA_AT == 3:
                    sa = _scale_tile(sa_base, ra, mmask, k0, K, s_sar, s_sak, SA_GROUP, SA_UNIT, SA_SWZ, SA_ONE,
                                     BLOCK_K)
                else:
                    sa = None
                if SB_AT == 3:
                    sb = _scale_tile(sb_base, rb, nmask, k0, K, s_sbr, s_sbk, SB_GROUP, SB_UNIT, SB_SWZ, SB_ONE,
                                     BLOCK_K)
                else:
                    sb = None
                if DOT_SCALED:
                    if SA_AT == 2 or SB_AT == 2:
                        p = tl.dot_scaled(a, sa, A_DS, b, sb, B_DS)
                    else:
                        acc = tl.dot_scaled(a, sa, A_DS, b, sb, B_DS, acc)
                else:
                    if A_FMT != 0 or SA_AT == 3:
                        a = _operand(a, A_FMT, 1, BLOCK_M, BLOCK_K)
                        if SA_AT == 3:
                            a = tl.reshape(tl.reshape(a, (BLOCK_M, BLOCK_K // SA_GROUP, SA_GROUP))
                                           * decode(sa, SA_FMT)[:, :, None], (BLOCK_M, BLOCK_K))
                    if B_FMT != 0 or SB_AT == 3:
                        b = _operand(b, B_FMT, 0, BLOCK_K, BLOCK_N)
                        if SB_AT == 3:
                            b = tl.reshape(tl.reshape(b, (BLOCK_K // SB_GROUP, SB_GROUP, BLOCK_N))
                                           * tl.trans(decode(sb, SB_FMT))[:, None, :], (BLOCK_K, BLOCK_N))
                    if DOT is not None:
                        a = a.to(DOT)
                        b = b.to(DOT)
                    if SA_AT == 2 or SB_AT == 2:
                        p = tl.dot(a, b, out_dtype=ACC, input_precision=PRECISION)
                    else:
                        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
                if SA_AT == 2 or SB_AT == 2:
                    if SA_AT == 2:
                        p = p * _block_scale(sa_base, ra, mmask, k0, s_sar, s_sak, SA_FMT, SA_GROUP, SA_ONE)[:, None]
                    if SB_AT == 2:
                        p = p * _block_scale(sb_base, rb, nmask, k0, s_sbr, s_sbk, SB_FMT, SB_GROUP, SB_ONE)[None, :]
                    acc += p
            if SA_AT == 1:
                row_a = tl.load(sa_base + ra.to(tl.int64) * s_sar, mask=mmask, other=0.0)
                if SA_FMT != 0:
                    row_a = decode(row_a, SA_FMT)
                acc = acc * row_a[:, None]
            if SB_AT == 1:
                row_b = tl.load(sb_base + rb.to(tl.int64) * s_sbr, mask=nmask, other=0.0)
                if SB_FMT != 0:
                    row_b = decode(row_b, SB_FMT)
                acc = acc * row_b[None, :]
        if HAS_GS:
            acc = acc * tl.load(gs_ptr)
        if SCALE:
            acc = acc * alpha
        cmask = mmask[:, None] & nmask[None, :]
        if HAS_BIAS:
            bias = tl.load(bias_ptr + bt * s_xb + rm64[:, None] * s_xm + rn64[None, :] * s_xn, mask=cmask, other=0.0)
            acc = acc + bias.to(ACC) * beta
        if OUT_DIV:
            acc = acc / tl.load(sr_ptr)
        c = c_ptr + bt * s_cb + rm64[:, None] * s_cm + rn64[None, :] * s_cn
        tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=cmask)
