"""ATen op implementations. Importing this package declares them in the registry (after vendor selection)."""
from . import (attention, copy, gemm, indexing, pointwise_more, pointwise_ops, reduce_more, reduction,  # noqa: F401
               softmax, sort)
