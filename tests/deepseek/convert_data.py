"""FP4 weights shaped like DeepSeek-V4's routed experts, for the conversion tests."""
import torch

E8M0, FP4 = torch.float8_e8m0fnu, torch.float4_e2m1fn_x2


def fp4_weight(N, K, spread, lead=(), seed=0, base=(110, 130)):
    """Random packed FP4 [*lead, N, K/2] and e8m0 scales [*lead, N, ceil(K/32)]: per 128x128 block a random
    largest exponent, each 1x32 sub-block up to ``spread`` binades below it (real checkpoints: <= 6)."""
    g = torch.Generator().manual_seed(seed)
    nbn, nbk = -(-N // 128), -(-K // 128)
    w = torch.randint(0, 256, (*lead, N, K // 2), generator=g, dtype=torch.uint8)
    top = torch.randint(base[0], base[1], (*lead, nbn, 1, nbk, 1), generator=g)
    off = torch.randint(0, spread + 1, (*lead, nbn, 128, nbk, 4), generator=g)
    s = (top - off).reshape(*lead, nbn * 128, nbk * 4)[..., :N, : -(-K // 32)]
    return w.view(FP4), s.to(torch.uint8).view(E8M0)


def as_bytes(t):
    return t.view(torch.uint8) if t.element_size() == 1 else (t.view(torch.int16) if t.element_size() == 2 else t)


def same(a, b):
    """Bit-identical, except that any NaN equals any NaN (payloads are unspecified)."""
    if a.dtype == torch.bfloat16:
        na, nb = torch.isnan(a), torch.isnan(b)
        return torch.equal(na, nb) and torch.equal(as_bytes(a)[~na], as_bytes(b)[~nb])
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(as_bytes(a), as_bytes(b))
