"""Shared helpers for the C++ kernel tests: run an op through the registry with a forced implementation kind
and prove that kind served it."""
import pytest
import torch

import flaggems

KINDS = ("cpp", "triton")


def run_op(name, kind, *args, **kwargs):
    """torch.ops.flaggems.<name>(*args) with implementation ``kind`` forced; asserts that kind served it."""
    op = getattr(torch.ops.flaggems, name)
    with flaggems.prefer_impl(kind):
        with flaggems.record() as rep:
            out = op(*args, **kwargs)
    served = rep.served_by(f"flaggems::{name}")
    assert served.get(kind), f"flaggems::{name} was served by {served}, expected {kind}"
    return out


@pytest.fixture(params=["avx512", "avx2", "generic"])
def isa(request):
    """Run the C++ kernels with their SIMD path capped at avx512 / avx2 / generic (skipped if the CPU lacks it)."""
    from flaggems.cpp import lib

    C = lib()
    level = {"generic": 0, "avx2": 1, "avx512": 2}[request.param]
    C.set_isa_cap(-1)
    if {"generic": 0, "avx2": 1, "avx512": 2}[C.isa()] < level:
        pytest.skip(f"CPU lacks {request.param}")
    C.set_isa_cap(level)
    assert C.isa() == request.param
    yield request.param
    C.set_isa_cap(-1)


@pytest.fixture(params=["emulated", "avx512bf16"])
def bf16_dot(request):
    """The bf16 dot-product kernels (csrc/sparse_attn_bf16_body.h, gemm_bf16_body.h): on AVX512_BF16 hardware,
    and their AVX2 emulation of vdpbf16ps (same algorithm, so its layouts are tested on every AVX2 machine)."""
    from flaggems.cpp import lib

    C = lib()
    C.set_bf16_dot(-1)
    if request.param == "avx512bf16":
        if C.bf16_dot() != "avx512bf16":
            pytest.skip("CPU lacks AVX512_BF16")
        C.set_bf16_dot(1)
    else:
        if C.isa() == "generic":
            pytest.skip("CPU lacks avx2")
        C.set_bf16_dot(2)
    assert C.bf16_dot() == request.param
    yield request.param
    C.set_bf16_dot(-1)
