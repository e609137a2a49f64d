"""Which classical models suit a set of columns, fitting one (features and hyperparameters chosen on validation
rows: by cross-validation, then refitted on the training and tuning rows, where the tuning rows were a random
holdout; else on the tuning rows, then fitted on the training rows), the blend with the network, and loading a
saved model."""
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


CV_FOLDS = 5
# Above this many labelled rows the held-out tuning rows alone choose: they are then enough to choose from, and five
# fits of every candidate would cost more than the choice gains.
CV_MAX_ROWS = 10_000


def validation_folds(preprocessor, rows, n_train: int, seed: int, cross_validate: bool) -> list:
    """(fitting positions, validation positions) of ``rows`` (the training rows, then the tuning rows).

    ``CV_FOLDS``-fold cross-validation over all rows when ``cross_validate`` (the tuning rows were a random
    holdout of the same data) and there are at most ``CV_MAX_ROWS`` rows, stratified by class; otherwise (tuning
    rows the user chose, many rows, or a class with fewer rows than folds) the one split into training and tuning
    rows.
    """
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from .base import label_targets

    holdout = [(np.arange(n_train), np.arange(n_train, len(rows)))]
    if not cross_validate or len(rows) > CV_MAX_ROWS or len(rows) < 2 * CV_FOLDS:
        return holdout
    if preprocessor.problem_type == "regression":
        return list(KFold(CV_FOLDS, shuffle=True, random_state=seed).split(rows))
    targets = label_targets(preprocessor, rows)
    counts = np.bincount(targets)
    if counts[counts > 0].min() < CV_FOLDS:
        return holdout
    return list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(rows, targets))


def describe_folds(folds) -> str:
    """What chose the classical models, in words: ``5-fold cross-validation of 733 rows`` or ``147 tuning rows``."""
    if len(folds) == 1:
        return f"{len(folds[0][1])} tuning rows"
    return f"{len(folds)}-fold cross-validation of {sum(len(valid) for _, valid in folds)} rows"


def _feature_variants(kind: str, preprocessor) -> list:
    """The feature builders' settings tried for ``kind``."""
    from .features import SVD_COMPONENTS

    variants = [{"svd_components": SVD_COMPONENTS}]
    if kind == "linear" and len(preprocessor.columns("text")) >= 2:
        # Also how the texts match, without the words of each: on sentence pairs, a bag of words of each sentence
        # can only learn which sentences were answers in training.
        variants.append({"each_text": False})
    return variants


def _validate(kind: str, preprocessor, rows, folds, metric, seed: int) -> tuple:
    """Every candidate (feature variant x hyperparameters) fitted on each fold's fitting rows and scored on its
    validation rows: (the best candidate's feature settings, its hyperparameters, its score, its output on every
    validated row (NaN elsewhere))."""
    import numpy as np

    from .base import label_targets, log_loss, ranking_key, score_output
    from .features import FeatureBuilder

    if kind == "linear":
        from .linear import candidates, fit_linear as fit_one
    else:
        from .gbm import candidates, fit_gbm as fit_one
    targets = label_targets(preprocessor, rows)
    grid = candidates(preprocessor, min(len(fitting) for fitting, _ in folds))
    variants = _feature_variants(kind, preprocessor)
    width = 1 if preprocessor.problem_type == "regression" else len(preprocessor.class_labels)
    outputs = {(v, p): np.full((len(rows), width), np.nan) for v in range(len(variants)) for p in range(len(grid))}
    rounds, unusable = {key: [] for key in outputs}, set()
    for fitting, validation in folds:
        fit_rows, valid_rows = rows.iloc[fitting], rows.iloc[validation]
        for v, settings in enumerate(variants):
            features = FeatureBuilder(preprocessor, kind, **settings).fit(fit_rows, seed=seed)
            if not features.each_text and features.pairs is None:
                unusable.add(v)  # the texts share no character n-gram: there is no match to read alone
                continue
            fit_matrix, valid_matrix = features.transform(fit_rows), features.transform(valid_rows)
            for p, params in enumerate(grid):
                model = fit_one(preprocessor, features, fit_matrix, targets[fitting], params, seed,
                                valid=(valid_matrix, targets[validation]))
                outputs[v, p][validation] = model.output_from_matrix(valid_matrix).reshape(len(validation), width)
                rounds[v, p].append(model.params.get("rounds"))
    validated = np.unique(np.concatenate([validation for _, validation in folds]))
    best = None
    for (v, p), output in outputs.items():
        if v in unusable:
            continue
        output = output[validated] if width > 1 else output[validated, 0]
        truth = targets[validated]
        score = score_output(metric, preprocessor.problem_type, truth, output)
        # equal scores (accuracy on few rows): the better calibrated candidate
        key = ranking_key(metric, score, 0.0 if width == 1 else -log_loss(truth, output))
        logger.debug("%s %s %s: %s=%.4f", kind, variants[v], grid[p], metric.name, score)
        if best is None or key > best[0]:
            params = dict(grid[p])
            if rounds[v, p][0] is not None:  # boosting: the folds' mean number of rounds
                params["rounds"] = max(1, int(round(float(np.mean(rounds[v, p])))))
            best = (key, variants[v], params, score, outputs[v, p] if width > 1 else outputs[v, p][:, 0])
    return best[1:]


def fit_classical(kind: str, preprocessor, train, tuning, metric_name: str, seed: int = 0,
                  cross_validate: bool = False) -> tuple:
    """Choose a classical model's features and hyperparameters on validation rows, then fit the final model.

    Parameters
    ----------
    kind : {"linear", "gbm"}
    preprocessor : automm_lite.data.preprocess.Preprocessor
        Fitted; it names the columns read and the label, and encodes the classes.
    train, tuning : pandas.DataFrame
        Labelled rows. The final model is fitted on both where ``cross_validate``, else on ``train``.
    metric_name : str
        A metric of ``automm_lite.metrics`` that suits the problem type.
    seed : int
    cross_validate : bool
        True: choose by 5-fold cross-validation over ``train`` and ``tuning`` together (see
        :func:`validation_folds`; for tuning rows held out at random from the same data). False: fit the candidates
        on ``train`` and choose on ``tuning``.

    Returns
    -------
    (ClassicalModel, float, numpy array)
        The model (fitted on ``train`` and ``tuning`` where ``cross_validate``, else on ``train``), its validation
        score with ``metric_name`` (in the label's
        units for regression), and the chosen candidate's output on the ``tuning`` rows from fits that did not see
        them (for a blend with another model).

    Raises
    ------
    ConfigError
        An unknown kind, a kind that cannot read these columns, or a metric that does not fit the problem.
    NotFittedError
        A preprocessor that was not fitted.
    DataError
        Rows without the label or a feature column, or labels that cannot be used.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ..metrics import get_metric
    from .base import label_targets
    from .features import FeatureBuilder

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
        from .linear import fit_linear as fit_one
    else:
        from .gbm import fit_gbm as fit_one
    started = time.perf_counter()
    rows = pd.concat([train, tuning], ignore_index=True)
    folds = validation_folds(preprocessor, rows, len(train), seed, cross_validate)
    # One BLAS/OpenMP thread: these fits are small, and threads waiting for a busy core made them ten times
    # slower on a loaded 2-core machine (LightGBM sets its own thread count).
    with threadpool_limits(limits=1):
        settings, params, score, outputs = _validate(kind, preprocessor, rows, folds, metric, seed)
        # Refitted on the tuning rows too only where they were held out of the training data: rows the user
        # passed as tuning_data stay unseen, as they are for the network (a teacher is checked on such rows).
        final = rows if cross_validate else rows.iloc[:len(train)]
        features = FeatureBuilder(preprocessor, kind, **settings).fit(final, seed=seed)
        model = fit_one(preprocessor, features, features.transform(final), label_targets(preprocessor, final),
                        params, seed)
    model.metric_name, model.tuning_score = metric.name, score
    logger.info("Classical %s model: %s=%.4f on %s (%s), fitted on %d rows; %.1f s.", kind, metric.name, score,
                describe_folds(folds), params, len(final), time.perf_counter() - started)
    return model, score, outputs[len(train):]


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

    from .base import log_loss, ranking_key, score_output

    best = None
    for weight in BLEND_WEIGHTS if ensemble == "weighted" else (1.0, 0.0):
        output = blend(network_output, classical_output, weight)
        score = score_output(metric, problem_type, truth, output)
        if problem_type == "regression":
            loss = float(np.mean((output - truth) ** 2))
        else:
            loss = log_loss(truth, output)
        key = ranking_key(metric, score, -round(loss, 9))  # a blend of equal outputs ties, to the last bit
        if best is None or key > best[0]:
            best = (key, weight, score)
    return best[1], best[2]


class PortfolioChoice:
    """What the portfolio kept: the classical model (None when the network alone is best), the network's weight
    in the blend, every model's score on the tuning rows (the classical models' from fits that did not see them)
    and the blend's, which rows chose the classical models (``validation``) and their scores there;
    ``fit_summary()["portfolio"]`` is ``as_dict()``."""

    def __init__(self, classical, network_weight: float, scores: dict, score: float, validation: str = "",
                 validation_scores=None):
        self.classical, self.network_weight, self.scores, self.score = classical, network_weight, scores, score
        self.validation, self.validation_scores = validation, dict(validation_scores or {})

    def kept(self) -> str:
        if self.classical is None or self.network_weight >= 1.0:
            return "network"
        if self.network_weight <= 0.0:
            return self.classical.kind
        return f"{self.network_weight:.1f} x network + {1 - self.network_weight:.1f} x {self.classical.kind}"

    def as_dict(self) -> dict:
        return {"tuning_scores": dict(self.scores), "kept": self.kept(), "network_weight": self.network_weight,
                "tuning_score": self.score, "classical_validation": self.validation,
                "classical_validation_scores": self.validation_scores}


def fit_portfolio(kinds, preprocessor, train, tuning, metric_name: str, seed: int, network_output,
                  network_score: float, ensemble: str = "weighted", cross_validate: bool = False) -> PortfolioChoice:
    """Fit each classical model of ``kinds`` that can read the columns, keep the best on validation rows, and
    choose its blend with the network on the tuning rows (``network_output`` there: probabilities, or values in
    the label's units).

    Parameters
    ----------
    kinds : list of str
        ``model.classical.kinds``; those that cannot read the columns are skipped.
    preprocessor, train, tuning, metric_name, seed, cross_validate
        As for :func:`fit_classical`.
    network_output : numpy array
        The fitted network's output on ``tuning``.
    network_score : float
        Its score there.
    ensemble : {"weighted", "best"}

    Returns
    -------
    PortfolioChoice
    """
    import pandas as pd

    from ..metrics import get_metric
    from .base import label_targets, ranking_key, score_output

    metric = get_metric(metric_name, preprocessor.problem_type)
    usable = [kind for kind in kinds if kind in applicable_kinds(preprocessor.column_types)]
    if not usable:
        return PortfolioChoice(None, 1.0, {"network": network_score}, network_score)
    validation = describe_folds(validation_folds(preprocessor, pd.concat([train, tuning], ignore_index=True),
                                                 len(train), seed, cross_validate))
    truth = label_targets(preprocessor, tuning)
    scores, validation_scores, best = {"network": network_score}, {}, None
    for kind in usable:
        model, score, tuning_output = fit_classical(kind, preprocessor, train, tuning, metric_name, seed,
                                                    cross_validate)
        validation_scores[kind] = score  # chooses the kind
        # on the tuning rows, from fits that did not see them: comparable with the network's and the blend's
        scores[kind] = score_output(metric, preprocessor.problem_type, truth, tuning_output)
        if best is None or ranking_key(metric, score) > ranking_key(metric, best[1]):
            best = (model, score, tuning_output)
    classical, _, tuning_output = best
    weight, score = choose_network_weight(network_output, tuning_output, truth, metric, preprocessor.problem_type,
                                          ensemble)
    if weight >= 1.0:
        classical = None
    choice = PortfolioChoice(classical, weight, scores, score, validation, validation_scores)
    logger.info("Portfolio: tuning %s %s (the classical models chosen on %s: %s); kept %s (%.4f).", metric.name,
                ", ".join(f"{name} {value:.4f}" for name, value in scores.items()), validation,
                ", ".join(f"{name} {value:.4f}" for name, value in validation_scores.items()), choice.kept(), score)
    return choice
