"""Command line: ``python -m flaggems info`` (more subcommands: coverage, demo, ops, validate, aot, convert — see README)."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter


def _info(args) -> int:
    import torch
    import triton

    import flaggems
    from flaggems import registry
    from flaggems.runtime import interpreting
    from flaggems.runtime.interpreter import fixup_installed

    v = flaggems.vendor()
    kinds = Counter()
    aten = custom = 0
    for entry in registry.entries().values():
        if not entry.impls and entry.reference is None:
            continue
        if entry.namespace == "aten":
            aten += 1
        else:
            custom += 1
        for k in {i.kind for i in entry.impls}:
            kinds[k] += 1
    cpp_status = "not built"
    try:
        from flaggems import cpp  # noqa: F401

        cpp_status = "available" if getattr(cpp, "available", lambda: False)() else "not available"
    except Exception as e:  # report, don't crash the info command
        cpp_status = f"error: {e}"
    data = {
        "flaggems": flaggems.__version__,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": sys.version.split()[0],
        "vendor": v.info(),
        "interpreter": interpreting(),
        "interpreter_fixup": fixup_installed(),
        "ops": {"aten_overloads": aten, "flaggems_custom_ops": custom, "by_kind": dict(sorted(kinds.items()))},
        "cpp_extension": cpp_status,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    caps = ", ".join(k for k, on in v.capabilities.as_dict().items() if on) or "none"
    print(f"flaggems {data['flaggems']}  (torch {data['torch']}, triton {data['triton']}, python {data['python']})")
    print(f"vendor       : {v.name}  device={v.device_type}  dispatch key={v.dispatch_key}")
    print(f"capabilities : {caps}")
    print(f"triton target: {v.triton_target or ('none (interpreter)' if v.interpret else 'none')}")
    print(f"interpreter  : {'on' if data['interpreter'] else 'off'}"
          f"{' (bf16/fp8 fix-up installed)' if data['interpreter_fixup'] else ''}")
    print(f"ops          : {aten} ATen overloads, {custom} flaggems:: custom ops; implementations by kind: "
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"C++ extension: {cpp_status}")
    return 0


def op_table() -> str:
    """Markdown table of every op flaggems declares (kept here for callers of ``flaggems.__main__.op_table``)."""
    from flaggems.catalog import op_table as table

    return table()


def _ops(args) -> int:
    from flaggems import catalog

    print(catalog.where_table(args.op or None) if args.where else catalog.op_table())
    return 0


def _coverage(args) -> int:
    from flaggems import coverage

    res = coverage.run(model=None if args.config else args.model, config=args.config, dtype=args.dtype,
                       experts=args.experts, prompt_len=args.prompt_len, steps=args.steps, seed=args.seed,
                       progress=not args.no_progress, exclude=args.exclude.split(",") if args.exclude else None,
                       device=args.device)
    print(res.report.to_markdown())
    print()
    fb = res.report.fallbacks()
    print(f"coverage            : {res.coverage:.1%} of compute ATen/flaggems calls served by flaggems")
    print(f"fallbacks           : {sum(sum(r.values()) for r in fb.values())} calls in {len(fb)} ops"
          + "".join(f"\n  {op}: " + ", ".join(f"{k} ({n})" for k, n in r.items()) for op, r in fb.items()))
    print(f"parity vs native    : max |dlogit| {res.max_abs_logit_err:.3g} (rel {res.max_rel_logit_err:.3g}), "
          f"greedy tokens {'identical' if res.tokens_match else 'DIFFER'}")
    print(_syncs_line(res))
    print(f"time                : native {res.native_s:.1f}s (cpu), flaggems {res.flaggems_s:.1f}s "
          f"({res.vendor} vendor, device {res.device})")
    if args.output:
        j, m = coverage.write(res, args.output)
        print(f"wrote {j} and {m}")
    return 0


def _syncs_line(res) -> str:
    """Device->host reads flaggems' own code issued: per decode step (what serving pays per token)."""
    steps = res.syncs_per_decode_step
    per_step = f"{min(steps)}-{max(steps)}" if steps and min(steps) != max(steps) else (str(steps[0]) if steps else "-")
    line = f"host syncs (flaggems): prefill {res.syncs_prefill}, per decode step {per_step}"
    if res.syncs is not None and res.syncs.flaggems():
        top = list(res.syncs.by_site("flaggems").items())[:3]
        line += "; top sites: " + ", ".join(f"{site} ({n})" for site, n in top)
    return line


def _demo(args) -> int:
    import time

    import flaggems
    from flaggems import coverage

    t0 = time.perf_counter()
    v = flaggems.vendor()
    print(f"flaggems {flaggems.__version__} on vendor {v.name!r} (device {v.device_type}, key {v.dispatch_key}); "
          f"running an unmodified transformers DeepseekV4ForCausalLM (tiny random config: sliding/CSA/HCA "
          f"attention, hash + top-k MoE, hc_mult 4), prefill {args.prompt_len} tokens + {args.steps} greedy steps")
    res = coverage.run(model="deepseek-v4-tiny", dtype=args.dtype, prompt_len=args.prompt_len, steps=args.steps,
                       experts=args.experts, progress=not args.no_progress, device=args.device)
    print(f"vendor              : {res.vendor} (flaggems run on {res.device}, native reference on cpu)")
    print(f"coverage            : {res.coverage:.1%} of compute op calls served by flaggems")
    print(_syncs_line(res))
    print(f"max logit error     : {res.max_abs_logit_err:.3g} abs, {res.max_rel_logit_err:.3g} relative to max |logit|")
    print(f"greedy tokens match : {res.tokens_match}")
    print(f"time                : native {res.native_s:.1f}s, flaggems {res.flaggems_s:.1f}s, "
          f"total {time.perf_counter() - t0:.1f}s")
    return 0 if res.tokens_match else 1


def _convert(args) -> int:
    import flaggems
    from flaggems.compat import checkpoint

    to = None if args.to == "none" else args.to
    v = flaggems.vendor()
    print(f"vendor {v.name}: fp8={v.capabilities.fp8}, fp4={v.capabilities.fp4}; converting to "
          f"{to or 'nothing'}" + ("" if args.to != "auto" else " (chosen for the vendor)"))
    try:
        rep = checkpoint.convert_checkpoint(args.src, args.dst, to=to, on_inexact=args.on_inexact,
                                            log=None if args.quiet else print)
    except checkpoint.InexactConversion as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(rep.summary())
    return 0


def _validate(args) -> int:
    from flaggems.testing import validate

    return validate.main(args)


_DEVICE_HELP = ("device of the flaggems run (default: the vendor's device type); the native reference runs on cpu. "
                "'fgsim' is the simulated device: FLAGGEMS_VENDOR=sim python -m flaggems ... --device fgsim")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flaggems", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="versions, vendor, interpreter, op counts")
    p_info.add_argument("--json", action="store_true", help="machine-readable output")
    p_info.set_defaults(func=_info)
    p_cov = sub.add_parser("coverage", help="run a causal LM through flaggems: op table, coverage, parity")
    src = p_cov.add_mutually_exclusive_group()
    src.add_argument("--model", default="deepseek-v4-tiny",
                     help="built-in config: deepseek-v4-tiny, deepseek-v4-small, qwen3-moe-tiny, llama-tiny")
    src.add_argument("--config", help="path to any transformers config.json (random weights)")
    p_cov.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p_cov.add_argument("--experts", default=None, help="experts implementation (eager, grouped_mm, batched_mm)")
    p_cov.add_argument("--prompt-len", type=int, default=20)
    p_cov.add_argument("--steps", type=int, default=8, help="greedy decode steps after the prefill")
    p_cov.add_argument("--seed", type=int, default=0)
    p_cov.add_argument("--exclude", default="", help="comma-separated ATen names to leave native")
    p_cov.add_argument("--output", default=None, help="directory for the JSON and markdown reports")
    p_cov.add_argument("--no-progress", action="store_true")
    p_cov.add_argument("--device", default=None, help=_DEVICE_HELP)
    p_cov.set_defaults(func=_coverage)
    p_demo = sub.add_parser("demo", help="the main job: tiny DeepSeek-V4 through flaggems vs native")
    p_demo.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p_demo.add_argument("--prompt-len", type=int, default=20)
    p_demo.add_argument("--steps", type=int, default=8)
    p_demo.add_argument("--experts", default=None, help="experts implementation (eager, grouped_mm, batched_mm)")
    p_demo.add_argument("--no-progress", action="store_true")
    p_demo.add_argument("--device", default=None, help=_DEVICE_HELP)
    p_demo.set_defaults(func=_demo)
    p_ops = sub.add_parser("ops", help="markdown table of every op flaggems implements")
    p_ops.add_argument("--where", action="store_true",
                       help="per op: module:function of each implementation, its reference, test file, benchmark")
    p_ops.add_argument("op", nargs="*", help="ATen / flaggems names to show (default: all)")
    p_ops.set_defaults(func=_ops)
    p_conv = sub.add_parser("convert", help="convert DeepSeek-V4 safetensors (FP4 experts -> FP8, FP8/FP4 -> BF16) "
                                            "for a vendor, one tensor at a time")
    p_conv.add_argument("src", help="a .safetensors file or a checkpoint directory")
    p_conv.add_argument("dst", help="output file or directory (same shard layout)")
    p_conv.add_argument("--to", default="auto", choices=["auto", "fp8", "bf16", "none"],
                        help="auto: what the active vendor lacks (no fp4 -> fp8, no fp8 -> bf16, both -> none)")
    p_conv.add_argument("--on-inexact", default="error", choices=["error", "bf16", "round"],
                        help="a tensor that would not convert exactly: refuse (default), keep it in BF16, or round")
    p_conv.add_argument("--quiet", action="store_true")
    p_conv.set_defaults(func=_convert)
    p_val = sub.add_parser("validate", help="per-op accuracy report on the active vendor (precision alignment)")
    p_val.add_argument("--ops", default="", help="comma-separated case names (default: all), e.g. add,mm,softmax")
    p_val.add_argument("--dtypes", default="", help="comma-separated: fp32,bf16,fp16,fp64 (default: per case)")
    p_val.add_argument("--seed", type=int, default=0)
    p_val.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p_val.add_argument("--output", default=None, help="also write OUTPUT.json and OUTPUT.md")
    p_val.set_defaults(func=_validate)
    from .aot.cli import add_parser as add_aot_parser

    add_aot_parser(sub)
    args = parser.parse_args(argv)
    if getattr(args, "device", None) is not None:
        from flaggems import coverage

        try:  # a wrong --device is a usage error, not a traceback
            coverage.resolve_device(args.device)
        except ValueError as e:
            parser.error(str(e))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
