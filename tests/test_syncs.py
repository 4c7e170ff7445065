"""flaggems.testing.count_syncs: device->host reads, attributed to flaggems code or not, per op and segment.

On the cpu vendor the CPU is the device, so host reads of CPU tensors count (what a GPU run would pay);
tests/simdevice/test_syncs_fgsim.py covers a device whose tensors are not CPU tensors.
"""
import os
import threading

import numpy as np
import pytest
import torch

import flaggems
from flaggems import registry, vendors
from flaggems.testing import count_syncs, syncs as S, uncounted

FLAGGEMS_DIR = os.path.dirname(os.path.abspath(flaggems.__file__))


def _flaggems_function(body: str, name: str = "probe"):
    """A function whose code object lives in a file of the flaggems package (attribution is by file)."""
    src = f"def {name}(t):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    ns = {}
    exec(compile(src, os.path.join(FLAGGEMS_DIR, "ops", "_sync_probe.py"), "exec"), ns)
    return ns[name]


def test_every_kind_of_host_read_counts_from_the_caller():
    t = torch.arange(6.0).reshape(2, 3)
    with count_syncs() as c:
        t[0, 0].item()
        t.tolist()
        bool(t[0, 1])
        int(t[0, 1])
        float(t[0, 1])
        range(10)[t[0, 1].long()]          # __index__
        t.numpy()
        np.asarray(t)                       # __array__ -> numpy()
        t.cpu()
        t.to("cpu")
        t.to(torch.empty(0))                # to(other tensor on cpu)
        torch.equal(t, t)
        t.allclose(t)
        t.to(torch.float64)                 # a dtype conversion stays on the device: not a read
    assert c.flaggems() == 0
    kinds = c.by_kind(origin=None)
    assert kinds == {"item": 1, "tolist": 1, "bool": 1, "int": 1, "float": 1, "index": 1, "numpy": 2, "cpu": 1,
                     "to(cpu)": 2, "equal": 1, "allclose": 1}
    assert all(site.startswith(__file__) for site in c.by_site("other"))


def test_reads_from_flaggems_code_are_attributed_to_it():
    probe = _flaggems_function("return int(t.sum()) + len(t.tolist())")
    t = torch.ones(4)
    with count_syncs() as c:
        probe(t)
        t[0].item()
    assert c.flaggems() == 2 and c.other() == 1
    assert set(c.by_site()) == {f"flaggems{os.sep}ops{os.sep}_sync_probe.py:2 probe"}
    assert c.by_kind() == {"int": 1, "tolist": 1}


def test_reads_inside_a_dispatched_op_name_the_op():
    """The op being dispatched when flaggems code read a value (a read deep inside an override)."""
    probe = _flaggems_function("flag = t.sum()\nif bool(flag):\n    pass\nreturn t.clone()")
    lib = torch.library.Library("fgsynctest", "DEF")
    try:
        lib.define("probe(Tensor t) -> Tensor")
        lib.impl("probe", probe, "CompositeExplicitAutograd")
        with count_syncs() as c:
            torch.ops.fgsynctest.probe(torch.ones(3))
    finally:
        lib._destroy()
    assert c.by_op() == {"fgsynctest::probe.default": 1}


def test_op_names_from_a_callers_tracker():
    """record() knows the op it is dispatching: it passes current_op and no second dispatch mode is pushed."""
    probe = _flaggems_function("return t.tolist()")
    with count_syncs(current_op=lambda: "aten::fake.default") as c:
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        assert _get_current_dispatch_mode() is None
        probe(torch.ones(2))
    assert c.by_op() == {"aten::fake.default": 1}


def test_a_flaggems_index_op_sync_is_seen():
    """Today's indexing ops read a device-side error flag after each launch (issue 15 removes it on devices):
    whatever their number, every one of them is flaggems' and belongs to the index op."""
    x, i = torch.randn(8, 4), torch.tensor([0, 3, 5])
    with flaggems.use_gems(), count_syncs() as c:
        x[i]
    assert set(c.by_op()) <= {"aten::index.Tensor"}
    assert all(site.startswith(f"flaggems{os.sep}ops{os.sep}") for site in c.by_site())


def test_segments_split_the_counts():
    t = torch.ones(2)
    with count_syncs() as c:
        t.tolist()
        assert c.mark("first") == 0
        t.tolist()
        t.tolist()
        c.mark("second")
    assert c.per_segment(origin=None) == [1, 2, 0]
    assert c.marks == ["first", "second"]
    assert c.summary()["other_per_segment"] == [1, 2, 0]


def test_uncounted_and_nesting():
    t = torch.ones(2)
    with count_syncs() as outer:
        with uncounted():
            t.tolist()
        with count_syncs() as inner:
            t.tolist()
        t.tolist()
    assert outer.total() == 2 and inner.total() == 1


def test_wrappers_removed_on_exit_and_errors_propagate():
    with pytest.raises(ValueError):
        with count_syncs():
            assert torch.Tensor.item is not torch._C.TensorBase.item
            raise ValueError("boom")
    assert "item" not in torch.Tensor.__dict__ and torch.Tensor.item is torch._C.TensorBase.item
    assert torch.equal is S._saved.get((torch, "equal"), torch.equal)
    assert not S._saved


def test_other_threads_are_not_counted():
    t = torch.ones(2)
    with count_syncs() as c:
        th = threading.Thread(target=lambda: [t.tolist() for _ in range(5)])
        th.start()
        th.join()
        t.tolist()
    assert c.total() == 1


def test_host_tensors_do_not_count_on_an_accelerator_vendor():
    """With a vendor whose device is not the CPU, a CPU tensor is host memory: reading it is free."""
    t = torch.ones(2)
    with registry.override_vendor(vendors.builtin("nvidia")):
        with count_syncs() as c:
            t.tolist()
            t[0].item()
    assert c.total() == 0
