"""Tuned-config cache: atomic writes shared by processes; autotuning with a CPU timer."""
import json
import multiprocessing as mp
import os

import pytest

from flaggems.runtime import autotune
from flaggems.runtime.config_cache import TuneCache


def _writer(path, n, tag):
    cache = TuneCache(path)
    for i in range(n):
        # big rows so a non-atomic write would be caught half-way
        cache.put(f"kernel{tag}", f"key{i}", {"BLOCK": i, "pad": "x" * 4000})


def _reader(path, done, q):
    import time

    bad = 0
    seen = 0
    deadline = time.time() + 120
    while time.time() < deadline and (not done.is_set() or seen == 0):
        try:
            with open(path) as f:
                json.load(f)
            seen += 1
        except FileNotFoundError:
            pass
        except json.JSONDecodeError:
            bad += 1
    q.put((bad, seen))


def test_concurrent_readers_never_see_torn_file(tmp_path):
    path = str(tmp_path / "tune.json")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    done = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(path, 60, t)) for t in ("A", "B")]
    reader = ctx.Process(target=_reader, args=(path, done, q))
    for p in [reader] + writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    done.set()
    reader.join(120)
    assert reader.exitcode == 0
    bad, seen = q.get(timeout=10)
    assert bad == 0
    assert seen > 0
    data = TuneCache(path).load()
    # both writers' entries survived (writers merge under a lock)
    assert len(data["kernelA"]) == 60 and len(data["kernelB"]) == 60
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tune-")]


def test_cache_roundtrip(tmp_path):
    c = TuneCache(str(tmp_path / "c.json"))
    assert c.get("k", "x") is None
    c.put("k", "x", {"BLOCK": 64})
    assert TuneCache(c.path).get("k", "x") == {"BLOCK": 64}


@pytest.mark.parametrize("content", ["{not json", '{"k": {"x": {"BLOCK"', "[1, 2]", '{"k": 3}', "\xff\xfe"])
def test_corrupt_cache_is_empty_warns_once_and_is_rewritten(tmp_path, content):
    """A truncated or foreign file never breaks a launch: read as empty (one warning), replaced on write."""
    import warnings

    path = tmp_path / "c.json"
    path.write_bytes(content.encode("latin-1"))
    c = TuneCache(str(path))
    with pytest.warns(RuntimeWarning, match="tuned-config cache"):
        assert c.get("k", "x") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the same problem does not warn twice
        assert TuneCache(str(path)).get("k", "y") is None
        c.put("k", "x", {"BLOCK": 64})
    assert json.loads(path.read_text()) == {"k": {"x": {"BLOCK": 64}}}


def test_autotune_survives_truncated_and_unwritable_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAGGEMS_AUTOTUNE", "1")
    cfgs = [{"BLOCK": 1}, {"BLOCK": 2}]
    runs = []

    def run(cfg):
        runs.append(cfg["BLOCK"])

    # truncated file: tuned anyway, the file rewritten with the winner
    path = tmp_path / "t.json"
    path.write_text('{"demo": {"[128]": {"BLO')
    monkeypatch.setattr(autotune, "_CACHE", TuneCache(str(path)))
    monkeypatch.setattr(autotune, "_MEM", {})
    with pytest.warns(RuntimeWarning, match="not valid JSON"):
        best = autotune.choose("demo", (128,), cfgs, run, timer=lambda fn: fn() or 1.0)
    assert best in cfgs and runs
    assert json.loads(path.read_text())["demo"]["[128]"] == best

    # a cache directory that cannot be created (its parent is a file): results stay in memory
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FLAGGEMS_CACHE_DIR", str(blocker / "sub"))
    from flaggems.runtime.config_cache import default_dir

    monkeypatch.setattr(autotune, "_CACHE", TuneCache.for_device("cpu", "dev", "3.9", directory=default_dir()))
    monkeypatch.setattr(autotune, "_MEM", {})
    with pytest.warns(RuntimeWarning) as rec:
        best = autotune.choose("demo2", (64,), cfgs, run, timer=lambda fn: fn() or 1.0)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "cannot read" in msgs and "cannot write" in msgs, msgs
    assert best in cfgs
    runs.clear()
    assert autotune.choose("demo2", (64,), cfgs, run) == best     # remembered in memory, not retimed
    assert runs == []


def test_autotune_picks_fastest_with_cpu_timer(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("FLAGGEMS_AUTOTUNE", "1")
    cache = TuneCache(str(tmp_path / "t.json"))
    monkeypatch.setattr(autotune, "_CACHE", cache)
    monkeypatch.setattr(autotune, "_MEM", {})
    runs = []

    def run(cfg):
        runs.append(cfg["BLOCK"])
        time.sleep(0.004 if cfg["BLOCK"] == 1 else 0.0005)

    cfgs = [{"BLOCK": 1}, {"BLOCK": 2}]
    best = autotune.choose("demo", (autotune.bucket(100),), cfgs, run, timer=autotune.cpu_bench)
    assert best == {"BLOCK": 2}
    assert cache.get("demo", json.dumps([128])) == {"BLOCK": 2}
    # persisted: a fresh process-level memory cache reads it back without timing again
    monkeypatch.setattr(autotune, "_MEM", {})
    runs.clear()
    assert autotune.choose("demo", (128,), cfgs, run) == {"BLOCK": 2}
    assert runs == []


def test_autotune_real_kernel_under_interpreter(monkeypatch, tmp_path):
    """Two configs of the real mm kernel timed through the interpreter's CPU timer."""
    import torch

    import flaggems
    from flaggems.ops.gemm import dense as mm_mod

    monkeypatch.setenv("FLAGGEMS_AUTOTUNE", "1")
    monkeypatch.setattr(autotune, "_CACHE", TuneCache(str(tmp_path / "mm.json")))
    monkeypatch.setattr(autotune, "_MEM", {})
    monkeypatch.setattr(autotune, "candidates", lambda name, default, dtype=None: [
        {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1},
        {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}])
    a, b = torch.randn(40, 24), torch.randn(24, 36)
    with flaggems.use_gems(include=["mm"]):
        c = a @ b
    torch.testing.assert_close(c, a @ b)
    assert autotune._CACHE.load()["mm"]


def test_bucket():
    assert [autotune.bucket(n) for n in (0, 1, 2, 3, 17, 64, 65)] == [1, 1, 2, 4, 32, 64, 128]
