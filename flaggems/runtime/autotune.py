"""Config selection for Triton kernels: vendor data first, tuning only where it pays.

Candidate configs come from the active vendor's tuned-config file (``flaggems/vendors/configs/<vendor>.json``)
or the kernel's own defaults. With one candidate there is nothing to tune. With several, the choice for a
bucketed shape key is read from the persistent :class:`TuneCache`; on a miss the candidates are timed once
(GPU: ``triton.testing.do_bench`` median; interpreter/CPU: a wall-clock median) and the winner is stored.
``FLAGGEMS_AUTOTUNE=0`` disables timing (first candidate); under the interpreter timing is off unless
``FLAGGEMS_AUTOTUNE=1`` because every run costs seconds.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .config_cache import TuneCache

_MEM: Dict[tuple, Dict[str, Any]] = {}
_LOCK = threading.Lock()
_CACHE: Optional[TuneCache] = None


def bucket(n: int) -> int:
    """Shape bucket for tuning keys: next power of two (so shapes never become per-size keys)."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def dtype_name(dtype) -> str:
    return str(dtype).rpartition(".")[2]


def config_keys(kernel: str, dtype=None, target: Optional[str] = None) -> List[str]:
    """Where a vendor's tuned-config file may hold ``kernel``'s configs, most specific first:
    ``"mm.bfloat16@cuda:100"``, ``"mm@cuda:100"``, ``"mm.bfloat16"``, ``"mm"`` (tuned configs are per vendor
    (the file), per Triton target and per dtype)."""
    d = dtype_name(dtype) if dtype is not None else None
    keys = []
    if target:
        if d:
            keys.append(f"{kernel}.{d}@{target}")
        keys.append(f"{kernel}@{target}")
    if d:
        keys.append(f"{kernel}.{d}")
    keys.append(kernel)
    return keys


def candidates(kernel: str, default: Sequence[Dict[str, Any]], dtype=None) -> List[Dict[str, Any]]:
    """The vendor's configs for ``kernel`` (for ``dtype`` on the vendor's Triton target when it has such an
    entry), else ``default``."""
    from ..vendors import active

    plugin = active()
    table = plugin.configs()
    for key in config_keys(kernel, dtype, getattr(plugin, "triton_target", None)):
        configs = table.get(key)
        if configs:
            return [dict(c) for c in configs]
    return [dict(c) for c in default]


def _tune_cache() -> TuneCache:
    global _CACHE
    if _CACHE is None:
        import triton

        from ..vendors import active
        from .device import device_name

        _CACHE = TuneCache.for_device(active().name, device_name(), triton.__version__)
    return _CACHE


def tuning_enabled() -> bool:
    from .device import interpreting

    flag = os.environ.get("FLAGGEMS_AUTOTUNE")
    if flag is not None:
        return flag not in ("0", "false", "False", "")
    return not interpreting()


def cpu_bench(fn: Callable[[], Any], warmup: int = 1, rep: int = 5) -> float:
    """Median wall-clock milliseconds of ``fn`` (used under the interpreter and for CPU kernels)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, rep)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(fn: Callable[[], Any]) -> float:
    from .device import interpreting

    if interpreting():
        return cpu_bench(fn)
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median"))


def choose(kernel: str, key: Sequence, configs: Sequence[Dict[str, Any]],
           run: Callable[[Dict[str, Any]], Any], *, persist: bool = True,
           timer: Optional[Callable[[Callable[[], Any]], float]] = None) -> Dict[str, Any]:
    """The config to launch ``kernel`` with for this key; ``run(config)`` launches it once."""
    if len(configs) == 1:
        return configs[0]
    skey = json.dumps(list(key), default=str)
    mkey = (kernel, skey)
    hit = _MEM.get(mkey)
    if hit is not None:
        return hit
    cache = _tune_cache() if persist else None
    stored = cache.get(kernel, skey) if cache is not None else None
    if stored is not None and stored in configs:
        _MEM[mkey] = stored
        return stored
    if not tuning_enabled():
        return configs[0]
    timer = timer or bench
    best, best_ms = None, float("inf")
    for cfg in configs:
        try:
            ms = timer(lambda cfg=cfg: run(cfg))
        except Exception:  # a config the device cannot compile (shared memory, registers) is skipped
            continue
        if ms < best_ms:
            best, best_ms = cfg, ms
    if best is None:
        raise RuntimeError(f"autotune {kernel}: every candidate config failed for key {skey}")
    with _LOCK:
        _MEM[mkey] = best
    if cache is not None:
        cache.put(kernel, skey, best)
    return best


def split_launch_options(config: Dict[str, Any]):
    """(constexpr kwargs, launch kwargs) from one config dict."""
    meta = {k: v for k, v in config.items() if k not in ("num_warps", "num_stages", "num_ctas")}
    opts = {k: v for k, v in config.items() if k in ("num_warps", "num_stages")}
    return meta, opts
