"""Test configuration: vendor first (import flaggems switches Triton to interpret mode on CPU), then markers.

Markers: ``slow`` (skipped unless --run-slow) and ``gpu`` (skipped unless the active vendor is a real device).
Hypothesis runs derandomized (seeded) with a small example budget: the interpreter is slow.
"""
import os

import pytest
import torch

import flaggems  # noqa: F401  (must come before any kernel module import)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("flaggems", deadline=None, max_examples=int(os.environ.get("FLAGGEMS_HYPOTHESIS_EXAMPLES", 12)),
                              derandomize=True, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile("flaggems")
except ImportError:  # hypothesis is in the [test] extra
    pass


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("FLAGGEMS_RUN_SLOW") == "1"
    on_device = flaggems.vendor().device_type != "cpu"
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    skip_gpu = pytest.mark.skip(reason="gpu: needs a non-CPU vendor device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not on_device:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _isolate():
    """Fresh seed per test, and flaggems left disabled whatever the test did."""
    torch.manual_seed(0)
    yield
    flaggems.disable()


@pytest.fixture
def device():
    return flaggems.vendor().device_type
