"""The checks of ``Predictor.fit``'s arguments, made before any model is built or any file written."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from .config import (Config, _key, apply_overrides, canonical_key, check_arguments, check_fit_config,
                     parse_hyperparameters)
from .data.frames import labelled_rows, read_data
from .data.preprocess import PROBLEM_TYPES
from .exceptions import ConfigError, DataError
from .metrics import get_metric
from .presets import preset_overrides

logger = logging.getLogger("automm_lite")


@dataclass
class FitArguments:
    """The arguments of ``Predictor.fit`` (and the predictor's ``problem_type``) that are plain values, declared
    as the config's keys are: checked by ``config.check_arguments`` with the keys' rules and wording."""

    problem_type: Literal[PROBLEM_TYPES] | None = _key(None, "The task; None = inferred from the label column")
    time_limit: float | None = _key(None, "Seconds of training at most; None = no limit", gt=0)
    seed: int = _key(0, "Random state of the fit: same seed, same data, same machine, same predictions", ge=0)
    holdout_frac: float | None = _key(None, "Fraction of train_data held out for tuning when tuning_data is None",
                                      gt=0, lt=1)


@dataclass
class FitRequest:
    """The checked arguments of one ``fit``: frames read and labelled, the config with every override applied,
    the teachers as views."""

    train: object
    tuning: object
    unlabeled: object
    config: Config
    seed: int
    time_limit: float | None
    column_types: dict | None
    holdout_frac: float | None
    teachers: list
    recipe: object = None  # the RecipeChoice so far (the student), completed by the fit (the terms)
    explicit_keys: frozenset = frozenset()  # the keys the user or the preset set (the rest the fit may choose)


def check_fit_arguments(label, problem_type, eval_metric, train_data, tuning_data, unlabeled_data, hyperparameters,
                        presets, time_limit, seed, holdout_frac, column_types, teachers) -> FitRequest:
    """Every check of ``Predictor.fit``'s arguments that needs no model: the frames read and labelled, the config
    with every override applied, the student the distillation recipe chose.

    Raises
    ------
    ConfigError, DataError
        Naming the bad value and the fix.
    """
    has_teacher = bool(teachers)
    if not isinstance(label, str):
        raise DataError(f"label must be a column name (str), not {label!r}.")
    # the checked values go on (numpy numbers become Python ones: a resumed fit compares and replays them as JSON)
    checked = check_arguments(FitArguments, {"problem_type": problem_type, "time_limit": time_limit, "seed": seed,
                                             "holdout_frac": holdout_frac}, where="fit")
    time_limit, seed, holdout_frac = checked.time_limit, checked.seed, checked.holdout_frac
    if eval_metric is not None:
        get_metric(eval_metric, problem_type)
    preset = preset_overrides(presets)
    config = apply_overrides(apply_overrides(Config(), preset, has_teacher), hyperparameters,
                             allow_distiller=has_teacher)
    check_fit_config(config, has_teacher)
    recipe = None
    explicit = frozenset(canonical_key(k) for k in [*preset, *parse_hyperparameters(hyperparameters)])
    if has_teacher:
        from .distill.auto import choose_student

        config, recipe = choose_student(config, explicit, teachers[0])
    from .distill.recipe import check_layer_settings
    from .training.strategy import check_batch_size, check_devices

    check_devices(config.env)
    check_batch_size(config.env)
    check_layer_settings(config, teachers[0] if teachers else None)
    if not config.model.names or "hf_text" in config.model.names:
        from .checkpoints.zoo import check_reachable

        check_reachable(config.model.hf_text.checkpoint_name)
    train = labelled_rows(read_data(train_data, "train_data"), label, "train_data")
    tuning = None
    if tuning_data is not None:
        tuning = labelled_rows(read_data(tuning_data, "tuning_data"), label, "tuning_data")
    unlabeled = None
    if unlabeled_data is not None:
        if not has_teacher:
            raise ConfigError("unlabeled_data is labelled by a teacher: pass teacher_predictor=... too, or drop "
                              "it.")
        unlabeled = read_data(unlabeled_data, "unlabeled_data")
        unlabeled = unlabeled.drop(columns=[label], errors="ignore").reset_index(drop=True)
    return FitRequest(train, tuning, unlabeled, config, seed, time_limit, column_types, holdout_frac, teachers,
                      recipe, explicit)


def resolve_task(request: FitRequest, label: str, problem_type: str | None, eval_metric: str | None) -> tuple:
    """The task of a fit: its problem type, its metric and the kind of each column, checked against the
    teachers and the config.

    Parameters
    ----------
    request : FitRequest
    label : str
    problem_type, eval_metric : str or None
        The predictor's; None = inferred (from the teacher, else from the label column) or the problem type's
        default metric.

    Returns
    -------
    (str, str, dict)
        The problem type, the metric's name and ``{column: kind}`` (``ignore`` for the columns ``model.names``
        does not read).

    Raises
    ------
    ConfigError
        A regression teacher for text labels, a teacher of another task, or a loss that does not fit the task.
    """
    import pandas as pd

    from .data.preprocess import infer_column_types, infer_problem_type
    from .metrics import DEFAULT_METRIC
    from .models import unread_columns

    train, config, teachers = request.train, request.config, request.teachers
    problem = problem_type or (teachers[0].problem_type if teachers else
                               infer_problem_type(train[label], eval_metric))
    if problem == "regression" and teachers and not problem_type:
        text = train[label][pd.to_numeric(train[label], errors="coerce").isna()]
        if len(text):
            raise ConfigError(f"The teacher does regression, but the label column {label!r} holds "
                              f"{text.iloc[0]!r}: distil from a classifier of these labels.")
    metric = get_metric(eval_metric or DEFAULT_METRIC[problem], problem).name
    loss = config.optimization.loss_function
    if problem != "regression" and loss not in ("auto", "cross_entropy"):
        raise ConfigError(f"optimization.loss_function={loss!r} is for regression; a {problem} "
                          "problem takes 'auto' or 'cross_entropy'.")
    for teacher in teachers:
        teacher.check_task(label, problem, train.columns)
    kinds = infer_column_types(train, label, request.column_types)
    unread = unread_columns(config, kinds)
    if unread:
        logger.info("Not read by model.names=%s, so ignored: %s.", config.model.names,
                    ", ".join(f"{c} ({kinds[c]})" for c in unread))
        kinds = {c: "ignore" if c in unread else k for c, k in kinds.items()}
    return problem, metric, kinds

