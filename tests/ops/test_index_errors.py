"""Out-of-range indices: torch's exception classes (eager on the cpu vendor), and no host sync on an accelerator
vendor (deferred check, flaggems/ops/index_errors.py).

The accelerator is a test vendor whose device type is not "cpu" (the kernels still run through the interpreter on
CPU tensors). The registry serves only tensors of the vendor's device type, so the accelerator tests call the op
implementations directly; the sync counter below counts host reads issued from flaggems' ops whatever the
tensors' device (a CPU tensor stands for device memory here).
"""
import contextlib
import dataclasses
import os
import sys

import pytest
import torch

from flaggems import registry, vendors
from flaggems.ops import advanced_index, gather_scatter, index_errors, index_select, minmax, softmax, sort, sum_mean
from flaggems.testing import run_gems

OPS_DIR = os.path.dirname(os.path.abspath(index_errors.__file__)) + os.sep
_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def host_reads():
    """Count host reads of tensor values (``.item()``, ``.tolist()``, ``bool(t)``, ...) issued from flaggems/ops."""
    sites = []
    saved = {name: torch.Tensor.__dict__.get(name) for name in _READS}

    def wrap(name, fn):
        def wrapper(self, *a, **k):
            f = sys._getframe(1)
            if f.f_code.co_filename.startswith(OPS_DIR):
                sites.append(f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} {name}")
            return fn(self, *a, **k)
        return wrapper
    for name in _READS:
        setattr(torch.Tensor, name, wrap(name, getattr(torch.Tensor, name)))
    try:
        yield sites
    finally:
        for name, fn in saved.items():
            if fn is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, fn)


ACCEL = dataclasses.replace(vendors.builtin("cpu"), name="test-accelerator", device_type="testaccel")


@pytest.fixture
def accelerator(monkeypatch):
    monkeypatch.delenv("FLAGGEMS_INDEX_CHECK", raising=False)
    with registry.override_vendor(ACCEL):
        index_errors.check()          # start from a clean record
        yield
        index_errors.pending()


def _decode_step(table, hidden, ids, kv, slot, scores):
    """A decode-like sequence of the index / reduction / softmax / sort ops (direct calls, see the docstring)."""
    h = index_select.embedding(table, ids)                                       # token embedding
    rows = index_select.index_select(hidden, 0, ids)
    kv = advanced_index.index_put_(kv, [slot], h, False)                        # KV-cache write
    kv_rows = advanced_index.index(kv, [slot])
    probs = softmax.softmax(scores, -1, False)
    vals, idx = sort.topk(probs, 2, -1, True, True)                              # routing
    w = gather_scatter.gather(probs, 1, idx)
    acc = index_select.index_add(torch.zeros_like(hidden), 0, ids, rows)        # combine
    acc = gather_scatter.scatter_add(acc, 0, idx[:, :1].expand(-1, hidden.size(1)).contiguous(), rows)
    s = sum_mean.sum_dim(acc, [1], False) + minmax.amax(kv_rows, [1], False).sum() + w.sum()
    return s, vals


def _inputs(bad=False):
    torch.manual_seed(0)
    table = torch.randn(16, 8)
    hidden = torch.randn(16, 8)
    ids = torch.tensor([3, 16 if bad else 5])
    kv = torch.zeros(10, 8)
    slot = torch.tensor([4, 7])
    scores = torch.randn(2, 16)
    return table, hidden, ids, kv, slot, scores


def test_decode_step_issues_no_host_sync_on_an_accelerator_vendor(accelerator):
    """Issue 15 item 1: index-bound checks used to read a device flag with .item() after every index op."""
    with host_reads() as sites:
        _decode_step(*_inputs())
        _decode_step(*_inputs(bad=True))     # a bad index is recorded, still no read
    assert sites == []
    with pytest.raises(IndexError, match="index out of range in self"):
        index_errors.check()


def test_the_counter_sees_the_eager_reads(accelerator, monkeypatch):
    """The same step with FLAGGEMS_INDEX_CHECK=sync (the debug mode) reads the record after every index op: the
    counter is not blind."""
    monkeypatch.setenv("FLAGGEMS_INDEX_CHECK", "sync")
    with host_reads() as sites:
        _decode_step(*_inputs())
    assert len(sites) >= 6 and all("index_errors.py" in s for s in sites), sites


def test_deferred_error_is_masked_recorded_and_raised_once(accelerator):
    x = torch.arange(12.0).reshape(4, 3)
    got = index_select.index_select(x, 0, torch.tensor([1, 9, 2]))
    assert torch.equal(got[1], torch.zeros(3)) and torch.equal(got[0], x[1]) and torch.equal(got[2], x[2])
    y = x.clone()
    gather_scatter.scatter__src(y, 0, torch.tensor([[7, 0, 0]]), torch.full((1, 3), -1.0))
    assert torch.equal(y[:, 0], x[:, 0]) and y[0, 1] == -1 and y[0, 2] == -1   # the bad element is not written
    # the first error wins the record; later ones are only counted
    assert [type(e) for _, e in index_errors.pending()] == [IndexError]
    with pytest.raises(IndexError, match="index out of range in self"):
        index_errors.check()
    index_errors.check()                # cleared: nothing left to raise
    advanced_index.index(x, [torch.tensor([0, -6])])
    with pytest.raises(IndexError, match="index -6 is out of bounds for dimension 0 with size 4"):
        index_errors.check()
    index_select.index_add_(x.clone(), 1, torch.tensor([3]), torch.ones(4, 1))
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 1 with size 3"):
        index_errors.check()


def test_deferred_multi_index_and_empty_result(accelerator):
    x = torch.arange(12.0).reshape(4, 3)
    out = advanced_index.index(x, [torch.tensor([1, 2]), torch.tensor([0, 5])])
    assert out.tolist() == [3.0, 0.0]
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 1 with size 3"):
        index_errors.check()
    # nothing to read, but torch still validates the index: checked on the device too
    e = torch.empty(4, 0)
    assert advanced_index.index(e, [torch.tensor([9])]).shape == (1, 0)
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 0 with size 4"):
        index_errors.check()


def test_index_check_off_masks_without_recording(accelerator, monkeypatch):
    monkeypatch.setenv("FLAGGEMS_INDEX_CHECK", "0")
    x = torch.arange(6.0).reshape(3, 2)
    assert index_select.index_select(x, 0, torch.tensor([5])).tolist() == [[0.0, 0.0]]
    assert index_errors.pending() == []


@pytest.mark.parametrize("make, exc, msg", [
    (lambda x: x.index_add(0, torch.tensor([0, 5]), torch.ones(2, 3)), RuntimeError,
     "index 5 is out of bounds for dimension 0 with size 4"),
    (lambda x: x.clone().index_add_(0, torch.tensor([-1]), torch.ones(1, 3)), RuntimeError,
     "index -1 is out of bounds for dimension 0 with size 4"),
    (lambda x: torch.index_add(x, 1, torch.tensor([3]), torch.ones(4, 1), out=torch.empty(4, 3)), RuntimeError,
     "index 3 is out of bounds for dimension 1 with size 3"),
    (lambda x: x.index_select(0, torch.tensor([0, 4])), IndexError, "index out of range in self"),
    (lambda x: x.gather(1, torch.tensor([[0], [3], [0], [0]])), RuntimeError,
     "index 3 is out of bounds for dimension 1 with size 3"),
    (lambda x: x[torch.tensor([0, 4])], IndexError, "index 4 is out of bounds for dimension 0 with size 4"),
    (lambda x: x.clone().index_put_((torch.tensor([4]),), torch.tensor(1.0), accumulate=True), IndexError,
     "index 4 is out of bounds for dimension 0 with size 4"),
])
def test_eager_errors_match_torch_on_the_cpu_vendor(make, exc, msg):
    """Issue 13 finding 15 (index_add raised IndexError; torch raises RuntimeError) and its siblings: the class and
    message torch's CPU kernels give, raised at the call."""
    x = torch.randn(4, 3)
    with pytest.raises(exc, match=msg):
        make(x)
    with pytest.raises(exc, match=msg):
        run_gems(make, x)


@pytest.mark.parametrize("make", [
    lambda: torch.empty(0, 3).index_add(0, torch.tensor([0]), torch.ones(1, 3)),          # torch returns self
    lambda: torch.empty(0, 3).index_select(0, torch.tensor([0])),                        # RuntimeError
    lambda: torch.nn.functional.embedding(torch.tensor([0]), torch.empty(0, 3)),          # RuntimeError
    lambda: torch.empty(4, 0).index_select(0, torch.tensor([9])),                        # RuntimeError
])
def test_empty_tables_follow_torch(make):
    """Adversarial siblings S5/S6 of finding 15: an empty self/table behaves (value or exception class) as torch."""
    try:
        want = make()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        with pytest.raises(type(e)):
            run_gems(make)
    else:
        got, _ = run_gems(make)
        assert got.shape == want.shape
