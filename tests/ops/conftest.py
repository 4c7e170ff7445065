"""Shared helpers for the data-movement op tests (indexing, concatenation, selection): they move data without
arithmetic, so results are compared with torch's native CPU results exactly."""
import torch

from flaggems.testing import run_gems
from flaggems.testing.strategies import make_tensor

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.bool]


def rand(shape, dtype, layout="contiguous"):
    if dtype == torch.bool:
        return make_tensor(shape, torch.float32, layout) > 0
    return make_tensor(shape, dtype, layout)


def same(got, want, msg=""):
    """Equal dtype, shape and values (NaN equal to NaN), with the first mismatching positions in the message."""
    if isinstance(want, (tuple, list)):
        for g, w in zip(got, want):
            same(g, w, msg)
        return
    assert got.dtype == want.dtype and got.shape == want.shape, f"{msg}: {got.dtype}{tuple(got.shape)} vs " \
                                                                f"{want.dtype}{tuple(want.shape)}"
    assert torch.equal(got, want) or (got.is_floating_point() and torch.equal(got.nan_to_num(), want.nan_to_num())), \
        f"{msg}: {(got != want).nonzero()[:5].tolist()}"


def check(fn, *args, served=(), **kw):
    """fn(*args) through flaggems (proving ``served`` ran our kernels) equals fn(*args) natively."""
    got, _ = run_gems(fn, *args, served=served, **kw)
    same(got, fn(*args, **kw), str(served))
    return got


def ix(*v):
    """An index tensor from values: ``x[ix(0, 2)]``."""
    return torch.tensor(v)
