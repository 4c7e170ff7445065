"""Persistent tuned-config cache, one JSON file per (vendor, device, triton version).

Writers take an exclusive lock on a side file, merge with what is on disk, write a temporary file in the
same directory and ``os.replace`` it over the old one; readers never lock and never see a torn file because
the rename is atomic. Several processes (tensor-parallel ranks, test workers) can share one cache.

A cache that cannot be used never stops a launch: a corrupt file (truncated, not JSON, not an object) is read
as empty and replaced atomically by the next write; an unreadable or unwritable location (``FLAGGEMS_CACHE_DIR``
that cannot be created, a read-only disk) keeps tuned results in memory only. Each problem warns once per file.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
import warnings
from typing import Any, Dict, Optional

try:  # POSIX advisory lock; elsewhere writers may lose a concurrent entry but never corrupt the file
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


_WARNED: set = set()


def _warn_once(path: str, what: str, msg: str) -> None:
    if (path, what) in _WARNED:
        return
    _WARNED.add((path, what))
    warnings.warn(msg, RuntimeWarning, stacklevel=4)


def default_dir() -> str:
    return os.environ.get("FLAGGEMS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "flaggems")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "unknown"


class TuneCache:
    def __init__(self, path: str):
        self.path = path
        self._mem: Optional[Dict[str, Dict[str, Any]]] = None
        self._mtime = None
        self._lock = threading.Lock()

    @classmethod
    def for_device(cls, vendor: str, device: str, triton_version: str, directory: Optional[str] = None):
        name = f"tune-{_slug(vendor)}-{_slug(device)}-triton{_slug(triton_version)}.json"
        return cls(os.path.join(directory or default_dir(), name))

    # ---- reading
    def _read_disk(self) -> Dict[str, Dict[str, Any]]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            _warn_once(self.path, "corrupt", f"flaggems: tuned-config cache {self.path} is not valid JSON ({e}); "
                                             "treating it as empty: configs are retuned and the file rewritten")
            return {}
        except OSError as e:
            _warn_once(self.path, "read", f"flaggems: cannot read tuned-config cache {self.path} ({e}); "
                                          "tuning results stay in memory")
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            _warn_once(self.path, "corrupt", f"flaggems: tuned-config cache {self.path} does not hold "
                                             "{kernel: {key: config}}; treating it as empty")
            return {}
        return data

    def load(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except OSError:
                mtime = None
            if self._mem is None or mtime != self._mtime:
                self._mem = self._read_disk()
                self._mtime = mtime
            return self._mem

    def get(self, kernel: str, key: str) -> Optional[Dict[str, Any]]:
        return self.load().get(kernel, {}).get(key)

    # ---- writing
    @contextlib.contextmanager
    def _writer_lock(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(self.path + ".lock", "a") as lf:
            fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf.fileno(), fcntl.LOCK_UN)

    def put(self, kernel: str, key: str, config: Dict[str, Any]) -> None:
        self.update({kernel: {key: config}})

    def update(self, entries: Dict[str, Dict[str, Any]]) -> None:
        try:
            self._write(entries)
        except OSError as e:
            _warn_once(self.path, "write", f"flaggems: cannot write tuned-config cache {self.path} ({e}); "
                                           "tuning results stay in memory for this process")
        with self._lock:
            self._mem = None

    def _write(self, entries: Dict[str, Dict[str, Any]]) -> None:
        with self._writer_lock():
            data = self._read_disk()
            for kernel, rows in entries.items():
                data.setdefault(kernel, {}).update(rows)
            directory = os.path.dirname(self.path) or "."
            fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".json", dir=directory)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
