"""The tests in this directory exercise the Triton implementations (and compare ops with the Triton launchers
bit for bit); tests/cpp runs the same references against the C++ implementations. test_block.py picks the
kind itself."""
import pytest

import flaggems


@pytest.fixture(autouse=True)
def _prefer_triton(request):
    if request.node.get_closest_marker("any_impl") or "kind" in getattr(request, "fixturenames", ()):
        yield
        return
    with flaggems.prefer_impl("triton"):
        yield
