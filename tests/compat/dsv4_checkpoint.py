"""A tiny DeepSeek-V4 checkpoint quantised the way the released one is (shared/docs/deepseek-v4.md §6).

transformers' ``DeepseekV4ForCausalLM`` with random weights (dims multiples of 128), then: every linear the FP8
quantizer turns into ``FP8Linear`` stored as e4m3 with 128x128 UE8M0 block scales, the routed experts as
int8-packed e2m1 with one UE8M0 scale per row and 32 of K (``FP8Experts(expert_dtype="fp4")``), the rest BF16.
Scales are powers of two rounded up (``2^ceil(log2(amax / qmax))``), as DeepSeek's quantisers make them.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import torch

from flaggems.deepseek.quant import fp4_act_quant_ref

E4M3, E8M0 = torch.float8_e4m3fn, torch.float8_e8m0fnu

TINY = dict(
    vocab_size=256, hidden_size=256, moe_intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    head_dim=64, qk_rope_head_dim=16, q_lora_rank=128, o_groups=2, o_lora_rank=128, n_routed_experts=8,
    num_experts_per_tok=2, index_n_heads=2, index_head_dim=32, index_topk=4, sliding_window=8, hc_mult=4,
    layer_types=["sliding_attention", "compressed_sparse_attention"], mlp_layer_types=["hash_moe", "moe"],
    compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
    max_position_embeddings=512,
)
# kept BF16 as in the release (compressors, the indexer's weights_proj) and the head
NOT_CONVERTED = ["lm_head", "compressor.kv_proj", "compressor.gate_proj", "weights_proj"]
QUANT = dict(quant_method="fp8", activation_scheme="dynamic", weight_block_size=[128, 128], scale_fmt="ue8m0",
             expert_dtype="fp4", modules_to_not_convert=NOT_CONVERTED)


def fp8_block_quant(w: torch.Tensor):
    """[..., N, K] -> (e4m3, e8m0 [..., ceil(N/128), ceil(K/128)]) with power-of-two block scales."""
    *lead, N, K = w.shape
    nbn, nbk = -(-N // 128), -(-K // 128)
    b = torch.nn.functional.pad(w.float(), (0, nbk * 128 - K, 0, nbn * 128 - N)).reshape(*lead, nbn, 128, nbk, 128)
    amax = b.abs().amax(dim=(-3, -1)).clamp_min(1e-4)
    e = torch.ceil(torch.log2(amax / 448.0))
    q = (b / torch.exp2(e)[..., :, None, :, None]).clamp(-448, 448).to(E4M3).reshape(*lead, nbn * 128, nbk * 128)
    return q[..., :N, :K].contiguous(), (e + 127).to(torch.uint8).view(E8M0)


def fp4_rows_quant(w: torch.Tensor):
    """[..., N, K] -> (int8-packed e2m1 [..., N, K/2], e8m0 [..., N, K/32])."""
    q, s = fp4_act_quant_ref(w.float(), 32)
    return q.view(torch.int8), s


# DeepSeek's names (what save_pretrained writes back, and what the release ships) of the FP8 linears and the
# FP4 routed experts; everything else stays BF16 / fp32
FP8_LINEAR = re.compile(r"\.(attn\.(wq_a|wq_b|wkv|wo_a|wo_b)|attn\.indexer\.wq_b|ffn\.shared_experts\.w[123])\.weight$")
FP4_EXPERT = re.compile(r"\.ffn\.experts\.\d+\.w[123]\.weight$")


def write(path, seed: int = 0):
    """Write the quantised tiny checkpoint (DeepSeek naming, ``.scale`` beside each quantised weight) to
    ``path``; returns its transformers config."""
    import transformers
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = transformers.DeepseekV4Config(**TINY)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    with torch.no_grad():
        # random layers (the init leaves some matrices at 0 / 1); the head reads a permuted embedding, so the
        # next token is a readable function of the residual stream and greedy decisions have margins well
        # above FP8 activation noise (a fully random tiny model flips near-ties under any requantisation)
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn_like(p, dtype=torch.float32) * 0.03)
        emb = model.get_input_embeddings().weight
        emb.copy_(torch.randn_like(emb, dtype=torch.float32))
        perm = torch.randperm(emb.shape[0])
        model.get_output_embeddings().weight.copy_(emb[perm] * 0.1)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        out = {}
        with safe_open(str(Path(tmp) / "model.safetensors"), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                stem = name[: -len(".weight")]
                if FP8_LINEAR.search(name):
                    out[name], out[stem + ".scale"] = fp8_block_quant(t)
                elif FP4_EXPERT.search(name):
                    out[name], out[stem + ".scale"] = fp4_rows_quant(t)
                else:
                    out[name] = t.contiguous()
        cfg = json.loads((Path(tmp) / "config.json").read_text())
    path.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path / "model.safetensors"), metadata={"format": "pt"})
    cfg["quantization_config"] = dict(QUANT)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    return config


def param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())
