"""Ahead-of-time compile gate: ``python -m flaggems aot``.

Every flaggems Triton kernel has run in the CPU interpreter, which accepts code real compilers reject. The gate
captures the specializations a GPU vendor would compile (:mod:`.capture`, :mod:`.spec`), compiles each one for
real targets with ``triton.compile`` in worker processes of any Python/Triton (:mod:`.pool`, :mod:`.worker`),
caches results (:mod:`.cache`) and reports failures, spills and on-chip memory overflows (:mod:`.report`).
See docs/portability.md. Kept free of heavy imports: compile workers import this package under other Tritons.
"""
