"""Checkpoint soups and the in-memory keeper of the best validations' weights."""
import pytest
import torch

from automm_lite.training.soup import BestWeights, _average, average_checkpoints


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
