"""python -m benchmarks [--ops a,b] [--quick] [--dtype ...] [--impl triton|cpp] [--output DIR]"""
from __future__ import annotations

import argparse
import shlex
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description="flaggems per-op benchmarks vs torch (and FlagGems when importable)")
    ap.add_argument("--ops", default=None,
                    help="comma-separated op names (fp8_gemm, _grouped_mm, add.Tensor, add, ...) or kinds "
                         "(deepseek, moe, elementwise, reduction, overhead); default: all")
    ap.add_argument("--quick", action="store_true", help="small shape subset (a few minutes on a CPU)")
    ap.add_argument("--models", default=None, help="DeepSeek-V4 variants: flash,pro (default: flash if --quick, "
                                                   "else both)")
    ap.add_argument("--dtype", default=None, help="comma-separated dtypes (bf16, fp16, fp32, fp8, fp4)")
    ap.add_argument("--impl", choices=("triton", "cpp"), default=None,
                    help="implementation kind to time (default: the vendor's preferred kind per op)")
    ap.add_argument("--output", default="bench-results", help="output directory (default: ./bench-results)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (the C++ kernels use the same count); default: torch's")
    ap.add_argument("--no-memory", action="store_true", help="skip peak-memory measurements")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timing per case (CPU)")
    ap.add_argument("--smoke", action="store_true",
                    help="one (smallest) case per op, tiny time budget: checks the harness runs, not speed")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    ops = [s.strip() for s in a.ops.split(",") if s.strip()] if a.ops else None
    dtypes = [s.strip() for s in a.dtype.split(",") if s.strip()] if a.dtype else None
    models = [s.strip() for s in a.models.split(",") if s.strip()] if a.models else None

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    from . import report, runner
    from .catalog import all_cases
    from .cases import Ctx
    from .device import device_type
    from .routing import choose_impl

    if a.list:
        ctx = Ctx(device=device_type(), quick=a.quick, dtypes=tuple(d.lower() for d in dtypes) if dtypes else None,
                  impl=a.impl, models=tuple(models) if models else None)
        for c in all_cases(ctx, ops):
            kind, why = choose_impl(c, ctx)
            print(f"{c.op:22s} {c.dtype:12.12s} {c.shape:60s} {kind or 'skip: ' + why}")
        return 0
    result = runner.run(ops=ops, quick=a.quick, dtypes=dtypes, impl=a.impl, memory=not a.no_memory,
                         progress=not a.no_progress, budget_s=a.budget, smoke=a.smoke,
                         models=models)
    command = "python -m benchmarks " + " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    paths = report.write_all(result, a.output, command)
    print(f"{len(result['rows'])} rows, {len(result['skipped'])} not timed, {result['meta']['wall_s']} s")
    for k, p in paths.items():
        print(f"  {k}: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
