"""bf16 CPU attention as batched matmuls: same outputs as torch's fused kernel, used only where it pays."""
import os
import shutil

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    ElectraConfig,
    ElectraModel,
    GPT2Config,
    GPT2Model,
    RobertaConfig,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)

from automm_lite.inference.attention import NAME, use_bmm_attention, wants_bmm_attention
from automm_lite.inference.modes import bf16_copy

SMALL = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=64)


def tiny(kind):
    torch.manual_seed(0)
    if kind == "bert":
        return BertModel(BertConfig(**SMALL), add_pooling_layer=False).eval()
    if kind == "xlm-roberta":
        return XLMRobertaModel(XLMRobertaConfig(**SMALL, pad_token_id=1), add_pooling_layer=False).eval()
    if kind == "roberta":
        return RobertaModel(RobertaConfig(**SMALL, pad_token_id=1), add_pooling_layer=False).eval()
    if kind == "electra":
        return ElectraModel(ElectraConfig(**SMALL, embedding_size=32)).eval()
    return DistilBertModel(DistilBertConfig(vocab_size=120, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                            max_position_embeddings=64)).eval()


def padded_batch(rows=3, width=12):
    ids = torch.randint(5, 100, (rows, width))
    mask = torch.ones(rows, width, dtype=torch.long)
    for row in range(1, rows):
        mask[row, width - 3 * row:] = 0  # rows of different lengths
    return ids, mask


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta", "distilbert", "electra"])
@pytest.mark.parametrize("rows", [3, 1])
def test_batched_matmul_attention_matches_the_fused_kernel(kind, rows, monkeypatch):
    model = tiny(kind)
    ids, mask = padded_batch(rows)
    calls = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *args: calls.append(1) or bmm(*args))
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert use_bmm_attention(model) and model.config._attn_implementation == NAME
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert len(calls) == (0 if rows == 1 else 2 * 2)  # two per layer; a single row keeps the fused kernel
        no_padding = model(input_ids=ids, attention_mask=torch.ones_like(mask)).last_hidden_state
    kept = mask.bool()
    assert torch.allclose(got[kept], expected[kept], atol=1e-5)  # padded positions are never read
    assert not torch.allclose(no_padding[kept], got[kept], atol=1e-3) or rows == 1  # the mask is applied


def test_bf16_copies_use_it_only_on_cpus_with_avx512_bf16_but_no_amx(cpu_kind, fitted_tiny_model):
    wanted = cpu_kind.native_bf16 and not cpu_kind.amx  # with AMX torch's fused kernel uses the tiles
    assert wants_bmm_attention(torch.device("cpu")) == wanted and not wants_bmm_attention(torch.device("cuda"))
    fast = bf16_copy(fitted_tiny_model)
    assert fast.text_backbone.encoder.config._attn_implementation == (NAME if wanted else "sdpa"), cpu_kind.name
    assert next(fast.text_backbone.encoder.parameters()).dtype == torch.bfloat16
    assert fitted_tiny_model.text_backbone.encoder.config._attn_implementation == "sdpa"  # the original is kept
    assert next(fitted_tiny_model.text_backbone.encoder.parameters()).dtype == torch.float32


def test_in_bf16_the_operator_matches_the_fused_kernel_and_applies_the_mask():
    from automm_lite.inference.attention import batched_matmul_attention

    torch.manual_seed(0)
    query, key, value = (torch.randn(3, 4, 10, 8).bfloat16() for _ in range(3))
    lengths = torch.tensor([10, 7, 4])
    keep = (torch.arange(10)[None, :] < lengths[:, None])[:, None, None, :]  # (batch, 1, 1, keys)
    additive = torch.zeros(keep.shape, dtype=torch.bfloat16).masked_fill(~keep, torch.finfo(torch.bfloat16).min)
    with torch.inference_mode():
        expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=keep)
        got = batched_matmul_attention(query, key, value, additive, 8 ** -0.5).transpose(1, 2)
        unmasked = batched_matmul_attention(query, key, value, None, 8 ** -0.5).transpose(1, 2)
    assert got.shape == expected.shape
    assert (got.float() - expected.float()).abs().max() < 0.05  # bf16 rounding only
    assert (unmasked[1:].float() - expected[1:].float()).abs().max() > 0.3  # rows with padding: the mask matters


def test_other_model_types_keep_their_attention():
    model = GPT2Model(GPT2Config(vocab_size=120, n_embd=32, n_layer=1, n_head=4, n_positions=64)).eval()
    assert not use_bmm_attention(model) and model.config._attn_implementation != NAME


@pytest.fixture
def fitted_tiny_model(tiny_text_dir):
    from automm_lite.config import Config, apply_overrides
    from automm_lite.models import build_model

    config = apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir})
    return build_model(config, ["hf_text"], {"n_outputs": 2, "n_numerical": 0, "cardinalities": []}).eval()


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_the_attention_operator_compiles_without_graph_breaks():
    model = tiny("bert")
    use_bmm_attention(model)
    ids, mask = padded_batch(3)
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        explained = torch._dynamo.explain(model)(input_ids=ids, attention_mask=mask)
        assert explained.graph_break_count == 0, explained.break_reasons
        compiled = torch.compile(model, dynamic=True)
        got = compiled(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)
