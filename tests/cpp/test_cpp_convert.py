"""fp4_to_fp8 / fp8_to_bf16 / fp4_to_bf16: the C++ kernels and the Triton kernels against the reference, bit for
bit, through the ops (each kind forced and proven to have served), on fresh data of several spreads."""
import pytest
import torch

import flaggems.deepseek.convert as CV
from flaggems import cpp

from ..deepseek.convert_data import fp4_weight, same

from .conftest import KINDS, run_op


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,K,spread,lead", [(256, 256, 6, ()), (200, 80, 20, (2,)), (130, 96, 15, ()),
                                             (384, 128, 0, ())])
def test_kinds_match_reference(kind, N, K, spread, lead):
    w, s = fp4_weight(N, K, spread, lead, seed=N * K + spread)
    for got, ref in zip(run_op("fp4_to_fp8", kind, w, s), CV.fp4_to_fp8_ref(w, s)):
        assert same(got, ref)
    for got, ref in zip(run_op("fp4_to_bf16", kind, w, s), CV.fp4_to_bf16_ref(w, s)):
        assert same(got, ref)
    y, bs, cnt = CV.fp4_to_fp8_ref(w, s)
    for got, ref in zip(run_op("fp8_to_bf16", kind, y, bs), CV.fp8_to_bf16_ref(y, bs)):
        assert same(got, ref)
    assert (int(cnt.sum()) == 0) == (spread <= 14)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_and_extreme_scales(kind):
    w, s = fp4_weight(256, 192, 5, seed=9)
    sb = s.view(torch.uint8).clone()
    sb[3, 1], sb[200, 5] = 255, 255
    sb[128:, :4] = 255                     # one all-NaN block
    sb[130, 4], sb[131, 5] = 0, 254        # 2^-127 and 2^127
    s2 = sb.view(torch.float8_e8m0fnu)
    for op, ref in (("fp4_to_fp8", CV.fp4_to_fp8_ref), ("fp4_to_bf16", CV.fp4_to_bf16_ref)):
        for got, want in zip(run_op(op, kind, w, s2), ref(w, s2)):
            assert same(got, want)
    y, bs, _ = CV.fp4_to_fp8_ref(w, s2)
    for got, want in zip(run_op("fp8_to_bf16", kind, y, bs), CV.fp8_to_bf16_ref(y, bs)):
        assert same(got, want)


def test_threads_and_large():
    """Several threads over many blocks (the C++ kernel splits blocks across threads)."""
    w, s = fp4_weight(1024, 2048, 6, seed=5)
    for got, ref in zip(cpp.fp4_to_fp8_cpp(w, s), CV.fp4_to_fp8_ref(w, s)):
        assert same(got, ref)


def test_direct_calls_check_like_the_ops():
    w, s = fp4_weight(128, 128, 2)
    bad = [("fp4_to_fp8", (w, s[:, :3])), ("fp4_to_bf16", (w.view(torch.uint8).float(), s)),
           ("fp8_to_bf16", (torch.zeros(130, 128, dtype=torch.float8_e4m3fn), torch.zeros(1, 1, dtype=torch.uint8)))]
    for op, args in bad:
        with pytest.raises((TypeError, ValueError)) as a:
            getattr(cpp, f"{op}_cpp")(*args)
        with pytest.raises((TypeError, ValueError)) as b:
            getattr(torch.ops.flaggems, op)(*args)
        assert (a.type, str(a.value)) == (b.type, str(b.value))
    with pytest.raises(ValueError, match="must be in host memory"):
        cpp.fp4_to_fp8_cpp(torch.empty(128, 64, dtype=torch.int8, device="meta"),
                           torch.empty(128, 4, dtype=torch.uint8, device="meta"))
