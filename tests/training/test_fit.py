"""The fit with explicit inputs and a typed result; checks a fit makes before any work."""
import dataclasses
import warnings

import pytest

from automm_lite import Predictor
from automm_lite.config import Config, apply_overrides
from automm_lite.data.frames import holdout_split
from automm_lite.data.preprocess import Preprocessor, infer_column_types
from automm_lite.exceptions import ConfigError
from automm_lite.training.fit import FitResult, fit_model
from automm_lite.training.strategy import check_batch_size


def test_fit_model_takes_explicit_inputs_and_returns_a_fit_result(bbc_short, tiny_hp, tmp_path):
    data, _ = bbc_short
    config = apply_overrides(Config(), {**tiny_hp, "optimization.max_epochs": 1})
    train, tuning = holdout_split(data, "label", "multiclass", None, 0)
    pre = Preprocessor("label", "multiclass", infer_column_types(train, "label")).fit(train)
    result = fit_model(config, pre, train, tuning, "accuracy", seed=0, work_dir=tmp_path, verbosity=0)
    assert isinstance(result, FitResult) and dataclasses.is_dataclass(result)
    assert result.backbone_names == ["hf_text"] and not result.model.training
    assert result.schema == {"n_outputs": 5, "n_numerical": 0, "cardinalities": [], "n_image_columns": 0}
    assert 0 <= result.val_score <= 1 and result.n_rows_trained == len(train)
    assert result.epochs == 1 and result.steps == -(-len(train) // 16) and 1 <= result.checkpoints_averaged <= 2
    assert (tmp_path / "logs" / "metrics.csv").is_file()  # Lightning's metrics log in the given work folder


@pytest.mark.parametrize("batch,per_pass,warns", [(48, 32, True), (16, 32, True), (64, 32, False), (32, 32, False)])
def test_a_batch_size_that_cannot_be_reached_exactly_warns(batch, per_pass, warns):
    env = apply_overrides(Config(), {"env.batch_size": batch, "env.per_gpu_batch_size": per_pass,
                                     "env.num_gpus": 0}).env
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_batch_size(env)
    messages = [str(w.message) for w in caught if "env.batch_size" in str(w.message)]
    assert len(messages) == (1 if warns else 0), messages
    if warns:
        assert f"env.batch_size={batch}" in messages[0] and f"uses {max(per_pass, batch // per_pass * per_pass)} rows" \
            in messages[0]


def test_fit_warns_of_the_batch_size_before_training(bbc_short, tiny_hp, tmp_path):
    train, _ = bbc_short
    with pytest.warns(UserWarning, match="env.batch_size=24"), pytest.raises(ConfigError, match="layer 9"):
        # the warning comes with the argument checks: the bad layer list after it stops the fit before any work
        Predictor(label="label", path=str(tmp_path / "p"), verbosity=0).fit(train, hyperparameters={
            **tiny_hp, "env.batch_size": 24, "model.hf_text.checkpoint_name": "minilm-l6:layers=9"})
    assert not (tmp_path / "p").exists()


def test_layer_settings_are_checked_against_the_models_without_loading_weights(tiny_text_dir):
    from automm_lite.distill.recipe import check_layer_settings
    from automm_lite.distill.teacher import Teacher
    from automm_lite.models import build_model

    config = apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir})
    teacher = Teacher(build_model(config, ["hf_text"], {"n_outputs": 2, "n_numerical": 0, "cardinalities": []}),
                      preprocessor=None, env=config.env)  # a 2-layer text encoder
    student = {"model.hf_text.checkpoint_name": "teacher:layers=1", "distiller.hidden_state_loss_weight": 1.0}
    check_layer_settings(apply_overrides(config, {**student, "distiller.layer_mapping": "1:2"}, True), teacher)
    with pytest.raises(ConfigError, match="out of range"):
        check_layer_settings(apply_overrides(config, {**student, "distiller.layer_mapping": "1:3"}, True), teacher)
    with pytest.raises(ConfigError, match="layer_mapping"):
        check_layer_settings(apply_overrides(config, {**student, "distiller.layer_mapping": "one to two"}, True),
                             teacher)
    with pytest.raises(ConfigError, match="layer 2 is out of range"):
        check_layer_settings(apply_overrides(config, {"model.hf_text.checkpoint_name": "teacher:layers=2"}, True),
                             teacher)
    unread = {"model.hf_text.checkpoint_name": "some-org/a-hub-model", "distiller.layer_mapping": "1:2,x",
              "distiller.hidden_state_loss_weight": 1.0}
    with pytest.raises(ConfigError, match="layer_mapping"):  # depths unknown offline: the syntax is still checked
        check_layer_settings(apply_overrides(config, unread, True), teacher)
    # A student of its own checkpoint may read other tokens, and then the layer-wise terms are skipped: a mapping
    # beyond its depth is left to the fit (as before). A mapping is checked even with no layer-wise weight set,
    # since distiller.recipe=auto may switch the terms on.
    own = {"model.hf_text.checkpoint_name": tiny_text_dir, "distiller.hidden_state_loss_weight": 1.0,
           "distiller.layer_mapping": "1:9"}
    check_layer_settings(apply_overrides(config, own, True), teacher)
    unused = {"model.hf_text.checkpoint_name": "teacher:layers=1", "distiller.layer_mapping": "not read"}
    with pytest.raises(ConfigError, match="layer_mapping='not read'"):
        check_layer_settings(apply_overrides(config, unused, True), teacher)
