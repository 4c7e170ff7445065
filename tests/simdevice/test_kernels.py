"""Kernels on fgsim tensors: Triton through the interpreter (whose host copies go through the device's
_copy_from) and the C++ kernels (which read device memory directly: it is host memory)."""
import pytest
import torch
import triton
import triton.language as tl

import flaggems
from flaggems.cpp import _ext


@triton.jit
def _scaled_copy(src, dst, n, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst + offs, tl.load(src + offs, mask=mask) * scale, mask=mask)


def test_interpreter_reads_and_writes_views_of_one_device_storage(fgsim):
    """Source and destination are disjoint views of the same fgsim storage, at offsets: the interpreter copies
    the storage to the host once, runs, and copies it back; the bytes outside the written range survive."""
    base = torch.arange(40, dtype=torch.float32).to(fgsim)
    src, dst = base[3:13], base[20:30]
    _scaled_copy[(3,)](src, dst, 10, 2.0, BLOCK=4)
    expect = torch.arange(40, dtype=torch.float32)
    expect[20:30] = expect[3:13] * 2
    assert base.device.type == "fgsim" and torch.equal(base.cpu(), expect)


def test_interpreter_mixed_host_and_device_arguments(fgsim):
    host = torch.arange(8, dtype=torch.float32)
    dev = torch.empty(8, device=fgsim)
    _scaled_copy[(1,)](host, dev, 8, -1.0, BLOCK=8)
    assert torch.equal(dev.cpu(), -host)


def test_flaggems_triton_op_keeps_results_on_the_device(fgsim):
    x = torch.randn(33, 17)
    with flaggems.use_gems(), flaggems.record() as rep:
        y = torch.softmax(x.to(fgsim), dim=-1)
    assert y.device.type == "fgsim"
    assert rep.served_by("_softmax") == {"triton": 1}
    torch.testing.assert_close(y.cpu(), torch.softmax(x, dim=-1), rtol=1e-6, atol=1e-7)


def test_cpp_kernels_accept_host_memory_devices_only(fgsim):
    _ext.require_cpu("op", a=torch.empty(2), b=torch.empty(2, device=fgsim), c=None)
    assert _ext.host_addressable(torch.empty(1, device=fgsim))
    with pytest.raises(ValueError, match="must be in host memory"):
        _ext.require_cpu("op", a=torch.empty(2, device="meta"))
