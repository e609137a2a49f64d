"""The search space: defaults from the teacher, user spaces from dicts and files, bad spaces refused up front."""
import json

import optuna
import pytest

from automm_lite.exceptions import ConfigError
from automm_lite.search.space import SearchSpace, TeacherShape, default_space, pick_layers

SHAPE = TeacherShape(num_layers=6, num_attention_heads=12, hidden_size=384, intermediate_size=1536)


def test_the_default_space_comes_from_the_teacher():
    space = default_space(SHAPE)
    assert space["num_layers"] == [1, 2, 3, 4]
    assert space["num_attention_heads"] == [3, 6, 12] and space["intermediate_size"] == [384, 768, 1536]
    assert set(space["layer_choice"]) == {"spread", "spread_top", "bottom"}


@pytest.mark.parametrize("choice, expected", [("bottom", (0, 1)), ("spread", (0, 3)), ("spread_top", (2, 5))])
def test_layer_choices_pick_teacher_layers(choice, expected):
    assert pick_layers(choice, 2, 6) == expected
    assert pick_layers(choice, 6, 6) == tuple(range(6))


def test_a_sampled_point_becomes_a_student_shape():
    space = SearchSpace({"num_layers": [2], "num_attention_heads": [6], "hidden_size": [160]}, SHAPE)
    shape = space.student({"num_layers": 2, "num_attention_heads": 6, "hidden_size": 160})
    # 160 is rounded down to a multiple of the 6 heads; the unsearched FFN keeps the teacher's size.
    assert (shape.layers, shape.hidden_size, shape.intermediate_size) == ((0, 3), 156, 1536)
    assert space.student({"layers": "1,4", "num_attention_heads": 6}).hidden_size == 6 * 32


def test_user_spaces_from_dicts_optuna_distributions_and_files(tmp_path):
    ranged = SearchSpace({"num_layers": {"low": 1, "high": 3}, "optim.lr": {"low": 1e-4, "high": 1e-3, "log": True},
                          "intermediate_size": optuna.distributions.CategoricalDistribution([384, 768])}, SHAPE)
    assert isinstance(ranged.distributions["num_layers"], optuna.distributions.IntDistribution)
    assert ranged.distributions["optim.lr"].log
    (tmp_path / "space.yaml").write_text("search_space:\n  layers: [[0, 3], [1, 4, 5]]\n  num_attention_heads: 6\n")
    from_yaml = SearchSpace(tmp_path / "space.yaml", SHAPE)
    assert from_yaml.distributions["layers"].choices == ("0,3", "1,4,5")
    (tmp_path / "space.json").write_text(json.dumps({"num_layers": [1, 2], "distiller.temperature": [1.0, 4.0]}))
    assert SearchSpace(str(tmp_path / "space.json"), SHAPE).names() == ["num_layers", "distiller.temperature"]
    assert SearchSpace.fit_keys({"num_layers": 1, "distiller.temperature": 4.0}) == {"distiller.temperature": 4.0}


@pytest.mark.parametrize("space, message", [
    ({"num_layer": [1, 2]}, "Did you mean num_layers"),
    ({"num_layers": []}, "empty list"),
    ({"num_layers": [2, 7]}, "more than the teacher can give"),
    ({"num_attention_heads": [16]}, "its num_attention_heads is 12"),
    ({"intermediate_size": [0]}, "intermediate_size=0"),
    ({"layers": [[0, 6]]}, "teacher layers in 0..5"),
    ({"layers": [0, 2, 4]}, "one list of layers"),
    ({"hidden_size": [8], "num_attention_heads": [12]}, "below the 12 heads"),
    ({"model.hf_text.checkpoint_name": ["minilm-l3"]}, "cannot be a search dimension"),
    ({"layers": [[1, 1]]}, "distinct"),
    ({"layers": ["0,2"], "num_layers": [2]}, "not both"),
    ({"layer_choice": ["middle"]}, "layer_choice 'middle'"),
    ({"optim.lrr": [1e-4]}, "Unknown hyperparameter 'optim.lrr'"),
    ({"optim.lr": [-1.0]}, "optim.lr"),
    ({"num_layers": {"low": 1}}, "a range is"),
    ({}, "non-empty dict"),
    ("missing.yaml", "does not exist"),
])
def test_a_bad_space_is_a_config_error_naming_the_problem(space, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(space, SHAPE)


def test_grid_needs_lists():
    assert SearchSpace({"num_layers": [1, 2]}, SHAPE).grid() == {"num_layers": [1, 2]}
    with pytest.raises(ConfigError, match="grid"):
        SearchSpace({"num_layers": {"low": 1, "high": 3}}, SHAPE).grid()
