"""Tiny Triton kernels for tests/test_aot.py: one that compiles everywhere, one that only the interpreter accepts."""
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    tl.store(out_ptr + i, tl.load(x_ptr + i, mask=m) + tl.load(y_ptr + i, mask=m), mask=m)


@triton.jit
def mean_kernel(x_ptr, out_ptr, N, BLOCK: tl.constexpr):
    # N.to(...) is fine for a runtime integer, but a GPU Triton passes N == 1 as the Python int 1
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + cols, mask=cols < N, other=0.0)
    tl.store(out_ptr, tl.sum(x, axis=0) / N.to(tl.float32))
