"""Rows to batches: length-sorted batches under a row cap and a token budget, per-batch padding, tokenization."""
import numpy as np
import pytest

from automm_lite.data.batching import RowDataset, sorted_batches
from automm_lite.data.tokens import TokenGroup


def test_a_token_budget_splits_batches_of_long_rows_only():
    lengths = [3, 30, 2, 12, 12, 5, 1, 40, 4, 6]
    data = RowDataset({"hf_text": TokenGroup([[7] * n for n in lengths], pad_id=0)})
    batches = sorted_batches(data, 4, max_tokens=24)
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))  # every row once
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 4 and (padded <= 24 or len(batch) == 1)  # a longer row makes a batch of its own
    assert [len(b) for b in batches] == [4, 2, 2, 1, 1]  # short rows fill the row cap; longer ones fewer rows
    assert [len(b) for b in sorted_batches(data, 4)] == [4, 4, 2]  # no budget: rows only


def test_inference_batches_have_a_token_budget_on_a_cpu_only():
    from automm_lite.config import Config, apply_overrides
    from automm_lite.data.batching import CPU_BATCH_TOKENS, inference_batching

    env = Config().env
    assert inference_batching(env, on_gpu=False) == (128, CPU_BATCH_TOKENS)
    assert inference_batching(env, on_gpu=True) == (128, 0)
    env = apply_overrides(Config(), {"env.inference_batch_tokens": 0, "env.inference_batch_size_ratio": 1}).env
    assert inference_batching(env, on_gpu=False) == (32, 0)
    assert apply_overrides(Config(), {"env.inference_batch_tokens": "auto"}).env.inference_batch_tokens == "auto"


def test_collate_pads_each_batch_to_its_own_longest_row():
    data = RowDataset({"hf_text": TokenGroup([[5, 6], [7], [8, 9, 10, 11]], pad_id=0,
                                             token_type_ids=[[0, 0], [0], [0, 0, 1, 1]])}, {"label": np.array([0, 1, 0])})
    batch = data.collate([0, 1])
    assert batch["hf_text"]["input_ids"].tolist() == [[5, 6], [7, 0]]
    assert batch["hf_text"]["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert data.collate([2])["hf_text"]["token_type_ids"].tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match="rows"):
        RowDataset({"hf_text": TokenGroup([[1]], pad_id=0)}, {"label": np.array([0, 1])})


@pytest.mark.parametrize("checkpoint", ["minilm-l6", "me5-small"])
def test_long_texts_cut_before_tokenizing_give_the_same_tokens(checkpoint):
    from transformers import AutoTokenizer

    from automm_lite.checkpoints.zoo import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(checkpoint))
    texts = ["The quick brown fox\n\njumps over the lazy dog. " * 40,  # long: cut before tokenizing
             "a \u200b " * 60 + "word " * 5,  # words that give no token: tokenized again in full
             "x" * 3000, "short text", "", "  spaces   around  " * 30, "unaltered " * 16]
    for max_len in (8, 16, 64):
        ours = TokenGroup.from_texts(tokenizer, (texts, None), max_len)
        assert ours.input_ids == tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        assert max(len(ids) for ids in ours.input_ids) == max_len
