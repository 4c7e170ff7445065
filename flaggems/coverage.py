"""Model-level coverage and parity: run a transformers causal LM through flaggems and through native torch.

``run(...)`` builds a model with random weights (a built-in tiny config or any transformers ``config.json``),
greedily generates from the same prompt twice — native, then under ``use_gems()`` + ``record()`` — and returns
the op report, the coverage and the parity (max logit error, identical tokens). ``python -m flaggems coverage``
and ``python -m flaggems demo`` are thin wrappers over it.

``device``: where the flaggems run happens (default: the active vendor's device type; ``"fgsim"`` with
``FLAGGEMS_VENDOR=sim`` is the simulated device, where nothing computes unless flaggems serves it). The native
reference always runs on the CPU. During the flaggems run, device->host reads are counted
(:func:`flaggems.testing.count_syncs`) per generated token: the prefill, then each decode step.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

# transformers' DeepseekV4ForCausalLM at a size that runs in seconds on a CPU through the Triton interpreter,
# yet has every layer type: sliding-window, CSA (ratio 4, with the lightning indexer) and HCA (ratio 8 here, so a
# short prompt already compresses), hash-routed and top-k-routed MoE layers, hc_mult 4 hyper-connections.
DEEPSEEK_V4_TINY = dict(
    vocab_size=256, hidden_size=64, moe_intermediate_size=32, num_hidden_layers=4, num_attention_heads=4,
    head_dim=64, qk_rope_head_dim=16, q_lora_rank=32, o_groups=2, o_lora_rank=16, n_routed_experts=8,
    num_experts_per_tok=2, index_n_heads=2, index_head_dim=32, index_topk=4, sliding_window=8, hc_mult=4,
    layer_types=["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
                 "compressed_sparse_attention"],
    mlp_layer_types=["hash_moe", "moe", "moe", "moe"],
    compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
    max_position_embeddings=512,
)

# a larger variant for the slow test: more layers, heads and experts, longer windows
DEEPSEEK_V4_SMALL = dict(
    DEEPSEEK_V4_TINY, hidden_size=128, moe_intermediate_size=64, num_hidden_layers=6, num_attention_heads=8,
    n_routed_experts=16, num_experts_per_tok=4, index_topk=8, sliding_window=16,
    layer_types=["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
                 "compressed_sparse_attention", "heavily_compressed_attention", "compressed_sparse_attention"],
    mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe", "moe", "moe"],
)

QWEN3_MOE_TINY = dict(
    vocab_size=256, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, num_experts_per_tok=2,
    max_position_embeddings=512, decoder_sparse_step=1,
)

LLAMA_TINY = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)

BUILTIN = {
    "deepseek-v4-tiny": ("DeepseekV4Config", DEEPSEEK_V4_TINY),
    "deepseek-v4-small": ("DeepseekV4Config", DEEPSEEK_V4_SMALL),
    "qwen3-moe-tiny": ("Qwen3MoeConfig", QWEN3_MOE_TINY),
    "llama-tiny": ("LlamaConfig", LLAMA_TINY),
}

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def load_config(model: Optional[str] = None, config: Optional[str] = None):
    import transformers

    if (model is None) == (config is None):
        raise ValueError("give exactly one of model (a built-in name) or config (a path to config.json)")
    if model is not None:
        if model not in BUILTIN:
            raise ValueError(f"unknown built-in model {model!r}; known: {sorted(BUILTIN)}")
        cls_name, kwargs = BUILTIN[model]
        return getattr(transformers, cls_name)(**kwargs)
    path = config
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path) as f:
        data = json.load(f)
    if "model_type" not in data:
        raise ValueError(f"{path}: a transformers config.json needs a model_type")
    model_type = data.pop("model_type")
    for key in ("transformers_version", "architectures", "_name_or_path"):
        data.pop(key, None)
    return transformers.AutoConfig.for_model(model_type, **data)


def build_model(cfg, dtype: torch.dtype, experts: Optional[str] = None, seed: int = 0):
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    model = model.to(dtype).eval()
    if experts is not None:
        if not hasattr(model, "set_experts_implementation"):
            raise ValueError(f"{type(model).__name__} has no experts implementation switch")
        model.set_experts_implementation(experts)
    return model


@dataclass
class Result:
    model: str
    dtype: str
    experts: Optional[str]
    prompt_len: int
    new_tokens: int
    tokens_match: bool
    max_abs_logit_err: float
    max_rel_logit_err: float
    native_s: float
    flaggems_s: float
    coverage: float
    report: object = field(repr=False)
    vendor: str = ""
    device: str = "cpu"
    # device->host reads issued by flaggems code: in the prefill, and in each decode step
    syncs_prefill: int = 0
    syncs_per_decode_step: list = field(default_factory=list)
    syncs: object = field(default=None, repr=False)   # the flaggems.testing.SyncCounter

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("report", "syncs")}


class _Progress:
    """A LogitsProcessor that ticks a progress line per generated token (stderr, no dependency)."""

    def __init__(self, total: int, label: str, enabled: bool, on_token=None):
        self.total, self.label, self.enabled, self.n = total, label, enabled, 0
        self.on_token = on_token
        self.t0 = time.perf_counter()

    def __call__(self, input_ids, scores):
        self.n += 1
        if self.on_token is not None:  # called once per forward pass, right after its logits
            self.on_token(self.n)
        if self.enabled:
            width = 24
            done = int(width * self.n / max(1, self.total))
            sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] {self.n}/{self.total} tokens "
                             f"{time.perf_counter() - self.t0:6.1f}s")
            if self.n >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        return scores


def _generate(model, ids, steps, progress):
    from transformers import LogitsProcessorList

    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             output_logits=True, return_dict_in_generate=True,
                             logits_processor=LogitsProcessorList([progress]), pad_token_id=0)
    return out.sequences, torch.stack([l.float() for l in out.logits])


def resolve_device(device: Optional[str]) -> torch.device:
    """The device of the flaggems run: ``device``, or the active vendor's device type when None."""
    from .vendors import active

    vendor = active()
    name = device if device is not None else vendor.device_type
    kind = str(name).split(":")[0]
    # checked on the string: torch.device() itself rejects a backend this process has not registered
    if kind not in ("cpu", vendor.device_type):
        hint = " (set FLAGGEMS_VENDOR=sim for the simulated device)" if kind == "fgsim" else ""
        raise ValueError(f"device {name!r} is not served by the active vendor {vendor.name!r} "
                         f"(device type {vendor.device_type!r}){hint}")
    return torch.device(name)


def run(model: Optional[str] = None, config: Optional[str] = None, dtype: str = "fp32",
        experts: Optional[str] = None, prompt_len: int = 20, steps: int = 8, seed: int = 0,
        progress: bool = False, exclude=None, device: Optional[str] = None) -> Result:
    from .api import use_gems
    from .record import record
    from .testing import count_syncs
    from .vendors import active

    dev = resolve_device(device)
    dt = DTYPES[dtype]
    cfg = load_config(model, config)
    m = build_model(cfg, dt, experts, seed)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(2, cfg.vocab_size, (1, prompt_len), generator=g)
    name = model or os.path.basename(os.path.dirname(os.path.abspath(config))) or config
    t0 = time.perf_counter()
    ref_tokens, ref_logits = _generate(m, ids, steps, _Progress(steps, f"native   {name}", progress))
    t1 = time.perf_counter()
    # moving weights and ids is the runtime's copy (_copy_from), not an op flaggems serves: outside record()
    m, ids_dev = m.to(dev), ids.to(dev)
    with use_gems(exclude=exclude), record() as rep, count_syncs() as syncs:
        tick = _Progress(steps, f"flaggems {name}", progress, on_token=lambda n: syncs.mark(f"forward {n}"))
        tokens, logits = _generate(m, ids_dev, steps, tick)
    t2 = time.perf_counter()
    tokens, logits = tokens.cpu(), logits.cpu()
    diff = (logits - ref_logits).abs()
    scale = ref_logits.abs().max().clamp_min(1e-30)
    # segment 0 is the prefill forward (plus generate's set-up), segments 1..steps-1 the decode forwards
    per = syncs.per_segment("flaggems")
    return Result(model=name, dtype=dtype, experts=experts, prompt_len=prompt_len, new_tokens=steps,
                  tokens_match=bool(torch.equal(tokens, ref_tokens)),
                  max_abs_logit_err=float(diff.max()), max_rel_logit_err=float(diff.max() / scale),
                  native_s=t1 - t0, flaggems_s=t2 - t1, coverage=rep.coverage(), report=rep,
                  vendor=active().name, device=str(dev), syncs_prefill=per[0],
                  syncs_per_decode_step=per[1:steps], syncs=syncs)


def to_markdown(res: Result) -> str:
    s = res.summary()
    head = [f"# flaggems coverage: {res.model} ({res.dtype}, experts={res.experts or 'default'})", "",
            "| metric | value |", "|---|---|"]
    head += [f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in s.items()]
    fb = res.report.fallbacks()
    tail = ["", "## Native fallbacks", ""]
    if fb:
        tail += ["| op | reason | calls |", "|---|---|---:|"]
        tail += [f"| `{op}` | {reason} | {n} |" for op, reasons in fb.items() for reason, n in reasons.items()]
    else:
        tail.append("None: every compute op was served by flaggems.")
    if res.syncs is not None:
        tail += ["", "## Device->host reads from flaggems code", "", res.syncs.to_markdown()]
    return "\n".join(head + ["", "## Ops", "", res.report.to_markdown()] + tail) + "\n"


def write(res: Result, output: str) -> tuple:
    os.makedirs(output, exist_ok=True)
    stem = f"coverage-{res.model}-{res.dtype}" + (f"-{res.experts}" if res.experts else "")
    jpath, mpath = os.path.join(output, stem + ".json"), os.path.join(output, stem + ".md")
    with open(jpath, "w") as f:
        json.dump({"summary": res.summary(), "report": res.report.to_dict(),
                   "syncs": res.syncs.summary() if res.syncs is not None else None}, f, indent=2, sort_keys=True)
    with open(mpath, "w") as f:
        f.write(to_markdown(res))
    return jpath, mpath
