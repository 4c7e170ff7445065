"""flaggems benchmarks: one harness (``python -m benchmarks``), DeepSeek-V4 shape sets, JSON + markdown + PNG.

    python -m benchmarks [--ops a,b] [--quick] [--dtype bf16,fp32] [--impl triton|cpp] [--output DIR]

See docs/benchmarks.md. Modules: harness (cases, timers, ceilings, run loop), shapes (DeepSeek-V4 configs),
cases_deepseek / cases_moe / cases_aten (the case registry), memory (peak memory), report (outputs),
cpu_kernels (the C++-kernel table, ``run(quick)``), grouped_mm_shapes (MoE GEMM shapes).
"""
