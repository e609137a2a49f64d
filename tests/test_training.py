import warnings

import numpy as np
import pytest
import torch

from automm_lite.data.batching import RowDataset, sorted_batches
from automm_lite.data.tokens import TokenGroup
from automm_lite.inference.runner import make_timing, run_model
from automm_lite.training.soup import BestWeights, _average, average_checkpoints
from automm_lite.training.strategy import resolve_precision
from automm_lite.training.system import lr_factor


def test_schedule_warms_up_then_decays_to_zero():
    f = lr_factor("cosine_decay", warmup=10, total=100)
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor("linear_decay", 0, 100)(50) == pytest.approx(0.5)
    assert lr_factor("constant", 5, 100)(80) == 1.0


def test_half_precision_on_cpu_falls_back_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("16-mixed", on_gpu=False) == "32-true"
    assert any("bf16-mixed" in str(w.message) for w in caught)
    assert resolve_precision("bf16-mixed", on_gpu=False) == "bf16-mixed"
    assert resolve_precision("32", on_gpu=True) == "32-true"


def _weights(value):
    return {"weight": torch.full((2,), value)}


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))


def test_greedy_soup_keeps_only_checkpoints_that_help():
    ranked = [_weights(1.0), _weights(3.0), _weights(100.0)]
    model = Scalar()
    score = lambda m: -abs(float(m.weight.detach()[0]) - 2.0)  # best when the weight is 2
    used, final = average_checkpoints(model, ranked, "greedy_soup", score)
    assert used == [0, 1] and torch.allclose(model.weight, torch.full((2,), 2.0)) and final == 0.0
    _, final = average_checkpoints(model, ranked, "uniform_soup", score)
    assert torch.allclose(model.weight, torch.full((2,), 104 / 3)) and final == pytest.approx(-98 / 3)
    assert average_checkpoints(model, ranked, "best", score) == ([0], -1.0) and model.weight[0] == 1.0
    assert average_checkpoints(model, [], "greedy_soup", score)[0] == []


def test_a_tie_with_a_float32_known_score_joins_the_soup():
    known = float(torch.tensor(7 / 30))  # Lightning logs 0.2333... in float32: slightly above 7 / 30
    used, _ = average_checkpoints(Scalar(), [_weights(1.0), _weights(1.0)], "greedy_soup", lambda m: 7 / 30,
                                  best_score=known)
    assert used == [0, 1]


def test_a_known_best_score_is_not_recomputed():
    ranked = [_weights(1.0), _weights(3.0)]
    calls = []

    def score(model):
        calls.append(float(model.weight.detach()[0]))
        return -abs(float(model.weight.detach()[0]) - 2.0)

    used, final = average_checkpoints(Scalar(), ranked, "greedy_soup", score, best_score=-1.0)
    assert calls == [2.0] and used == [0, 1] and final == 0.0  # only the averaged candidate was scored
    assert average_checkpoints(Scalar(), ranked[:1], "greedy_soup", score, best_score=-1.0) == ([0], -1.0)
    assert len(calls) == 1


@pytest.mark.parametrize("greater_is_better", [True, False])
def test_best_weights_keeps_the_k_best_validations_in_memory(greater_is_better):
    from types import SimpleNamespace

    keeper = BestWeights(2, "val_score", greater_is_better)
    module = SimpleNamespace(model=Scalar())
    module.model.register_parameter("frozen", torch.nn.Parameter(torch.ones(3), requires_grad=False))
    sign = 1 if greater_is_better else -1
    # (optimizer step, score): step 0 (before any update) and a second validation of step 3 are not kept
    for step, score in [(0, 0.99), (1, 0.5), (2, 0.7), (3, 0.7), (3, 0.95), (4, float("nan")), (5, 0.6), (6, 0.9)]:
        module.model.weight.data.fill_(step)
        trainer = SimpleNamespace(sanity_checking=False, global_step=step,
                                  callback_metrics={"val_score": torch.tensor(sign * score)})
        keeper.on_validation_end(trainer, module)
    kept = [(round(sign * score, 3), float(weights["weight"][0])) for score, weights in keeper.ranked]
    assert kept == [(0.9, 6.0), (0.7, 2.0)]  # ties keep the earlier validation first; NaN is skipped
    assert module.model.weight[0] == 6.0 and keeper.ranked[0][1]["weight"].data_ptr() != module.model.weight.data_ptr()
    assert keeper.ranked[0][1]["frozen"].data_ptr() == module.model.frozen.data_ptr()  # frozen weights: not copied


def test_average_keeps_integer_buffers():
    states = [{"w": torch.tensor([1.0]), "n": torch.tensor([3])}, {"w": torch.tensor([3.0]), "n": torch.tensor([3])}]
    avg = _average(states)
    assert avg["w"].item() == 2.0 and avg["n"].dtype == torch.int64


class RowEcho(torch.nn.Module):
    """Returns each row's first token id as its logit, so the output order can be checked."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        ids = batch["hf_text"]["input_ids"][:, :1].float()
        return {"logits": ids + self.p, "features": ids}


def test_length_sorted_inference_restores_input_order():
    rows = [[i] * (1 + (7 * i) % 5) for i in range(1, 12)]
    data = RowDataset({"hf_text": TokenGroup(rows, pad_id=0)})
    batches = sorted_batches(data, 4)
    assert sum(len(b) for b in batches) == 11
    out, latencies = run_model(RowEcho(), data, batch_size=4)
    assert out["logits"][:, 0].tolist() == list(range(1, 12)) and len(latencies) == 3
    timing = make_timing(11, 0.5, latencies)
    assert timing.rows == 11 and timing.batches == 3 and timing.rows_per_second == pytest.approx(22)
    assert 0 < timing.batch_p50_ms <= timing.batch_p95_ms


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

    from automm_lite.models.zoo import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(checkpoint))
    texts = ["The quick brown fox\n\njumps over the lazy dog. " * 40,  # long: cut before tokenizing
             "a \u200b " * 60 + "word " * 5,  # words that give no token: tokenized again in full
             "x" * 3000, "short text", "", "  spaces   around  " * 30, "unaltered " * 16]
    for max_len in (8, 16, 64):
        ours = TokenGroup.from_texts(tokenizer, (texts, None), max_len)
        assert ours.input_ids == tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        assert max(len(ids) for ids in ours.input_ids) == max_len
