"""Metric names (scikit-learn and AutoGluon spellings) -> how to compute them, and which way is better."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .exceptions import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    function: Callable          # f(y_true, y_pred_or_proba) -> float
    needs_proba: bool           # takes class probabilities instead of labels
    greater_is_better: bool
    problem_types: tuple        # where it makes sense: "binary", "multiclass", "regression"

    def __reduce__(self):  # pickled by name (into the processes of a DDP fit): the functions are closures
        return get_metric, (self.name,)


def _sk(name):
    """Import a scikit-learn metric lazily (sklearn is heavy to import)."""
    def call(*args, **kwargs):
        import sklearn.metrics
        return getattr(sklearn.metrics, name)(*args, **kwargs)
    return call


def _rmse(y, p):
    import numpy as np
    return float(np.sqrt(_sk("mean_squared_error")(y, p)))


def _corr(kind):
    def call(y, p):
        import scipy.stats
        return float(getattr(scipy.stats, kind)(y, p)[0])
    return call


def _roc_auc(y, proba):
    # Binary: probability of the positive class; multiclass: one-vs-rest on the full matrix.
    proba = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
    return _sk("roc_auc_score")(y, proba, **({"multi_class": "ovr"} if proba.ndim == 2 else {}))


def _log_loss(y, proba):
    return _sk("log_loss")(y, proba, labels=list(range(proba.shape[1])))


def _averaged(name, average):
    def call(y, p):
        import numpy as np
        binary = average == "binary" and len(np.unique(y)) <= 2 and np.max(y) <= 1
        return _sk(name)(y, p, average="binary" if binary else ("macro" if average == "binary" else average),
                         zero_division=0)
    return call


CLS, BIN, REG = ("binary", "multiclass"), ("binary",), ("regression",)
_METRICS = [
    Metric("accuracy", _sk("accuracy_score"), False, True, CLS),
    Metric("balanced_accuracy", _sk("balanced_accuracy_score"), False, True, CLS),
    Metric("f1", _averaged("f1_score", "binary"), False, True, CLS),
    Metric("f1_macro", _averaged("f1_score", "macro"), False, True, CLS),
    Metric("f1_micro", _averaged("f1_score", "micro"), False, True, CLS),
    Metric("f1_weighted", _averaged("f1_score", "weighted"), False, True, CLS),
    Metric("precision", _averaged("precision_score", "binary"), False, True, CLS),
    Metric("precision_macro", _averaged("precision_score", "macro"), False, True, CLS),
    Metric("recall", _averaged("recall_score", "binary"), False, True, CLS),
    Metric("recall_macro", _averaged("recall_score", "macro"), False, True, CLS),
    Metric("mcc", _sk("matthews_corrcoef"), False, True, CLS),
    Metric("roc_auc", _roc_auc, True, True, CLS),
    Metric("log_loss", _log_loss, True, False, CLS),
    Metric("rmse", _rmse, False, False, REG),
    Metric("mse", _sk("mean_squared_error"), False, False, REG),
    Metric("mae", _sk("mean_absolute_error"), False, False, REG),
    Metric("r2", _sk("r2_score"), False, True, REG),
    Metric("pearsonr", _corr("pearsonr"), False, True, REG),
    Metric("spearmanr", _corr("spearmanr"), False, True, REG),
]
METRICS = {m.name: m for m in _METRICS}
ALIASES = {"acc": "accuracy", "auc": "roc_auc", "roc_auc_ovr": "roc_auc", "nll": "log_loss",
           "root_mean_squared_error": "rmse", "mean_squared_error": "mse", "mean_absolute_error": "mae",
           "r2_score": "r2", "accuracy_score": "accuracy", "f1_score": "f1", "matthews_corrcoef": "mcc",
           "pearson": "pearsonr", "spearman": "spearmanr", "balanced_accuracy_score": "balanced_accuracy"}
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def get_metric(name: str, problem_type: str | None = None) -> Metric:
    """Look a metric up by name, checking it suits the problem type.

    Raises
    ------
    ConfigError
        For an unknown name (listing the valid ones) or a metric that does not fit the problem type.
    """
    if not isinstance(name, str):
        raise ConfigError(f"A metric name must be a string such as 'accuracy', not {name!r}.")
    metric = METRICS.get(ALIASES.get(name.lower(), name.lower()))
    if metric is None:
        raise ConfigError(f"Unknown metric {name!r}. Valid metrics: {', '.join(METRICS)}.")
    if problem_type is not None and problem_type not in metric.problem_types:
        fitting = [m.name for m in _METRICS if problem_type in m.problem_types]
        raise ConfigError(f"Metric {metric.name!r} does not apply to a {problem_type} problem; use one of: "
                          f"{', '.join(fitting)}.")
    return metric


def compute_metric(metric: Metric, y_true, labels_or_values, proba=None) -> float:
    """Score predictions: ``labels_or_values`` are encoded class ids or regression values."""
    return float(metric.function(y_true, proba if metric.needs_proba else labels_or_values))
