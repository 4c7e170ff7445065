"""Kernel providers for other libraries, backed by flaggems ops.

``flaggems.integrations.finegrained_fp8``: the ``kernels-community/finegrained-fp8`` entry points
(``matmul_2d``, ``matmul_batched``, ``matmul_grouped``) that transformers' FP8 quantizer calls.
``flaggems.integrations.transformers.install()``: registers it with transformers (no hub download) and keeps
pre-quantized FP8/FP4 checkpoints quantised on any vendor.
"""
