"""Every matmul: dense (mm family), grouped (``_grouped_mm``), scaled (``_scaled_mm``, ``_scaled_grouped_mm``)
and DeepSeek-V4's ``fp8_gemm`` / ``fp4_gemm`` custom ops. Importing the package declares them all."""
from . import dense, grouped, scaled, fp8_gemm, fp4_gemm  # noqa: F401
