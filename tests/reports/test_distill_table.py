"""The distillation table's numbers: the ratio, the aggregation over seeds, valid recipes, tasks kept apart."""
import numpy as np
import pytest


def test_distillation_ratio_and_table_aggregation():
    from automm_lite.reports.distill_table import DistillationReport, distillation_ratio

    assert distillation_ratio(0.9, 0.8, 0.85) == pytest.approx(0.5)
    assert np.isnan(distillation_ratio(0.8, 0.8, 0.85))
    report = DistillationReport("accuracy")
    base = {"test_set": "all", "parameters": 10, "fit_seconds": 10.0}
    report.runs += [{**base, "model": "teacher", "role": "teacher", "seed": 0, "score": 0.9, "seconds": 4.0,
                     "baseline": "", "parameters": 100, "fit_seconds": 50.0}]
    for seed, (plain, kd) in enumerate([(0.80, 0.86), (0.82, 0.86)]):
        report.runs.append({**base, "model": "no-distill", "role": "no-distill", "seed": seed, "score": plain,
                            "seconds": 1.0, "baseline": ""})
        report.runs.append({**base, "model": "distilled: ours", "role": "student", "seed": seed, "score": kd,
                            "seconds": 1.0, "baseline": "no-distill", "fit_seconds": 11.0})
    table = report.table().set_index("model")
    assert table.loc["distilled: ours", "accuracy"] == pytest.approx(0.86)
    assert table.loc["distilled: ours", "ratio"] == pytest.approx((0.6 + 0.5) / 2)
    assert table.loc["distilled: ours", "speed-up"] == pytest.approx(4.0)
    assert table.loc["distilled: ours", "fit / no-distill fit"] == pytest.approx(1.1)
    assert table.loc["no-distill", "spread"] == pytest.approx(0.01)
    assert "distilled: ours" in str(report)


def test_table_recipes_are_valid_keys_and_ours_uses_the_teachers_extra_rows():
    from automm_lite.config import Config, apply_overrides
    from automm_lite.reports.distill_table import (
        AUTOGLUON_RECIPE,
        DATA_KEYS,
        TRANSFER_ROWS,
        default_recipes,
        our_recipe,
    )

    with_unlabeled, without = our_recipe(True), our_recipe(False)
    assert with_unlabeled.pop(TRANSFER_ROWS) is True and not any(k in DATA_KEYS for k in with_unlabeled)
    assert TRANSFER_ROWS not in without and without["data.augment_copies"] > 0  # gets a same-copies baseline
    for recipe in (AUTOGLUON_RECIPE, with_unlabeled, without):
        apply_overrides(Config(), recipe, allow_distiller=True)  # every key exists and its value is allowed
    # the spelled-out recipes run as written (no synthetic rows added); the autogluon row is AutoGluon's recipe
    assert with_unlabeled["distiller.recipe"] == without["distiller.recipe"] == "none"
    assert AUTOGLUON_RECIPE == {"distiller.recipe": "autogluon"}
    assert list(default_recipes(True)) == ["autogluon", "auto", "auto + unlabeled rows", "ours"]
    assert default_recipes(True)["auto + unlabeled rows"] == {TRANSFER_ROWS: True}
    assert list(default_recipes(False)) == ["autogluon", "auto", "ours"] and default_recipes(False)["auto"] == {}


@pytest.mark.parametrize("name", ["bbc-short", "bbc-short-unlabeled", "multilingual-pairs", "chatterbot-topics",
                                  "fashion-mnist"])
def test_table_tasks_keep_their_splits_apart(name):
    from automm_lite.config import Config, apply_overrides
    from automm_lite.reports.tasks import TASKS

    task = TASKS[name]("small")
    text = next(c for c in ("sentence1", "text", "image") if c in task.train)
    seen = [set(task.train[text]), set(task.tuning[text]), set(task.test_sets[next(iter(task.test_sets))][text])]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    if task.unlabeled is not None:
        assert task.label not in task.unlabeled and not set(task.unlabeled[text]) & set().union(*seen)
    for keys in (task.teacher_hyperparameters, task.student_hyperparameters):
        apply_overrides(Config(), keys)


def test_the_table_warms_up_untimed_then_fits_each_row(fitted_text_predictor, bbc_short, tiny_hp, tmp_path):
    from automm_lite.reports.distill_table import AUTOGLUON_RECIPE, run_distillation_table

    train, test = bbc_short
    student = {**tiny_hp, "optimization.max_epochs": 1}
    report = run_distillation_table("label", train, None, {"test": test}, {}, student,
                                    recipes={"autogluon": AUTOGLUON_RECIPE}, seeds=(0,),
                                    teacher=fitted_text_predictor, path=str(tmp_path), verbosity=0)
    assert report.warm_up_steps == 1 and not (tmp_path / "warm-up").exists()  # one step, then deleted
    table = report.table().set_index("model")
    assert list(table.index) == ["teacher", "no-distill", "distilled: autogluon"]
    assert table.loc["distilled: autogluon", "fit / no-distill fit"] > 0
    cold = run_distillation_table("label", train, None, {"test": test}, {}, student, recipes={}, seeds=(),
                                  teacher=fitted_text_predictor, path=str(tmp_path / "cold"), warm_up=False)
    assert cold.warm_up_seconds is None and cold.warm_up_steps is None
