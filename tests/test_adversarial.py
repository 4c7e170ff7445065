"""Adversarial sweep (issue 13, "Also build"): every registered ATen overload against native torch on hostile
inputs — out-of-range dims, overflowing scalars, NaN/Inf, empty/zero-stride/odd-size/non-contiguous operands,
overlapping out=/in-place targets, meta operands, mixed dtypes (flaggems.testing.adversarial).

- The harness's own checks come first: a contract that cannot fail would prove nothing.
- Default run: a seeded subset of overloads (``FLAGGEMS_ADVERSARIAL_OPS``: how many, or ``all``;
  ``FLAGGEMS_ADVERSARIAL_SEED``: which). Any *new* mismatch fails, with its repro.
- ``--run-slow``: the full sweep, one test per overload.
- Each known finding has its repro as ``xfail(strict=True)``: fixing it flips the test, and the entry in
  flaggems/testing/adversarial/known.py must then go.
"""
import os
import random

import pytest
import torch

import flaggems  # noqa: F401  (vendor first)
from flaggems.testing import adversarial as adv
from flaggems.testing.adversarial import calls, known
from flaggems.testing.adversarial.compare import Outcome, compare
from flaggems.testing.adversarial.sweep import Result

ALL_OPS = adv.aten_ops()
_N = os.environ.get("FLAGGEMS_ADVERSARIAL_OPS", "16")
_SEED = int(os.environ.get("FLAGGEMS_ADVERSARIAL_SEED", "0"))
SUBSET = ALL_OPS if _N == "all" else sorted(random.Random(_SEED).sample(ALL_OPS, min(int(_N), len(ALL_OPS))))


def _fail_on_new(rep):
    new = rep.new_mismatches()
    if new:
        lines = [f"{len(new)} new adversarial mismatch(es) (not in flaggems/testing/adversarial/known.py):"]
        for r in new[:12]:
            lines += [f"- {r.op} [{r.category}/{r.dtype}] {r.label}", f"  native:   {r.native}",
                      f"  flaggems: {r.flaggems}", f"  why:      {r.why[:400]}", "  repro:", "    " +
                      r.repro.replace("\n", "\n    ")]
        pytest.fail("\n".join(lines), pytrace=False)


# ------------------------------------------------------------------------------------------------------------
# the harness can fail

def _outcome(*leaves, error=None):
    return Outcome(error=error, leaves=list(leaves), aliases=tuple(None for _ in leaves))


CALL = calls.Call("aten::add.Tensor", ())


def test_contract_flags_nan_in_the_wrong_place_and_inf_of_the_wrong_sign():
    n = torch.tensor([1.0, float("nan"), float("inf")])
    assert compare(CALL, _outcome(n), _outcome(n.clone())).status == "ok"
    assert compare(CALL, _outcome(n), _outcome(torch.tensor([float("nan"), 1.0, float("inf")]))).status == "mismatch"
    assert compare(CALL, _outcome(n), _outcome(torch.tensor([1.0, float("nan"), -float("inf")]))).status == "mismatch"
    assert compare(CALL, _outcome(n), _outcome(torch.tensor([1.0, 2.0, float("inf")]))).status == "mismatch"


def test_contract_wants_the_same_exception_class_and_never_a_number_where_torch_raises():
    raised = _outcome(error=IndexError("Dimension out of range"))
    assert compare(CALL, raised, _outcome(error=IndexError("other words"))).status == "ok"
    assert compare(CALL, raised, _outcome(error=RuntimeError("Dimension out of range"))).status == "mismatch"
    assert compare(CALL, raised, _outcome(torch.zeros(2))).status == "mismatch"
    assert compare(CALL, _outcome(torch.zeros(2)), raised).status == "mismatch"


def test_contract_checks_dtype_shape_and_what_out_returns():
    t = torch.zeros(2, 3)
    assert compare(CALL, _outcome(t), _outcome(t.double())).status == "mismatch"
    assert compare(CALL, _outcome(t), _outcome(t.reshape(3, 2))).status == "mismatch"
    native = Outcome(leaves=[t], aliases=(0,))           # an out= op returns its out tensor ...
    fresh = Outcome(leaves=[t.clone()], aliases=(None,))  # ... not a new one
    assert compare(CALL, native, fresh).status == "mismatch"


def test_a_sample_native_serves_counts_as_not_served():
    # cos has no integer kernel in flaggems: the call falls back, which proves nothing about our kernels
    c = calls.build("aten::cos.default", torch.int32)
    r = adv.run_sample(adv.Sample("aten::cos.default", "valid", "int32", "base call", c))
    assert r.status == "not_served", r


def test_a_served_sample_passes_and_its_source_is_its_repro():
    c = calls.build("aten::add.Tensor", torch.float32)
    r = adv.run_sample(adv.Sample("aten::add.Tensor", "valid", "float32", "base call", c))
    assert r.status == "ok" and r.served_by == "triton", r
    ns = dict(adv.inputs.NAMESPACE)
    exec(r.repro.replace("torch.ops.aten.add.Tensor(", "out = torch.ops.aten.add.Tensor(", 1), ns)
    fn, args, kwargs = c.evaluate()
    assert torch.equal(ns["out"], fn(*args, **kwargs))


def test_every_registered_overload_is_swept_or_its_gap_is_stated():
    gaps = []
    for q in ALL_OPS:
        try:
            calls.build(q, calls.dtypes_for(q)[0])
        except calls.NoSeed:
            gaps.append(q.split("::")[1].split(".")[0])
    assert set(gaps) == set(calls.NO_SEED), sorted(set(gaps) ^ set(calls.NO_SEED))


def test_known_entries_are_well_formed():
    ids = [k.id for k in known.KNOWN]
    assert len(ids) == len(set(ids)), "duplicate finding ids"
    for k in known.KNOWN:
        assert k.category in adv.CATEGORIES + ("*", "opinfo", "opinfo_error", "opinfo_reference"), k
        assert k.repro is not None, f"{k.id} has no repro sample"
        if isinstance(k.repro, calls.Call):
            assert k.repro.op in ALL_OPS, k.repro
            continue
        op, cat, dt, label = k.repro
        assert op in ALL_OPS and cat in adv.CATEGORIES, k.repro


# ------------------------------------------------------------------------------------------------------------
# the sweep

@pytest.mark.parametrize("op", SUBSET)
def test_sweep_subset(op):
    _fail_on_new(adv.sweep([op]))


@pytest.mark.slow
@pytest.mark.parametrize("op", ALL_OPS)
def test_sweep_all(op):
    _fail_on_new(adv.sweep([op]))


# ------------------------------------------------------------------------------------------------------------
# known findings: strict xfails that flip when fixed

def _known_params():
    out = []
    for k in known.KNOWN:
        origin = f"issue 13 finding {k.id}" if k.id.startswith("13.") else \
            f"sweep finding {k.id}" + (f" (sibling of issue 13 finding {k.sibling_of})" if k.sibling_of else "")
        where = k.repro.op if isinstance(k.repro, calls.Call) else k.repro[0]
        out.append(pytest.param(k, id=f"{k.id}-{where.split('::')[1]}-{k.category}",
                                marks=pytest.mark.xfail(strict=True, reason=f"{origin}: {k.what}")))
    return out


@pytest.mark.parametrize("k", _known_params())
def test_known_finding(k):
    if isinstance(k.repro, calls.Call):
        sample = adv.Sample(k.repro.op, k.category, (k.dtypes or ("float32",))[0], k.id, k.repro)
    else:
        op, cat, dt, label = k.repro
        found = [s for s in adv.samples(op, [cat], [getattr(torch, dt)]) if s.label == label]
        assert found, f"the repro sample of {k.id} is no longer generated: {k.repro}"
        sample = found[0]
    r = adv.run_sample(sample)
    assert r.status in ("ok", "not_served", "native_less_accurate", "beyond_native"), (
        f"{r.op} [{r.category}/{r.dtype}] {r.label}: {r.why}\nnative: {r.native}\nflaggems: {r.flaggems}\n{r.repro}")


# ------------------------------------------------------------------------------------------------------------
# finding 17: where OpInfo samples disagreed, flaggems is the one that agrees with fp64

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finding17_addbmm_bf16_agrees_with_fp64(seed):
    # OpInfo's addbmm shapes and value range; torch's CPU kernel rounds to bf16 after each batch (6-22 ulp
    # off here), flaggems accumulates in fp32 and rounds once
    from flaggems.testing import assert_close, run_gems
    from flaggems.testing.adversarial.inputs import rand

    x = rand((5, 10), torch.bfloat16, seed=10 * seed + 1, low=-9, high=9)
    b1 = rand((5, 5, 5), torch.bfloat16, seed=10 * seed + 2, low=-9, high=9)
    b2 = rand((5, 5, 10), torch.bfloat16, seed=10 * seed + 3, low=-9, high=9)
    ref = torch.addbmm(x.double(), b1.double(), b2.double())
    got, _ = run_gems(torch.addbmm, x, b1, b2, served=["addbmm"])
    assert_close(got, ref, torch.bfloat16, reduce_len=25)
    spacing = ref.to(torch.bfloat16).double().abs().clamp_min(1e-30) * 2.0 ** -7
    assert float(((got.double() - ref).abs() / spacing).max()) <= 1.0, "more than 1 bf16 ulp from fp64"


def test_finding17_sort_bf16_ties_are_the_only_difference():
    # bf16 has many ties: an unstable sort may order them either way (torch's default CPU sort is not stable
    # either); values must match exactly, and stable=True must match torch's stable order exactly
    from flaggems.testing import run_gems
    from flaggems.testing.adversarial.inputs import rand

    x = rand((8000,), torch.bfloat16, seed=3, low=-9, high=9)
    assert x.unique().numel() < 2000          # the input really has ties
    (v, i), _ = run_gems(torch.sort, x, served=["sort"])
    nv, _ = torch.sort(x)
    assert torch.equal(v, nv) and torch.equal(x[i], v)
    (sv, si), _ = run_gems(torch.sort, x, stable=True, served=["sort.stable"])
    assert torch.equal(si, torch.sort(x, stable=True)[1])
