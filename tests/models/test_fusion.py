"""The late-fusion MLP and AutoGluon's ``model.fusion_mlp.*`` keys: layers, activation, normalization, adapted
input widths and per-backbone output layers, on a real text + tabular frame."""
import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor
from automm_lite.config import Config, apply_overrides
from automm_lite.distill.losses import DistillationObjective, Match
from automm_lite.exceptions import ConfigError
from automm_lite.training.system import TaskObjective


def test_fusion_keys_read_autogluon_spellings():
    c = apply_overrides(Config(), {"model.fusion_mlp.hidden_sizes": "64,32", "model.fusion_mlp.drop_rate": 0.2,
                                   "model.fusion_mlp.activation": "leaky_relu"}).model.fusion_mlp
    assert (c.hidden_sizes, c.dropout, c.activation) == ([64, 32], 0.2, "leaky_relu")
    assert apply_overrides(Config(), {"model.fusion_mlp.hidden_size": 96}).model.fusion_mlp.hidden_sizes == [96]
    assert apply_overrides(Config(), ["model.fusion_mlp.hidden_sizes=[256, 128]"]).model.fusion_mlp.hidden_sizes \
        == [256, 128]
    assert apply_overrides(Config(), {"model.fusion_mlp.dropout_prob": 0.3}).model.fusion_mlp.dropout == 0.3
    for bad in ([], [0], "a,b", [64.5], True, [True]):
        with pytest.raises(ConfigError, match="hidden_sizes"):
            apply_overrides(Config(), {"model.fusion_mlp.hidden_sizes": bad})
    with pytest.raises(ConfigError, match="'gelu'"):
        apply_overrides(Config(), {"model.fusion_mlp.activation": "swish"})
    with pytest.raises(ConfigError, match="weight"):
        apply_overrides(Config(), {"model.fusion_mlp.weight": -0.1})


@pytest.fixture(scope="module")
def drug_frames():
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews()
    return train.sample(160, random_state=0), test.head(30)


def test_fusion_layers_follow_the_keys_and_the_predictor_reloads(drug_frames, tiny_hp, tmp_path):
    train, test = drug_frames
    hp = {**tiny_hp, "optimization.max_epochs": 1, "model.fusion_mlp.hidden_sizes": [48, 24],
          "model.fusion_mlp.activation": "leaky_relu", "model.fusion_mlp.normalization": "batch_norm",
          "model.fusion_mlp.adapt_in_features": "max", "model.fusion_mlp.weight": 0.5}
    predictor = Predictor(label="label", path=str(tmp_path / "p"), verbosity=0).fit(train, hyperparameters=hp)
    model = predictor.model_
    widths = {name: b.out_features for name, b in model.backbones.items()}
    assert len(widths) == 2 and len(set(widths.values())) == 2  # text and tabular features of different widths
    assert {name: a.out_features for name, a in model.adapters.items()} == dict.fromkeys(widths, max(widths.values()))
    linears = [m for m in model.fusion if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2 * max(widths.values()), 48), (48, 24)]
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.fusion)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.fusion)
    assert model.out_features == 24 and predictor.extract_embedding(test.head(4)).shape == (4, 24)
    assert set(model.backbone_heads) == set(widths)
    # Each backbone's own output layer was trained: its loss was logged on every step.
    log = pd.read_csv(tmp_path / "p" / "logs" / "metrics.csv")
    assert log["train_backbone_task"].notna().any() and np.isfinite(log["train_backbone_task"].dropna()).all()
    proba = predictor.predict_proba(test)
    again = Predictor.load(predictor.path, verbosity=0)
    assert np.allclose(again.predict_proba(test).to_numpy(), proba.to_numpy(), atol=1e-6)
    assert again.config_.model.fusion_mlp.hidden_sizes == [48, 24]


def test_per_backbone_logits_only_while_training(drug_frames, tiny_hp, tmp_path):
    from automm_lite.data.batching import build_dataset

    train, _ = drug_frames
    predictor = Predictor(label="label", path=str(tmp_path / "q"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.fusion_mlp.weight": 0.1})
    model = predictor.model_
    batch = build_dataset(model, predictor.preprocessor_.transform(train.head(8))).collate(list(range(8)))
    assert "backbone_logits" not in model.eval()(batch)
    own = model.train()(batch)["backbone_logits"]
    assert set(own) == set(model.backbones) and all(v.shape == (8, 3) for v in own.values())
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    outputs = model(batch)
    plain, _ = TaskObjective("multiclass")(outputs, {"label": labels})
    loss, terms = TaskObjective("multiclass", backbone_loss_weight=0.5)(outputs, {"label": labels})
    assert torch.isclose(loss, plain + 0.5 * terms["backbone_task"])
    # With a teacher, the backbones' hard-label terms are weighted by hard_label_weight x weight.
    teacher = {"logits": torch.randn(8, 3)}
    objective = DistillationObjective([Match("logits", loss="cross_entropy", weight=1.0)], hard_label_weight=0.2,
                                      backbone_loss_weight=0.5)
    _, terms = objective(outputs, teacher, labels=labels)
    assert terms["backbone_hard_label"] > 0 and "backbone_hard_label" in repr(objective)
    model.eval()


def test_default_fusion_keeps_the_layout_saved_predictors_have(drug_frames, tiny_hp, tmp_path):
    from automm_lite.config import Config

    train, _ = drug_frames
    predictor = Predictor(label="label", path=str(tmp_path / "d"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    keys = [k for k in predictor.model_.state_dict() if not k.startswith("backbones.")]
    assert keys == ["fusion.0.weight", "fusion.0.bias", "fusion.2.weight", "fusion.2.bias", "head.1.weight",
                    "head.1.bias"]
    old = Config.from_dict({"model": {"fusion_mlp": {"hidden_size": 96, "dropout": 0.2}}}).model.fusion_mlp
    assert (old.hidden_sizes, old.dropout, old.activation, old.adapt_in_features, old.weight) == (
        [96], 0.2, "gelu", "none", 0.0)


def test_one_backbone_has_no_fusion_layers(tiny_hp, bbc_short, tmp_path):
    train, _ = bbc_short
    predictor = Predictor(label="label", path=str(tmp_path / "t"), verbosity=0).fit(
        train.head(60), hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.fusion_mlp.weight": 0.3,
                                         "model.fusion_mlp.adapt_in_features": "min"})
    model = predictor.model_
    assert isinstance(model.fusion, torch.nn.Identity) and not model.adapters and not model.backbone_heads
    assert model.backbone_loss_weight == 0.0
