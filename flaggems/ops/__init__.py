"""ATen op implementations. Importing this package declares them in the registry (after vendor selection)."""
from . import copy, mm, pointwise_more, pointwise_ops, reduce_more, reduction, softmax  # noqa: F401
