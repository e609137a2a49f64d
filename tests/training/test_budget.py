"""The budget rule (auto batch size, epochs and learning rates), the parameter groups of each lr_choice, the
schedule, and the advice given when a fit ends still improving."""
from dataclasses import replace

import pytest
import torch

from automm_lite.config import Config, apply_overrides
from automm_lite.metrics import get_metric
from automm_lite.models import build_model
from automm_lite.training.budget import (
    auto_batch_size,
    auto_epochs,
    build_optimizer,
    choose_budget,
    parameter_groups,
    per_device_batch,
    still_improving,
)
from automm_lite.training.fit import TrainingEnd, _advice_if_improving

SCHEMA = {"n_outputs": 3, "n_numerical": 2, "cardinalities": [4], "n_image_columns": 0}


@pytest.mark.parametrize("rows,batch,epochs", [(60, 8, 30), (200, 8, 20), (400, 16, 20), (800, 32, 20),
                                               (1700, 32, 10), (60_000, 32, 10)])
def test_small_data_gets_small_batches_and_enough_steps(rows, batch, epochs):
    assert auto_batch_size(rows) == batch
    assert auto_epochs(rows, batch) == epochs


def test_the_per_device_batch_divides_the_batch():
    assert [per_device_batch(b) for b in (8, 32, 48, 64, 7)] == [8, 32, 24, 32, 7]


@pytest.fixture(scope="module")
def text_and_table_model(tiny_text_dir):
    config = apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir})
    return config, build_model(config, ["hf_text", "tabular_mlp"], SCHEMA)


def test_auto_keys_are_filled_and_the_users_kept(text_and_table_model):
    config, model = text_and_table_model
    chosen, choice = choose_budget(config, 400, model)
    assert (chosen.env.batch_size, chosen.env.per_gpu_batch_size, chosen.optimization.max_epochs) == (16, 16, 20)
    assert (chosen.optimization.learning_rate, chosen.optimization.lr_choice, chosen.optimization.lr_mult) == (
        2e-4, "two_stages", 10.0)
    assert "pretrained text weights" in choice.describe()
    mine = apply_overrides(config, {"optim.lr": 1e-3, "env.batch_size": 48, "optimization.max_epochs": 2})
    chosen, choice = choose_budget(mine, 400, model)
    assert (chosen.optimization.learning_rate, chosen.env.batch_size, chosen.optimization.max_epochs) == (
        1e-3, 48, 2)
    assert chosen.env.per_gpu_batch_size == 24  # reaches 48 exactly, two passes a step
    assert set(choice.keys) == {"env.per_gpu_batch_size", "optimization.lr_choice", "optimization.lr_mult"}


def test_a_model_without_pretrained_weights_gets_one_fast_rate():
    config = Config()
    model = build_model(config, ["tabular_mlp"], SCHEMA)
    chosen, choice = choose_budget(config, 1000, model)
    assert (chosen.optimization.learning_rate, chosen.optimization.lr_mult) == (2e-3, 1.0)
    assert "no pretrained weights" in choice.describe()


def _rates(model, optimization):
    """id(parameter) -> its learning rate."""
    return {id(p): group["lr"] for group in parameter_groups(model, optimization) for p in group["params"]}


def test_two_stages_moves_new_layers_faster(text_and_table_model):
    config, model = text_and_table_model
    opt = apply_overrides(config, {"optim.lr": 1e-4, "optim.lr_choice": "two_stages", "optim.lr_mult": 10}
                          ).optimization
    rates = _rates(model, opt)
    text = model.backbones["hf_text"].encoder
    trainable = [p for p in text.parameters() if p.requires_grad]
    assert {rates[id(p)] for p in trainable} == {1e-4}
    new = [*model.head.parameters(), *model.backbones["tabular_mlp"].parameters(), *model.fusion.parameters()]
    assert [rates[id(p)] for p in new] == pytest.approx([1e-3] * len(new))
    assert len(rates) == sum(p.requires_grad for p in model.parameters())


def test_layerwise_decay_slows_the_layers_near_the_input(text_and_table_model):
    config, model = text_and_table_model
    opt = apply_overrides(config, {"optim.lr": 1e-3, "optim.lr_choice": "layerwise_decay",
                                   "optim.lr_decay": 0.5}).optimization
    rates = _rates(model, opt)
    encoder = model.backbones["hf_text"].encoder
    embedding = encoder.embeddings.position_embeddings.weight
    first, last = encoder.encoder.layer[0], encoder.encoder.layer[-1]
    # 2 layers: embeddings 0.5^3, layer 0 0.5^2, layer 1 0.5^1; new layers at the rate itself
    assert rates[id(embedding)] == pytest.approx(1e-3 * 0.5 ** 3)
    assert rates[id(next(first.parameters()))] == pytest.approx(1e-3 * 0.5 ** 2)
    assert rates[id(next(last.parameters()))] == pytest.approx(1e-3 * 0.5)
    assert rates[id(model.head[1].weight)] == pytest.approx(1e-3)


def test_no_lr_choice_is_one_rate_and_frozen_weights_are_left_out(text_and_table_model):
    config, model = text_and_table_model
    opt = apply_overrides(config, {"optim.lr": 3e-4, "optim.lr_choice": "none"}).optimization
    word = model.backbones["hf_text"].encoder.get_input_embeddings().weight
    word.requires_grad_(False)
    try:
        rates = _rates(model, opt)
    finally:
        word.requires_grad_(True)
    assert set(rates.values()) == {3e-4} and id(word) not in rates
    groups = parameter_groups(model, opt)
    assert all(p.ndim >= 2 for g in groups if g["weight_decay"] > 0 for p in g["params"])  # no decay on biases


def test_image_networks_are_grouped_by_depth_with_timms_grouping():
    config = apply_overrides(Config(), {"model.timm_image.checkpoint_name": "test_efficientnet",
                                        "model.timm_image.pretrained": False, "model.timm_image.image_size": 32})
    model = build_model(config, ["timm_image"], {**SCHEMA, "n_image_columns": 1})
    image = model.backbones["timm_image"]
    assert image.pretrained is False  # random weights: everything learns at the new layers' rate
    groups = image.layer_groups()
    assert len(groups) > 3 and sum(len(g) for g in groups) == len(list(image.parameters()))
    assert groups[0][0] is image.network.conv_stem.weight


def test_the_schedule_warms_up_then_decays_to_zero(text_and_table_model):
    config, model = text_and_table_model
    opt = apply_overrides(config, {"optim.lr": 1e-3, "optim.lr_choice": "none", "optim.warmup_steps": 0.1}
                          ).optimization
    optimizer, scheduler = build_optimizer(model, opt, 100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0 and rates[5] == pytest.approx(5e-4) and rates[10] == pytest.approx(1e-3)
    assert rates[99] < 1e-5 and all(a >= b for a, b in zip(rates[10:], rates[11:]))
    linear = apply_overrides(config, {"optim.lr_schedule": "linear_decay", "optim.lr_choice": "none",
                                      "optim.lr": 1e-3, "optim.warmup_steps": 0}).optimization
    optimizer, scheduler = build_optimizer(model, linear, 100)
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert isinstance(optimizer, torch.optim.AdamW)


@pytest.mark.parametrize("history,rising", [
    ([0.2, 0.3, 0.4, 0.5, 0.6, 0.7], True),
    ([0.2, 0.5, 0.7, 0.7, 0.69, 0.7], False),   # flat at the end
    ([0.2, 0.6, 0.8, 0.7, 0.6, 0.65], False),   # best long ago
    ([0.2, 0.3, 0.4], False),                    # too few validations to tell
    ([0.99, 0.99, 0.99, 0.99, 0.992, 0.996], False),  # a row or two more: noise, not a trend
])
def test_still_improving(history, rising):
    assert still_improving(history, greater_is_better=True) is rising
    assert still_improving([-v for v in history], greater_is_better=False) is rising


def test_the_advice_names_what_to_change():
    config = apply_overrides(Config(), {"optimization.max_epochs": 4, "optim.lr": 1e-4})
    end = TrainingEnd(score=0.7, averaged=1, epochs=4, steps=100, early_stopped=False)
    rising = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    advice = _advice_if_improving(config, rising, get_metric("accuracy"), end, None)
    assert "optimization.max_epochs=8" in advice and "0.2000" in advice and "0.7000" in advice
    timed = replace(end, epochs=2)
    assert "time_limit" in _advice_if_improving(config, rising, get_metric("accuracy"), timed, 60)
    assert _advice_if_improving(config, [0.2, 0.7, 0.7, 0.7, 0.7, 0.7], get_metric("accuracy"), end,
                                None) is None
    assert _advice_if_improving(config, rising, get_metric("accuracy"), replace(end, early_stopped=True),
                                None) is None


def test_a_forward_pass_the_user_set_divides_the_chosen_batch(text_and_table_model):
    config, model = text_and_table_model
    chosen, _ = choose_budget(apply_overrides(config, {"env.per_gpu_batch_size": 64}), 200, model)
    assert (chosen.env.batch_size, chosen.env.per_gpu_batch_size) == (64, 64)  # not 8 rows a step with 64 a pass
    chosen, _ = choose_budget(apply_overrides(config, {"env.per_gpu_batch_size": 12}), 800, model)
    assert chosen.env.batch_size == 36  # 32 rounded to whole passes of 12


def test_epochs_follow_the_rows_really_trained_on(text_and_table_model):
    from automm_lite.training.budget import epochs_for_rows

    config, model = text_and_table_model
    chosen, choice = choose_budget(config, 200, model)
    assert chosen.optimization.max_epochs == 20
    more = epochs_for_rows(chosen, choice, 800)  # 3 extra rows per row: 100 steps an epoch
    assert more.optimization.max_epochs == 10 and choice.keys["optimization.max_epochs"] == 10
    assert "800 rows trained on" in choice.describe() and "epochs at most (about 500" not in choice.describe()
    mine, kept = choose_budget(apply_overrides(config, {"optimization.max_epochs": 3}), 200, model)
    assert epochs_for_rows(mine, kept, 800).optimization.max_epochs == 3


def test_text_that_is_mostly_not_english_gets_the_multilingual_encoder():
    from automm_lite.datasets import load_bbc_news, load_multilingual_pairs
    from automm_lite.training.budget import MULTILINGUAL_ENCODER, choose_text_encoder

    pairs, _, _ = load_multilingual_pairs(languages=["german", "spanish", "japanese", "english"], seed=0)
    chosen, reason = choose_text_encoder(Config(), pairs, ["sentence1", "sentence2"])
    assert chosen.model.hf_text.checkpoint_name == MULTILINGUAL_ENCODER and "% of the text's words" in reason
    news, _ = load_bbc_news(short=True, seed=0)
    assert choose_text_encoder(Config(), news, ["text"]) == (Config(), None)  # English: the default stays
    other = apply_overrides(Config(), {"model.hf_text.checkpoint_name": "minilm-l3"})
    assert choose_text_encoder(other, pairs, ["sentence1"])[1] is None  # a chosen encoder stays


@pytest.mark.slow
def test_a_fit_of_text_that_is_not_english_trains_the_multilingual_encoder_unless_one_is_named(tiny_text_dir,
                                                                                               tmp_path):
    from automm_lite import Predictor
    from automm_lite.datasets import load_multilingual_pairs
    from automm_lite.training.budget import MULTILINGUAL_ENCODER

    pairs, _, _ = load_multilingual_pairs(languages=["japanese", "korean"], seed=0)
    rows = pairs.drop(columns="language").head(60)
    quick = {"optimization.max_epochs": 1, "model.classical.enabled": False, "model.hf_text.max_text_len": 32}
    chosen = Predictor("label", path=tmp_path / "chosen", verbosity=0).fit(rows, hyperparameters=quick)
    assert chosen.config_.model.hf_text.checkpoint_name == MULTILINGUAL_ENCODER
    assert chosen.fit_summary()["budget"]["keys"]["model.hf_text.checkpoint_name"] == MULTILINGUAL_ENCODER
    named = Predictor("label", path=tmp_path / "named", verbosity=0).fit(rows, hyperparameters={
        **quick, "model.hf_text.checkpoint_name": tiny_text_dir})
    assert named.config_.model.hf_text.checkpoint_name == tiny_text_dir
    assert "model.hf_text.checkpoint_name" not in named.fit_summary()["budget"]["keys"]
