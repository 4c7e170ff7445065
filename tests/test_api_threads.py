"""The process-global patch under threads and repeated enable/disable (issue 13, findings 10 and 12)."""
import threading

import torch

import flaggems
from flaggems import registry


def _run_steps(steps):
    """Run (thread, action) steps in exactly this interleaving across two threads."""
    events = [threading.Event() for _ in range(len(steps) + 1)]
    events[0].set()
    errors = []

    def worker(name):
        stack = []
        for i, (who, action) in enumerate(steps):
            if who != name:
                continue
            events[i].wait(30)
            try:
                if action == "enter":
                    cm = flaggems.use_gems(include=["add"] if name == "A" else ["mul"])
                    cm.__enter__()
                    stack.append(cm)
                else:
                    stack.pop().__exit__(None, None, None)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
            events[i + 1].set()

    ts = [threading.Thread(target=worker, args=(n,)) for n in "AB"]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors


def test_interleaved_use_gems_blocks_never_leak():
    flaggems.disable()
    _run_steps([("A", "enter"), ("B", "enter"), ("A", "exit"), ("B", "exit")])
    assert flaggems.registered_ops() == []


def test_interleaved_blocks_follow_the_innermost_open_block_and_restore_enable():
    flaggems.enable(include=["sub"])
    try:
        seen = []
        with flaggems.use_gems(include=["add"]):
            seen.append(flaggems.registered_ops())
            with flaggems.use_gems(include=["mul"]):
                seen.append(flaggems.registered_ops())
            seen.append(flaggems.registered_ops())
        assert all(op.startswith("aten::add") for op in seen[0]) and seen[0]
        assert all(op.startswith("aten::mul") for op in seen[1]) and seen[1]
        assert seen[2] == seen[0]
        _run_steps([("A", "enter"), ("B", "enter"), ("A", "exit"), ("B", "exit")])
        assert flaggems.registered_ops() and all(op.startswith("aten::sub") for op in flaggems.registered_ops())
    finally:
        flaggems.disable()
    assert flaggems.registered_ops() == []


def test_enable_disable_cycles_capture_native_kernels_once(monkeypatch):
    """Each get_kernel handle is kept by torch's dispatcher: capturing ~300 of them per enable() leaked
    ~12.5 KB a cycle. Natives are captured once per (op, dispatch key)."""
    flaggems.enable()
    flaggems.disable()
    calls = []
    real = torch.library.get_kernel
    monkeypatch.setattr(torch.library, "get_kernel", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(20):
        flaggems.enable()
        assert torch.equal(torch.add(torch.ones(3), 1), torch.full((3,), 2.0))
        flaggems.disable()
    assert calls == []
    assert flaggems.registered_ops() == []


def test_native_kernel_still_correct_after_cycles():
    for _ in range(5):
        flaggems.enable(include=["add"])
        flaggems.disable()
    with flaggems.use_gems(include=["add"], exclude=["add.Tensor"]):
        # add.Tensor excluded: served by the cached native kernel
        with flaggems.record() as rep:
            out = torch.add(torch.arange(4.0), torch.ones(4))
    assert torch.equal(out, torch.arange(1.0, 5.0))
    assert rep.fallbacks().get("aten::add.Tensor") == {"excluded": 1}
    assert registry.current_config() is None
