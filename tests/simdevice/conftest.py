"""tests/simdevice run in their own pytest process with ``FLAGGEMS_VENDOR=sim``.

Loading the simulated device is irreversible for a process (torch keeps the renamed PrivateUse1 backend, and the
sim vendor is then detected), so a normal session runs only ``test_session.py``, which starts the child session
over this directory; the child runs everything else here. ``FLAGGEMS_VENDOR=sim pytest tests/simdevice`` runs
the child's tests directly.
"""
import os

import pytest

import flaggems

IN_SIM_SESSION = flaggems.vendor().name == "sim"
HERE = os.path.dirname(os.path.abspath(__file__))
SESSION_TEST = os.path.join(HERE, "test_session.py")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        path = str(item.path)
        if not path.startswith(HERE + os.sep):
            keep.append(item)
        elif (path == SESSION_TEST) != IN_SIM_SESSION:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def fgsim():
    """The simulated device, for tests that run in the sim session."""
    import torch

    return torch.device("fgsim")
