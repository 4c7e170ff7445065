"""ATen op implementations. Importing this package declares them in the registry (after vendor selection)."""
from . import (  # noqa: F401
    activations, arithmetic, attention, clamp, comparison, copy, grouped_mm, indexing, logical_bitwise,
    math_functions, mm, reduce_more, reduction, scaled_mm, softmax, sort, where,
)
