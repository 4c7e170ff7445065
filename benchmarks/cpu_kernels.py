"""CPU benchmarks of flaggems' C++ kernels against what a torch user would otherwise write.

    python -m benchmarks.cpu_kernels [--quick]        (prints a markdown table)
    from benchmarks.cpu_kernels import run; rows = run(quick=True)

A thin view over the runner (``python -m benchmarks --impl cpp``): the cases, timers and peak-memory method
are the harness's (benchmarks/runner.py, timing.py, memory.py); this module keeps the original row format.

Each row: {op, shape, dtype, ms, baseline_ms, speedup, peak_mem_bytes, baseline_peak_mem_bytes, baseline}.
Timing: wall clock, warm-up, interleaved rounds, median (the machine may be shared: medians, not means).
Peak memory (GEMM rows; None elsewhere): RSS high-water mark of the first call in a fresh subprocess, which
sees torch's allocations and the C++ kernels' internal buffers alike.
Baselines: fp8/fp4 GEMM = dequantise weight + activation to bf16 and F.linear (DeepSeek's weight_dequant
recipe); sparse_attn = gather + einsum + masked softmax with the sink + einsum (fp32); moe_gate = the model's
eager gating code; _grouped_mm = torch._grouped_mm; sinkhorn / act_quant / hadamard = eager torch.
"""
from __future__ import annotations

CPP_OPS = ["fp8_gemm", "fp4_gemm", "sparse_attn", "moe_gate", "moe_gate_hash", "_grouped_mm", "hc_split_sinkhorn",
           "act_quant", "fp4_act_quant", "hadamard_transform"]


def run(quick: bool = True, memory: bool = True) -> list[dict]:
    from . import runner

    res = runner.run(ops=CPP_OPS, quick=quick, impl="cpp", memory=memory, progress=False)
    rows = []
    for r in res["rows"]:
        if r["kind"] == "overhead":
            continue
        rows.append({"op": r["op"], "shape": r["shape"], "dtype": r["dtype"], "ms": r["ms"],
                     "baseline_ms": r.get("torch_ms"), "speedup": r.get("speedup"),
                     "peak_mem_bytes": r.get("peak_mem_bytes"),
                     "baseline_peak_mem_bytes": r.get("torch_peak_mem_bytes"), "baseline": r.get("baseline")})
    return rows


def to_markdown(rows) -> str:
    def mib(v):
        return "–" if v is None else f"{v / 2**20:.2f}"

    out = ["| op | shape | dtype | ms | baseline ms | speedup | peak MiB | baseline peak MiB |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        bms = "–" if r["baseline_ms"] is None else f"{r['baseline_ms']:.3f}"
        sp = "–" if r["speedup"] is None else f"{r['speedup']:.2f}"
        out.append(f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['ms']:.3f} | {bms} | {sp} | "
                   f"{mib(r['peak_mem_bytes'])} | {mib(r['baseline_peak_mem_bytes'])} |")
    return "\n".join(out)


if __name__ == "__main__":
    import argparse
    import platform

    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    from flaggems.cpp import lib

    print(f"# CPU kernels ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"isa={lib().isa()}, torch {torch.__version__})\n")
    print(to_markdown(run(args.quick)))
