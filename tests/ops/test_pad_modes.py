"""reflection_pad / replication_pad (F.pad modes "reflect" / "replicate"): issue 13 finding 20 (they went to torch)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

CASES = [
    (1, (2, 3, 7), (2, 3)),
    (1, (3, 7), (-1, 4)),
    (1, (1, 5), (4, 0)),
    (2, (2, 3, 5, 6), (1, 2, 4, 0)),
    (2, (4, 5, 6), (0, -2, 3, 1)),
    (3, (1, 2, 3, 4, 5), (1, 2, 2, 0, 1, 1)),
    (3, (2, 3, 4, 5), (3, 1, 0, 2, 1, 1)),
]


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("k,shape,pad", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.uint8])
def test_pad_modes_match_torch(mode, k, shape, pad, dtype):
    name = f"{'reflection' if mode == 'reflect' else 'replication'}_pad{k}d"
    x = make_tensor(shape, dtype)
    want = getattr(torch._C._nn, name)(x, list(pad))
    got, _ = run_gems(lambda: getattr(torch._C._nn, name)(x, list(pad)), served=[f"{name}.default"])
    assert torch.equal(got, want)
    # the out= twin agrees with the functional op (out resized from a wrong shape)
    out = poisoned((1,), dtype)
    run_gems(lambda: getattr(torch._C._nn, name)(x, list(pad), out=out), served=[f"{name}.out"])
    assert torch.equal(out, want)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_functional_pad_non_contiguous(mode):
    x = make_tensor((3, 4, 9), torch.float32).transpose(1, 2)
    name = f"{'reflection' if mode == 'reflect' else 'replication'}_pad2d.default"
    got, _ = run_gems(F.pad, x, (2, 1, 3, 0), mode, served=[name])
    assert torch.equal(got, F.pad(x, (2, 1, 3, 0), mode))


def test_pad_modes_nan_propagates():
    x = torch.tensor([[float("nan"), 1.0, float("inf")]])
    for mode in ("reflect", "replicate"):
        got, _ = run_gems(F.pad, x, (2, 2), mode)
        assert torch.equal(got.isnan(), F.pad(x, (2, 2), mode).isnan())
        assert torch.equal(got.nan_to_num(), F.pad(x, (2, 2), mode).nan_to_num())


def test_pad_modes_raise_like_torch():
    x = make_tensor((2, 4), torch.float32)
    with pytest.raises(RuntimeError):
        torch._C._nn.reflection_pad1d(x, [4, 0])
    with pytest.raises(RuntimeError):
        run_gems(torch._C._nn.reflection_pad1d, x, [4, 0])
    with pytest.raises(RuntimeError):
        run_gems(torch._C._nn.replication_pad1d, torch.zeros(1, 0), [1, 1])
    with pytest.raises(NotImplementedError):
        run_gems(torch._C._nn.replication_pad1d, x > 0, [1, 1])
