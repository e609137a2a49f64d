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
        TRANSFER_ROWS,
        default_recipes,
        our_recipe,
    )

    with_unlabeled, without = our_recipe(True), our_recipe(False)
    assert with_unlabeled.pop(TRANSFER_ROWS) is True and not any(k.startswith("data.") for k in with_unlabeled)
    assert TRANSFER_ROWS not in without and without["data.augment_copies"] > 0  # its control: the same copies
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


def test_the_table_warms_up_untimed_then_fits_each_row_and_its_equal_compute_control(
        fitted_text_predictor, bbc_short, tiny_hp, tmp_path):
    from automm_lite import Predictor
    from automm_lite.reports.distill_table import AUTOGLUON_RECIPE, run_distillation_table

    train, test = bbc_short
    student = {**tiny_hp, "optimization.max_epochs": 1}
    recipes = {"autogluon": AUTOGLUON_RECIPE, "rows": {"distiller.recipe": "autogluon", "distiller.synthetic_rows": 2},
               "copies": {"distiller.recipe": "autogluon", "data.augment_copies": 1}}
    report = run_distillation_table("label", train, None, {"test": test}, {}, student, recipes=recipes, seeds=(0,),
                                    teacher=fitted_text_predictor, path=str(tmp_path), verbosity=0)
    assert report.warm_up_steps == 1 and not (tmp_path / "warm-up").exists()  # one step, then deleted
    table = report.table().set_index("model")
    assert list(table.index) == ["teacher", "no-distill", "distilled: autogluon", "control: rows", "distilled: rows",
                                 "control: copies", "distilled: copies"]
    # a recipe without extra rows has the no-distill student as its control
    assert table.loc["distilled: autogluon", "control"] == "no-distill"
    assert table.loc["distilled: autogluon", "fit / no-distill fit"] > 0
    assert table.loc["distilled: rows", "control"] == "control: rows"
    gain = table.loc["distilled: rows", "gain over control"]
    assert gain == pytest.approx(table.loc["distilled: rows", "accuracy"] - table.loc["control: rows", "accuracy"])
    # the same optimizer steps: 3x the rows for one epoch, or the labelled rows for three epochs; the same copies
    summaries = {name: Predictor.load(tmp_path / f"{name}-0", verbosity=0).fit_summary()
                 for name in ("rows", "control: rows", "copies", "control: copies", "no-distill")}
    assert summaries["rows"]["steps"] == summaries["control: rows"]["steps"] == 3 * summaries["no-distill"]["steps"]
    assert summaries["control: rows"]["epochs"] == 3 and summaries["control: rows"]["distillation_recipe"] is None
    labelled = summaries["no-distill"]["n_train_rows"]
    assert summaries["copies"]["n_rows_trained"] == summaries["control: copies"]["n_rows_trained"] == 2 * labelled
    assert summaries["copies"]["steps"] == summaries["control: copies"]["steps"]
    cold = run_distillation_table("label", train, None, {"test": test}, {}, student, recipes={}, seeds=(),
                                  teacher=fitted_text_predictor, path=str(tmp_path / "cold"), warm_up=False)
    assert cold.warm_up_seconds is None and cold.warm_up_steps is None


def test_equal_compute_keys_match_steps_validations_and_patience():
    from automm_lite.config import Config, apply_overrides
    from automm_lite.distill.auto import equal_compute_keys

    config = apply_overrides(Config(), {"env.batch_size": 32, "env.per_gpu_batch_size": 16,
                                        "optimization.max_epochs": 6}, allow_distiller=True)
    # 3 synthetic rows per row: 4,000 rows of which 1,000 gold -> 750 steps = 24 epochs of the gold rows
    keys = equal_compute_keys(config, 1000, 4000, gold_copies=0)
    assert keys["optimization.max_steps"] == 750 and keys["optimization.max_epochs"] == 24
    # the distilled fit validates every 125 batches of 16 (half of its 250); the control once an epoch (63
    # batches), so it waits twice as many validations
    assert keys["optimization.val_check_interval"] == 1.0 and keys["optimization.patience"] == 20
    # copies with gold labels are the same rows: nothing to change but the copies
    assert equal_compute_keys(config, 1000, 4000, gold_copies=3) == {"data.augment_copies": 3}
    # a copy and an unlabeled row per row: 3,000 rows (94 steps an epoch), 2,000 of them gold; the distilled fit
    # validates every 94 batches, within the control's epoch of 125: the same interval, the same patience
    keys = equal_compute_keys(config, 1000, 3000, gold_copies=1)
    assert keys["data.augment_copies"] == 1 and keys["optimization.max_steps"] == 94 * 6
    assert keys["optimization.max_epochs"] == 9 and keys["optimization.patience"] == 10
    apply_overrides(Config(), keys)  # every value is allowed
