"""``python -m flaggems aot``: command-line options of the AOT gate (see docs/portability.md)."""
from __future__ import annotations

import os


def add_parser(sub) -> None:
    p = sub.add_parser("aot", help="ahead-of-time compile gate: every captured kernel specialization compiled for "
                                   "real GPU targets (failures, spills, shared memory)")
    p.add_argument("--targets", default=None,
                   help="comma-separated backend:arch (default cuda:90,cuda:100,hip:gfx942; with --vendor: the "
                        "vendor's own target), e.g. npu:Ascend910B4")
    p.add_argument("--vendor", default=None,
                   help="plan as this vendor plugin (tuned configs, capability flags, deny list) and compile only what "
                        "it routes to Triton; default: nvidia for cuda targets, amd for hip, ascend for npu")
    p.add_argument("--ops", default=None, help="comma-separated op or kernel names to restrict the gate to")
    p.add_argument("--output", default="aot-report", help="directory for captures and the JSON/markdown report")
    p.add_argument("--python", default=None,
                   help="Python whose Triton compiles (e.g. /work/venvs/ascend/bin/python); default: this one")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile processes")
    p.add_argument("--workloads", default=None,
                   help="capture workloads, comma-separated from tests,validate,demo (default: all three when the "
                        "source tree's tests are present, else validate,demo)")
    p.add_argument("--tests", default=None,
                   help="comma-separated test paths for the tests workload (default tests/ops,tests/deepseek,"
                        "tests/compat)")
    p.add_argument("--test-args", default="", help="extra pytest arguments for the tests workload (e.g. '-k mm')")
    p.add_argument("--test-sample", type=int, default=0,
                   help="tests workload: run at most N parametrizations of each test function, evenly spread (0: all)")
    p.add_argument("--test-budget", type=float, default=0,
                   help="tests workload: stop a test after this many CPU seconds (its launches so far are kept)")
    p.add_argument("--capture", default=None, help="reuse capture JSON file(s) written by earlier runs, comma-separated (merged; no workload runs)")
    p.add_argument("--capture-only", action="store_true", help="capture and save, compile nothing")
    p.add_argument("--sample", type=int, default=0,
                   help="compile at most N specializations per kernel (0: all); the report lists what was skipped")
    p.add_argument("--cache", default=None, help="compile-result cache directory (default ~/.cache/flaggems/aot)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the compile-result cache")
    p.add_argument("--timeout", type=float, default=900, help="seconds one compile may take before it is killed")
    p.add_argument("--report-only", action="store_true", help="exit 0 even when the gate finds failures")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from . import gate

    return gate.run(args)
