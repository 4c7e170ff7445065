"""Adversarial sweep: every registered ATen overload against native torch, on hostile inputs.

Usable by vendors to probe their device (``python -m flaggems.testing.adversarial``) and by the test suite
(tests/test_adversarial.py). The contract checked for each sample (a call in the language of :mod:`.inputs`,
printable as a repro), flaggems patched for just the op under test, native = flaggems disabled:

- native raises -> flaggems raises the **same exception class** (never returns a plausible number);
- native returns -> same result structure, dtypes, shapes, aliasing (out=/in-place return their target) and
  argument tensors after the call; NaN/Inf at the same positions with the same signs; finite floats within
  :func:`flaggems.testing.tolerance` (dtype, reduction length); ints and bools exact; sort/topk ties either way;
- a float disagreement where flaggems is within tolerance of an fp64 run and native is not is reported as
  ``native_less_accurate``; flaggems serving what torch has no kernel for here is ``beyond_native``;
- a sample counts only if ``record()`` shows a flaggems kernel served it (``not_served`` otherwise).

Modules: :mod:`.inputs` (seeded builders), :mod:`.calls` (a valid base call per overload, from its schema),
:mod:`.categories` (out-of-range dims, overflowing scalars, NaN/Inf, empty, zero-stride, sizes, non-contiguous,
overlap, devices, mixed dtypes), :mod:`.opinfo` (PyTorch's OpInfo samples/error/reference inputs),
:mod:`.compare` (outcomes and the contract), :mod:`.sweep` (samples, results, report), :mod:`.known`
(issue 13's findings, so only *new* mismatches fail).
"""
from .calls import Call, NoSeed, build
from .categories import CATEGORIES
from .compare import Outcome, Verdict, compare, run
from .known import KNOWN, Known, match
from .sweep import Report, Result, Sample, aten_ops, run_sample, samples, select_ops, sweep

__all__ = ["Call", "NoSeed", "build", "CATEGORIES", "Outcome", "Verdict", "compare", "run", "KNOWN", "Known",
           "match", "Report", "Result", "Sample", "aten_ops", "run_sample", "samples", "select_ops", "sweep"]
