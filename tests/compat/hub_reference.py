"""The finegrained-fp8 contract in plain torch (fp64 math), written from the hub kernel's documented semantics:
the test oracle for flaggems.integrations.finegrained_fp8. Activation groups use DeepSeek's amax floor (1e-4),
as flaggems' act_quant does (documented difference from the hub's 1e-12)."""
import torch

E4M3 = torch.float8_e4m3fn


def _e8m0(s):
    b = s.view(torch.uint8).double()
    return torch.where(b == 255, torch.full_like(b, float("nan")), torch.exp2(b - 127))


def _scales(s):
    return _e8m0(s) if s.dtype in (torch.float8_e8m0fnu, torch.uint8) else s.double()


def _unpack(b):
    lut = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64)
    u = b.view(torch.uint8).long()
    return torch.stack([lut[u & 15], lut[u >> 4]], -1).reshape(*b.shape[:-1], 2 * b.shape[-1])


def _quant(x, group, pow2):
    """x [M, K] fp32 -> dequantised fp64 activations, quantised per row and ``group`` of K."""
    M, K = x.shape
    pad = (-K) % group
    xg = torch.nn.functional.pad(x.float(), (0, pad)).view(M, -1, group)
    s = xg.abs().amax(-1, keepdim=True).clamp_min(1e-4) * torch.tensor(1 / 448, dtype=torch.float32)
    if pow2:
        s = torch.exp2(torch.ceil(torch.log2(s.double()))).float()
    q = (xg / s).clamp(-448, 448).to(E4M3)
    return (q.double() * s.double()).view(M, -1)[:, :K]


def matmul_2d(A, B, Bs, block_size, output_dtype=None, activation_scale=None):
    K = A.shape[-1]
    x = A.reshape(-1, K).float()
    N = B.shape[0]
    mx = B.dtype == torch.int8 or (Bs.dtype in (torch.float8_e8m0fnu, torch.uint8) and Bs.shape[-1] == K // 32
                                   and Bs.shape[0] == N)
    if mx:
        a = _quant(x, 32, True)
        w = (_unpack(B) if B.dtype == torch.int8 else B.double()) * _scales(Bs).repeat_interleave(32, -1)[:, :K]
    elif block_size is None or list(block_size) == [N, K]:
        a = _quant(x, K, False) if activation_scale is None else \
            (x / activation_scale.float()).clamp(-448, 448).to(E4M3).double() * activation_scale.double()
        w = B.double() * _scales(Bs).reshape(())
    else:
        bn, bk = block_size
        a = _quant(x, bk, False) if activation_scale is None else \
            (x / activation_scale.float()).clamp(-448, 448).to(E4M3).double() * activation_scale.double()
        w = B.double() * _scales(Bs).repeat_interleave(bn, 0).repeat_interleave(bk, 1)[:N, :K]
    return (a @ w.t()).to(output_dtype or A.dtype).reshape(*A.shape[:-1], N)


def matmul_batched(A, B, Bs, expert_ids, block_size, output_dtype=None):
    C = A.new_zeros((A.shape[0], B.shape[1]), dtype=output_dtype or A.dtype)
    for s, e in enumerate(expert_ids.tolist()):
        if 0 <= e < B.shape[0]:
            C[s] = matmul_2d(A[s:s + 1], B[e], Bs[e], block_size, C.dtype)[0]
    return C


def matmul_grouped(A, B, Bs, offsets, tokens_per_expert, block_size, output_dtype=None):
    C = A.new_zeros((A.shape[0], B.shape[1]), dtype=output_dtype or A.dtype)
    start = 0
    for e, end in enumerate(offsets.tolist()):
        if end > start:
            C[start:end] = matmul_2d(A[start:end], B[e], Bs[e], block_size, C.dtype)
        start = end
    return C
