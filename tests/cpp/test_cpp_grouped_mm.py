"""grouped_mm (MoE cases of torch._grouped_mm): empty groups, zero-token experts, both weight layouts."""
import pytest
import torch

from flaggems.cpp import grouped_mm, grouped_mm_supports
from flaggems.testing import assert_close


def ref(a, b, offs):
    out = torch.zeros(a.shape[0], b.shape[2], dtype=torch.float64)
    s = 0
    for g, e in enumerate(offs.tolist()):
        out[s:e] = a[s:e].double() @ b[g].double()
        s = e
    return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize("layout", ["transposed", "contiguous"])
@pytest.mark.parametrize("K,N", [(200, 130), (256, 64), (7, 3)])
def test_grouped_mm_2d_3d(isa, dtype, layout, K, N):
    G = 8
    a = torch.randn(40, K).to(dtype)
    b = torch.randn(G, N, K).to(dtype).transpose(-2, -1) if layout == "transposed" else torch.randn(G, K, N).to(dtype)
    offs = torch.tensor([3, 3, 10, 20, 20, 30, 35, 38], dtype=torch.int32)   # empty groups, rows past the end
    out = grouped_mm(a, b, offs)
    assert out.dtype == dtype and out.shape == (40, N)
    assert_close(out, ref(a, b, offs), dtype, reduce_len=K)
    assert torch.all(out[38:] == 0)


def test_grouped_mm_matches_torch_and_out_dtype():
    G, K, N = 4, 64, 32
    a = torch.randn(10, K).to(torch.bfloat16)
    b = torch.randn(G, N, K).to(torch.bfloat16).transpose(-2, -1)
    offs = torch.tensor([0, 4, 4, 10], dtype=torch.int32)                    # zero-token experts
    out = grouped_mm(a, b, offs)
    assert_close(out, torch._grouped_mm(a, b, offs=offs).double(), torch.bfloat16, reduce_len=K)
    out32 = grouped_mm(a, b, offs, torch.float32)
    assert out32.dtype == torch.float32
    assert_close(out32, ref(a, b, offs), torch.float32, atol=1e-4, rtol=1e-5)


def test_grouped_mm_3d_3d_and_supports():
    a, b = torch.randn(3, 5, 40), torch.randn(3, 40, 7)
    assert_close(grouped_mm(a, b), torch.bmm(a.double(), b.double()), torch.float32, atol=1e-4, rtol=1e-5)
    assert grouped_mm_supports(a, b) is None
    assert grouped_mm_supports(a[0], a) is not None
    with pytest.raises(ValueError):
        grouped_mm(torch.randn(4, 40), b, torch.tensor([1, 5, 2], dtype=torch.int32))   # decreasing offs


# ---------------------------------------------------------------------------------------- aten::_grouped_mm (cpp)

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize("layout", ["transposed", "contiguous"])
def test_aten_grouped_mm_2d_3d_cpp(dtype, layout):
    from flaggems.testing import run_gems

    G, K, N = 6, 96, 72
    g = torch.Generator().manual_seed(7)
    a = torch.randn(30, K, generator=g).to(dtype)
    b = (torch.randn(G, N, K, generator=g).to(dtype).transpose(-2, -1) if layout == "transposed"
         else torch.randn(G, K, N, generator=g).to(dtype))
    offs = torch.tensor([4, 4, 11, 19, 19, 27], dtype=torch.int32)          # empty groups, 3 rows past the end
    out, _ = run_gems(torch._grouped_mm, a, b, offs, served=["_grouped_mm"], kind="cpp")
    nat = torch._grouped_mm(a, b, offs)                                      # torch leaves rows >= 27 unset
    assert out.dtype == dtype and out.shape == nat.shape
    assert_close(out[:27], nat[:27].double(), dtype, reduce_len=K)
    assert_close(out, ref(a, b, offs), dtype, reduce_len=K)
    assert torch.all(out[27:] == 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_aten_grouped_mm_3d_3d_cpp(dtype):
    from flaggems.testing import run_gems

    g = torch.Generator().manual_seed(8)
    a = torch.randn(3, 5, 40, generator=g).to(dtype)
    b = torch.randn(3, 7, 40, generator=g).to(dtype).transpose(-2, -1)
    out, _ = run_gems(torch._grouped_mm, a, b, served=["_grouped_mm"], kind="cpp")
    nat = torch._grouped_mm(a, b)
    assert out.dtype == dtype and out.shape == nat.shape == (3, 5, 7)
    assert_close(out, torch.bmm(a.double(), b.double()), dtype, reduce_len=40)


def test_aten_grouped_mm_cpp_predicate_and_bad_offs():
    from flaggems.cpp import grouped_mm_aten, grouped_mm_aten_supports as sup

    a, b = torch.randn(10, 16).bfloat16(), torch.randn(2, 16, 8).bfloat16()
    offs = torch.tensor([3, 10], dtype=torch.int32)
    assert sup(a, b, offs) is None and sup(a, b, offs, out_dtype=torch.bfloat16) is None
    assert sup(a, b, offs, out_dtype=torch.float32) is not None             # torch: out_dtype must be a's dtype
    assert sup(a, b.float(), offs) is not None                               # mixed dtypes
    assert sup(a, b, offs.long()) is not None                                # offs must be int32
    assert sup(a, b, offs[:1]) is not None                                   # one offset per group
    assert sup(a, b) is not None                                             # 2D x 3D needs offs
    assert sup(a, b, offs, bias=torch.zeros(8)) is not None
    assert sup(a.reshape(2, 5, 16), b) is None and sup(a.reshape(2, 5, 16), b[:1]) is not None
    with pytest.raises(RuntimeError):
        grouped_mm_aten(a, b, torch.tensor([5, 3], dtype=torch.int32))     # decreasing
    with pytest.raises(RuntimeError):
        grouped_mm_aten(a, b, torch.tensor([5, 11], dtype=torch.int32))    # past the rows of a
