"""Issue 16 probe: the C++ decode kernels against the baselines that matter, in the same run (a helper, not
the benchmark harness; the baseline functions take an ``inputs`` dict so they drop into a case module).

    python -m benchmarks.roofline_probe [--threads 2] [--models flash,pro] [--tokens 1,2,4,8,16]
                                        [--ops fp8,fp4,moe,attn] [--rounds 15]

Per row: flaggems ms, the baselines' ms, speedups, achieved GB/s and the roofline fraction (compulsory bytes /
measured copy bandwidth, the harness's definition) — the issue's goal columns are ``roofline`` (fp8_gemm
>= 70 %, fp4_gemm >= 60 % at decode) and ``vs bf16`` (>= 1.6x / >= 3x at M <= 4; MoE >= 1.5x; sparse_attn
>= 3x vs its torch composition).

Baselines:
* ``bf16_linear``: ``F.linear`` on a weight dequantised to bf16 once (what a user keeps in memory: 2x / 4x the
  FP8 / FP4 weight's bytes) — the primary one.
* ``scaled_mm_rowwise``: torch's own ``torch._scaled_mm`` on the same e4m3 operands with row-wise fp32 scales
  (torch's CPU kernel has no block-scaled recipe; same bytes, different scale granularity).
* ``bf16_grouped``: ``torch._grouped_mm`` on bf16 expert weights (torch's CPU kernel), the experts of one
  decode step: T tokens x top-6 rows, one row per active expert.
* ``sparse_attn_torch``: gather + einsum + masked softmax with the sink + einsum (fp32), as docs/benchmarks.md.

Timing: interleaved rounds with a rotated order, minimum and median over the rounds; weights rotate over
copies totalling > 2x the LLC so every call streams from memory. On a shared machine compare within one run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

E8 = torch.float8_e8m0fnu
E4 = torch.float8_e4m3fn
MODELS = {  # DeepSeek-V4 dims (docs/deepseek.md): FP8 dense linears (N, K), FP4 expert linears, attention
    "flash": dict(dim=4096, inter=2048, q_lora=1024, o_groups=8, o_lora=1024, heads=64, topk=512),
    "pro": dict(dim=7168, inter=3072, q_lora=1536, o_groups=16, o_lora=1024, heads=128, topk=1024),
}
LLC = 32 << 20


def fp8_linears(c):
    D = c["dim"]
    return {"wq_a": (c["q_lora"], D), "wo_b": (D, c["o_groups"] * c["o_lora"]), "shared.w1": (c["inter"], D),
            "shared.w2": (D, c["inter"])}


def fp4_linears(c):
    return {"expert.w1": (c["inter"], c["dim"]), "expert.w2": (c["dim"], c["inter"])}


# ----------------------------------------------------------------------------------------------- baselines


def bf16_linear(inp):
    return F.linear(inp["x16"], inp["w16"])


def scaled_mm_rowwise(inp):
    return torch._scaled_mm(inp["a"], inp["b"].t(), inp["sa_row"], inp["sb_row"], out_dtype=torch.bfloat16)


def bf16_grouped(inp):
    return torch._grouped_mm(inp["x16"], inp["w16"], inp["offs"])


def sparse_attn_torch(inp):
    q, kv, sink, idx, scale = inp["q"], inp["kv"], inp["sink"], inp["idx"], inp["scale"]
    b, m, h = q.shape[:3]
    kvg = kv[torch.arange(b)[:, None, None], idx.long().clamp(min=0)].float()
    s = torch.einsum("bmhd,bmkd->bmhk", q.float(), kvg) * scale
    s = s.masked_fill((idx < 0)[:, :, None, :], float("-inf"))
    p = torch.cat([s, sink.view(1, 1, h, 1).expand(b, m, h, 1)], -1).softmax(-1)[..., :-1]
    return torch.einsum("bmhk,bmkd->bmhd", p, kvg).to(q.dtype)


# ----------------------------------------------------------------------------------------------- inputs


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def gemm_inputs(fp4, M, N, K, seed=0):
    g = _gen(seed)
    a = torch.randn(M, K, generator=g).to(E4)
    a_s = torch.randint(120, 130, (M, K // 128), dtype=torch.uint8, generator=g).view(E8)
    if fp4:
        b = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, generator=g).view(torch.float4_e2m1fn_x2)
        b_s = torch.randint(118, 128, (N, K // 32), dtype=torch.uint8, generator=g).view(E8)
    else:
        b = (torch.randn(N, K, generator=g) * 8).to(E4)
        b_s = torch.randint(110, 120, (N // 128, K // 128), dtype=torch.uint8, generator=g).view(E8)
    return dict(a=a, a_s=a_s, b=b, b_s=b_s, x16=torch.randn(M, K, generator=g).bfloat16(),
                w16=torch.randn(N, K, generator=g).bfloat16(), sa_row=torch.ones(M, 1), sb_row=torch.ones(1, N))


def _copies(nbytes):
    return max(2, -(-2 * LLC // max(1, nbytes)))


# ----------------------------------------------------------------------------------------------- timing


def bandwidth():
    """copy_ of 512 MiB fp32 (read + write bytes / s), the harness's ceiling."""
    a = torch.ones(128 << 20)
    b = torch.empty_like(a)
    b.copy_(a)
    best = min(_time_once(lambda: b.copy_(a)) for _ in range(5))
    return 2 * a.numel() * 4 / best


def _time_once(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def interleaved(sides, rounds):
    """{name: [seconds]} over `rounds` rounds, the order rotated every round."""
    names = list(sides)
    for f in sides.values():
        f()
    ts = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            ts[n].append(_time_once(sides[n]))
    return ts


def _rot(xs):
    i = [0]

    def nxt():
        i[0] = (i[0] + 1) % len(xs)
        return xs[i[0]]
    return nxt


def report(name, ts, bytes_, bw, main="flaggems", ref="bf16_linear"):
    mn = {n: min(v) for n, v in ts.items()}
    md = {n: statistics.median(v) for n, v in ts.items()}
    cols = " | ".join(f"{n} {mn[n] * 1e3:.3f}/{md[n] * 1e3:.3f} ms" for n in ts)
    sp = " ".join(f"vs {n} {md[n] / md[main]:.2f}x" for n in ts if n != main)
    roof = bytes_ / bw / md[main] if bytes_ else float("nan")
    print(f"{name}: {cols} (min/median) | {sp} | {bytes_ / md[main] / 1e9:.1f} GB/s, roofline {roof:.0%}",
          flush=True)


# ----------------------------------------------------------------------------------------------- cases


def run_gemm(fp4, model, M, name, N, K, bw, rounds):
    from flaggems.cpp import fp4_gemm_cpp, fp8_gemm_cpp

    fn = fp4_gemm_cpp if fp4 else fp8_gemm_cpp
    wbytes = N * K // 2 if fp4 else N * K
    base = gemm_inputs(fp4, M, N, K)
    qs = [dict(base, b=gemm_inputs(fp4, 1, N, K, seed=i + 1)["b"]) for i in range(_copies(wbytes))]
    ws = [torch.randn(N, K, generator=_gen(i)).bfloat16() for i in range(_copies(2 * N * K))]
    nq, nw = _rot(qs), _rot(ws)
    sides = {"flaggems": lambda: (lambda i: fn(i["a"], i["a_s"], i["b"], i["b_s"], torch.bfloat16))(nq()),
             "bf16_linear": lambda: bf16_linear(dict(base, w16=nw()))}
    if not fp4:
        sides["scaled_mm_rowwise"] = lambda: scaled_mm_rowwise(nq())
    ts = interleaved(sides, rounds)
    nbytes = wbytes + (N * K // 32 if fp4 else N * K // 16384) + M * K + M * K // 128 + 2 * M * N
    report(f"{'fp4' if fp4 else 'fp8'}_gemm {model} {name} M={M} N={N} K={K}", ts, nbytes, bw)


def run_moe(fp4, model, T, up, bw, rounds):
    from flaggems.cpp.grouped_lowp import grouped_fp4_gemm_cpp, grouped_fp8_gemm_cpp

    c = MODELS[model]
    G = T * 6                                   # top-6, every token on distinct experts (worst case: all stream)
    K, N = (c["dim"], 2 * c["inter"]) if up else (c["inter"], c["dim"])
    g = _gen(T)
    a = torch.randn(G, K, generator=g).to(E4)
    a_s = torch.randint(120, 130, (G, K // 128), dtype=torch.uint8, generator=g).view(E8)
    offs = torch.arange(1, G + 1, dtype=torch.int32)
    if fp4:
        b = torch.randint(0, 256, (G, N, K // 2), dtype=torch.uint8, generator=g)
        b_s = torch.randint(118, 128, (G, N, K // 32), dtype=torch.uint8, generator=g).view(E8)
        fn, wbytes = grouped_fp4_gemm_cpp, G * N * K // 2
    else:
        b = (torch.randn(G, N, K, generator=g) * 8).to(E4)
        b_s = torch.randint(110, 120, (G, N // 128, K // 128), dtype=torch.uint8, generator=g).view(E8)
        fn, wbytes = grouped_fp8_gemm_cpp, G * N * K
    x16 = torch.randn(G, K, generator=g).bfloat16()
    w16 = torch.randn(G, N, K, generator=g).bfloat16().transpose(1, 2)   # [G, K, N], K contiguous
    sides = {"flaggems": lambda: fn(a, a_s, b, b_s, offs, torch.bfloat16),
             "bf16_grouped": lambda: bf16_grouped(dict(x16=x16, w16=w16, offs=offs))}
    ts = interleaved(sides, rounds)
    report(f"moe {'fp4' if fp4 else 'fp8'} {model} {'up' if up else 'down'} T={T} G={G} N={N} K={K}", ts,
           wbytes + 2 * G * N, bw)


def run_attn(model, b, bw, rounds):
    from flaggems.cpp import lib, sparse_attn_cpp

    c = MODELS[model]
    h, d, n, K = c["heads"], 512, 128 + 4096 // 4, 128 + c["topk"]
    g = _gen(b)
    inp = dict(q=torch.randn(b, 1, h, d, generator=g).bfloat16(), kv=torch.randn(b, n, d, generator=g).bfloat16(),
               sink=torch.randn(h, generator=g), scale=d ** -0.5,
               idx=torch.stack([torch.randperm(n, generator=g)[:K] for _ in range(b)]).view(b, 1, K).to(torch.int32))
    inp["idx"][..., -16:] = -1
    sides = {"flaggems": lambda: sparse_attn_cpp(inp["q"], inp["kv"], inp["sink"], inp["idx"], inp["scale"]),
             "sparse_attn_torch": lambda: sparse_attn_torch(inp)}
    ts = interleaved(sides, rounds)
    report(f"sparse_attn {model} decode b={b} h={h} K={K} (bf16 dot: {lib().bf16_dot()})", ts,
           2 * (2 * b * h * d + min(b * K, b * n) * d) + 4 * b * K, bw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="flash,pro")
    p.add_argument("--tokens", default="1,2,4,8,16")
    p.add_argument("--ops", default="fp8,fp4,moe,attn")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from flaggems.cpp import lib

    C = lib()
    bw = bandwidth()
    print(f"threads {args.threads}, flaggems._C ISA {C.isa()}, bf16 dot {C.bf16_dot()}, torch "
          f"{torch.backends.cpu.get_cpu_capability()}; copy bandwidth {bw / 1e9:.1f} GB/s", flush=True)
    ops = args.ops.split(",")
    toks = [int(t) for t in args.tokens.split(",")]
    for model in args.models.split(","):
        c = MODELS[model]
        for M in toks:
            if "fp8" in ops:
                for name, (N, K) in fp8_linears(c).items():
                    run_gemm(False, model, M, name, N, K, bw, args.rounds)
            if "fp4" in ops:
                for name, (N, K) in fp4_linears(c).items():
                    run_gemm(True, model, M, name, N, K, bw, args.rounds)
        if "moe" in ops:
            for T in [t for t in toks if t <= 4]:
                for up in (True, False):
                    run_moe(True, model, T, up, bw, args.rounds)
                    run_moe(False, model, T, up, bw, args.rounds)
        if "attn" in ops:
            for b in toks:
                run_attn(model, b, bw, args.rounds)


if __name__ == "__main__":
    main()
