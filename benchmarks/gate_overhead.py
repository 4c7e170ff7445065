"""Where the T = 1 MoE gate's time goes: ``python -m benchmarks.gate_overhead [--threads N] [--rounds R]``.

Issue 15 item 3 asks moe_gate / moe_gate_hash to be >= 3x the eager gate at one token, where the whole call is
host overhead. This splits ``torch.ops.flaggems.moe_gate`` (cpp kind) into the pieces that bound it: the
dispatcher's boxed call into a Python kernel (an empty custom op with the same schema), the op's check, the
registry's dispatch and the implementation called directly. Interleaved rounds of 100 calls; the minimum is
the number to read on a shared machine (the median shows the noise).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=80)
    a = ap.parse_args(argv)
    import flaggems
    import flaggems.deepseek  # noqa: F401  (declares the ops)
    from flaggems.cpp.moe_gate import _moe_gate_cpp, _moe_gate_hash_cpp
    from flaggems.deepseek.moe_gate import moe_gate_check
    from flaggems.registry import resolution

    torch.set_num_threads(a.threads)
    E, k, rs, V = 256, 6, 1.5, 129280                    # Flash
    g = torch.Generator().manual_seed(0)
    x, bias = torch.randn(1, E, generator=g), torch.randn(E, generator=g) * .1
    tab = torch.randint(0, E, (V, k), dtype=torch.int32, generator=g)
    ids = torch.randint(0, V, (1,), generator=g)
    args = (x, bias, k, "sqrtsoftplus", rs)
    entry = resolution.entries()["flaggems::moe_gate.default"]
    lib = torch.library.Library("fgbench_gate", "DEF")
    lib.define("gate(Tensor logits, Tensor? bias, int topk, str score_func, float route_scale) -> (Tensor, Tensor)")
    empty = torch.empty
    lib.impl("gate", lambda *_: (empty(1, k), empty(1, k, dtype=torch.int64)), "CompositeExplicitAutograd")

    def eager():
        s = F.softplus(x).sqrt()
        idx = (s + bias).topk(k, dim=-1)[1]
        w = s.gather(1, idx)
        return w / w.sum(-1, keepdim=True) * rs, idx

    def eager_hash():
        s = F.softplus(x).sqrt()
        idx = tab[ids].long()
        w = s.gather(1, idx)
        return w / w.sum(-1, keepdim=True) * rs, idx

    fns = {
        "eager gate (model.py)": eager,
        "torch.ops.flaggems.moe_gate": lambda: torch.ops.flaggems.moe_gate(*args),
        "moe_gate implementation direct": lambda: _moe_gate_cpp(*args),
        "empty custom op, 2 fresh outputs": lambda: torch.ops.fgbench_gate.gate(*args),
        "moe_gate check": lambda: moe_gate_check(*args),
        "registry dispatch": lambda: resolution.dispatch(entry, args, {}),
        "eager hash gate (model.py)": eager_hash,
        "torch.ops.flaggems.moe_gate_hash": lambda: torch.ops.flaggems.moe_gate_hash(x, tab, ids, "sqrtsoftplus", rs),
        "moe_gate_hash implementation direct": lambda: _moe_gate_hash_cpp(x, tab, ids, "sqrtsoftplus", rs),
    }
    res = {n: [] for n in fns}
    with flaggems.prefer_impl("cpp"):
        for _ in range(a.rounds):
            for n, f in fns.items():
                t = time.perf_counter()
                for _ in range(100):
                    f()
                res[n].append((time.perf_counter() - t) / 100 * 1e6)
    print("| path (T = 1, Flash E=256 top-6) | min µs | median µs |\n|---|---:|---:|")
    for n, v in res.items():
        v.sort()
        print(f"| {n} | {v[0]:.1f} | {v[len(v) // 2]:.1f} |")
    mn = {n: v[0] for n, v in res.items()}
    print(f"\nspeedup over eager (min): moe_gate {mn['eager gate (model.py)'] / mn['torch.ops.flaggems.moe_gate']:.2f}x, "
          f"moe_gate_hash {mn['eager hash gate (model.py)'] / mn['torch.ops.flaggems.moe_gate_hash']:.2f}x")


if __name__ == "__main__":
    main()
