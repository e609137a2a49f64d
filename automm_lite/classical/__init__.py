"""Classical stage: fast models beside the neural network, on the same columns and the same fitted
``Preprocessor``: ``linear`` (logistic or ridge regression on TF-IDF, numbers, one-hot categories and small
pixels) and ``gbm`` (LightGBM on numbers, categories and a few SVD axes of the text). Saved as JSON,
safetensors and LightGBM's text format, never pickle.

Modules: ``features`` (the feature matrix) · ``base`` (the ClassicalModel contract, scores and files) ·
``linear`` · ``gbm`` · ``portfolio`` (which kinds apply, fit and load). Importing this package imports neither
scikit-learn nor LightGBM; they load with the first fit or load.
"""
from .portfolio import (
    CLASSICAL_KINDS,
    PortfolioChoice,
    applicable_kinds,
    blend,
    fit_classical,
    fit_portfolio,
    load_classical,
)

__all__ = ["CLASSICAL_KINDS", "ClassicalModel", "PortfolioChoice", "applicable_kinds", "blend", "fit_classical",
           "fit_portfolio", "load_classical"]


def __getattr__(name):
    if name == "ClassicalModel":
        from .base import ClassicalModel

        return ClassicalModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
