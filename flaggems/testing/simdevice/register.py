"""Importing this module registers the fgsim device with torch — the simulated device's ``import torch_npu``.

The ``sim`` vendor plugin lists it in ``extension_modules``, so ``FLAGGEMS_VENDOR=sim`` loads the device while
flaggems selects its vendor (a build failure then raises ``VendorSelectionError`` naming the cause).
"""
from . import load

load()
