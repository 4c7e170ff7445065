"""A tiny DeepSeek-V4 forward under flaggems captured into a CUDA graph and replayed (issue 15, item 4).

Capture fails with "operation not permitted when stream is capturing" on any device->host sync (an ``.item()``,
a ``.tolist()``, a copy to the CPU) and on host-side allocation patterns a graph cannot hold, so a successful
capture is the proof that the flaggems path of a forward pass is graph-safe. The captured step is the model's
forward over a fixed-length token window without a KV cache (the shapes a graph needs are static); replay with
new token ids must give the eager flaggems logits.
"""
import pytest
import torch

import flaggems
from flaggems import coverage

pytestmark = pytest.mark.gpu


def _tiny(dtype):
    cfg = coverage.load_config("deepseek-v4-tiny")
    return coverage.build_model(cfg, dtype, experts="grouped_mm", seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_decode_forward_replays_from_a_cuda_graph():
    model = _tiny(torch.bfloat16).to("cuda")
    vocab = model.config.vocab_size
    gen = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, vocab, (1, 16), device="cuda", generator=gen)
    static_ids = ids.clone()
    with torch.no_grad(), flaggems.use_gems():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture: autotuning, caches, lazy inits
            for _ in range(2):
                model(static_ids, use_cache=False)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = model(static_ids, use_cache=False).logits
        for step in range(3):
            new = torch.randint(0, vocab, (1, 16), device="cuda", generator=gen)
            static_ids.copy_(new)
            graph.replay()
            eager = model(new, use_cache=False).logits
            torch.testing.assert_close(static_logits.float(), eager.float(), rtol=2e-2, atol=2e-2,
                                       msg=lambda m: f"replay {step} differs from the eager flaggems forward: {m}")
