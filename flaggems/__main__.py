"""Command line: ``python -m flaggems info`` (more subcommands: coverage, demo — see README)."""
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
    print(f"interpreter  : {'on' if data['interpreter'] else 'off'}"
          f"{' (bf16/fp8 fix-up installed)' if data['interpreter_fixup'] else ''}")
    print(f"ops          : {aten} ATen overloads, {custom} flaggems:: custom ops; implementations by kind: "
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"C++ extension: {cpp_status}")
    return 0


def _dtype_names(dts) -> str:
    if dts is None:
        return "any"
    short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}
    names = sorted(short.get(str(d).replace("torch.", ""), str(d).replace("torch.", "")) for d in dts)
    return ", ".join(names)


def op_table() -> str:
    """Markdown table of every op flaggems declares: name, implementation kinds, dtypes."""
    from flaggems import registry

    rows = ["| op | kinds | dtypes |", "|---|---|---|"]
    for q, e in sorted(registry.entries().items()):
        if not e.impls and e.reference is None:
            continue
        kinds = ", ".join(sorted({i.kind for i in e.impls})) or "reference only"
        dts = sorted({_dtype_names(i.dtypes) for i in e.impls}) or ["-"]
        rows.append(f"| `{q}` | {kinds} | {'; '.join(dts)} |")
    return "\n".join(rows)


def _ops(args) -> int:
    import flaggems  # noqa: F401

    print(op_table())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flaggems", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="versions, vendor, interpreter, op counts")
    p_info.add_argument("--json", action="store_true", help="machine-readable output")
    p_info.set_defaults(func=_info)
    p_ops = sub.add_parser("ops", help="markdown table of every op flaggems implements")
    p_ops.set_defaults(func=_ops)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
