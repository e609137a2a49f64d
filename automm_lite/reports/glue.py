"""The GLUE distillation example as one call: a teacher, a student without distillation and a distilled student
on one GLUE task, with the teacher's lead the student recovers and its speed-up."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("automm_lite")
# The example's flags that are distiller keys; a flag left out is left to ``distiller.recipe``.
DISTILLER_FLAGS = ("temperature", "hard_label_weight", "soft_label_weight", "output_feature_loss_weight",
                   "output_feature_loss_type")


@dataclass
class GlueRun:
    """The settings of one run (the example's flags).

    Parameters
    ----------
    task : str
        The GLUE task: one of ``automm_lite.datasets.GLUE_TASKS`` or an alias (``mnli`` is ``mnli_matched``).
    teacher_model : str
        The teacher's checkpoint (``model.hf_text.checkpoint_name``).
    student_model : str, optional
        The distilled student's checkpoint. None: cut from the teacher's layers by ``distiller.recipe=auto``.
    seed : int
        The seed of every fit and of the ``max_rows`` sample.
    max_epochs : int, optional
        ``optimization.max_epochs`` of every model (None: the default).
    time_limit : float, optional
        Seconds of training per model (None: no limit).
    num_gpus : int, optional
        ``env.num_gpus`` of every model (None: the default).
    distiller : dict
        The distiller flags given, by ``DISTILLER_FLAGS`` name (``temperature``, ``hard_label_weight``, ...): each
        becomes a ``distiller.<name>`` key of the distilled student; a flag left out (or None) is left to
        ``distiller.recipe``. Default: empty.
    cache_folder : str
        Folder where the models fitted without a teacher (the teacher, the no-distill student and the control) are
        kept, under ``<task>/``, for later runs with the same settings.
    retrain : bool
        Fit those models again instead of reusing the cached ones.
    source : str, optional
        A folder written by ``datasets.DatasetDict.save_to_disk`` read instead of the Hub (see
        :func:`~automm_lite.datasets.load_glue`).
    max_rows : int, optional
        At most this many rows per split (a random sample); None: every row.
    verbosity : int
        Verbosity of every fit.
    """

    task: str
    teacher_model: str = "minilm-l6"
    student_model: str | None = None   # None: cut from the teacher's layers by ``distiller.recipe=auto``
    seed: int = 123
    max_epochs: int | None = None
    time_limit: float | None = None
    num_gpus: int | None = None
    distiller: dict = field(default_factory=dict)  # flags given, by DISTILLER_FLAGS name
    cache_folder: str = "glue_models"
    retrain: bool = False
    source: str | None = None
    max_rows: int | None = None
    verbosity: int = 1


def run_glue(run: GlueRun):
    """Fit (or reuse) the teacher and the no-distill student, fit the distilled student and its equal-compute
    control, and score all four on the task's validation split.

    The teacher and the no-distill student are kept in ``cache_folder`` and reused by later runs with the same
    settings unless ``retrain``. Without ``student_model`` the distilled student is cut from the teacher's own
    layers (``distiller.recipe=auto``) and the no-distill student uses the same layers of the pretrained
    ``teacher_model``.

    Parameters
    ----------
    run : GlueRun
        The settings of the run.

    Returns
    -------
    pandas.DataFrame
        One row per model: score, evaluate seconds, parameters, speed-up; the student's row also has the
        distillation ratio, its gain over the control and the ratio against the control. The control is the
        no-distill student given the distilled student's rows and optimizer steps (gold-labelled copies, more
        epochs for rows without a gold label); it is the no-distill row itself when the student had no extra rows.
        The index is ``model`` (``teacher``, ``no-distill student``, ``control student``, ``distilled student``);
        the columns are the task's metric (accuracy; pearsonr for stsb), ``evaluate s``, ``parameters (M)``,
        ``checkpoint``, ``speed-up``, ``ratio``, ``gain over control`` and ``ratio vs control``.
        ``attrs["recipe"]`` holds the distillation recipe the student's fit chose.

    Raises
    ------
    ConfigError
        For an unknown GLUE task, a ``max_rows`` below 1, or a student or distiller setting the configuration
        rejects (a value of the wrong type or range), before any fit.
    DataError
        A ``source`` copy without the task's splits or columns.
    """
    import pandas as pd

    from ..config import Config, apply_overrides
    from ..datasets import GLUE_METRICS, glue_task_name, load_glue
    from ..exceptions import ConfigError
    from ..predictor import Predictor
    from .distill_table import control_hyperparameters, distillation_ratio

    try:
        task = glue_task_name(run.task)
    except ConfigError as error:
        raise ConfigError(f"--glue-task: {error}") from None
    if run.max_rows is not None and run.max_rows < 1:
        raise ConfigError(f"--max-rows={run.max_rows} must be a positive number of rows.")
    metric = GLUE_METRICS.get(task, "accuracy")
    common = {}
    if run.max_epochs is not None:
        common["optimization.max_epochs"] = run.max_epochs
    if run.num_gpus is not None:
        common["env.num_gpus"] = run.num_gpus
    distiller = {f"distiller.{k}": v for k, v in run.distiller.items() if v is not None}
    student_keys = {**common, **distiller}
    if run.student_model is not None:
        student_keys["model.hf_text.checkpoint_name"] = run.student_model
    apply_overrides(Config(), student_keys, allow_distiller=True)  # a bad flag fails before the teacher trains
    train, test = load_glue(task, source=run.source, max_rows=run.max_rows, seed=run.seed)
    data = {"source": str(run.source), "files": _files_of(run.source), "max_rows": run.max_rows,
            "rows": len(train), "time_limit": run.time_limit}
    problem_type = "regression" if task == "stsb" else None
    folder = Path(run.cache_folder) / task

    def fitted(name: str, keys: dict, teacher=None):
        path = folder / f"{name}-{_safe(keys, data)}-seed{run.seed}"
        if teacher is None and not run.retrain and (path / "predictor.json").is_file():
            logger.info("Reusing %s from %s", name, path)
            return Predictor.load(path, verbosity=run.verbosity)
        predictor = Predictor("label", problem_type=problem_type, eval_metric=metric, path=str(path),
                              verbosity=run.verbosity)
        return predictor.fit(train, hyperparameters=keys, time_limit=run.time_limit, seed=run.seed,
                             teacher_predictor=teacher)

    teacher = fitted("teacher", {**common, "model.hf_text.checkpoint_name": run.teacher_model})
    student = fitted("student", student_keys, teacher=teacher)
    # the same student without a teacher: a cut from the teacher's layers becomes the pretrained model's layers
    chosen = student.config_
    # (and no classical model beside it, as the distilled student has none)
    baseline = fitted("no-distill", {
        **common, "model.classical.enabled": False,
        "model.hf_text.checkpoint_name": chosen.model.hf_text.checkpoint_name.replace(
            "teacher:", f"{run.teacher_model}:", 1),
        "model.hf_text.max_text_len": chosen.model.hf_text.max_text_len,
        "optimization.max_epochs": chosen.optimization.max_epochs,
        "optimization.learning_rate": chosen.optimization.learning_rate})
    # the equal-compute control: the no-distill student given the distilled student's rows and optimizer steps
    summary = student.fit_summary()
    control = baseline
    if summary["n_rows_trained"] > summary["n_train_rows"] or not summary["distillation_recipe"]["distilled"]:
        control = fitted("control", control_hyperparameters(student, common, teacher))
    rows = []
    models = {"teacher": teacher, "no-distill student": baseline, "control student": control,
              "distilled student": student}
    for role, predictor in models.items():
        scores = predictor.evaluate(test, metrics=metric)
        rows.append({"model": role, metric: scores[metric], "evaluate s": scores.timing.seconds,
                     "parameters (M)": predictor.total_parameters / 1e6,
                     "checkpoint": predictor.config_.model.hf_text.checkpoint_name})
    table = pd.DataFrame(rows).set_index("model")
    table["speed-up"] = table.loc["teacher", "evaluate s"] / table["evaluate s"]
    scores = table[metric]
    table.loc["distilled student", "ratio"] = distillation_ratio(scores["teacher"], scores["no-distill student"],
                                                                 scores["distilled student"])
    table.loc["distilled student", "gain over control"] = scores["distilled student"] - scores["control student"]
    table.loc["distilled student", "ratio vs control"] = distillation_ratio(
        scores["teacher"], scores["control student"], scores["distilled student"])
    table.attrs["recipe"] = student.fit_summary()["distillation_recipe"]
    return table


def _files_of(source) -> list:
    """Name, size and modification time of each file of a local copy: a regenerated copy is new data."""
    if source is None:
        return []
    root = Path(source)
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*") if p.is_file())


def _safe(keys: dict, data: dict) -> str:
    """A folder-name-safe digest of the settings and data that decide a cached model."""
    import hashlib

    text = json.dumps([keys, data], sort_keys=True, default=str)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(keys.get("model.hf_text.checkpoint_name", "")))[-40:]
    return f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
