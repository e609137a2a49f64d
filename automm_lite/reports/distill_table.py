"""The distillation table: teacher vs. no-distill student vs. distilled students, scores, ratios and speed."""
from __future__ import annotations

import functools
import logging
import shutil
import time
from dataclasses import dataclass, field

logger = logging.getLogger("automm_lite")

# AutoGluon's distiller as it ships: logits + pooled output feature, nothing layer-wise, no extra rows.
AUTOGLUON_RECIPE = {"distiller.recipe": "autogluon"}
# The library's default: the fit chooses (distiller.recipe=auto).
AUTO_RECIPE = {}
# The no-distill student is the same network without a teacher: no classical model beside it (a distilled student
# has none either)
NETWORK_ONLY = {"model.classical.enabled": False}
TRANSFER_ROWS = "transfer_rows"  # a recipe flag (not a hyperparameter): also learn from the unlabeled rows
# This library's recipe: AutoGluon's terms plus layer-wise terms plus data only the teacher can label (README,
# "The distillation table": the three-seed evidence). With unlabeled rows: learn from them, plus a cosine
# hidden-state term.
OUR_RECIPE = {"distiller.recipe": "none", "distiller.hidden_state_loss_weight": 1.0,
              "distiller.hidden_state_loss_type": "cosine"}
# Without unlabeled rows: 3 teacher-labelled augmented copies of each training row, hidden-state MSE and
# attention KL (compared with a no-distill student trained on the same copies with their gold labels).
OUR_RECIPE_AUGMENTED = {"distiller.recipe": "none", "distiller.hidden_state_loss_weight": 1.0,
                        "distiller.hidden_state_loss_type": "mse", "distiller.attention_loss_weight": 1.0,
                        "data.augment_copies": 3}


def our_recipe(has_unlabeled: bool) -> dict:
    """The table's ``ours`` row: ``OUR_RECIPE`` with the transfer rows, else ``OUR_RECIPE_AUGMENTED``."""
    return {**OUR_RECIPE, TRANSFER_ROWS: True} if has_unlabeled else dict(OUR_RECIPE_AUGMENTED)


def distillation_ratio(teacher: float, no_distill: float, student: float) -> float:
    """The share of the teacher's lead over the no-distill student that a distilled student recovers.

    ``(student - no_distill) / (teacher - no_distill)``: 1 matches the teacher, 0 is no better than the student
    trained without a teacher, below 0 is worse than it.

    Parameters
    ----------
    teacher : float
        The teacher's score.
    no_distill : float
        The score of the same student network trained without a teacher.
    student : float
        The distilled student's score.

    Returns
    -------
    float
        The ratio; NaN when the teacher and the no-distill student score the same (a gap below 1e-12).
    """
    gap = teacher - no_distill
    return float("nan") if abs(gap) < 1e-12 else (student - no_distill) / gap


@dataclass
class DistillationReport:
    """Per-run scores (``runs``: one row per model, seed and test set) and the summary ``table``.

    :func:`run_distillation_table` fills it; ``str(report)`` prints the summary :meth:`table`.

    Parameters
    ----------
    metric : str
        The evaluation metric of every score (the name of the score column of :meth:`table`).
    runs : list of dict
        One dict per model, seed and test set, with the keys ``test_set``, ``model`` (the row's name: ``teacher``,
        ``no-distill``, ``distilled: <recipe>``, ``control: <recipe>``), ``role`` (``teacher``, ``no-distill``,
        ``student`` or ``control``), ``seed``, ``score``, ``seconds`` (of ``evaluate``), ``parameters``,
        ``baseline`` and ``control`` (the names of the rows a student is compared with; empty for the others) and
        ``fit_seconds``. Default: empty.
    warm_up_seconds : float, optional
        Seconds of the untimed warm-up fit before the timed ones (None: not run).
    warm_up_steps : int, optional
        Optimizer steps of that warm-up fit (None: not run).
    """

    metric: str
    runs: list = field(default_factory=list)
    warm_up_seconds: float | None = None  # the untimed warm-up fit before the timed ones (None: not run)
    warm_up_steps: int | None = None

    def frame(self):
        """The per-run scores as a frame.

        Returns
        -------
        pandas.DataFrame
            ``runs``, one row per model, seed and test set.
        """
        import pandas as pd
        return pd.DataFrame(self.runs)

    def table(self):
        """Mean and spread over seeds per test set and model, with the distillation ratio against the no-distill
        row, the gain and ratio against the equal-compute control, and the speed-up.

        Returns
        -------
        pandas.DataFrame
            One row per test set and model (in the order of ``runs``) with the columns ``test set``, ``model``,
            ``seeds``, the metric (the mean score), ``spread`` (its standard deviation over seeds),
            ``parameters (M)``, ``evaluate s`` (mean seconds), ``speed-up`` (the teacher's mean ``evaluate``
            seconds over the row's) and ``fit s``. A distilled student's row adds ``ratio``, ``ratio spread``
            (:func:`distillation_ratio` against the no-distill row, seed by seed) and ``fit / no-distill fit``,
            and ``control`` (its name), ``gain over control``, ``gain spread``, ``ratio vs control`` and
            ``fit / control fit``; the other rows leave these empty.
        """
        import pandas as pd

        runs = self.frame()
        if "control" not in runs:  # runs saved before the control rows
            runs["control"] = ""
        teacher = runs[runs.role == "teacher"].groupby("test_set")
        rows = []
        for (test_set, model), group in runs.groupby(["test_set", "model"], sort=False):
            row = {"test set": test_set, "model": model, "seeds": len(group),
                   self.metric: group.score.mean(), "spread": group.score.std(ddof=0),
                   "parameters (M)": group.parameters.iloc[0] / 1e6, "evaluate s": group.seconds.mean(),
                   "speed-up": teacher.seconds.mean()[test_set] / group.seconds.mean(),
                   "fit s": group.fit_seconds.mean()}
            lead = teacher.score.mean()[test_set]
            for column, other in (("baseline", "no-distill"), ("control", "control")):
                name = group[column].iloc[0]
                if not name:
                    continue
                base = runs[(runs.test_set == test_set) & (runs.model == name)].set_index("seed")
                scores = [base.score.get(seed, base.score.mean()) for seed in group.seed]
                ratios = pd.Series([distillation_ratio(lead, b, score) for b, score in zip(scores, group.score)])
                fit = group.fit_seconds.mean() / base.fit_seconds.mean()
                if other == "no-distill":
                    row.update({"ratio": ratios.mean(), "ratio spread": ratios.std(ddof=0),
                                "fit / no-distill fit": fit})
                else:
                    gains = group.score.to_numpy() - pd.Series(scores).to_numpy()
                    shown = name if name != model else "itself (the teacher check dropped the teacher)"
                    row.update({"control": shown, "gain over control": gains.mean(),
                                "gain spread": gains.std(ddof=0), "ratio vs control": ratios.mean(),
                                "fit / control fit": fit})
            rows.append(row)
        return pd.DataFrame(rows)

    def __str__(self):
        import pandas as pd

        with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format",
                               "{:.4f}".format):
            return self.table().to_string(index=False)


def _timed_score(predictor, data, metric):
    start = time.perf_counter()
    score = predictor.evaluate(data, metrics=metric)[metric]
    return score, time.perf_counter() - start


def run_distillation_table(label, train, tuning, test_sets: dict, teacher_hyperparameters: dict,
                           student_hyperparameters: dict, recipes: dict | None = None, seeds=(0, 1, 2),
                           eval_metric="accuracy", unlabeled_data=None, teacher=None, path="distill_runs",
                           verbosity=1, warm_up=True) -> DistillationReport:
    """Train a teacher, no-distill students, distilled students and their equal-compute controls on the same
    data, and score all.

    Parameters
    ----------
    label : str
        The label column.
    train, tuning : DataFrame
        The training rows and the tuning (validation) rows of every fit.
    test_sets : dict of name -> DataFrame
        The labelled rows every model is scored on, e.g. one per language plus ``"all"``.
    teacher_hyperparameters, student_hyperparameters : dict
        The hyperparameters of the teacher and of the students. The student budget (epochs, checkpoint, ...) is
        shared by every student.
    recipes : dict of name -> dict, optional
        Distillation recipes (extra keys on top of the student's). Default: :func:`default_recipes`:
        ``autogluon``, ``auto`` (with and without the unlabeled rows) and ``ours`` (``our_recipe``:
        ``OUR_RECIPE`` with the transfer rows when ``unlabeled_data`` is given, else ``OUR_RECIPE_AUGMENTED``).
    seeds : iterable of int
        Students are trained once per seed; the teacher once.
    eval_metric : str
        The metric of every fit and score.
    unlabeled_data : DataFrame, optional
        Transfer rows for the distilled students whose recipe sets ``"transfer_rows": True`` (a no-distill
        student cannot use rows without labels).
    teacher : Predictor, optional
        Reuse a fitted teacher instead of training one.
    path : str
        Folder of the trained predictors: ``<path>/teacher``, ``<path>/no-distill-<seed>``,
        ``<path>/<recipe>-<seed>`` and ``<path>/control: <recipe>-<seed>``.
    verbosity : int
        Verbosity of every fit.
    warm_up : bool
        Before the timed student fits, one untimed distilled step (then deleted), so one-time costs (the student
        built into the zoo cache, first calls, lazy imports) fall on no row. Each seed's fits run one after the
        other, so a change in machine load falls on every row of a seed alike.

    Returns
    -------
    DistillationReport
        The scores of every run; :meth:`DistillationReport.table` summarizes them.

    Notes
    -----
    Each distilled student is compared with two students without a teacher: the ``no-distill`` row (the
    student's own keys, the labelled rows) and its **equal-compute control** (:func:`control_hyperparameters`:
    the same rows and optimizer steps, augmented copies with their gold labels, extra rows without a gold label
    turned into more epochs). Recipes whose controls have the same keys share one control fit per seed; a recipe
    that adds no rows has the no-distill row as its control, and a student whose teacher check dropped the
    teacher (it trained as the control) is its own.
    """
    from ..predictor import Predictor

    if recipes is None:
        recipes = default_recipes(unlabeled_data is not None)
    report = DistillationReport(eval_metric)
    if teacher is None:
        teacher = Predictor(label, eval_metric=eval_metric, path=f"{path}/teacher", verbosity=verbosity).fit(
            train, tuning_data=tuning, hyperparameters=teacher_hyperparameters)
    for name, data in test_sets.items():
        score, seconds = _timed_score(teacher, data, eval_metric)
        report.runs.append({"test_set": name, "model": "teacher", "role": "teacher", "seed": 0, "score": score,
                            "seconds": seconds, "parameters": teacher.total_parameters, "baseline": "",
                            "control": "", "fit_seconds": teacher.fit_summary()["training_time"]})
    if warm_up:
        start = time.perf_counter()
        report.warm_up_steps = _warm_up(label, train, tuning, student_hyperparameters, teacher, eval_metric,
                                        f"{path}/warm-up")
        report.warm_up_seconds = time.perf_counter() - start
    plain_keys = {**student_hyperparameters, **NETWORK_ONLY}
    for seed in seeds:
        plain = Predictor(label, eval_metric=eval_metric, path=f"{path}/no-distill-{seed}",
                          verbosity=verbosity).fit(train, tuning_data=tuning, seed=seed, hyperparameters=plain_keys)
        _record(report, plain, test_sets, "no-distill", "no-distill", seed, "", "", eval_metric)
        controls = {_same_keys(control_hyperparameters(plain, plain_keys)): "no-distill"}
        for recipe_name, recipe in recipes.items():
            recipe = dict(recipe)
            transfer = unlabeled_data if recipe.pop(TRANSFER_ROWS, False) else None
            student = Predictor(label, eval_metric=eval_metric, path=f"{path}/{recipe_name}-{seed}",
                                verbosity=verbosity).fit(
                train, tuning_data=tuning, seed=seed, teacher_predictor=teacher, unlabeled_data=transfer,
                hyperparameters={**student_hyperparameters, **recipe})
            keys = control_hyperparameters(student, plain_keys, teacher)
            control = controls.get(_same_keys(keys))
            recipe_chosen = student.fit_summary()["distillation_recipe"]
            if not recipe_chosen["distilled"]:  # the teacher check dropped the teacher: it is its own control
                control = f"distilled: {recipe_name}"
            elif control is None:
                control = controls[_same_keys(keys)] = f"control: {recipe_name}"
                fitted = Predictor(label, eval_metric=eval_metric, path=f"{path}/{control}-{seed}",
                                   verbosity=verbosity).fit(train, tuning_data=tuning, seed=seed,
                                                            hyperparameters=keys)
                _record(report, fitted, test_sets, control, "control", seed, "", "", eval_metric)
            _record(report, student, test_sets, f"distilled: {recipe_name}", "student", seed, "no-distill",
                    control, eval_metric)
    return report


# What a distilled fit chose for itself (its budget rule, or the recipe from the teacher's budget) and its
# control repeats: everything but the rows and steps, which equal_compute_keys sets.
RESOLVED_KEYS = ("model.hf_text.checkpoint_name", "model.hf_text.max_text_len", "model.timm_image.checkpoint_name",
                 "model.timm_image.image_size", "optimization.learning_rate", "optimization.max_epochs",
                 "env.batch_size", "env.per_gpu_batch_size")


def control_hyperparameters(student, student_keys: dict, teacher=None) -> dict:
    """The keys of ``student``'s equal-compute control: the same network without a teacher, trained on the same
    rows and for the same optimizer steps.

    Parameters
    ----------
    student : Predictor
        A fitted student (distilled or not).
    student_keys : dict
        The keys the student was fitted with (without the recipe's own keys); ``distiller.*`` keys are left out.
    teacher : Predictor, optional
        The teacher: a student cut from its layers or blocks (``teacher:...``) becomes the same cut of the
        teacher's pretrained checkpoint, as no teacher is there to cut from.

    Returns
    -------
    dict
        ``student_keys``, the values the student's fit resolved for :data:`RESOLVED_KEYS`, no classical model,
        and :func:`~automm_lite.distill.auto.equal_compute_keys` (gold-labelled copies, as many more epochs as
        the student had rows without a gold label).
    """
    from ..config import canonical_key, parse_hyperparameters
    from ..distill.auto import equal_compute_keys

    config, summary = student.config_, student.fit_summary()
    keys = {canonical_key(k): v for k, v in {**parse_hyperparameters(student_keys), **NETWORK_ONLY}.items()
            if not canonical_key(k).startswith("distiller.")}  # no teacher: no distiller keys
    for key in RESOLVED_KEYS:
        value = _resolved(config, key)
        if isinstance(value, str) and value.startswith("teacher:"):
            if teacher is None:
                raise ValueError(f"{key}={value!r} is cut from a teacher: pass the teacher.")
            value = value.replace("teacher:", f"{_resolved(teacher.config_, key)}:", 1)
        keys[key] = value
    copies = config.data.augment_copies if student.preprocessor_.columns("text") else 0
    if copies:
        keys.update({"data.augment_ops": list(config.data.augment_ops), "data.augment_prob": config.data.augment_prob})
    recipe = summary.get("distillation_recipe") or {}
    if recipe.get("distilled", True):
        keys.update(equal_compute_keys(config, summary["n_train_rows"], summary["n_rows_trained"], copies))
    else:  # the teacher check dropped the teacher: the student already trained as the control the recipe planned
        keys.update({k: v for k, v in recipe["keys"].items() if k in EQUAL_COMPUTE_KEYS})
    return keys


EQUAL_COMPUTE_KEYS = ("data.augment_copies", "optimization.max_epochs", "optimization.max_steps",
                      "optimization.val_check_interval", "optimization.patience")


def _resolved(config, key: str):
    return functools.reduce(getattr, key.split("."), config)


def _same_keys(keys: dict) -> str:
    import json

    return json.dumps(sorted(keys.items()), default=str)


def default_recipes(has_unlabeled: bool) -> dict:
    """The table's distilled rows: ``autogluon`` (AutoGluon's distiller as it ships), ``auto`` (the library's
    default, ``distiller.recipe=auto``: the call as written, no unlabeled rows), ``auto + unlabeled rows`` (when
    the task has them) and ``ours`` (the best recipe spelled out)."""
    recipes = {"autogluon": AUTOGLUON_RECIPE, "auto": dict(AUTO_RECIPE)}
    if has_unlabeled:  # the plain call as written (no unlabeled rows), and with the rows passed
        recipes["auto + unlabeled rows"] = {**AUTO_RECIPE, TRANSFER_ROWS: True}
    return {**recipes, "ours": our_recipe(has_unlabeled)}


def run_task(task, recipes: dict | None = None, seeds=(0,), path="distill_runs", verbosity=1, teacher=None,
             student_keys: dict | None = None) -> DistillationReport:
    """``run_distillation_table`` on a bundled ``DistillTask`` (``reports.tasks.TASKS``).

    Parameters
    ----------
    task : DistillTask
        The task: its data, label, metric, unlabeled rows and teacher and student hyperparameters.
    recipes : dict, optional
        Default: :func:`default_recipes` (with the task's transfer rows when it has unlabeled rows).
    seeds : iterable of int
        As in ``run_distillation_table``: students are trained once per seed; the teacher once.
    path : str
        Folder for the trained predictors; the task's runs go to ``<path>/<task name>``.
    verbosity : int
        As in ``run_distillation_table``: verbosity of every fit.
    teacher : Predictor, optional
        As in ``run_distillation_table``: reuse a fitted teacher instead of training one.
    student_keys : dict, optional
        Keys on top of the task's student hyperparameters, for every student row (the no-distill rows too).

    Returns
    -------
    DistillationReport
        The scores of every run; :meth:`DistillationReport.table` summarizes them.
    """
    return run_distillation_table(
        task.label, task.train, task.tuning, task.test_sets, task.teacher_hyperparameters,
        {**task.student_hyperparameters, **(student_keys or {})},
        default_recipes(task.unlabeled is not None) if recipes is None else recipes, seeds=seeds,
        eval_metric=task.eval_metric, unlabeled_data=task.unlabeled, teacher=teacher, path=f"{path}/{task.name}",
        verbosity=verbosity)


def _warm_up(label, train, tuning, student_hyperparameters, teacher, metric, folder):
    from ..predictor import Predictor

    keys = {**student_hyperparameters, "optimization.max_steps": 1, "distiller.recipe": "autogluon"}
    fitted = Predictor(label, eval_metric=metric, path=folder, verbosity=0).fit(
        train, tuning_data=tuning, teacher_predictor=teacher, hyperparameters=keys)
    shutil.rmtree(folder, ignore_errors=True)
    return fitted.fit_summary()["steps"]


def _record(report, predictor, test_sets, model, role, seed, baseline, control, metric):
    for name, data in test_sets.items():
        score, seconds = _timed_score(predictor, data, metric)
        report.runs.append({"test_set": name, "model": model, "role": role, "seed": seed, "score": score,
                            "seconds": seconds, "parameters": predictor.total_parameters, "baseline": baseline,
                            "control": control, "fit_seconds": predictor.fit_summary()["training_time"]})
