"""count_syncs on a device whose tensors are not CPU tensors: device reads count, host reads do not, and the
interpreter's own host copies (simulation machinery) are not syncs."""
import torch

import flaggems
from flaggems.testing import count_syncs


def test_device_reads_count_and_host_reads_do_not(fgsim):
    d = torch.arange(4.0).to(fgsim)
    h = torch.arange(4.0)
    host_buf = torch.empty(4)
    with count_syncs() as c:
        d[1].item()
        d.tolist()
        d.cpu()
        host_buf.copy_(d)            # device -> host copy
        d.copy_(h)                   # host -> device: no wait on the device
        h.tolist()
        h[0].item()
        bool(h[1])
    assert c.by_kind(origin=None) == {"item": 1, "tolist": 1, "cpu": 1, "copy_(cpu)": 1}


def test_kernel_launches_are_not_syncs(fgsim):
    """A Triton-served op copies its arguments to the host inside the interpreter: that is how the simulation
    runs a kernel, not a read flaggems' code issues."""
    x = torch.randn(16, 8).to(fgsim)
    with flaggems.use_gems(), flaggems.record() as rep, count_syncs() as c:
        y = torch.softmax(x, -1) * 2.0
    assert rep.served_by("_softmax") and y.device.type == "fgsim"
    assert c.total() == 0
