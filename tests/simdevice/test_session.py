"""Runs tests/simdevice in a child pytest process with FLAGGEMS_VENDOR=sim (see conftest.py for why)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_simdevice_session(request):
    env = dict(os.environ, FLAGGEMS_VENDOR="sim")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", HERE]
    if request.config.getoption("--run-slow"):
        cmd.append("--run-slow")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    out = r.stdout + r.stderr
    print(out[-20000:])
    assert r.returncode == 0, f"the FLAGGEMS_VENDOR=sim session failed (rc {r.returncode}):\n{out[-20000:]}"
    assert " passed" in out, out[-2000:]
