"""``distiller.teacher_check``: a teacher not above a linear model on the gold labels is not distilled, and the
student trains as the equal-compute control instead; a teacher above it is distilled; the choice repeats with the
seed; the teacher's tuning score sits next to the student's."""
import numpy as np
import pandas as pd
import pytest

from automm_lite import Predictor

NUMBERS = {"model.names": ["tabular_mlp"], "model.classical.enabled": False, "env.batch_size": 32,
           "optimization.max_epochs": 30, "optimization.learning_rate": 1e-2}


def numbers(rule, n=400, seed=0):
    """Two number columns and a label the ``rule`` of them gives."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.where(rule(x[:, 0], x[:, 1]), "yes", "no")})


def bad_teacher(data, folder):
    """A teacher that learned the wrong rule: fitted on the same rows with their labels shuffled."""
    shuffled = data.assign(label=data.label.sample(frac=1.0, random_state=7).to_numpy())
    return Predictor("label", path=str(folder), verbosity=0).fit(
        shuffled, hyperparameters={**NUMBERS, "optimization.max_epochs": 5})


@pytest.fixture(scope="module")
def xor_teacher(tmp_path_factory):
    """A network that learned which quadrant a point is in: a linear model cannot (about chance)."""
    data = numbers(lambda a, b: a * b > 0)
    return Predictor("label", path=str(tmp_path_factory.mktemp("xor")), verbosity=0).fit(
        data, hyperparameters=NUMBERS, seed=0)


def test_a_teacher_below_the_gold_label_reference_is_not_distilled(tmp_path):
    data = numbers(lambda a, b: a > 0)  # a linear rule: the linear model gets it right
    weak = bad_teacher(data, tmp_path / "weak")
    unlabeled = numbers(lambda a, b: a > 0, n=960, seed=5).drop(columns="label")  # 3 per training row
    student = Predictor("label", path=str(tmp_path / "student"), verbosity=0).fit(
        data, teacher_predictor=weak, unlabeled_data=unlabeled,
        hyperparameters={**NUMBERS, "optimization.max_epochs": 5}, seed=0)
    summary = student.fit_summary()
    recipe = summary["distillation_recipe"]
    check = recipe["teacher_check"]
    assert not recipe["distilled"] and not check["worth_distilling"]
    assert check["reference"] == "linear" and check["reference_score"] > check["teacher_score"]
    assert any("trains without the teacher" in reason and "distiller.teacher_check=false" in reason
               for reason in recipe["reasons"])
    # the equal-compute control of 4x the rows (3 unlabeled rows per row) for 5 epochs: the gold rows, 4x the
    # epochs and steps
    n = summary["n_train_rows"]
    assert n == 320 and summary["n_rows_trained"] == n
    steps = 4 * 5 * -(-n // 32)
    assert recipe["keys"]["optimization.max_steps"] == steps and recipe["keys"]["optimization.max_epochs"] == 20
    assert recipe["scores"]["teacher"] == check["teacher_score"]
    assert student.evaluate(data, metrics="accuracy")["accuracy"] > 0.9  # it learned from the gold labels


def test_a_teacher_above_the_reference_is_distilled_and_the_choice_repeats(xor_teacher, tmp_path):
    data = numbers(lambda a, b: a * b > 0, seed=1)
    recipes = []
    for run in range(2):
        student = Predictor("label", path=str(tmp_path / f"s{run}"), verbosity=0).fit(
            data, teacher_predictor=xor_teacher, hyperparameters={**NUMBERS, "optimization.max_epochs": 5}, seed=3)
        recipes.append(student.fit_summary()["distillation_recipe"])
    check = recipes[0]["teacher_check"]
    assert recipes[0]["distilled"] and check["worth_distilling"]
    assert check["teacher_score"] > 0.85 and check["reference_score"] < 0.7
    assert recipes[0]["scores"]["student"] > 0.5 and recipes[0]["scores"]["teacher"] == check["teacher_score"]
    assert recipes[0] == recipes[1]  # the same data and seed: the same check, keys and reasons


def test_the_check_can_be_turned_off_and_other_recipes_only_score_the_teacher(tmp_path):
    data = numbers(lambda a, b: a > 0)
    weak = bad_teacher(data, tmp_path / "weak")
    for run, keys in enumerate(({"distiller.teacher_check": False}, {"distiller.recipe": "autogluon"})):
        student = Predictor("label", verbosity=0, path=str(tmp_path / f"s{run}")).fit(
            data, teacher_predictor=weak, hyperparameters={**NUMBERS, "optimization.max_epochs": 1, **keys})
        recipe = student.fit_summary()["distillation_recipe"]
        assert recipe["distilled"] and recipe["teacher_check"]["reference_score"] is None
        assert recipe["teacher_check"]["teacher_score"] == pytest.approx(recipe["scores"]["teacher"])
