"""Issue 13 #11: flaggems ops called from several threads under the Triton interpreter.

The interpreter patches triton.language and the kernel's globals for the length of a launch; two threads
launching at once failed intermittently with ``InterpreterError: ValueError('Did you forget to add
@triton.jit ?')`` (or wrong results) until flaggems/runtime/interpreter.py serialised interpreted launches."""
import threading

import pytest
import torch
import torch.nn.functional as F

import flaggems
from flaggems.runtime import interpreter as interp_fix

pytestmark = pytest.mark.skipif(not flaggems.runtime.interpreting(), reason="interpreter only")


def _work(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(37, 129, generator=g)
    y = torch.randn(37, 129, generator=g)
    return x, y, lambda: (F.silu(x) * y + x).sum(dim=1)


@pytest.mark.parametrize("threads", [2, 4])
def test_patched_ops_from_threads(threads):
    rounds = 6
    jobs = [_work(i) for i in range(threads)]
    want = [f() for _, _, f in jobs]
    errors, results, served = [], [[] for _ in range(threads)], [None] * threads
    start = threading.Barrier(threads)

    def run(i):
        try:
            start.wait()
            with flaggems.record() as rep:   # dispatch modes are per thread
                for _ in range(rounds):
                    results[i].append(jobs[i][2]())
            served[i] = rep.served_by("aten::silu.default")
        except Exception as e:  # reported below, with the thread's index
            errors.append((i, repr(e)))

    with flaggems.use_gems():
        ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errors, errors[:3]
    assert served == [{"triton": rounds}] * threads, served
    for i in range(threads):
        assert len(results[i]) == rounds
        for r in results[i]:
            torch.testing.assert_close(r, want[i], rtol=1e-5, atol=1e-5)


def test_launch_lock_is_reentrant():
    # a launch from inside a launch (pre-run hooks, nested helpers) must not deadlock on the lock
    with interp_fix.LAUNCH_LOCK, interp_fix.LAUNCH_LOCK:
        x = torch.randn(10)
        with flaggems.use_gems():
            assert torch.equal(x + x, (x + x))
