"""The activations' backward ops (issue 13 finding 21): sigmoid/tanh/silu/gelu/softplus_backward served for
fp32/bf16/fp16 and compared with autograd through the fp64 forward; grad_input= twins agree bit for bit."""
import pytest
import torch
import torch.nn.functional as F

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

aten = torch.ops.aten
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# the edge values each formula must get right: large |x| (saturation, no inf - inf), 0, NaN
EDGES = [0.0, -0.0, 30.0, -30.0, 100.0, -100.0, 1e-4, -1e-4, float("nan")]

# name -> (forward on fp64 x, backward op called with (g, saved), which saved tensor: "x" or "y", kwargs)
CASES = {
    "sigmoid_backward": (torch.sigmoid, aten.sigmoid_backward, "y", {}),
    "tanh_backward": (torch.tanh, aten.tanh_backward, "y", {}),
    "silu_backward": (F.silu, aten.silu_backward, "x", {}),
    "gelu_backward": (F.gelu, aten.gelu_backward, "x", {}),
    "gelu_backward_tanh": (lambda x: F.gelu(x, approximate="tanh"), aten.gelu_backward, "x",
                           {"approximate": "tanh"}),
    "softplus_backward": (F.softplus, aten.softplus_backward, "x", {"beta": 1, "threshold": 20}),
    "softplus_backward_beta": (lambda x: F.softplus(x, beta=2.5, threshold=4.0), aten.softplus_backward, "x",
                               {"beta": 2.5, "threshold": 4.0}),
}


def _inputs(dtype):
    x = torch.cat([make_tensor((200,), dtype, low=-8, high=8), torch.tensor(EDGES, dtype=dtype)])
    g = make_tensor(x.shape, dtype, low=-2, high=2)
    return x, g


def _autograd_reference(forward, x, g):
    """d forward / dx · g in fp64 (the derivative of the forward torch computes)."""
    xr = x.double().requires_grad_()
    forward(xr).backward(g.double())
    return xr.grad


def _call(op, g, saved, kw, **out):
    # softplus_backward's beta / threshold are positional in the schema
    if "beta" in kw:
        return op(g, saved, kw["beta"], kw["threshold"], **out)
    return op(g, saved, **kw, **out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_autograd(case, dtype):
    forward, op, saved_kind, kw = CASES[case]
    x, g = _inputs(dtype)
    saved = x if saved_kind == "x" else forward(x.double()).to(dtype)
    base = op.__name__.split(".")[0]
    got, _ = run_gems(_call, op, g, saved, kw, served=[f"{base}.default"])
    assert got.dtype == dtype
    if saved_kind == "y":
        # sigmoid / tanh backward take the (rounded) forward output: the reference is the formula on it
        want = {"sigmoid_backward": lambda g, y: g * (1 - y) * y,
                "tanh_backward": lambda g, y: g * (1 - y * y)}[base](g.double(), saved.double())
    else:
        want = _autograd_reference(forward, x, g)
    assert_close(got, want, dtype, rtol=4e-6 if dtype == torch.float32 else None,
                 atol=1e-6 if dtype == torch.float32 else None)
    native = _call(op, g, saved, kw)
    assert torch.equal(torch.isnan(got), torch.isnan(native))
    # the grad_input= twin writes the same bits
    out = poisoned(x.shape, dtype)
    res, _ = run_gems(_call, getattr(aten, base).grad_input, g, saved, kw, grad_input=out,
                      served=[f"{base}.grad_input"])
    assert res is out
    assert torch.equal(out.nan_to_num(), got.nan_to_num())


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "silu", "gelu", "softplus"])
def test_autograd_reaches_the_served_backward(act):
    x = make_tensor((64,), torch.bfloat16, low=-4, high=4).requires_grad_()
    fwd = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu, "gelu": F.gelu,
           "softplus": F.softplus}[act]
    g = make_tensor((64,), torch.bfloat16, low=-1, high=1)
    _, rep = run_gems(lambda: fwd(x).backward(g), served=[f"{act}_backward.default"])
    want = _autograd_reference(fwd, x.detach(), g)
    assert_close(x.grad, want, torch.bfloat16)


def test_mixed_dtypes_stay_native():
    g, x = torch.randn(8), torch.randn(8, dtype=torch.float64)
    got, rep = run_gems(aten.silu_backward, g, x)
    assert torch.equal(got, aten.silu_backward(g, x))
    assert rep.fallbacks().get("aten::silu_backward.default")
