"""``distiller.recipe``: the documented choice for each situation, keys the user passes win, AutoGluon's recipe
exactly, the student cut from the teacher when none is named, synthetic rows, and custom terms."""
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import torch
from test_teacher import (  # pytest puts this folder on sys.path
    log_message,
    logged_terms,
)

from automm_lite import Predictor
from automm_lite.config import Config, apply_overrides
from automm_lite.data.augment import synthetic_rows
from automm_lite.distill.auto import (
    AUTOGLUON_DISTILLER,
    MIN_LAYER_ROWS,
    MIN_LAYER_STEPS,
    FitFacts,
    RecipeChoice,
    choose_terms,
    layers_for_student,
    synthetic_rows_for,
)
from automm_lite.distill.losses import DistillationObjective, Match


def chosen(keys=None, *, token_level=True, has_unlabeled=False, n_rows=1000, n_text_columns=1, explicit=(),
           max_tokens=64):
    """The config and choice of ``choose_terms`` for a config with ``keys`` (``explicit``: the keys passed), a
    3-layer student of a 12-head, 384-wide teacher."""
    config = apply_overrides(Config(), keys or {}, allow_distiller=True)
    explicit = set(explicit) | set(keys or {})
    facts = FitFacts(token_level, n_rows=n_rows, n_unlabeled=500 if has_unlabeled else 0,
                     n_text_columns=n_text_columns, layer_pairs=3, teacher_heads=12, teacher_width=384,
                     max_tokens=max_tokens)
    return choose_terms(config, RecipeChoice(config.distiller.recipe, explicit), facts)


def test_auto_with_unlabeled_rows_and_the_same_tokens_adds_the_cosine_hidden_state_term():
    config, choice = chosen(has_unlabeled=True)
    d = config.distiller
    assert (d.hidden_state_loss_weight, d.hidden_state_loss_type, d.synthetic_rows) == (1.0, "cosine", 0)
    assert choice.recipe == "auto" and "unlabeled" in choice.describe()


def test_auto_with_unlabeled_rows_is_the_spelled_out_recipe_of_the_tables():
    # the distillation table's page carries the `ours` rows' scores over to `auto + unlabeled rows`: the same
    # config, key for key
    from automm_lite.reports.distill_table import OUR_RECIPE

    auto, _ = chosen(has_unlabeled=True)
    ours, _ = chosen(OUR_RECIPE, has_unlabeled=True)
    assert dataclasses.replace(auto.distiller, recipe="none") == ours.distiller
    assert auto == dataclasses.replace(ours, distiller=auto.distiller)


def test_auto_without_unlabeled_rows_makes_synthetic_rows_by_the_kind_of_text():
    config, choice = chosen(n_rows=1000, n_text_columns=1)
    assert config.distiller.synthetic_rows == 3 and config.distiller.synthetic_ops == ["mix", "span"]
    d = config.distiller
    assert (d.hidden_state_loss_weight, d.hidden_state_loss_type, d.attention_loss_weight) == (1.0, "mse", 1.0)
    pairs, _ = chosen(n_rows=1000, n_text_columns=2)
    assert pairs.distiller.synthetic_ops == ["swap", "mix"]
    assert [synthetic_rows_for(n) for n in (1, 100, 5000, 5001, 50000, 50001)] == [0, 3, 3, 1, 1, 0]
    large, _ = chosen(n_rows=60000)
    assert large.distiller.synthetic_rows == 0 and large.distiller.hidden_state_loss_weight == 0  # no extra rows


def test_auto_leaves_layer_terms_out_with_other_tokens_or_too_few_steps():
    other, choice = chosen(token_level=False)
    assert other.distiller.hidden_state_loss_weight == 0 and other.distiller.synthetic_rows == 3
    assert "different tokens" in choice.describe()
    # 40 rows x 4 / 32 per step x 10 epochs = 50 steps
    few, choice = chosen({"env.batch_size": 32, "optimization.max_epochs": 10}, n_rows=40)
    assert few.distiller.hidden_state_loss_weight == 0 and f"under {MIN_LAYER_STEPS}" in choice.describe()
    # enough steps, but few labelled rows and no unlabeled ones: synthetic rows with the logit and feature terms
    weak, choice = chosen({"optimization.max_epochs": 100}, n_rows=MIN_LAYER_ROWS - 1)
    d = weak.distiller
    assert (d.synthetic_rows, d.hidden_state_loss_weight, d.attention_loss_weight) == (3, 0, 0)
    assert f"{MIN_LAYER_ROWS - 1} labelled rows and no unlabeled ones, under {MIN_LAYER_ROWS}" in choice.describe()
    enough, _ = chosen({"optimization.max_epochs": 100}, n_rows=MIN_LAYER_ROWS)
    assert enough.distiller.hidden_state_loss_weight == 1.0 and enough.distiller.attention_loss_weight == 1.0
    with_unlabeled, _ = chosen({"optimization.max_epochs": 100}, n_rows=MIN_LAYER_ROWS - 1, has_unlabeled=True)
    assert with_unlabeled.distiller.hidden_state_loss_weight == 1.0  # the rule is for synthetic rows only


def test_the_layer_cache_and_the_unlabeled_rows_bound_the_layer_terms():
    # 4,000 rows x 4 at 128 tokens: attention maps of 3 layers 18 GB, hidden states 5 GB (budget 8 GiB)
    long, choice = chosen(n_rows=4000, max_tokens=128)
    assert long.distiller.attention_loss_weight == 0 and long.distiller.hidden_state_loss_weight == 1.0
    assert "no attention term" in choice.describe()
    huge, choice = chosen(n_rows=4000, max_tokens=8192)
    assert huge.distiller.hidden_state_loss_weight == 0 and "no layer-wise terms" in choice.describe()
    # 40 labelled rows and 500 unlabeled ones: enough steps for the cosine term
    few, _ = chosen(n_rows=40, has_unlabeled=True)
    assert few.distiller.hidden_state_loss_weight == 1.0 and few.distiller.hidden_state_loss_type == "cosine"


def test_keys_the_user_passed_always_win():
    config, choice = chosen({"distiller.hidden_state_loss_weight": 0.0, "distiller.synthetic_rows": 1,
                             "distiller.temperature": 2.0}, has_unlabeled=False)
    d = config.distiller
    assert (d.hidden_state_loss_weight, d.synthetic_rows, d.temperature) == (0.0, 1, 2.0)
    assert "distiller.hidden_state_loss_weight" not in choice.keys
    assert "kept as passed: distiller.hidden_state_loss_weight, distiller.synthetic_rows" in choice.describe()
    # no extra rows passed, so no rows for a layer-wise term either
    config, choice = chosen({"distiller.synthetic_rows": 0})
    assert config.distiller.synthetic_rows == 0 and config.distiller.hidden_state_loss_weight == 0
    assert "no rows beyond the labelled ones" in choice.describe()
    config, _ = chosen({"distiller.recipe": "autogluon", "distiller.output_feature_loss_weight": 0.5})
    assert config.distiller.output_feature_loss_weight == 0.5 and config.distiller.temperature == 5.0


def test_autogluon_recipe_is_autogluons_terms_and_defaults_exactly():
    # configs/distiller/default.yaml of AutoGluon (v0.6 to today), and no layer-wise terms or extra rows
    expected = {"temperature": 5.0, "hard_label_weight": 0.1, "soft_label_weight": 1.0, "soft_label_loss_type": "auto",
                "output_feature_loss_weight": 0.01, "output_feature_loss_type": "mse",
                "softmax_regression_weight": 0.0, "softmax_regression_loss_type": "mse",
                "rkd_distance_loss_weight": 0.0, "rkd_angle_loss_weight": 0.0, "hidden_state_loss_weight": 0.0,
                "attention_loss_weight": 0.0, "embedding_loss_weight": 0.0, "synthetic_rows": 0}
    assert AUTOGLUON_DISTILLER == {**{f"distiller.{k}": v for k, v in expected.items()}, "data.augment_copies": 0}
    busy = {"distiller.hidden_state_loss_weight": 1.0, "data.augment_copies": 2, "distiller.recipe": "autogluon"}
    config = apply_overrides(Config(), busy, allow_distiller=True)
    config, choice = choose_terms(config, RecipeChoice("autogluon", {"distiller.recipe"}), FitFacts(True, 1000))
    assert {k: v for k, v in dataclasses.asdict(config.distiller).items() if k in expected} == expected
    assert config.data.augment_copies == 0 and "AutoGluon" in choice.describe()
    untouched, choice = chosen({"distiller.recipe": "none"})
    assert untouched.to_dict() == apply_overrides(Config(), {"distiller.recipe": "none"},
                                                  allow_distiller=True).to_dict() and choice.keys == {}


def test_the_reasons_name_the_terms_that_run_when_keys_are_passed():
    cosine, choice = chosen({"distiller.hidden_state_loss_type": "cosine"})
    assert cosine.distiller.hidden_state_loss_type == "cosine" and cosine.distiller.attention_loss_weight == 1.0
    assert "hidden-state cosine and attention KL" in choice.describe()
    no_maps, choice = chosen({"distiller.attention_loss_weight": 0})
    assert no_maps.distiller.attention_loss_weight == 0 and no_maps.distiller.hidden_state_loss_weight == 1.0
    assert "same tokens and synthetic rows: hidden-state MSE" in choice.reasons
    assert "attention KL" not in choice.describe()
    # a passed attention term stays even over the cache bound, and the reasons say so
    kept, choice = chosen({"distiller.attention_loss_weight": 1.0}, n_rows=4000, max_tokens=128)
    assert kept.distiller.attention_loss_weight == 1.0 and "attention term kept as passed" in choice.describe()
    # rows a fit cannot make are not counted: one row has nothing to mix with
    one_row, choice = chosen({"distiller.synthetic_rows": 3, "optimization.max_epochs": 1000}, n_rows=1)
    assert one_row.distiller.hidden_state_loss_weight == 0 and "no layer-wise terms" in choice.describe()
    # an AutoGluon default the user passed is listed as kept, whatever its section
    _, choice = chosen({"distiller.recipe": "autogluon", "data.augment_copies": 2})
    assert "kept as passed: data.augment_copies" in choice.describe()


def test_layers_for_student_keeps_half_spread_to_the_top():
    assert layers_for_student(6) == [1, 3, 5]
    assert layers_for_student(12) == [1, 3, 5, 7, 9, 11]
    assert layers_for_student(3) == [2] and layers_for_student(1) == [0] and layers_for_student(2) == [1]


def test_synthetic_rows_mix_swap_and_span():
    data = pd.DataFrame({"a": ["one two three four", "five six seven eight", "nine ten"],
                         "b": ["x1", "x2", "x3"], "n": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    mixed = synthetic_rows(data, ["a"], 1, ["mix"], seed=0)
    assert len(mixed) == 3 and list(mixed.n) == [1.0, 2.0, 3.0]
    assert mixed.a[0].startswith("one two ") and mixed.a[0] != data.a[0]  # never mixed with itself
    swapped = synthetic_rows(data, ["a", "b"], 2, ["swap"], seed=0)
    changed = (swapped[["a", "b"]].to_numpy() != pd.concat([data, data])[["a", "b"]].to_numpy()).sum(axis=1)
    assert len(swapped) == 6 and (changed == 1).all()
    span = synthetic_rows(data, ["a"], 1, ["span"], seed=0)
    assert all(s in t and len(s.split()) < len(t.split()) for s, t in zip(span.a[:2], data.a[:2]))
    assert synthetic_rows(data, ["a"], 3, ["mix", "span"], seed=1).equals(
        synthetic_rows(data, ["a"], 3, ["mix", "span"], seed=1))
    assert not synthetic_rows(data, ["a"], 3, ["mix", "span"], seed=1).equals(
        synthetic_rows(data, ["a"], 3, ["mix", "span"], seed=2))  # the seed is used
    assert synthetic_rows(data, ["a"], 1, ["swap"], seed=0).a.tolist() == mixed.a.tolist()  # one column: mix
    assert synthetic_rows(data, ["a"], 0, ["mix"], seed=0).empty


def test_synthetic_image_rows_paste_a_box_of_another_image_or_crop(tmp_path):
    from PIL import Image

    from automm_lite.data.images import MadeImage, open_image

    shades = (0, 60, 120, 255)
    paths = []
    for i, shade in enumerate(shades):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("L", (40, 30), shade).save(paths[-1])
    data = pd.DataFrame({"image": paths, "label": [0, 1, 0, 1]})
    mixed = synthetic_rows(data, [], 1, ["mix"], seed=0, image_columns=["image"])
    assert len(mixed) == 4
    for made, own, shade in zip(mixed.image, paths, shades):
        assert isinstance(made, MadeImage) and made.first == own and made.second not in (own, None)
        pixels = np.asarray(open_image(made).convert("L"))
        other = shades[paths.index(made.second)]
        # the pasted box covers 20-60% of the area, the rest stays the row's own image
        assert pixels.shape == (30, 40) and 0.15 < (pixels == other).mean() < 0.65
        assert ((pixels == other) | (pixels == shade)).all()
    crops = synthetic_rows(data, [], 1, ["span"], seed=0, image_columns=["image"])
    sizes = [open_image(made).size for made in crops.image]
    assert all(20 <= w < 40 and 15 <= h < 30 for w, h in sizes), sizes
    gaps = synthetic_rows(data.assign(image=[paths[0], None, None, None]), [], 1, ["mix"], seed=0,
                          image_columns=["image"])
    assert gaps.image[0] == paths[0] and gaps.image[1:].isna().all()  # nothing to mix with: the row's own value
    notes = ["a b", "c d", "e f", "g h"]
    pair = synthetic_rows(data.assign(note=notes), ["note"], 4, ["swap"], seed=0, image_columns=["image"])
    text_swapped, image_swapped = pair.note.to_numpy() != np.tile(notes, 4), pair.image.to_numpy() != np.tile(paths, 4)
    assert (text_swapped ^ image_swapped).all() and image_swapped.any()  # one column per row, images too
    assert MadeImage(str(tmp_path / "gone.png"), None, (0, 0, 1, 1)).open() is None  # an unreadable parent


def test_auto_makes_synthetic_image_rows_for_an_image_student():
    config = Config()
    for columns, ops in (((0, 1), ["mix", "span"]), ((1, 1), ["swap", "mix"]), ((0, 0), None)):
        facts = FitFacts(False, n_rows=1000, n_text_columns=columns[0], n_image_columns=columns[1])
        chosen_config, choice = choose_terms(config, RecipeChoice("auto"), facts)
        if ops is None:  # numbers and categories only: nothing to mix
            assert chosen_config.distiller.synthetic_rows == 0
        else:
            assert chosen_config.distiller.synthetic_rows == 3 and chosen_config.distiller.synthetic_ops == ops


def recipe_line(folder) -> str:
    return log_message(folder, "Distillation recipe")


def test_no_student_named_cuts_half_the_fine_tuned_teacher_with_its_budget(fitted_text_predictor, bbc_short,
                                                                           tmp_path):
    teacher = fitted_text_predictor
    train, test = bbc_short
    keys = {"env.per_gpu_batch_size": 16, "env.batch_size": 16, "optimization.top_k": 2,
            "distiller.teacher_check": False}  # the tiny teacher is below a linear model: distil anyway
    student = Predictor(label="label", path=str(tmp_path / "s"), verbosity=0).fit(
        train, teacher_predictor=teacher, hyperparameters=keys)
    config = student.config_
    assert config.model.hf_text.checkpoint_name == "teacher:layers=1"  # half of the tiny teacher's 2 layers
    assert (config.optimization.max_epochs, config.optimization.learning_rate) == (
        teacher.config_.optimization.max_epochs, teacher.config_.optimization.learning_rate)
    taught = teacher.config_.model.hf_text.max_text_len
    assert taught != Config().model.hf_text.max_text_len and config.model.hf_text.max_text_len == taught
    assert student.model_.backbones["hf_text"].encoder.config.num_hidden_layers == 1
    summary = student.fit_summary()
    recipe = summary["distillation_recipe"]
    assert recipe["recipe"] == "auto" and recipe["keys"]["distiller.synthetic_rows"] == 3
    assert summary["n_rows_trained"] == 4 * summary["n_train_rows"]  # each row and 3 synthetic ones
    line = recipe_line(tmp_path / "s")
    assert "recipe auto" in line and "no student named" in line and "synthetic rows" in line
    loaded = Predictor.load(tmp_path / "s", verbosity=0)
    assert loaded.config_.distiller.synthetic_rows == 3 and (loaded.predict(test) == student.predict(test)).all()


def test_a_named_student_keeps_its_settings_and_the_autogluon_recipe_runs_autogluons_terms(
        fitted_text_predictor, bbc_short, tiny_hp, tmp_path):
    train, _ = bbc_short
    student = Predictor(label="label", path=str(tmp_path / "ag"), verbosity=0).fit(
        train, teacher_predictor=fitted_text_predictor,
        hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "distiller.recipe": "autogluon",
                         "distiller.hidden_state_loss_weight": 1.0})
    assert student.config_.model.hf_text.checkpoint_name == tiny_hp["model.hf_text.checkpoint_name"]
    summary = student.fit_summary()
    assert summary["n_rows_trained"] == summary["n_train_rows"]  # no extra rows
    logged = {re.sub(r"_s\d+_t\d+", "", term) for term in logged_terms(tmp_path / "ag")}
    assert logged - {"train_loss"} == {"train_hard_label", "train_soft_label", "train_output_feature",
                                       "train_hidden"}  # AutoGluon's terms and the one passed
    line = recipe_line(tmp_path / "ag")
    assert "recipe autogluon" in line and "kept as passed: distiller.hidden_state_loss_weight" in line


def test_custom_term_is_trained_and_logged_under_its_name():
    def lengths_apart(student, teacher, mask):
        return (student.norm(dim=-1) - teacher.norm(dim=-1)).abs().mean()

    objective = DistillationObjective([Match("features", loss=lengths_apart, weight=0.5),
                                       Match("hidden_states", 1, 2, loss=lambda s, t, m: (s - t).pow(2).mean())],
                                      student_widths={"features": 4, "hidden_states": 4},
                                      teacher_widths={"features": 8, "hidden_states": 8})
    student = {"features": torch.randn(3, 4, requires_grad=True),
               "hidden_states": [torch.randn(3, 5, 4), torch.randn(3, 5, 4, requires_grad=True)]}
    teacher = {"features": torch.randn(3, 8), "hidden_states": [None, None, torch.randn(3, 5, 8)]}
    loss, terms = objective(student, teacher, attention_mask=torch.ones(3, 5))
    assert set(terms) == {"lengths_apart", "custom_s1_t2"}
    loss.backward()
    assert student["features"].grad.abs().sum() > 0 and objective.matchers["features"].weight.grad is not None
    assert "0.5*lengths_apart(custom)" in repr(objective)
    named = DistillationObjective([Match("logits", loss=lambda s, t, m: (s - t).abs().mean(), name="l1_logits")])
    _, terms = named({"logits": torch.zeros(2, 3)}, {"logits": torch.ones(2, 3)})
    assert terms["l1_logits"].item() == pytest.approx(1.0)
    bad = DistillationObjective([Match("logits", loss=lambda s, t, m: s - t)])
    with pytest.raises(ValueError, match="scalar"):
        bad({"logits": torch.zeros(2, 3)}, {"logits": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="name"):
        Match("logits", name="two words")
    assert np.isfinite(loss.item())


@pytest.mark.parametrize("keys, presets, named", [
    ({"optim.lr": 5e-4}, None, False),                                   # an alias counts as passed
    ({"optim": {"max_epochs": 3}}, None, False),                         # nested keys too
    ({}, "medium_quality", True),                                        # a preset names a student
    ({"model": {"hf_text": {"checkpoint_name": "minilm-l3"}}}, None, True),
])
def test_keys_are_passed_whatever_their_spelling(fitted_text_predictor, bbc_short, keys, presets, named):
    train, _ = bbc_short
    from automm_lite.fit_request import check_fit_arguments

    request = check_fit_arguments("label", None, None, train, None, None, keys, presets, None, 0, None, None,
                                  [fitted_text_predictor.as_teacher()])
    config, recipe = request.config, request.recipe
    assert config.model.hf_text.checkpoint_name.startswith("teacher:") is not named
    if "optim.lr" in keys:
        assert config.optimization.learning_rate == 5e-4 and "optimization.learning_rate" not in recipe.keys
    if "optim" in keys:
        assert config.optimization.max_epochs == 3 and "optimization.max_epochs" not in recipe.keys
        assert config.optimization.learning_rate == fitted_text_predictor.config_.optimization.learning_rate


def test_a_bad_layer_mapping_fails_before_any_work_even_with_the_terms_left_to_the_recipe(fitted_text_predictor,
                                                                                         bbc_short, tmp_path):
    from automm_lite.exceptions import ConfigError

    with pytest.raises(ConfigError, match="out of range"):
        Predictor(label="label", path=str(tmp_path / "s")).fit(
            bbc_short[0], teacher_predictor=fitted_text_predictor,
            hyperparameters={"distiller.layer_mapping": "1:9", "model.hf_text.max_text_len": 32})
    assert not (tmp_path / "s").exists()


def test_a_custom_soft_label_term_prints_in_the_formula():
    objective = DistillationObjective([Match("logits", loss=lambda s, t, m: (s - t).abs().mean())],
                                      problem_type="regression")
    assert "1*custom(custom)" in repr(objective) and "soft_label" not in repr(objective)
    assert Match("logits", loss=lambda s, t, m: s.sum(), name="my_lambda_loss").name == "my_lambda_loss"
