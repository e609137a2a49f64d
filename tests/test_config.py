import pytest

from automm_lite.config import Config, apply_overrides, iter_fields, keys_table, parse_hyperparameters
from automm_lite.exceptions import ConfigError
from automm_lite.presets import preset_overrides


def test_unknown_key_names_the_closest_valid_key():
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), {"optim.lrr": 1e-4})
    assert "optim.lrr" in str(info.value) and "optim.lr" in str(info.value).replace("optim.lrr", "")


def test_old_and_new_autogluon_spellings_are_the_same_key():
    for key in ("optim.lr", "optimization.lr", "optimization.learning_rate", "optim.learning_rate"):
        assert apply_overrides(Config(), {key: 3e-5}).optimization.learning_rate == 3e-5
    cfg = apply_overrides(Config(), {"optim.max_epochs": 3, "env.per_gpu_batch_size": 8,
                                     "env.inference_batch_size_ratio": 2, "optim.loss_func": "mae"})
    assert (cfg.optimization.max_epochs, cfg.env.per_gpu_batch_size, cfg.env.eval_batch_size_ratio,
            cfg.optimization.loss_function) == (3, 8, 2, "mae")


def test_string_and_list_forms_are_parsed_and_typed():
    cfg = apply_overrides(Config(), "optimization.max_epochs=4 env.precision=bf16-mixed model.names=hf_text")
    assert cfg.optimization.max_epochs == 4 and cfg.env.precision == "bf16-mixed"
    assert cfg.model.names == ["hf_text"]
    cfg = apply_overrides(Config(), ["optim.lr=2e-4", "env.deterministic=true", "model.hf_text.freeze_word_embeddings=auto"])
    assert cfg.optimization.learning_rate == 2e-4 and cfg.env.deterministic is True
    assert cfg.model.hf_text.freeze_word_embeddings is None
    assert parse_hyperparameters({"optimization": {"max_epochs": 2}}) == {"optimization.max_epochs": 2}


def test_precision_given_as_int_like_autogluon_users_write_it():
    assert apply_overrides(Config(), {"env.precision": 32}).env.precision == "32"


@pytest.mark.parametrize("key,value,words", [
    ("optimization.max_epochs", "three", "number"),
    ("optimization.max_epochs", 0, "[1"),
    ("optimization.max_epochs", 2.5, "whole"),
    ("env.inference_batch_tokens", "many", "number"),
    ("env.inference_batch_tokens", -1, "[0"),
    ("optimization.learning_rate", -1.0, "[0.0"),
    ("env.precision", "fp8", "one of"),
    ("env.deterministic", "maybe", "true or false"),
    ("optimization.top_k_average_method", "mean", "greedy_soup"),
])
def test_wrong_type_or_range_names_key_value_and_what_is_allowed(key, value, words):
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), {key: value})
    message = str(info.value)
    assert key in message and repr(value) in message and words in message


def test_distiller_keys_need_a_teacher():
    with pytest.raises(ConfigError, match="teacher"):
        apply_overrides(Config(), {"distiller.temperature": 2})
    assert apply_overrides(Config(), {"distiller.temperature": 2}, allow_distiller=True).distiller.temperature == 2


def test_bad_item_in_list_form():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Config(), ["optimization.max_epochs"])


def test_overrides_do_not_mutate_the_input_and_round_trip_through_dict():
    base = Config()
    changed = apply_overrides(base, {"optim.lr": 5e-5})
    assert base.optimization.learning_rate == 1e-4
    assert Config.from_dict(changed.to_dict()) == changed


def test_presets_and_their_errors():
    assert preset_overrides("medium_quality")["model.hf_text.checkpoint_name"] == "minilm-l3"
    assert preset_overrides("multilingual")["model.hf_text.checkpoint_name"] == "me5-small"
    with pytest.raises(ConfigError, match="medium_quality"):
        preset_overrides("ultra")
    for name in ("medium_quality", "high_quality", "best_quality", "multilingual"):
        apply_overrides(Config(), preset_overrides(name))  # every preset is valid config


def test_keys_table_lists_every_key_with_help():
    table = keys_table()
    for key, field, _ in iter_fields():
        assert f"`{key}`" in table and field.metadata["help"]


def test_autogluon_value_spellings_are_accepted():
    cfg = apply_overrides(Config(), {"distiller.output_feature_loss_type": "cosine_distance",
                                     "distiller.hidden_state_loss_type": "mean_square_error"}, allow_distiller=True)
    assert (cfg.distiller.output_feature_loss_type, cfg.distiller.hidden_state_loss_type) == ("cosine", "mse")
