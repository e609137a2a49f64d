"""Self-attention as two batched matmuls and a softmax, for bf16 inference on CPUs without AMX.

On AVX-512-bf16 CPUs without AMX tiles, torch's fused (flash) attention kernel runs no faster in bf16 than in
float32, while oneDNN's batched bf16 matmuls run near the machine's bf16 roof; in this form a small bf16 encoder
runs faster, compiled or not (docs/benchmarks/speed.md has the measurement).
"""
from __future__ import annotations

import torch

NAME = "bmm_cpu"


def bmm_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-function signature; ``query``/``key``/``value`` are (batch, heads, tokens, dim).

    Single rows keep the fused kernel (as fast at that size); so do causal or grouped-query attention, dropout and
    the options this form does not implement (soft-capping, sliding windows, attention sinks).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, _, dim = query.shape
    unsupported = any(kwargs.get(name) is not None for name in ("softcap", "sliding_window", "s_aux"))
    if batch == 1 or dropout or unsupported or getattr(module, "is_causal", False) or key.shape[1] != heads:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    scaling = dim ** -0.5 if scaling is None else scaling
    return batched_matmul_attention(query, key, value, attention_mask, scaling), None


# An operator of its own, so that torch.compile calls it as it is: inductor's own fused softmax (float32 buffers,
# exact exp) runs at half the speed of torch's.
@torch.library.custom_op("automm_lite::batched_matmul_attention", mutates_args=())
def batched_matmul_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """softmax(query keyᵀ · scaling + mask) value, for (batch, heads, tokens, dim) inputs and an additive mask
    broadcastable to (batch, heads, queries, keys); returns (batch, queries, heads, value dim)."""
    batch, heads, q_len, dim = query.shape
    k_len, v_dim = key.shape[2], value.shape[-1]
    query = (query * scaling).reshape(batch * heads, q_len, dim)  # scale the smaller tensor
    scores = torch.bmm(query, key.reshape(batch * heads, k_len, dim).transpose(1, 2)).view(batch, heads, q_len, k_len)
    if mask is not None:
        scores.add_(mask)  # 0 where attended, the dtype's minimum where padded
    # In place (each row is read before it is written; the scores are this call's own): accumulates in float32,
    # and saves allocating and faulting in another tensor the size of the scores.
    torch.softmax(scores, dim=-1, out=scores)
    out = torch.bmm(scores.view(batch * heads, q_len, k_len), value.reshape(batch * heads, k_len, v_dim))
    out = out.view(batch, heads, q_len, v_dim)
    return out.transpose(1, 2).contiguous()


@batched_matmul_attention.register_fake
def _(query, key, value, mask, scaling):
    batch, heads, q_len, _ = query.shape
    return query.new_empty((batch, q_len, heads, value.shape[-1]))


# Encoders whose attention goes through transformers' AttentionInterface, checked against the fused kernel in
# tests/inference/test_attention.py; others keep their own attention.
MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")


def use_bmm_attention(encoder) -> bool:
    """Switch a transformers encoder (a private inference copy) to :func:`bmm_attention`; False (and unchanged)
    for model types outside ``MODEL_TYPES``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    if getattr(encoder.config, "model_type", None) not in MODEL_TYPES:
        return False
    AttentionInterface.register(NAME, bmm_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, eager_mask)  # additive masks in the encoder's dtype
    try:
        encoder.set_attn_implementation(NAME)
    except (ValueError, KeyError, AttributeError):
        return False
    return getattr(encoder.config, "_attn_implementation", None) == NAME


def wants_bmm_attention(device: torch.device) -> bool:
    """Whether bf16 attention should use :func:`bmm_attention` here: CPUs with AVX-512 bf16 but no AMX (with AMX,
    torch's fused kernel uses the tiles)."""
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16")) and not capabilities.get("amx_bf16")
