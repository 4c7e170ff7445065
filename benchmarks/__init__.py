"""flaggems benchmarks: one harness (``python -m benchmarks``), DeepSeek-V4 shape sets, JSON + markdown + PNG.

    python -m benchmarks [--ops a,b] [--quick] [--dtype bf16,fp32] [--impl triton|cpp] [--output DIR]

See docs/benchmarks.md. Modules, and what each imports of this package (imports point one way: down this list):

* ``__main__`` (CLI) -> runner, report, catalog, routing, device; ``cpu_kernels`` (C++-kernel table) -> runner;
* ``runner`` (the run loop, one row per case) -> memory, catalog, routing, ceilings, timing, contention, device;
* ``memory`` (peak memory; ``python -m benchmarks.memory`` measures one case in a fresh process) -> catalog,
  routing, device;
* ``catalog`` (every case) -> the case modules ``cases_aten``, ``cases_deepseek``, ``cases_moe`` (providers)
  -> ``cases`` (the registry: ``Case``, ``Ctx``, ``@provider``), ``shapes``, ``grouped_mm_shapes``, device;
* ``routing`` (which implementation a case times, the contexts routing to it) and ``ceilings`` (bandwidth and
  matmul roofs, roofline) -> cases, device;
* leaves, importing nothing of the package: ``cases``, ``timing`` (interleaved wall-clock and GPU timers, cache
  flush), ``contention`` (load detection), ``device`` (device type, info, versions, LLC size, the ``flag_gems``
  peer), ``report`` (JSON, markdown, PNGs), ``shapes`` (DeepSeek-V4 configs), ``grouped_mm_shapes`` (MoE shapes).
"""
