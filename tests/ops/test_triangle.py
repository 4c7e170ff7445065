"""tril / triu (functional, in-place, out=) against torch, every layout, diagonals past both edges."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor


@pytest.mark.parametrize("op", ["tril", "triu"])
@pytest.mark.parametrize("diagonal", [0, 2, -3, 40, -40])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_tril_triu(op, diagonal, layout):
    x = make_tensor((2, 3, 9, 13), torch.float32, layout)
    got, _ = run_gems(getattr(torch, op), x, diagonal, served=[f"{op}.default"])
    assert torch.equal(got, getattr(torch, op)(x, diagonal))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int64, torch.int8, torch.bool])
def test_tril_dtypes_and_the_causal_mask(dtype):
    x = torch.ones(6, 6, dtype=dtype)
    got, _ = run_gems(torch.tril, x, served=["tril.default"])
    assert got.dtype == dtype and torch.equal(got, torch.tril(x))


@pytest.mark.parametrize("op", ["tril_", "triu_"])
def test_inplace_on_a_strided_view(op):
    base = make_tensor((4, 7, 10), torch.float32)
    x = base.transpose(0, 2)                 # leading dims that do not collapse to one stride
    want = getattr(x.clone(), op)(1)
    got, _ = run_gems(lambda: getattr(x, op)(1), served=[f"{op}.default"])
    assert got is x and torch.equal(x, want)


@pytest.mark.parametrize("op", ["tril", "triu"])
def test_out_and_empty(op):
    x = make_tensor((5, 8), torch.float32)
    out = poisoned((5, 8), torch.float32)
    run_gems(lambda: getattr(torch, op)(x, -1, out=out), served=[f"{op}.out"])
    assert torch.equal(out, getattr(torch, op)(x, -1))
    e = torch.empty(0, 3)
    got, _ = run_gems(getattr(torch, op), e)
    assert got.shape == (0, 3)


def test_one_dim_input_raises_like_torch():
    with pytest.raises(RuntimeError):
        run_gems(torch.tril, torch.ones(3))


@pytest.mark.parametrize("op", ["tril_", "triu_"])
def test_inplace_on_an_expanded_self_goes_native(op):
    """Found by the adversarial sweep: an expanded self is written by torch in its own element order."""
    import flaggems

    x = torch.randn(1, 7).expand(5, 7)
    with flaggems.use_gems(), flaggems.record() as rep:
        got = getattr(x, op)()
    assert rep.fallbacks() == {f"aten::{op}.default": {"self has internal overlap": 1}}, rep.to_markdown()
    assert got is x
