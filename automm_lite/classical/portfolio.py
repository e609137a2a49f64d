"""Which classical models suit a set of columns, fitting one (features built once, hyperparameters chosen on
the tuning rows) and loading a saved one."""
from __future__ import annotations

import logging
import time

from ..exceptions import ConfigError, DataError, NotFittedError

logger = logging.getLogger("automm_lite")

CLASSICAL_KINDS = ("linear", "gbm")
_READ = ("text", "numerical", "categorical", "image")


def applicable_kinds(column_kinds: dict) -> list:
    """The classical kinds that can read these columns.

    Parameters
    ----------
    column_kinds : dict
        ``{column: kind}`` as ``infer_column_types`` gives it (or ``Preprocessor.column_types``).

    Returns
    -------
    list of str
        ``linear`` when any text, numerical, categorical or image column is read; ``gbm`` too when at least one
        is numerical or categorical (the trees read numbers, categories and a few SVD axes of the text).
    """
    kinds = set(column_kinds.values())
    found = []
    if kinds & set(_READ):
        found.append("linear")
    if kinds & {"numerical", "categorical"}:
        found.append("gbm")
    return found


def fit_classical(kind: str, preprocessor, train, tuning, metric_name: str, seed: int = 0) -> tuple:
    """Fit a classical model on ``train`` and choose its hyperparameters on ``tuning``.

    Parameters
    ----------
    kind : {"linear", "gbm"}
    preprocessor : automm_lite.data.preprocess.Preprocessor
        Fitted; it names the columns read and the label, and encodes the classes.
    train, tuning : pandas.DataFrame
        Labelled rows; the model is fitted on ``train`` only.
    metric_name : str
        A metric of ``automm_lite.metrics`` that suits the problem type.
    seed : int

    Returns
    -------
    (ClassicalModel, float)
        The model, and its score with ``metric_name`` on the tuning rows (in the label's units for regression).

    Raises
    ------
    ConfigError
        An unknown kind, a kind that cannot read these columns, or a metric that does not fit the problem.
    NotFittedError
        A preprocessor that was not fitted.
    DataError
        Rows without the label or a feature column, or labels that cannot be used.
    """
    from threadpoolctl import threadpool_limits

    from ..metrics import get_metric
    from .base import ranking_key
    from .features import SVD_COMPONENTS, FeatureBuilder

    if kind not in CLASSICAL_KINDS:
        raise ConfigError(f"Unknown classical model {kind!r}; choose one of {CLASSICAL_KINDS}.")
    usable = applicable_kinds(preprocessor.column_types)
    if kind not in usable:
        raise ConfigError(f"A {kind!r} model cannot read these columns ({preprocessor.column_types}); the kinds "
                          f"that can are {usable}.")
    if not preprocessor.state:
        raise NotFittedError("The preprocessor is not fitted; call Preprocessor.fit on the training rows first.")
    metric = get_metric(metric_name, preprocessor.problem_type)
    for name, frame in (("train", train), ("tuning", tuning)):
        if len(frame) == 0:
            raise DataError(f"The {name} rows are empty; a classical model needs labelled {name} rows.")
        preprocessor.check_columns(frame, need_label=True)
    if kind == "linear":
        from .linear import fit_linear as fit
    else:
        from .gbm import fit_gbm as fit
    started = time.perf_counter()
    # One BLAS/OpenMP thread: these fits are small, and threads waiting for a busy core made them ten times
    # slower on a loaded 2-core machine (LightGBM sets its own thread count).
    variants = [FeatureBuilder(preprocessor, kind, svd_components=SVD_COMPONENTS)]
    if kind == "linear" and len(preprocessor.columns("text")) >= 2:
        # Also how the texts match, without the words of each: on sentence pairs, a bag of words of each sentence
        # can only learn which sentences were answers in training.
        variants.append(FeatureBuilder(preprocessor, kind, each_text=False))
    best = None
    with threadpool_limits(limits=1):
        for features in variants:
            features.fit(train, seed=seed)
            if not features.each_text and features.pairs is None:
                continue  # the texts share no character n-gram: there is no match to read alone
            train_matrix, tuning_matrix = features.transform(train), features.transform(tuning)
            model, score = fit(preprocessor, features, train_matrix, tuning_matrix, train, tuning, metric, seed)
            if best is None or ranking_key(metric, score) > ranking_key(metric, best[1]):
                best = (model, score)
    model, score = best
    logger.info("Classical %s model: %s=%.4f on %d tuning rows (%s), fitted in %.1f s.", kind, metric.name, score,
                len(tuning), model.params, time.perf_counter() - started)
    return model, score


def load_classical(folder):
    """The classical model that ``ClassicalModel.save`` wrote into ``folder`` (nothing is unpickled).

    Raises
    ------
    DataError
        A folder that is not a saved classical model, or one with a missing or damaged file.
    """
    from .base import read_saved

    settings, arrays, features = read_saved(folder)
    kind = settings["kind"]
    if kind == "linear":
        from .linear import LinearModel as model_class
    elif kind == "gbm":
        from .gbm import GbmModel as model_class
    else:
        raise DataError(f"{str(folder)!r} holds a classical model of kind {kind!r}; known kinds: {CLASSICAL_KINDS}.")
    return model_class.restore(settings, arrays, features, folder)


BLEND_WEIGHTS = (1.0, 0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)  # the network's; ties keep the first


def blend(network_output, classical_output, network_weight: float):
    """``network_weight`` x the network's output + the rest x the classical model's (probabilities, or values in
    the label's units); either one alone at weight 1 or 0 (the other may then be None)."""
    if network_weight >= 1.0:
        return network_output
    if network_weight <= 0.0:
        return classical_output
    return network_weight * network_output + (1.0 - network_weight) * classical_output


def choose_network_weight(network_output, classical_output, truth, metric, problem_type: str,
                          ensemble: str = "weighted") -> tuple:
    """The network's weight in the blend that scores best on the tuning rows (``ensemble="best"``: 1 or 0, the
    better model alone); on equal scores the lower log loss (or squared error) wins, then the earlier weight in
    ``BLEND_WEIGHTS`` (a model alone before a blend).

    Returns
    -------
    (weight, the blend's score on the tuning rows)
    """
    import numpy as np

    from .base import ranking_key, score_output

    best = None
    for weight in BLEND_WEIGHTS if ensemble == "weighted" else (1.0, 0.0):
        output = blend(network_output, classical_output, weight)
        score = score_output(metric, problem_type, truth, output)
        if problem_type == "regression":
            loss = float(np.mean((output - truth) ** 2))
        else:
            loss = float(-np.mean(np.log(np.clip(output[np.arange(len(truth)), truth], 1e-12, None))))
        key = ranking_key(metric, score, -round(loss, 9))  # a blend of equal outputs ties, to the last bit
        if best is None or key > best[0]:
            best = (key, weight, score)
    return best[1], best[2]


class PortfolioChoice:
    """What the portfolio kept: the classical model (None when the network alone is best), the network's weight
    in the blend, every model's tuning score and the blend's; ``fit_summary()["portfolio"]`` is ``as_dict()``."""

    def __init__(self, classical, network_weight: float, scores: dict, score: float):
        self.classical, self.network_weight, self.scores, self.score = classical, network_weight, scores, score

    def kept(self) -> str:
        if self.classical is None or self.network_weight >= 1.0:
            return "network"
        if self.network_weight <= 0.0:
            return self.classical.kind
        return f"{self.network_weight:.1f} x network + {1 - self.network_weight:.1f} x {self.classical.kind}"

    def as_dict(self) -> dict:
        return {"tuning_scores": dict(self.scores), "kept": self.kept(), "network_weight": self.network_weight,
                "tuning_score": self.score}


def fit_portfolio(kinds, preprocessor, train, tuning, metric_name: str, seed: int, network_output,
                  network_score: float, ensemble: str = "weighted") -> PortfolioChoice:
    """Fit each classical model of ``kinds`` that can read the columns, keep the best on the tuning rows, and
    choose its blend with the network (``network_output`` on the tuning rows: probabilities, or values in the
    label's units).

    Parameters
    ----------
    kinds : list of str
        ``model.classical.kinds``; those that cannot read the columns are skipped.
    preprocessor, train, tuning, metric_name, seed
        As for :func:`fit_classical`.
    network_output : numpy array
        The fitted network's output on ``tuning``.
    network_score : float
        Its score there.
    ensemble : {"weighted", "best"}
    """
    from ..metrics import get_metric
    from .base import label_targets, ranking_key

    metric = get_metric(metric_name, preprocessor.problem_type)
    usable = [kind for kind in kinds if kind in applicable_kinds(preprocessor.column_types)]
    scores, best = {"network": network_score}, None
    for kind in usable:
        model, score = fit_classical(kind, preprocessor, train, tuning, metric_name, seed)
        scores[kind] = score
        if best is None or ranking_key(metric, score) > ranking_key(metric, best[1]):
            best = (model, score)
    if best is None:
        return PortfolioChoice(None, 1.0, scores, network_score)
    classical = best[0]
    weight, score = choose_network_weight(network_output, classical.predict_output(tuning),
                                          label_targets(preprocessor, tuning), metric, preprocessor.problem_type,
                                          ensemble)
    if weight >= 1.0:
        classical = None
    logger.info("Portfolio: tuning %s %s; kept %s (%.4f).", metric.name,
                ", ".join(f"{name} {value:.4f}" for name, value in scores.items()),
                PortfolioChoice(classical, weight, scores, score).kept(), score)
    return PortfolioChoice(classical, weight, scores, score)
