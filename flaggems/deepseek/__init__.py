"""DeepSeek-V4 kernels as ``torch.ops.flaggems.*`` custom ops (imported by flaggems after vendor selection)."""
from . import sparse_attn  # noqa: F401
from . import indexer  # noqa: F401
from . import hc_sinkhorn  # noqa: F401
from . import moe_gate  # noqa: F401
from . import hadamard  # noqa: F401
from . import quant  # noqa: F401
from . import convert  # noqa: F401
