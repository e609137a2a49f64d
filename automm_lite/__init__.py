"""automm_lite: small, fast AutoML predictors for text, image and tabular data, with knowledge distillation."""

__version__ = "0.1.0"
__all__ = ["AutoDistiller", "Predictor", "compare_predictors", "predict_dataset", "__version__"]


def __getattr__(name):
    # The predictor pulls in pandas on first use; `import automm_lite` itself stays light.
    if name == "Predictor":
        from .predictor import Predictor
        return Predictor
    if name == "AutoDistiller":
        from .search.autodistill import AutoDistiller
        return AutoDistiller
    if name == "predict_dataset":
        from .batch import predict_dataset
        return predict_dataset
    if name == "compare_predictors":
        from .reports.compare import compare_predictors
        return compare_predictors
    raise AttributeError(f"module 'automm_lite' has no attribute {name!r}")
