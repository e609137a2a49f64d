"""Shared fixtures: tiny random-weight encoders built from configs (no download) and small real frames."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def make_tiny_encoder(folder, layers=2, hidden=32, heads=2, vocab_source="minilm-l6"):
    """A random BERT with a real tokenizer (from an offline zoo checkpoint), saved as a local HF folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from automm_lite.models.zoo import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(vocab_source))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=256)
    import torch
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session", name="make_tiny_encoder")
def make_tiny_encoder_fixture():
    return make_tiny_encoder


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_hp(tiny_text_dir):
    """Hyperparameters for a fit that takes seconds."""
    return {"model.hf_text.checkpoint_name": tiny_text_dir, "model.hf_text.max_text_len": 32,
            "optimization.max_epochs": 2, "optimization.learning_rate": 1e-3, "env.per_gpu_batch_size": 16,
            "env.batch_size": 16, "optimization.top_k": 2}


@pytest.fixture(scope="session")
def bbc_short():
    """Real BBC News topics, first 24 words, small samples."""
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(short=True, seed=0)
    return train.sample(160, random_state=0), test.sample(60, random_state=0)
