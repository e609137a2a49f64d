"""The linear model: multinomial logistic regression (classification) or ridge regression on the sparse feature
matrix, its strength of regularization chosen by the portfolio on validation rows. Predicting is plain numpy on the stored
coefficients, so no scikit-learn estimator is rebuilt after a load."""
from __future__ import annotations

from ..exceptions import DataError
from .base import ClassicalModel, softmax

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


def candidates(preprocessor, n_rows: int) -> list:
    """The hyperparameters tried: every value of the regularization grid."""
    if preprocessor.problem_type == "regression":
        return [{"alpha": value} for value in ALPHA_GRID]
    return [{"C": value} for value in C_GRID]


def fit_linear(preprocessor, features, matrix, targets, params: dict, seed: int, valid=None) -> LinearModel:
    """A ridge regression (``alpha``) or a logistic regression (``C``) fitted on ``matrix`` (``valid`` is not
    used: nothing stops early)."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    n_features = matrix.shape[1]
    with warnings.catch_warnings():
        # a few unconverged iterations move the tuning score less than the grid's next value does
        warnings.simplefilter("ignore", ConvergenceWarning)
        if preprocessor.problem_type == "regression":
            estimator = Ridge(alpha=params["alpha"]).fit(matrix, targets)
            coef = np.asarray(estimator.coef_, dtype="float32").reshape(1, n_features)
            intercept = np.asarray([estimator.intercept_], dtype="float64").reshape(1)
        else:
            if len(np.unique(targets)) < 2:
                raise DataError("The training rows hold a single class; a classifier needs at least 2.")
            estimator = LogisticRegression(C=params["C"], max_iter=MAX_ITER, tol=TOLERANCE, random_state=seed)
            estimator.fit(matrix, targets)
            coef, intercept = _full_classes(estimator, len(preprocessor.class_labels), n_features)
    return LinearModel(preprocessor, features, coef, intercept, dict(params))
