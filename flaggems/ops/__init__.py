"""ATen op implementations. Importing this package declares them in the registry (after vendor selection)."""
from . import (  # noqa: F401
    activation_grads, activations, advanced_index, any_all, arithmetic, attention, clamp, comparison, concat_pad,
    copy, cumsum, gather_scatter, gemm, histogram, index_select, logical_bitwise, math_functions, minmax, nonzero,
    pad_modes, softmax, softmax_backward, sort, sum_mean, triangle, where,
)
