"""The fgsim backend itself: exactly the runtime ops a vendor provides, and each of them behaves like torch's."""
import pytest
import torch

import flaggems
from flaggems.testing import simdevice


def _aten_ops_at(key):
    names = torch._C._dispatch_get_all_op_names()
    return {n for n in names if n.startswith("aten::") and torch._C._dispatch_has_kernel_for_dispatch_key(n, key)}


def _aten_ops_at_privateuse1():
    return _aten_ops_at("PrivateUse1")


def _same_bytes(a, b):
    """Bitwise equality (fp8 has no == on CPU); both sides made contiguous on the host."""
    a, b = a.cpu().contiguous(), b.cpu().contiguous()
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_every_per_backend_pure_view_is_registered():
    """Views with a composite kernel work on any backend through as_strided; the ones whose only kernels are
    per backend (CPU's being pure metadata) must come from the device runtime, or a model would fail on a view."""
    missing = []
    for name in torch._C._dispatch_get_all_op_names():
        base, _, overload = name.partition("::")[2].partition(".")
        if not name.startswith("aten::") or "nested" in base:
            continue
        rets = torch._C._get_schema(f"aten::{base}", overload).returns
        if not rets or not all(r.alias_info is not None and not r.alias_info.is_write for r in rets):
            continue
        has = lambda key: torch._C._dispatch_has_kernel_for_dispatch_key(name, key)  # noqa: E731
        composite = any(has(k) for k in ("CompositeExplicitAutograd", "CompositeImplicitAutograd",
                                         "CompositeExplicitAutogradNonFunctional"))
        if has("CPU") and not composite and name not in simdevice.REGISTERED_ATEN_OPS:
            missing.append(name)
    assert not missing


def test_registered_op_set_is_exactly_the_runtime_ops():
    """Nothing that computes is registered: with flaggems disabled, the aten kernels at PrivateUse1 are
    exactly the memory/metadata ops the module declares (torch itself registers none there)."""
    flaggems.disable()
    assert _aten_ops_at_privateuse1() == set(simdevice.REGISTERED_ATEN_OPS)
    # and the fallthroughs that let conj/neg views reach _copy_from (torch registers none of these itself)
    for key in ("Conjugate", "Negative"):
        ours = {op for op, k in simdevice.REGISTERED_FALLTHROUGHS if k == key}
        assert ours <= _aten_ops_at(key)
        assert all(not op.startswith("aten::_copy_from") for op in _aten_ops_at(key) - ours)


def test_enable_adds_exactly_the_patched_ops_and_disable_removes_them():
    flaggems.enable()
    patched = {q.replace(".default", "") for q in flaggems.registered_ops()}
    assert patched  # flaggems registered its overrides at PrivateUse1
    assert _aten_ops_at_privateuse1() == set(simdevice.REGISTERED_ATEN_OPS) | patched
    flaggems.disable()
    assert _aten_ops_at_privateuse1() == set(simdevice.REGISTERED_ATEN_OPS)


def test_device_identity(fgsim):
    assert simdevice.is_loaded()
    assert torch._C._get_privateuse1_backend_name() == "fgsim"
    assert torch.fgsim.is_available() and torch.fgsim.device_count() == 2
    t = torch.empty(3, device=fgsim)
    assert t.device == torch.device("fgsim", 0) and t.is_fgsim and not t.is_cpu
    assert t.untyped_storage().device.type == "fgsim"


def test_missing_compute_op_fails_with_torchs_error(fgsim):
    """No native compute: with flaggems off an add has no kernel, and an op flaggems lacks fails even with
    flaggems on — torch's own message, naming the op and the backend."""
    x = torch.ones(4).to(fgsim)
    flaggems.disable()
    with pytest.raises(NotImplementedError, match=r"Could not run 'aten::add\.out' with arguments from the 'fgsim' backend"):
        x + x
    with flaggems.use_gems():
        with pytest.raises(NotImplementedError, match=r"Could not run 'aten::_fft_r2c' with arguments from the 'fgsim'"):
            torch.fft.rfft(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.float8_e4m3fn])
def test_round_trip_and_strided_copies(fgsim, dtype):
    src = (torch.arange(60).reshape(5, 12) % 7).to(dtype)
    d = src.to(fgsim)
    assert d.device.type == "fgsim" and _same_bytes(d, src)
    # non-contiguous host -> device, device -> host, and within the device (copy_ reaches _copy_from)
    assert _same_bytes(src.t().to(fgsim), src.t())
    dst = torch.empty(12, 5, dtype=dtype, device=fgsim)
    dst.copy_(d.t())
    assert _same_bytes(dst, src.t())
    host = torch.empty(5, 6, dtype=dtype)
    host.copy_(d[:, ::2])
    assert _same_bytes(host, src[:, ::2])


def test_copy_converts_dtypes_and_views_alias(fgsim):
    x = torch.randn(4, 6)
    d = x.to(fgsim)
    h = torch.empty(4, 6, dtype=torch.float64).to(fgsim)
    h.copy_(d)                                     # fp32 -> fp64 within the device
    assert torch.equal(h.cpu(), x.double())
    v = d.view(2, 12)                              # view / as_strided / _reshape_alias share storage
    s = d.as_strided((3,), (7,), 1)
    assert v.untyped_storage().data_ptr() == d.untyped_storage().data_ptr()
    assert torch.equal(s.cpu(), x.reshape(-1)[1::7][:3])
    u = d.unfold(1, 3, 2)                          # sliding windows: a view
    assert u.shape == (4, 2, 3) and torch.equal(u.cpu(), x.unfold(1, 3, 2))
    c = torch.view_as_complex(d.view(4, 3, 2))
    assert c.dtype == torch.complex64 and torch.equal(torch.view_as_real(c).cpu(), x.view(4, 3, 2))
    d[1].copy_(torch.zeros(6))                     # a host -> device copy into a view writes the base
    assert torch.equal(d.cpu()[1], torch.zeros(6)) and torch.equal(d.cpu()[0], x[0])


def test_conj_and_neg_views_copy_like_cpu(fgsim):
    z = torch.randn(5, dtype=torch.complex64)
    d = z.to(fgsim)
    host = torch.empty(5, dtype=torch.complex64)
    host.copy_(d.conj())                           # device conj view -> host
    assert torch.equal(host, z.conj().resolve_conj())
    back = torch.empty(5, dtype=torch.complex64, device=fgsim)
    back.copy_(z.conj())                           # host conj view -> device
    assert torch.equal(back.cpu(), z.conj().resolve_conj())
    neg = torch.empty(5, dtype=torch.complex64)
    neg.copy_(d.conj().imag)                       # imag of a conj view is a neg view (real dtype)
    assert torch.equal(neg.real, -z.imag)


def test_local_scalar_dense(fgsim):
    x = torch.tensor([2.5, -1.0]).to(fgsim)
    assert x[0].item() == 2.5 and float(x[1]) == -1.0 and bool(x[0])
    assert torch.tensor(7, dtype=torch.int64).to(fgsim).item() == 7


def test_resize_and_set(fgsim):
    t = torch.empty(0, device=fgsim)
    t.resize_(10)
    assert t.shape == (10,) and t.device.type == "fgsim"
    t.copy_(torch.arange(10.0))
    u = torch.empty(0, device=fgsim).set_(t.untyped_storage(), 2, (2, 3), (3, 1))
    assert torch.equal(u.cpu(), torch.arange(2.0, 8.0).reshape(2, 3))
    w = torch.empty(0, device=fgsim).set_(t)
    assert w.data_ptr() == t.data_ptr()
    t.set_()
    assert t.numel() == 0 and t.device.type == "fgsim"


def test_storage_resize_keeps_prefix(fgsim):
    d = torch.arange(4, dtype=torch.float32).to(fgsim)
    st = d.untyped_storage()
    st.resize_(32)
    assert st.nbytes() == 32
    assert torch.equal(torch.empty(0, device=fgsim).set_(st, 0, (4,), (1,)).cpu(), torch.arange(4.0))


def test_allocator_accounts_per_device(fgsim):
    before0, before1 = torch.fgsim.memory_allocated(0), torch.fgsim.memory_allocated(1)
    a = torch.empty(1000, dtype=torch.float32, device="fgsim:1")
    assert a.device == torch.device("fgsim", 1)
    assert torch.fgsim.memory_allocated(1) == before1 + 4000
    assert torch.fgsim.memory_allocated(0) == before0
    del a
    assert torch.fgsim.memory_allocated(1) == before1


def test_device_guard_and_cross_device_copy(fgsim):
    assert torch.fgsim.current_device() == 0
    with torch.fgsim.device(1):
        assert torch.fgsim.current_device() == 1
        t = torch.empty(3, device="fgsim")
        assert t.device.index == 1
    assert torch.fgsim.current_device() == 0
    x = torch.randn(3, 4)
    y = x.to("fgsim:0").to("fgsim:1")
    assert y.device.index == 1 and torch.equal(y.cpu(), x)
    with pytest.raises(RuntimeError, match="out of range"):
        torch.empty(1, device="fgsim:2")


def test_accelerator_api_sees_the_device():
    """torch.accelerator (device-generic code, e.g. in transformers) reaches the hooks."""
    assert torch.accelerator.is_available() and torch.accelerator.current_accelerator().type == "fgsim"
    assert torch.accelerator.device_count() == 2
    with torch.accelerator.device_index(1):
        assert torch.accelerator.current_device_index() == 1 == torch.fgsim.current_device()
    assert torch.accelerator.current_device_index() == 0
    # maybeExchangeDevice: an index that names no device leaves the current one
    assert torch._C._accelerator_hooks_maybe_exchange_device(5) == 0
    assert torch.fgsim.current_device() == 0
    torch.accelerator.synchronize()


def test_autograd_keys_and_metadata(fgsim):
    w = torch.randn(3, 3).to(fgsim).requires_grad_()
    assert w.is_leaf and w.requires_grad
    assert torch._C._dispatch_keys(w).has(torch._C.DispatchKey.AutogradPrivateUse1)


def test_generator_and_events(fgsim):
    torch.manual_seed(123)                          # seeds every fgsim device through torch.fgsim.manual_seed_all
    assert torch.fgsim.initial_seed() == 123
    g = torch.Generator(device=fgsim)
    assert g.device.type == "fgsim"
    start, end = torch.Event(fgsim, enable_timing=True), torch.Event(fgsim, enable_timing=True)
    start.record()
    end.record()
    end.synchronize()
    assert start.query() and start.elapsed_time(end) >= 0.0
    assert torch.fgsim.get_amp_supported_dtype() == [torch.float16, torch.bfloat16]


def test_no_rng_kernels(fgsim):
    flaggems.disable()
    with pytest.raises(NotImplementedError, match="Could not run 'aten::normal_'"):
        torch.randn(3, device=fgsim)
