"""The gradient-boosted trees (LightGBM) on raw numbers, category codes and a few SVD axes of the text: the
number of rounds stopped early on validation rows (the final model is fitted for their mean).
Saved in LightGBM's own text model format."""
from __future__ import annotations

from pathlib import Path

from ..exceptions import DataError
from ..files import atomic_path
from .base import ClassicalModel

BOOSTER_FILE = "booster.txt"
MAX_ROUNDS = 300
EARLY_STOPPING = 30  # rounds without a better tuning loss before stopping
LEARNING_RATE = 0.08
LEAVES_GRID = (7, 31)  # small trees for a few hundred rows, larger ones when there are thousands
# One thread: on a busy 2-core machine two threads spent 30 s waiting on each other in a fit that takes 0.1 s
# alone; the data here is a few thousand rows at most.
THREADS = 1


class GbmModel(ClassicalModel):
    """A LightGBM booster and the feature builder that feeds it.

    Parameters
    ----------
    preprocessor, features, params, metric_name, tuning_score
        As in ``ClassicalModel``.
    booster_text : str
        The booster in LightGBM's text format (``Booster.model_to_string``), cut at its best round.
    """

    kind = "gbm"

    def __init__(self, preprocessor, features, booster_text: str, params: dict, metric_name=None,
                 tuning_score=None):
        import lightgbm

        super().__init__(preprocessor, features, params, metric_name, tuning_score)
        self.booster_text = booster_text
        self.booster = lightgbm.Booster(model_str=booster_text)

    def output_from_matrix(self, matrix):
        import numpy as np

        output = np.asarray(self.booster.predict(matrix, num_threads=THREADS), dtype="float64")
        if self.problem_type == "regression":
            return output
        if self.problem_type == "binary":
            return np.stack([1.0 - output, output], axis=1)
        return output / output.sum(axis=1, keepdims=True)  # LightGBM's softmax; renormed against rounding

    def _model_state(self) -> tuple:
        return {"booster_file": BOOSTER_FILE, "n_features": int(self.booster.num_feature())}, {}

    def _write_extra(self, folder: Path):
        with atomic_path(folder / BOOSTER_FILE) as temporary:
            temporary.write_text(self.booster_text, encoding="utf-8")

    @classmethod
    def restore(cls, settings: dict, arrays: dict, features, folder) -> "GbmModel":
        from lightgbm.basic import LightGBMError

        path = Path(folder) / BOOSTER_FILE
        if not path.is_file():
            raise DataError(f"{str(folder)!r} lacks {BOOSTER_FILE}, the saved trees; save the model again.")
        try:
            model = cls(features.preprocessor, features, path.read_text(encoding="utf-8"),
                        settings.get("params", {}), settings.get("metric_name"), settings.get("tuning_score"))
        except (LightGBMError, UnicodeDecodeError, ValueError) as error:
            raise DataError(f"{str(path)!r} is damaged: LightGBM cannot read it ({error}).") from error
        if model.booster.num_feature() != settings["model"].get("n_features"):
            raise DataError(f"{str(path)!r} reads {model.booster.num_feature()} features, not the "
                            f"{settings['model'].get('n_features')} its settings give; the saved model is damaged.")
        return model


def _objective(preprocessor) -> dict:
    if preprocessor.problem_type == "regression":
        return {"objective": "regression", "metric": "l2"}
    if preprocessor.problem_type == "binary":
        return {"objective": "binary", "metric": "binary_logloss"}
    return {"objective": "multiclass", "num_class": len(preprocessor.class_labels), "metric": "multi_logloss"}


def candidates(preprocessor, n_rows: int) -> list:
    """The tree sizes tried on ``n_rows`` training rows: small trees always, larger ones only where the rows can
    fill them (more leaves than a few hundred rows can fill only overfit)."""
    return [{"num_leaves": leaves} for i, leaves in enumerate(LEAVES_GRID) if i == 0 or leaves <= max(8, n_rows // 20)]


def fit_gbm(preprocessor, features, matrix, targets, params: dict, seed: int, valid=None) -> GbmModel:
    """Boost ``params["num_leaves"]``-leaf trees on ``matrix``: until the loss on ``valid`` (matrix, targets)
    stops improving, or for ``params["rounds"]`` rounds when there is no ``valid``."""
    import lightgbm
    import numpy as np

    if preprocessor.problem_type != "regression" and len(np.unique(targets)) < 2:
        raise DataError("The training rows hold a single class; a classifier needs at least 2.")
    n_rows, leaves = len(targets), params["num_leaves"]
    settings = {**_objective(preprocessor), "learning_rate": LEARNING_RATE, "num_leaves": leaves,
                "min_data_in_leaf": max(3, min(20, n_rows // 100)), "min_data_per_group": 10,
                "cat_smooth": 10.0, "feature_fraction": 0.9, "lambda_l2": 1.0, "num_threads": THREADS,
                "seed": seed, "deterministic": True, "force_col_wise": True, "verbosity": -1}
    categorical = features.categorical_indices
    data = lightgbm.Dataset(matrix, label=targets, categorical_feature=categorical, free_raw_data=False)
    if valid is None:
        booster = lightgbm.train(settings, data, num_boost_round=int(params["rounds"]))
        rounds = booster.current_iteration()
    else:
        checked = lightgbm.Dataset(valid[0], label=valid[1], reference=data, categorical_feature=categorical)
        booster = lightgbm.train(settings, data, num_boost_round=MAX_ROUNDS, valid_sets=[checked],
                                 callbacks=[lightgbm.early_stopping(EARLY_STOPPING, verbose=False)])
        rounds = booster.best_iteration or booster.current_iteration()
    chosen = {"num_leaves": leaves, "rounds": int(rounds), "learning_rate": LEARNING_RATE}
    # cut at the best round: the text holds only the trees that are used, so a loaded model predicts the same
    return GbmModel(preprocessor, features, booster.model_to_string(num_iteration=rounds), chosen)
