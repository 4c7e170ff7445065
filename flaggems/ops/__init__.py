"""ATen op implementations. Importing this package declares them in the registry (after vendor selection)."""
from . import mm, pointwise_ops, reduction, softmax  # noqa: F401
