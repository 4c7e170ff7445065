"""The bf16/fp8 numeric fix-up of the Triton interpreter, on its own and through real ops."""
import pytest
import torch
import triton
import triton.language as tl

import flaggems
from flaggems.runtime import interpreter as interp_fix
from flaggems.testing import assert_close, run_gems

pytestmark = pytest.mark.skipif(not flaggems.runtime.interpreting(), reason="interpreter only")


@triton.jit
def _cast_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=m).to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _add_kernel(x_ptr, y_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    # arithmetic in the storage type: bf16 + bf16 must be real float arithmetic, not integer addition
    tl.store(o_ptr + offs, tl.load(x_ptr + offs, mask=m) + tl.load(y_ptr + offs, mask=m), mask=m)


def _special_values():
    return torch.tensor([0.0, -0.0, 1.0, -1.97, 500.0, -500.0, 448.0, 464.0, 449.0, 1e30, -1e30, float("inf"),
                         -float("inf"), float("nan"), 2.0 ** -10, 2.0 ** -20, 57344.0, 61440.0, 3.0e-5, 1.0 + 2 ** -8])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2,
                                   torch.float8_e4m3fnuz, torch.float8_e5m2fnuz])
def test_fp32_to_lowp_cast_matches_torch(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(30000, generator=g) * 100, torch.randn(30000, generator=g) * 1e-3,
                   _special_values()])
    y = torch.empty(x.shape, dtype=dtype)
    _cast_kernel[(triton.cdiv(x.numel(), 65536),)](x, y, x.numel(), BLOCK=65536)
    want = x.to(dtype)
    bits = torch.int16 if dtype.itemsize == 2 else torch.uint8
    a, w = y.view(bits), want.view(bits)
    nan_both = torch.isnan(y.float()) & torch.isnan(want.float())
    bad = (a != w) & ~nan_both
    assert int(bad.sum()) == 0, f"{int(bad.sum())} mismatches, e.g. x={x[bad][:5].tolist()} got " \
                                f"{y[bad][:5].float().tolist()} want {want[bad][:5].float().tolist()}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2])
def test_lowp_to_fp32_cast_is_exact(dtype):
    x = (torch.randn(4096) * 10).to(dtype)
    y = torch.empty(x.shape, dtype=torch.float32)
    _cast_kernel[(1,)](x, y, x.numel(), BLOCK=4096)
    assert torch.equal(y, x.float())


def test_bf16_arithmetic_in_kernel():
    x = torch.randn(1000, dtype=torch.bfloat16)
    y = torch.randn(1000, dtype=torch.bfloat16)
    o = torch.empty_like(x)
    _add_kernel[(1,)](x, y, o, 1000, BLOCK=1024)
    assert torch.equal(o, x + y)


def test_bf16_ops_through_flaggems_match_torch():
    a = torch.randn(33, 65, dtype=torch.bfloat16)
    b = torch.randn(65, 17, dtype=torch.bfloat16)
    add, _ = run_gems(lambda: a + a * 0.5, served=["add.Tensor"])
    s, _ = run_gems(lambda: a.sum(dim=1), served=["sum.dim_IntList"])
    mm, _ = run_gems(lambda: a @ b, served=["mm.default"])
    assert torch.equal(add, a + a * 0.5)
    assert_close(s, a.double().sum(1), torch.bfloat16, reduce_len=65)
    assert_close(mm, a.double() @ b.double(), torch.bfloat16, reduce_len=65)
    assert_close(mm, (a @ b).double(), torch.bfloat16, reduce_len=65)


def test_fixup_refuses_moved_internals(monkeypatch):
    import triton.runtime.interpreter as I

    monkeypatch.setattr(interp_fix, "_INSTALLED", False)
    monkeypatch.delattr(I, "_convert_float")
    with pytest.raises(interp_fix.InterpreterFixupError, match="_convert_float"):
        interp_fix.install_fixup()


def test_interpreter_must_be_chosen_before_kernels(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="before the Triton interpreter"):
        interp_fix.enable_interpreter()


# ---- issue 13 #18: every conversion path of the fix-up, from every source dtype to the low-precision targets

@triton.jit
def _cmp_cast_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    # a comparison's int1 result cast to the output's float type (what in-place gt_/eq_/logical_* on bf16 do)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m)
    tl.store(y_ptr + offs, (x > 0).to(y_ptr.dtype.element_ty), mask=m)


_SOURCES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
            torch.bfloat16, torch.float32, torch.float64, torch.float8_e4m3fn, torch.float8_e5m2]
_TARGETS = [torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2]


def _source_values(dtype, n=3000):
    g = torch.Generator().manual_seed(18)
    if dtype == torch.bool:
        return torch.rand(n, generator=g) < 0.5
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        lo, hi = max(info.min, -100000), min(info.max, 100000)
        return torch.randint(lo, hi, (n,), generator=g, dtype=torch.int64).to(dtype)
    x = torch.cat([torch.randn(n, generator=g, dtype=torch.float64) * 300, _special_values().double()])
    return x.to(dtype)


def _same(got, want):
    bits = {1: torch.uint8, 2: torch.int16}[want.element_size()]
    nan_both = torch.isnan(got.float()) & torch.isnan(want.float())
    bad = (got.view(bits) != want.view(bits)) & ~nan_both
    return int(bad.sum()), bad


@pytest.mark.parametrize("dst", _TARGETS, ids=str)
@pytest.mark.parametrize("src", _SOURCES, ids=str)
def test_every_cast_to_lowp_matches_torch(src, dst):
    """Load src, .to(dst), store: bit-identical to torch's .to() (NaN payloads aside)."""
    x = _source_values(src)
    y = torch.empty(x.shape, dtype=dst)
    if not src.is_floating_point and dst.itemsize == 1:
        # Triton's front end has no integer/bool -> fp8 cast (on every backend): it must refuse, not miscompute
        with pytest.raises(Exception, match="cannot cast"):
            _cast_kernel[(1,)](x, y, x.numel(), BLOCK=4096)
        return
    _cast_kernel[(1,)](x, y, x.numel(), BLOCK=4096)
    nbad, bad = _same(y, x.to(dst))
    assert nbad == 0, f"{nbad} mismatches, e.g. x={x[bad][:5].tolist()} got {y[bad][:5].float().tolist()} " \
                      f"want {x.to(dst)[bad][:5].float().tolist()}"


@pytest.mark.parametrize("dst", _TARGETS[:2], ids=str)   # no int1 -> fp8 cast in Triton (see above)
@pytest.mark.parametrize("src", [torch.bfloat16, torch.float16, torch.float32, torch.int32], ids=str)
def test_comparison_result_cast_to_lowp(src, dst):
    x = _source_values(src)
    y = torch.empty(x.shape, dtype=dst)
    _cmp_cast_kernel[(1,)](x, y, x.numel(), BLOCK=4096)
    assert _same(y, (x > 0).to(dst))[0] == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("op", ["gt_", "lt_", "ge_", "le_", "eq_", "ne_", "logical_and_", "logical_or_",
                                "logical_xor_", "logical_not_"])
def test_inplace_comparison_and_logical_ops_on_lowp(op, dtype):
    """Issue 13 #18: `a.clone().gt_(0.0)` on bf16 crashed in the interpreter ("cannot reshape array of size 128
    into shape (512,)"): the comparison's bools reached the bf16 conversion labelled fp32."""
    a = torch.randn(512, dtype=dtype)
    b = torch.randn(512, dtype=dtype)
    args = () if op == "logical_not_" else ((0.0,) if op in ("gt_", "lt_", "ge_", "le_") else (b,))
    want = getattr(a.clone(), op)(*args)
    with flaggems.use_gems(), flaggems.record() as rep:
        got = getattr(a.clone(), op)(*args)
    served = {name for name, row in rep.compute_ops().items() if name.startswith(f"aten::{op}.") and
              rep.served_by(name)}
    # the comparisons are flaggems' in-place kernels; logical_* in place on a float self may go native
    assert served or op.startswith("logical_"), rep.to_markdown()
    assert torch.equal(got, want)
