"""The linear model: multinomial logistic regression (classification) or ridge regression on the sparse feature
matrix, its strength of regularization chosen on the tuning rows. Predicting is plain numpy on the stored
coefficients, so no scikit-learn estimator is rebuilt after a load."""
from __future__ import annotations

import logging

from ..exceptions import DataError
from .base import ClassicalModel, label_targets, ranking_key, score_output, softmax

logger = logging.getLogger("automm_lite")

# Inverse L2 strength of the logistic regression: pixels alone did best at 0.1-2, TF-IDF of short texts at 8-32+.
C_GRID = (0.1, 0.5, 2.0, 8.0, 32.0, 128.0)
ALPHA_GRID = (0.3, 3.0, 30.0, 300.0)  # L2 strength of the ridge regression
MAX_ITER = 500
TOLERANCE = 1e-3  # scored the same as 1e-4 on text and pixels, in a quarter of the iterations


class LinearModel(ClassicalModel):
    """``features @ coef.T + intercept``, then a softmax for classification.

    Parameters
    ----------
    preprocessor, features, params, metric_name, tuning_score
        As in ``ClassicalModel``.
    coef : numpy.ndarray
        (n_outputs, n_features) float32; n_outputs is the number of classes, or 1 for regression.
    intercept : numpy.ndarray
        (n_outputs,) float64; -inf for a class absent from the training rows (its probability is 0).
    """

    kind = "linear"

    def __init__(self, preprocessor, features, coef, intercept, params: dict, metric_name=None, tuning_score=None):
        super().__init__(preprocessor, features, params, metric_name, tuning_score)
        self.coef, self.intercept = coef, intercept

    def output_from_matrix(self, matrix):
        import numpy as np

        scores = np.asarray(matrix @ self.coef.T, dtype="float64") + self.intercept
        if self.problem_type == "regression":
            return scores[:, 0]
        return softmax(scores)

    def _model_state(self) -> tuple:
        return {"n_outputs": int(self.coef.shape[0]), "n_features": int(self.coef.shape[1])}, \
            {"coef": self.coef, "intercept": self.intercept}

    @classmethod
    def restore(cls, settings: dict, arrays: dict, features, folder) -> "LinearModel":
        state = settings["model"]
        shape = (state.get("n_outputs"), state.get("n_features"))
        coef, intercept = arrays.get("coef"), arrays.get("intercept")
        if coef is None or intercept is None or coef.shape != shape or intercept.shape != shape[:1]:
            raise DataError(f"The coefficients saved in {str(folder)!r} are missing or do not have the shape "
                            f"{shape} that its settings give; the saved model is damaged.")
        return cls(features.preprocessor, features, coef, intercept, settings.get("params", {}),
                   settings.get("metric_name"), settings.get("tuning_score"))


def _full_classes(estimator, n_classes: int, n_features: int) -> tuple:
    """Coefficients for every class, in class id order: scikit-learn keeps only the classes it saw (and one row
    for two classes, the second one's log odds)."""
    import numpy as np

    coef = np.zeros((n_classes, n_features), dtype="float32")
    intercept = np.full(n_classes, -np.inf)
    seen = estimator.classes_.astype("int64")
    if len(seen) == 2:
        coef[seen[1]] = estimator.coef_[0]
        intercept[seen] = [0.0, float(estimator.intercept_[0])]
    else:
        coef[seen] = estimator.coef_
        intercept[seen] = estimator.intercept_
    return coef, intercept


def fit_linear(preprocessor, features, train_matrix, tuning_matrix, train, tuning, metric, seed: int) -> tuple:
    """Fit one model per grid value on the training rows; keep the best on the tuning rows.

    Returns
    -------
    (LinearModel, float)
        The chosen model and its score on the tuning rows.
    """
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    y_train, y_tuning = label_targets(preprocessor, train), label_targets(preprocessor, tuning)
    regression = preprocessor.problem_type == "regression"
    if not regression and len(np.unique(y_train)) < 2:
        raise DataError("The training rows hold a single class; a classifier needs at least 2.")
    n_features = train_matrix.shape[1]
    best, best_key = None, None
    for value in (ALPHA_GRID if regression else C_GRID):
        with warnings.catch_warnings():
            # a few unconverged iterations move the tuning score less than the grid's next value does
            warnings.simplefilter("ignore", ConvergenceWarning)
            if regression:
                estimator = Ridge(alpha=value).fit(train_matrix, y_train)
                coef = np.asarray(estimator.coef_, dtype="float32").reshape(1, n_features)
                intercept = np.asarray([estimator.intercept_], dtype="float64").reshape(1)
                params = {"alpha": value}
            else:
                estimator = LogisticRegression(C=value, max_iter=MAX_ITER, tol=TOLERANCE, random_state=seed)
                estimator.fit(train_matrix, y_train)
                coef, intercept = _full_classes(estimator, len(preprocessor.class_labels), n_features)
                params = {"C": value}
        model = LinearModel(preprocessor, features, coef, intercept, params, metric.name)
        output = model.output_from_matrix(tuning_matrix)
        score = score_output(metric, preprocessor.problem_type, y_tuning, output)
        # equal scores (accuracy on few rows): the better calibrated candidate
        tie = 0.0 if regression else -_log_loss(y_tuning, output)
        key = ranking_key(metric, score, tie)
        logger.debug("linear %s: %s=%.4f", params, metric.name, score)
        if best_key is None or key > best_key:
            best, best_key = model, key
            best.tuning_score = score
    return best, best.tuning_score


def _log_loss(truth, proba) -> float:
    import numpy as np

    picked = proba[np.arange(len(truth)), truth]
    return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))
