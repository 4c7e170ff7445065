"""Worker processes that compile jobs in another (or this) Python, surviving compiler aborts.

Each worker is ``PYTHON -m flaggems.aot.worker``; one thread per worker feeds it jobs. When LLVM aborts the
process mid-job, the job's log file holds the reason (``LLVM ERROR: ...``): the job is reported as failed with
that line and a fresh worker takes the next job. A job that runs past ``timeout`` is killed the same way.
"""
from __future__ import annotations

import json
import os
import queue
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

from .worker import first_error_line

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)           # real JITFunctions, not the interpreter
    env["FLAGGEMS_VENDOR"] = "nvidia"           # any GPU plugin without torch extensions: kernels import plainly
    env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TRITON_DUMP_PTXAS_LOG"] = "1"          # ptxas -v output (registers, spills) into the job log
    env["TRITON_ALWAYS_COMPILE"] = "1"          # never a Triton cache hit: the log and the timing must be real
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def probe(python: str) -> dict:
    """Versions of the Python / Triton that will compile."""
    # not realpath: every venv's python links to the same base interpreter, yet each has its own Triton
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        import triton

        return {"triton": triton.__version__, "python": sys.version.split()[0], "triton_path": triton.__file__}
    out = subprocess.run([python, "-c", "import sys, triton, json; print(json.dumps({'triton': triton.__version__, "
                          "'python': sys.version.split()[0], 'triton_path': triton.__file__}))"],
                         capture_output=True, text=True, env=worker_env(), timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{python} cannot import triton: {first_error_line(out.stderr)}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class _Worker:
    def __init__(self, python: str, env: Dict[str, str], tmp: str, idx: int):
        self.python, self.env, self.tmp, self.idx = python, env, tmp, idx
        self.proc: Optional[subprocess.Popen] = None
        self.cache_dir = os.path.join(tmp, f"triton-cache-{idx}")

    def start(self, timeout: float) -> None:
        env = dict(self.env, TRITON_CACHE_DIR=self.cache_dir)
        err = open(os.path.join(self.tmp, f"worker-{self.idx}.stderr"), "w")
        self.proc = subprocess.Popen([self.python, "-m", "flaggems.aot.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err, env=env, text=True, bufsize=1,
                                     cwd=_PACKAGE_PARENT)
        err.close()
        line = self._readline(timeout)
        if line is None or not json.loads(line).get("ready"):
            with open(os.path.join(self.tmp, f"worker-{self.idx}.stderr")) as f:
                msg = f.read()
            self.stop()
            raise RuntimeError(f"compile worker ({self.python}) did not start: {first_error_line(msg) or msg[-500:]}")

    def _readline(self, timeout: float) -> Optional[str]:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                return None
            line = self.proc.stdout.readline()
            return line or None
        finally:
            sel.close()

    def run(self, job: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start(timeout=300)
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if line is not None:
            return json.loads(line)
        # the worker died (a compiler abort) or hung: the job's log says why
        timed_out = self.proc.poll() is None
        self.stop()
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        try:
            with open(job["log"], errors="replace") as f:
                log = f.read()
        except OSError:
            log = ""
        if timed_out:
            msg = f"timed out after {timeout:.0f}s"
        else:
            msg = first_error_line(log) or f"compiler process died (exit {self.proc_returncode})"
        return {"id": job["id"], "status": "failed", "error": msg, "crashed": not timed_out, "timed_out": timed_out,
                "detail": log[-2000:], "usage": {}, "shared": None, "seconds": time.perf_counter() - t0}

    proc_returncode = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc_returncode = self.proc.returncode
        self.proc = None


def run_jobs(python: str, jobs: List[dict], n_workers: int, *, timeout: float = 900,
             on_result: Optional[Callable[[dict], None]] = None) -> Dict[str, dict]:
    """Compile ``jobs`` (each {"id", "spec", "target"}) in ``n_workers`` processes; results by job id."""
    results: Dict[str, dict] = {}
    if not jobs:
        return results
    tmp = tempfile.mkdtemp(prefix="flaggems-aot-")
    env = worker_env()
    todo: "queue.Queue[dict]" = queue.Queue()
    for j in jobs:
        todo.put(j)
    lock = threading.Lock()
    errors: List[BaseException] = []

    def loop(idx: int):
        w = _Worker(python, env, tmp, idx)
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                job = dict(job, log=os.path.join(tmp, f"job-{idx}.log"))
                res = w.run(job, timeout)
                with lock:
                    results[job["id"]] = res
                    if on_result is not None:
                        on_result(res)
        except BaseException as e:  # a worker that cannot start stops the run: report it once
            errors.append(e)
        finally:
            w.stop()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(max(1, min(n_workers, len(jobs))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shutil.rmtree(tmp, ignore_errors=True)
    if errors and len(results) < len(jobs):
        raise RuntimeError(str(errors[0]))
    return results


def default_python() -> str:
    return sys.executable
