"""The student search's Optuna study: opened (or resumed) with its settings checked, its sampler, the reuse of a
point it has already scored, the trial table, and the progress line. Nothing here holds an AutoDistiller's state:
each function takes what it needs."""
from __future__ import annotations

import logging
import math
from pathlib import Path

from ..exceptions import ConfigError

logger = logging.getLogger("automm_lite")

STUDY_NAME = "autodistill"


def make_sampler(sampler, seed: int):
    """The Optuna sampler of a search.

    Parameters
    ----------
    sampler : {"tpe", "random", "grid", "nsga2"} or optuna.samplers.BaseSampler
        A name, or a sampler object used as it is.
    seed : int
        The sampler's seed.

    Returns
    -------
    optuna.samplers.BaseSampler
        TPE, NSGA-II, or a random sampler (also for a grid, whose points are queued in order before any is drawn).
    """
    import optuna

    if not isinstance(sampler, str):
        return sampler
    if sampler in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def open_study(storage, folder: Path, directions: list, sampler, settings: dict, grid: dict | None,
               verbosity: int = 2):
    """Create the search's study, or open it again to resume, refusing one made for other settings.

    Parameters
    ----------
    storage : str, optuna storage or None
        None keeps the study in ``folder/study.db`` (SQLite, this process's own); a database URL shares it.
    folder : Path
        The search folder.
    directions : list of {"maximize", "minimize"}
        One per objective.
    sampler : optuna.samplers.BaseSampler
        The study's sampler.
    settings : dict
        What the study was made for (objectives, metric, the space's distributions); a study that was made for
        other settings is refused.
    grid : dict or None
        The grid: each dimension's values; every combination is queued in order (those not queued yet).
    verbosity : int
        Optuna's own messages show from 3.

    Returns
    -------
    optuna.Study
        The study; in the folder's own file, trials left running by a killed process are failed first.

    Raises
    ------
    ConfigError
        The stored study was made for other objectives, metric or search space.
    """
    import optuna

    from ..hpo.study import open_storage, queue_grid, safe_url

    optuna.logging.set_verbosity(optuna.logging.WARNING if verbosity < 3 else optuna.logging.INFO)
    own_file = storage is None
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_storage(storage, folder / "study.db"),
                                directions=directions, sampler=sampler, load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
    elif stored != settings or [d.name.lower() for d in study.directions] != directions:
        where = folder if own_file else safe_url(storage) if isinstance(storage, str) else "the storage"
        raise ConfigError(f"The study in {where} was made for other objectives, metric or search space "
                          f"({stored['objectives']}, {stored['metric']}, dimensions {sorted(stored['space'])}); "
                          "resume it with those, or use a new path (or storage).")
    if own_file:
        # The search folder's own study belongs to one process: a trial still "running" there was killed.
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    if grid is not None:
        queue_grid(study, grid)
    return study


def reuse_duplicate(study, trial, here, point) -> bool:
    """Tell ``trial`` the result of a finished trial of the same point (samplers repeat points of small spaces).

    Parameters
    ----------
    study : optuna.Study
        The study.
    trial : optuna.Trial
        The trial just drawn.
    here : hashable
        The trial's point, as ``point`` makes it.
    point : callable
        ``point(params, shape)``: what makes two trials the same student.

    Returns
    -------
    bool
        True when a finished trial had the same point: its attributes and values were copied and the trial told.
    """
    import optuna

    for done in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if point(done.params, done.user_attrs.get("shape")) == here and "duplicate_of" not in done.user_attrs:
            for key, value in done.user_attrs.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", done.number)
            trial.set_user_attr("fit_s", 0.0)  # nothing was trained
            study.tell(trial, list(done.values))
            logger.info("Trial %d: the point of trial %d again; its result is reused.", trial.number, done.number)
            return True
    return False


def trial_rows(study, columns: list) -> list:
    """One row per trial of the study (a queued grid point not reached is left out).

    Parameters
    ----------
    study : optuna.Study
        The study.
    columns : list of str
        The measured user attributes to copy into each row (the objectives' columns).

    Returns
    -------
    list of dict
        Trial number, state (``complete``, ``failed``, ``over budget``, ``interrupted``, ``running``), shape,
        sampled values, the measured columns, fit seconds, the trial it duplicates, its predictor and its error.
    """
    import optuna

    from ..hpo.study import state_name

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue
        attrs = trial.user_attrs
        state = state_name(trial)
        rows.append({"trial": trial.number, "state": "over budget" if state == "pruned" else state,
                     "shape": attrs.get("shape"), **trial.params, **{column: attrs.get(column) for column in columns},
                     "fit_s": attrs.get("fit_s"), "duplicate_of": attrs.get("duplicate_of"),
                     "predictor": attrs.get("predictor"), "error": attrs.get("error")})
    return rows


def objective_values(metrics, objectives) -> dict:
    """A trial's measurements as finite floats, every objective present.

    Parameters
    ----------
    metrics : dict
        What the evaluation returned: objective name -> value (more names may come along).
    objectives : list of str
        The names that must be there, finite.

    Returns
    -------
    dict
        Name -> float.

    Raises
    ------
    ConfigError
        Not a dict, an objective missing, a value that is not a number, or an objective that is not finite (the
        trial then fails).
    """
    if not isinstance(metrics, dict):
        raise ConfigError(f"eval_func must return a dict of objective -> value, got {type(metrics).__name__}.")
    missing = [name for name in objectives if name not in metrics]
    if missing:
        raise ConfigError(f"eval_func returned {sorted(metrics)}; it must return every objective: "
                          f"{', '.join(missing)}.")
    values = {}
    for name, value in metrics.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"eval_func's {name!r} is {value!r}, not a number.") from None
        if name in objectives and not math.isfinite(values[name]):
            raise ConfigError(f"The trial's {name} is {value!r}: a student that cannot be scored (e.g. it predicts a "
                              "constant) counts as failed.")
    return values


def best_so_far(study, metric: str, maximize: bool) -> str:
    """The progress bar's note: the best tuning score and the fastest latency of the finished trials.

    Parameters
    ----------
    study : optuna.Study
        The study.
    metric : str
        The tuning score's name.
    maximize : bool
        Whether a larger score is better.

    Returns
    -------
    str
        E.g. ``"best accuracy 0.9410, fastest 3.12 ms"``.
    """
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return "no finished trial yet"
    parts = []
    scores = [t.user_attrs["tuning_score"] for t in done if t.user_attrs.get("tuning_score") is not None]
    if scores:
        parts.append(f"best {metric} {(max if maximize else min)(scores):.4f}")
    latencies = [t.user_attrs.get("latency_ms") for t in done if t.user_attrs.get("latency_ms") is not None]
    if latencies:
        parts.append(f"fastest {min(latencies):.2f} ms")
    return ", ".join(parts)
