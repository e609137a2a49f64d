"""What every classical model is: its outputs, its score on labelled rows, and its files (JSON settings plus a
safetensors file of arrays; never pickle). ``linear`` and ``gbm`` fill in the model itself."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..exceptions import DataError
from ..files import atomic_path

FORMAT_VERSION = 1
SETTINGS_FILE = "classical.json"
ARRAYS_FILE = "classical.safetensors"
REQUIRED_SETTINGS = ("format_version", "kind", "preprocessor", "features", "model")


def label_targets(preprocessor, data):
    """The training target of ``data``'s labels: class ids in ``preprocessor.class_labels`` order, or the
    regression label in its own units (not the preprocessor's scaled values).

    Raises
    ------
    DataError
        Missing labels, unseen classes, or a regression label that is not a number.
    """
    import pandas as pd

    labels = data[preprocessor.label]
    if preprocessor.problem_type != "regression":
        return preprocessor.encode_labels(labels)
    values = pd.to_numeric(labels, errors="coerce")
    if values.isna().any():
        bad = labels[values.isna()].iloc[0]
        raise DataError(f"The regression label {preprocessor.label!r} must be a number on every row; found {bad!r}.")
    return values.to_numpy(dtype="float64")


def score_output(metric, problem_type: str, truth, output) -> float:
    """The metric on a model's outputs: probabilities (their argmax is the predicted class) or values."""
    from ..metrics import compute_metric

    if problem_type == "regression":
        return compute_metric(metric, truth, output)
    return compute_metric(metric, truth, output.argmax(axis=1), output)


def ranking_key(metric, score: float, tie_breaker: float = 0.0) -> tuple:
    """Sort key, greater is better: the metric in its better direction (NaN last), then ``tie_breaker``."""
    if score is None or math.isnan(score):
        return (-math.inf, tie_breaker)
    return (score if metric.greater_is_better else -score, tie_breaker)


def log_loss(truth, proba) -> float:
    """Mean negative log probability of the true classes (clipped, so that a probability of 0 costs 34.5)."""
    import numpy as np

    picked = proba[np.arange(len(truth)), truth]
    return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))


def softmax(scores):
    import numpy as np

    scores = scores - scores.max(axis=1, keepdims=True)  # a class absent from training has -inf: exp -> 0
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


class ClassicalModel:
    """A model fitted on the columns the neural network reads, that predicts without the training rows.

    Attributes
    ----------
    kind : str
        ``linear`` or ``gbm``.
    preprocessor : automm_lite.data.preprocess.Preprocessor
    features : automm_lite.classical.features.FeatureBuilder
    params : dict
        The hyperparameters the tuning rows chose.
    tuning_score : float or None
        The score on the tuning rows with ``metric_name``.
    """

    kind = ""

    def __init__(self, preprocessor, features, params: dict, metric_name: str | None = None,
                 tuning_score: float | None = None):
        self.preprocessor, self.features, self.params = preprocessor, features, dict(params)
        self.metric_name, self.tuning_score = metric_name, tuning_score

    @property
    def problem_type(self) -> str:
        return self.preprocessor.problem_type

    @property
    def n_classes(self) -> int:
        return 0 if self.problem_type == "regression" else len(self.preprocessor.class_labels)

    def predict_output(self, data):
        """Outputs for every row of ``data``.

        Returns
        -------
        numpy.ndarray
            Classification: float64 probabilities (n_rows, n_classes) in ``preprocessor.class_labels`` order.
            Regression: float64 values (n_rows,) in the label's units.
        """
        return self.output_from_matrix(self.features.transform(data))

    def output_from_matrix(self, matrix):
        """Outputs from an already built feature matrix (tuning reuses one matrix for every candidate)."""
        raise NotImplementedError

    def _model_state(self) -> tuple:
        """(JSON-ready settings, {name: numpy array}) of the fitted model itself."""
        raise NotImplementedError

    def _write_extra(self, folder: Path):
        """Files beyond the JSON and the arrays (LightGBM's text model)."""

    def save(self, folder) -> None:
        """Write the model into ``folder`` (created if needed): ``classical.json`` and ``classical.safetensors``,
        plus the kind's own text files. The JSON is written last, so a folder holding it is complete."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        feature_state, feature_arrays = self.features.state()
        model_state, model_arrays = self._model_state()
        arrays = {**{f"features.{k}": v for k, v in feature_arrays.items()},
                  **{f"model.{k}": v for k, v in model_arrays.items()}}
        score = self.tuning_score
        settings = {"format_version": FORMAT_VERSION, "kind": self.kind, "metric_name": self.metric_name,
                    "tuning_score": None if score is None or math.isnan(score) else float(score),
                    "params": self.params, "preprocessor": self.preprocessor.to_dict(), "features": feature_state,
                    "model": model_state}
        text = json.dumps(settings)  # before any file: a value JSON cannot hold fails the save early
        with atomic_path(folder / ARRAYS_FILE) as temporary:  # a reader never sees half a file
            save_file(arrays, str(temporary))
        self._write_extra(folder)
        with atomic_path(folder / SETTINGS_FILE) as temporary:
            temporary.write_text(text, encoding="utf-8")


def read_saved(folder) -> tuple:
    """(settings, arrays, features) of a saved classical model, checked; the kind's class restores the rest.

    Raises
    ------
    DataError
        A folder that is not a saved classical model, or a file in it that is missing or damaged.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from ..data.preprocess import Preprocessor
    from .features import FeatureBuilder

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{str(folder)!r} is not a folder; load_classical reads the folder that save wrote.")
    settings_path, arrays_path = folder / SETTINGS_FILE, folder / ARRAYS_FILE
    if not settings_path.is_file():
        raise DataError(f"{str(folder)!r} holds no {SETTINGS_FILE}: it is not a saved classical model, or its save "
                        "did not finish.")
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{str(settings_path)!r} is damaged: it is not valid JSON ({error}).") from error
    missing = [k for k in REQUIRED_SETTINGS if not isinstance(settings, dict) or k not in settings]
    if missing:
        raise DataError(f"{str(settings_path)!r} is damaged: it lacks {missing}.")
    if settings["format_version"] != FORMAT_VERSION:
        raise DataError(f"{str(settings_path)!r} is in format {settings['format_version']!r}; this version of "
                        f"automm_lite reads format {FORMAT_VERSION}.")
    if not arrays_path.is_file():
        raise DataError(f"{str(folder)!r} lacks {ARRAYS_FILE}, which holds the model's arrays; save it again.")
    try:
        arrays = load_file(str(arrays_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"{str(arrays_path)!r} is damaged: {error}.") from error
    try:
        preprocessor = Preprocessor.from_dict(settings["preprocessor"])
    except (KeyError, TypeError) as error:
        raise DataError(f"{str(settings_path)!r} is damaged: its preprocessor lacks {error}.") from error
    features = FeatureBuilder.restore(preprocessor, settings["features"],
                                      {k[len("features."):]: v for k, v in arrays.items()
                                       if k.startswith("features.")})
    model_arrays = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    return settings, model_arrays, features
