"""Side-by-side scores and speed of several predictors (e.g. a teacher and its students) on the same rows."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import _key, check_arguments
from ..exceptions import DataError


@dataclass
class CompareArguments:
    """``compare_predictors``' value arguments, declared as the config's keys are."""

    repeats: int = _key(1, "Rounds of evaluate over all predictors in turn; each keeps its fastest round", ge=1)


def single_row_latency(predictor, data, repeats: int = 20) -> tuple[float, float]:
    """Time ``predict`` on one row: the p50 and p95 milliseconds, preprocessing included.

    The first row of ``data`` is predicted twice as a warm-up (untimed), then ``repeats`` times, each call timed.

    Parameters
    ----------
    predictor : Predictor
        A fitted predictor (anything with a ``predict`` method that takes a one-row frame).
    data : pandas.DataFrame
        Rows the predictor can read; only the first one is used.
    repeats : int
        Timed calls after the two warm-up calls.

    Returns
    -------
    (float, float)
        ``p50_ms, p95_ms``: the median and 95th percentile of the timed calls, in milliseconds.
    """
    import numpy as np

    row = data.head(1)
    for _ in range(2):
        predictor.predict(row)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(row)
        seconds.append(time.perf_counter() - start)
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


def warm_evaluate(predictor, data, metrics=None):
    """``evaluate`` after a short warm-up: kernel selection and caches on first calls are not the model's speed."""
    predictor.predict(data.head(8))
    return predictor.evaluate(data, metrics=metrics)


def compare_predictors(predictors: dict, data, metrics=None, single_row: bool = True, repeats: int = 1):
    """Score every predictor on the same labelled rows and time it; the first one is the speed reference.

    Parameters
    ----------
    predictors : dict of name -> Predictor
        E.g. ``{"teacher": teacher, "student": student}`` or the same model in several inference modes.
    data : DataFrame or path
        Labelled rows every predictor can read.
    metrics : str or list of str, optional
        Default: the first predictor's ``eval_metric``.
    single_row : bool
        Also time one-row ``predict`` calls (p50/p95).
    repeats : int
        Rounds of ``evaluate`` over all predictors in turn; each keeps its fastest round (on a shared machine one
        round can be slowed by other work, and interleaving spreads that over every predictor).

    Returns
    -------
    pandas.DataFrame
        One row per predictor: the metrics, parameters, evaluate seconds, rows/s, batch p50 ms, one-row p50/p95
        ms, and ``speedup`` (the reference's evaluate seconds / this one's).
    """
    import pandas as pd

    from ..data.frames import read_data

    if not predictors:
        raise DataError("compare_predictors needs at least one predictor, e.g. {'teacher': t, 'student': s}.")
    check_arguments(CompareArguments, {"repeats": repeats}, where="compare_predictors")
    data = read_data(data)
    first = next(iter(predictors.values()))
    metrics = metrics or first.eval_metric
    rows = {}
    for round_ in range(repeats):
        for name, predictor in predictors.items():
            scores = warm_evaluate(predictor, data, metrics) if round_ == 0 else predictor.evaluate(data, metrics)
            timing = scores.timing
            if name in rows and rows[name]["evaluate_s"] <= timing.seconds:
                continue
            rows[name] = {"predictor": name, **scores, "parameters": predictor.total_parameters,
                          "evaluate_s": timing.seconds, "rows_per_s": timing.rows_per_second,
                          "batch_p50_ms": timing.batch_p50_ms}
    if single_row:
        for name, predictor in predictors.items():
            rows[name]["one_row_p50_ms"], rows[name]["one_row_p95_ms"] = single_row_latency(predictor, data)
    table = pd.DataFrame(list(rows.values())).set_index("predictor")
    table["speedup"] = table["evaluate_s"].iloc[0] / table["evaluate_s"]
    return table
