"""Overloads made by the elementwise family maker, through add/sub/mul/div and the unary math ops: broadcasting,
type promotion, Python scalars, alpha, layouts, out= and in-place; and the maker's own bookkeeping."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor, shapes

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def ref_binary(op, a, b, alpha=1):
    """Reference in fp64 (int64 for integer results), rounded to torch's result dtype at the end."""
    rt = torch.result_type(a, b)
    if op == "div" and not rt.is_floating_point:
        rt = torch.get_default_dtype()
    up = (lambda x: x.double() if isinstance(x, torch.Tensor) else x) if (rt.is_floating_point or op == "div") \
        else (lambda x: x.long() if isinstance(x, torch.Tensor) else x)
    A, B = up(a), up(b)
    r = {"add": lambda: A + alpha * B, "sub": lambda: A - alpha * B, "mul": lambda: A * B, "div": lambda: A / B}[op]()
    return r, rt


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_tensor_broadcast(op, dtype):
    a = make_tensor((5, 1, 7), dtype)
    b = make_tensor((3, 1), dtype)
    if op == "div":
        b = b.abs() + 0.5
    got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.Tensor"])
    want, rt = ref_binary(op, a, b)
    assert got.dtype == rt and got.shape == (5, 3, 7)
    assert_close(got, want, dtype)


@pytest.mark.parametrize("op", ["add", "sub"])
def test_alpha(op):
    a, b = make_tensor((4, 6), torch.float32), make_tensor((6,), torch.float32)
    got, _ = run_gems(getattr(torch, op), a, b, alpha=2.5, served=[f"{op}.Tensor"])
    want, _ = ref_binary(op, a, b, alpha=2.5)
    assert_close(got, want, torch.float32)
    ai, bi = torch.arange(12, dtype=torch.int32).view(3, 4), torch.arange(4, dtype=torch.int32)
    got, _ = run_gems(getattr(torch, op), ai, bi, alpha=3, served=[f"{op}.Tensor"])
    assert torch.equal(got, getattr(torch, op)(ai, bi, alpha=3))


@pytest.mark.parametrize("a_dtype,b", [
    (torch.int32, 2.5), (torch.int64, 3), (torch.int32, torch.tensor(7, dtype=torch.int64)),
    (torch.bfloat16, 3.1), (torch.float16, torch.tensor(2.0, dtype=torch.float64)), (torch.float32, True),
    (torch.uint8, 200), (torch.int8, -3),
])
@pytest.mark.parametrize("op", ["add", "mul", "sub", "div"])
def test_type_promotion_with_scalars(a_dtype, b, op):
    if op == "sub" and isinstance(b, bool):
        pytest.skip("torch forbids subtracting bools")
    a = make_tensor((9,), a_dtype, low=1, high=9)
    got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.Tensor"])
    native = getattr(torch, op)(a, b)
    assert got.dtype == native.dtype
    if native.dtype.is_floating_point:
        want, _ = ref_binary(op, a, b)
        assert_close(got, want, native.dtype)
    else:
        assert torch.equal(got, native)


def test_scalar_overloads_and_fp64_scalar_is_exact():
    a = make_tensor((10,), torch.float64)
    x = 0.1 + 2 ** -40  # not representable in fp32: must not be rounded on its way to the kernel
    got, rep = run_gems(lambda: torch.ops.aten.add.Scalar(a, x), served=["add.Scalar"])
    assert torch.equal(got, a + x)
    big = 2 ** 40 + 1
    ai = torch.arange(5, dtype=torch.int64)
    got, _ = run_gems(lambda: ai * big, served=["mul.Tensor"])
    assert torch.equal(got, ai * big)


def test_zero_dim_and_empty():
    z = torch.tensor(2.5)
    got, _ = run_gems(lambda: z * z + 1, served=["mul.Tensor", "add.Tensor"])
    assert got.dim() == 0 and got.item() == 2.5 * 2.5 + 1
    e = torch.empty(0, 3)
    got, _ = run_gems(lambda: e + torch.ones(3), served=["add.Tensor"])
    assert got.shape == (0, 3)
    # 0-dim fp32 with a bf16 tensor: the dimensioned operand keeps its dtype
    h = make_tensor((4,), torch.bfloat16)
    got, _ = run_gems(lambda: h * torch.tensor(1.5), served=["mul.Tensor"])
    assert got.dtype == torch.bfloat16 and torch.equal(got, h * torch.tensor(1.5))


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_non_contiguous_inputs_and_layout(layout):
    a = make_tensor((6, 10), torch.float32, layout)
    b = make_tensor((6, 10), torch.float32, "strided")
    got, _ = run_gems(torch.mul, a, b, served=["mul.Tensor"])
    assert torch.equal(got, a * b)
    if layout == "transposed":
        assert got.stride() == (a * b).stride()  # output follows the input's permutation like torch


@pytest.mark.parametrize("op", ["add", "mul", "div"])
def test_out_variant_poisoned_and_strided(op):
    a, b = make_tensor((5, 8), torch.float32), make_tensor((8,), torch.float32)
    out = poisoned((8, 5), torch.float32).t()  # non-contiguous out, written in place
    res, _ = run_gems(lambda: getattr(torch, op)(a, b, out=out), served=[f"{op}.out"])
    assert res.data_ptr() == out.data_ptr()
    assert_close(out, ref_binary(op, a, b)[0], torch.float32)
    out16 = poisoned((5, 8), torch.float16)
    run_gems(lambda: getattr(torch, op)(a, b, out=out16), served=[f"{op}.out"])
    assert_close(out16, ref_binary(op, a, b)[0], torch.float16)


def test_out_resize_falls_back_correctly():
    a = make_tensor((3, 4), torch.float32)
    out = torch.empty(0)
    _, rep = run_gems(lambda: torch.add(a, a, out=out))
    assert out.shape == (3, 4) and torch.equal(out, a + a)
    assert "out shape differs (resize)" in rep.fallbacks()["aten::add.out"]


@pytest.mark.parametrize("op", ["add_", "mul_", "sub_", "div_"])
def test_inplace(op):
    a = make_tensor((4, 1, 6), torch.bfloat16)
    b = make_tensor((3, 6), torch.bfloat16)
    a = a.expand(4, 3, 6).contiguous()
    want = getattr(a.clone().double(), op)(b.double())
    x = a.clone()
    got, _ = run_gems(lambda: getattr(x, op)(b), served=[f"{op}.Tensor"])
    assert got is x
    assert_close(x, want, torch.bfloat16)


def test_inplace_errors_like_torch():
    a = torch.arange(4, dtype=torch.int32)
    with pytest.raises(RuntimeError, match="can't be cast"):
        run_gems(lambda: a.add_(1.5))
    e = torch.zeros(1).expand(4)
    with pytest.raises(RuntimeError, match="single memory location"):
        run_gems(lambda: e.add_(1.0))


@pytest.mark.parametrize("op", ["neg", "exp", "rsqrt", "sigmoid", "silu"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary(op, dtype):
    x = make_tensor((7, 33), dtype, "transposed")
    if op == "rsqrt":
        x = x.abs() + 0.1
    fn = getattr(torch.nn.functional, op) if op == "silu" else getattr(torch, op)
    got, _ = run_gems(fn, x, served=[f"{op}.default"])
    want = fn(x.double())
    assert got.dtype == dtype
    assert_close(got, want, dtype, rtol=None if dtype != torch.float32 else 4e-6)


@pytest.mark.parametrize("op", ["neg_", "exp_", "sigmoid_", "silu_", "rsqrt_"])
def test_unary_inplace_and_out(op):
    x = make_tensor((5, 6), torch.float32).abs() + 0.1
    base = op[:-1]
    fn = getattr(torch.nn.functional, base) if base == "silu" else getattr(torch, base)
    want = fn(x.double())
    y = x.clone()
    if base == "silu":
        run_gems(lambda: torch.nn.functional.silu(y, inplace=True), served=[f"{op}.default"])
    else:
        run_gems(lambda: getattr(y, op)(), served=[f"{op}.default"])
    assert_close(y, want, torch.float32, rtol=4e-6)
    out = poisoned((5, 6), torch.float32)
    run_gems(lambda: torch.ops.aten.__getattr__(base).out(x, out=out), served=[f"{base}.out"])
    assert_close(out, want, torch.float32, rtol=4e-6)


def test_unary_special_values():
    x = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 100.0, -100.0, 1e-30])
    for op in ("exp", "sigmoid", "neg"):
        got, _ = run_gems(getattr(torch, op), x, served=[f"{op}.default"])
        assert_close(got, getattr(torch, op)(x.double()), torch.float32, rtol=4e-6)
    got, _ = run_gems(torch.nn.functional.silu, x, served=["silu.default"])
    assert_close(got, torch.nn.functional.silu(x.double()), torch.float32, rtol=4e-6)


@given(shape_a=shapes(1, 4, 9), drop=st.integers(0, 3), dtype=st.sampled_from([torch.float32, torch.bfloat16,
                                                                                torch.float16, torch.int32]),
       op=st.sampled_from(["add", "sub", "mul", "div"]), layout=st.sampled_from(["contiguous", "transposed",
                                                                                 "strided"]))
def test_binary_hypothesis(shape_a, drop, dtype, op, layout):
    g = torch.Generator().manual_seed(hash((shape_a, drop, op)) % 2 ** 31)
    shape_b = tuple(1 if i % 2 else s for i, s in enumerate(shape_a[drop:]))
    a = make_tensor(shape_a, dtype, layout, generator=g)
    b = make_tensor(shape_b, dtype, generator=g, low=1, high=4)
    got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.Tensor"])
    want, rt = ref_binary(op, a, b)
    assert got.dtype == rt
    if rt.is_floating_point:
        assert_close(got, want, rt)
    else:
        assert torch.equal(got, want.to(rt))


@given(shape=shapes(1, 3, 12), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       op=st.sampled_from(["sqrt", "sin", "tanh", "relu", "abs", "reciprocal"]),
       layout=st.sampled_from(["contiguous", "transposed", "strided"]))
def test_unary_hypothesis(shape, dtype, op, layout):
    x = make_tensor(shape, dtype, layout, low=0.1, high=5, generator=torch.Generator().manual_seed(len(shape)))
    fn = getattr(torch, op)
    got, _ = run_gems(fn, x, served=[f"{op}.default"])
    assert_close(got, fn(x.double()), dtype, rtol=4e-6 if dtype == torch.float32 else None)


def test_family_table_names_each_scalar_function():
    import sys

    import flaggems
    from flaggems.ops.elementwise_family import FAMILIES

    assert set(FAMILIES) == {
        "add", "sub", "rsub", "mul", "div", "neg", "floor_divide", "eq", "ne", "lt", "le", "gt", "ge",
        "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
        "maximum", "minimum", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "abs", "sigmoid",
        "silu", "relu"}
    with flaggems.use_gems():
        patched = set(flaggems.registered_ops())
    for name, op in FAMILIES.items():
        # the scalar function is the module-level jit function its op module declares (found by name)
        fn = op.scalar.fn
        assert op.name == name and getattr(sys.modules[fn.__module__], fn.__name__) is op.scalar, name
        declared = [f"aten::{name}.{o}" for o in op.overloads.functional + op.overloads.out] + \
                   [f"aten::{name}_.{o}" for o in op.overloads.inplace]
        assert declared and set(declared) <= patched, (name, set(declared) - patched)


def test_family_declared_twice_raises():
    from flaggems.ops.elementwise import ALL
    from flaggems.ops.elementwise_family import DEFAULT, FAMILIES, elementwise

    with pytest.raises(ValueError, match="declared twice"):
        elementwise("add", DEFAULT, arity=2, dtypes=ALL)(FAMILIES["add"].scalar)
