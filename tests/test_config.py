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
    assert cfg.model.hf_text.freeze_word_embeddings == "auto"
    assert parse_hyperparameters({"optimization": {"max_epochs": 2}}) == {"optimization.max_epochs": 2}


def test_precision_given_as_int_like_autogluon_users_write_it():
    assert apply_overrides(Config(), {"env.precision": 32}).env.precision == "32"


@pytest.mark.parametrize("key,value,words", [
    ("optimization.max_epochs", "three", "number"),
    ("optimization.max_epochs", 0, "[1"),
    ("optimization.max_epochs", 2.5, "whole"),
    ("env.inference_batch_tokens", "many", "number"),
    ("env.inference_batch_tokens", -1, "[0"),
    ("optimization.learning_rate", -1.0, "(0.0, 1.0]"),
    ("optimization.learning_rate", 0, "(0.0"),  # an open bound: a learning rate of 0 trains nothing
    ("distiller.temperature", 0, "(0.0, inf)"),
    ("env.num_gpus", -2, "[0"),
    ("env.num_threads", -1, "[1"),
    ("distiller.soft_label_loss_type", "kl", "'auto'"),
    ("env.precision", "fp8", "one of"),
    ("env.deterministic", "maybe", "true or false"),
    ("optimization.top_k_average_method", "mean", "greedy_soup"),
])
def test_wrong_type_or_range_names_key_value_and_what_is_allowed(key, value, words):
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), {key: value}, allow_distiller=True)
    message = str(info.value)
    assert key in message and repr(value) in message and words in message


def test_wrong_type_errors_say_auto_where_auto_is_allowed():
    with pytest.raises(ConfigError, match="or auto"):
        apply_overrides(Config(), {"env.inference_batch_tokens": "many"})


def test_one_spelling_of_auto_and_the_older_spellings_read_as_it():
    defaults = Config()
    assert (defaults.env.num_gpus, defaults.env.num_threads, defaults.env.inference_batch_tokens,
            defaults.model.hf_text.freeze_word_embeddings, defaults.distiller.soft_label_loss_type,
            defaults.optimization.loss_function, defaults.env.strategy) == ("auto",) * 7
    old = {"env.num_gpus": -1, "env.num_threads": 0, "env.inference_batch_tokens": None,
           "model.hf_text.freeze_word_embeddings": None, "distiller.soft_label_loss_type": "",
           "distiller.softmax_regression_loss_type": ""}  # AutoGluon's and earlier saved configs' spellings
    cfg = apply_overrides(Config(), old, allow_distiller=True)
    assert all(value == "auto" for key, value in ((k, _get(cfg, k)) for k in old)), cfg
    as_text = apply_overrides(Config(), "env.num_gpus=-1 env.num_threads=0 env.inference_batch_tokens=none "
                                        "model.hf_text.freeze_word_embeddings=null")  # from a command line
    assert (as_text.env.num_gpus, as_text.env.num_threads, as_text.env.inference_batch_tokens,
            as_text.model.hf_text.freeze_word_embeddings) == ("auto",) * 4
    kept = apply_overrides(Config(), {"env.num_gpus": 0, "env.num_threads": 2, "env.inference_batch_tokens": 0})
    assert (kept.env.num_gpus, kept.env.num_threads, kept.env.inference_batch_tokens) == (0, 2, 0)
    assert apply_overrides(Config(), {"model.hf_text.freeze_word_embeddings": False}).model.hf_text \
        .freeze_word_embeddings is False  # False is not 0 here


def _get(config, key):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def test_a_saved_config_loads_whatever_its_version_allowed():
    saved = Config().to_dict()
    saved["optimization"]["learning_rate"] = 0.0  # valid before the bound became open
    saved["optimization"]["val_check_interval"] = 0
    loaded = Config.from_dict(saved)
    assert (loaded.optimization.learning_rate, loaded.optimization.val_check_interval) == (0.0, 0.0)
    with pytest.raises(ConfigError, match=r"\(0.0"):
        apply_overrides(Config(), {"optim.lr": 0})  # a new fit still gets the bound
    saved["env"]["precision"] = "fp8"
    with pytest.raises(ConfigError, match="fp8"):  # kinds and choices are still checked
        Config.from_dict(saved)


def test_annotations_say_what_each_key_holds():
    import dataclasses
    import typing

    from automm_lite import config as module

    for key, field, owner in module._iter_owners(Config()):
        spec = module._specs(type(owner))[field.name]
        value = getattr(owner, field.name)
        annotation = typing.get_type_hints(type(owner))[field.name]
        assert spec.kind in ("bool", "int", "float", "str", "list", "int_list"), (key, annotation)
        if value == "auto":
            assert spec.or_auto or "auto" in (spec.choices or ()), key
        elif spec.kind == "int_list":
            assert isinstance(value, list) and value and all(type(v) is int for v in value), key
        elif spec.kind == "list":
            assert isinstance(value, list), key
            assert spec.choices is None or all(v in spec.choices for v in value), key
        else:
            assert type(value).__name__ == spec.kind, (key, value, annotation)
            assert spec.choices is None or value in spec.choices, key
        assert dataclasses.is_dataclass(owner)


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
    assert base.optimization.learning_rate == "auto"
    assert Config.from_dict(changed.to_dict()) == changed


def test_presets_and_their_errors():
    assert preset_overrides("medium_quality")["model.hf_text.checkpoint_name"] == "minilm-l3"
    assert preset_overrides("multilingual")["model.hf_text.checkpoint_name"] == "me5-small"
    with pytest.raises(ConfigError, match="medium_quality"):
        preset_overrides("ultra")
    for name in ("medium_quality", "high_quality", "best_quality", "fast", "multilingual"):
        apply_overrides(Config(), preset_overrides(name))  # every preset is valid config


def test_keys_table_lists_every_key_with_what_it_accepts_and_help():
    table = keys_table()
    for key, field, _ in iter_fields():
        assert f"`{key}`" in table and field.metadata["help"]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3].strip() for line in table.splitlines()[2:]}
    assert rows["model.hf_text.max_text_len"] == "integer >= 8 and <= 8192"
    assert rows["model.hf_text.pooling"] == "`mean`, `cls`"
    assert rows["env.num_gpus"].endswith("or `auto`")


def test_autogluon_value_spellings_are_accepted():
    cfg = apply_overrides(Config(), {"distiller.output_feature_loss_type": "cosine_distance",
                                     "distiller.hidden_state_loss_type": "mean_square_error"}, allow_distiller=True)
    assert (cfg.distiller.output_feature_loss_type, cfg.distiller.hidden_state_loss_type) == ("cosine", "mse")


def test_arguments_are_checked_by_the_keys_rules_in_the_same_words():
    from collections.abc import Callable
    from dataclasses import dataclass
    from typing import Literal

    from automm_lite.config import _key, check_arguments, fields_table

    @dataclass
    class Arguments:
        seed: int = _key(0, "Random state", ge=0)
        limit: float | None = _key(None, "Seconds at most", gt=0)
        mode: Literal["a", "b"] = _key("a", "How")
        hook: Callable | None = _key(None, "Called back")

    checked = check_arguments(Arguments, {"seed": 3, "limit": 2, "hook": print}, where="run")
    assert (checked.seed, checked.limit, checked.mode, checked.hook) == (3, 2.0, "a", print)
    assert check_arguments(Arguments, {"limit": None}, where="run").limit is None
    for values, words in [({"seed": -1}, r"run: seed=-1 is invalid: expected a value in \[0, inf\)\."),
                          ({"seed": "3"}, "seed='3' is invalid: expected a number"),  # an argument is not text
                          ({"seed": 3.0}, "seed=3.0 is invalid: expected a whole number"),
                          ({"seed": True}, "seed=True is invalid"),
                          ({"limit": 0}, r"limit=0 is invalid: expected a value in \(0, inf\) or None"),
                          ({"limit": float("nan")}, "limit=nan is invalid: expected a finite number"),
                          ({"mode": "c"}, "mode='c' is invalid: expected one of 'a', 'b'"),
                          ({"hook": 3}, "hook=3 is invalid: expected a callable"),
                          ({"sed": 1}, r"Unknown run setting\(s\) \['sed'\]; valid: seed, limit, mode, hook")]:
        with pytest.raises(ConfigError, match=words):
            check_arguments(Arguments, values, where="run")
    assert "| `limit` | `null` | number > 0, or `None` | Seconds at most. |" in fields_table(Arguments())
