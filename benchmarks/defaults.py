"""The default predictor against simple scikit-learn baselines, on the bundled offline tasks.

For every task and seed, fits the default ``Predictor(label=...)`` (no hyperparameters, unless ``--presets`` or
``--hyperparameters`` say otherwise, applied to every task) and simple baselines on the same split, and prints a
Markdown table: the task's metric on the test split (mean ± std over seeds), fit seconds and predict
milliseconds per row. Every per-seed result (with the predictor's ``fit_summary()``) goes to a JSON file.

Baselines (each only where the task has such columns):
    tfidf-lr    TF-IDF of word 1-2-grams of the text columns joined + logistic regression (RidgeCV for regression)
    tfidf-pair  sentence pairs only: char 2-4-gram TF-IDF of each sentence, their element-wise product and cosine
                + logistic regression (a bag of words of the joined pair cannot see whether the two match)
    gbt         HistGradientBoosting on the numeric and categorical columns (categories as categorical features, the
                250 most frequent of each), early stopping on 10% of the training rows
    pixels-lr   logistic regression on the grey pixels of each image column scaled to [0, 1] (28x28; images
                smaller than that at their own size: 8x8 digits)
    all-lr      one linear model on everything at once: TF-IDF + scaled numbers + one-hot categories + pixels
                (only for tasks with at least two kinds of columns)
    majority    the most frequent class with the training class frequencies as probabilities (regression: the mean)
Every logistic regression: LogisticRegressionCV, saga, C in {0.1, 1, 10, 100} by 3-fold CV; every ridge: RidgeCV,
alpha in {0.1, 1, 10, 100}. The baselines run on one thread (``--baseline-threads``); the predictor on torch's.
Scores use the library's own metrics (``automm_lite.metrics``); column kinds are the library's inference.

Example:
    python benchmarks/defaults.py --baselines-only --seeds 0 1 2     # about 2 minutes on 2 CPU cores
    python benchmarks/defaults.py --tasks chatterbot-topics digits --seeds 0 --out results.json
    python benchmarks/defaults.py --tasks bbc-short --presets medium_quality --hyperparameters optimization.max_epochs=2
    python benchmarks/defaults.py --methods default majority --time-limit 300
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASELINES = ("tfidf-lr", "tfidf-pair", "gbt", "pixels-lr", "all-lr", "majority")
METHODS = ("default",) + BASELINES
LR_CS = (0.1, 1.0, 10.0, 100.0)      # the tiny CV of every logistic regression (3 folds)
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)


# ---------------------------------------------------------------------------------------------------- tasks
# Each returns (train_df, test_df, label, problem_type, metric_name); the split follows the seed.

def _subsample(frame, n, seed, stratify=None):
    """At most ``n`` rows of ``frame`` (stratified by the column ``stratify``), index reset."""
    from sklearn.model_selection import train_test_split

    if n is None or len(frame) <= n:
        return frame.reset_index(drop=True)
    kept, _ = train_test_split(frame, train_size=n, random_state=seed,
                               stratify=frame[stratify] if stratify else None)
    return kept.reset_index(drop=True)


def chatterbot_topics(seed):
    """Topic of an English chat utterance (chatterbot-corpus): short texts, many classes; all rows (75/25 split)."""
    from automm_lite.datasets import load_chatterbot_categories

    train, test = load_chatterbot_categories("english", seed=seed)
    return train, test, "label", "multiclass", "accuracy"


def bbc_short(seed):
    """BBC News topic from the first 24 words (5 classes); training split subsampled to 1,000 rows (of ~1,680),
    the whole test split (419 rows)."""
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(short=True, seed=seed)
    return _subsample(train, 1000, seed, "label"), test, "label", "multiclass", "accuracy"


def bbc_long(seed):
    """BBC News topic from the whole article (long texts, 5 classes); training split subsampled to 600 rows,
    the whole test split (419 rows)."""
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(seed=seed)
    return _subsample(train, 600, seed, "label"), test, "label", "multiclass", "accuracy"


PAIR_LANGUAGES = ["english", "german", "spanish", "italian", "portuguese", "japanese", "korean", "chinese"]


def pairs(seed):
    """Does sentence2 answer sentence1 (chatterbot-corpus Q/A pairs, the offline PAWS-X stand-in)? 8 languages
    (those of the distillation table), at most 80 positive pairs per language, one negative per positive, split
    by question; the loader's train and validation parts are the training rows (the predictor takes its own
    holdout). Accuracy, as the PAWS-X tutorial and the distillation table (roc_auc in the JSON too).
    The language column is dropped (not a feature)."""
    import pandas as pd

    from automm_lite.datasets import load_multilingual_pairs

    train, val, test = load_multilingual_pairs(languages=PAIR_LANGUAGES, max_pairs_per_language=80, seed=seed)
    train = pd.concat([train, val], ignore_index=True).drop(columns="language")
    return train, test.drop(columns="language"), "label", "binary", "accuracy"


def drug_reviews(seed):
    """Sentiment (negative / neutral / positive) of a drug review from its text, drug, condition, usefulness
    votes and year: text + categories + numbers; all 978 rows (75/25 split)."""
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews(seed=seed)
    return train, test, "label", "multiclass", "accuracy"


def drug_useful(seed):
    """Regression: log1p of a drug review's usefulness votes (``useful_count``) from the review text, the drug,
    the condition, the year and the sentiment class; rmse in log1p units. All 978 rows (75/25 split)."""
    import numpy as np

    from automm_lite.datasets import load_drug_reviews

    def prepare(frame):
        frame = frame.rename(columns={"label": "sentiment"})
        return frame.assign(log_useful=np.log1p(frame.pop("useful_count").astype(float)))

    train, test = load_drug_reviews(seed=seed)
    return prepare(train), prepare(test), "log_useful", "regression", "rmse"


def fashion_mnist(seed):
    """Fashion-MNIST clothes (28x28 grey PNG files, 10 classes): 400 training and 1,000 test images, a
    stratified sample of each split per seed."""
    from automm_lite.datasets import load_fashion_mnist

    train, test = load_fashion_mnist(400, 1000, seed=seed)
    return train, test, "label", "multiclass", "accuracy"


def fashion_mnist_mixed(seed):
    """Fashion-MNIST with two columns measured on each image: the image, ``ink`` (a number) and ``description``
    (a text); 400 training and 1,000 test images per seed."""
    from automm_lite.datasets import load_fashion_mnist

    train, test = load_fashion_mnist(400, 1000, seed=seed, mixed=True)
    return train, test, "label", "multiclass", "accuracy"


def digits(seed):
    """scikit-learn's 8x8 handwritten digits as PNG files (10 classes): training split subsampled to 500 rows
    (of 1,347), the whole test split (450 rows)."""
    from automm_lite.datasets import load_digit_images

    train, test = load_digit_images(seed=seed)
    return _subsample(train, 500, seed, "label"), test, "label", "multiclass", "accuracy"


TASKS = {"chatterbot-topics": chatterbot_topics, "bbc-short": bbc_short, "bbc-long": bbc_long, "pairs": pairs,
         "drug-reviews": drug_reviews, "drug-useful": drug_useful, "fashion-mnist": fashion_mnist,
         "fashion-mnist-mixed": fashion_mnist_mixed, "digits": digits}


# ---------------------------------------------------------------------------------------------------- features
def column_kinds(train, label):
    """{column: text / categorical / numerical / image} as the library infers them (ignored columns left out)."""
    import logging

    from automm_lite.data.preprocess import infer_column_types

    logging.disable(logging.INFO)  # the "column not used" messages
    try:
        kinds = infer_column_types(train, label)
    finally:
        logging.disable(logging.NOTSET)
    return {column: kind for column, kind in kinds.items() if kind != "ignore"}


def _joined_text(frame, columns):
    joined = frame[columns[0]].fillna("").astype(str)
    for column in columns[1:]:
        joined = joined + " | " + frame[column].fillna("").astype(str)
    return joined.to_numpy()


@functools.lru_cache(maxsize=20000)
def _pixels(path, size):
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.float32).ravel() / 255.0
    except (OSError, TypeError, ValueError):  # missing or broken image: zeros
        return np.zeros(size * size, dtype=np.float32)


def _pixel_size(paths, largest=28):
    """Side the images of a column are read at: their own when the first one that opens is square and at most
    ``largest`` pixels (the 8x8 digits), else ``largest`` (every image resized to it)."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, TypeError, ValueError, AttributeError):
            continue
        return width if width == height and width <= largest else largest
    return largest


class Features:
    """Turns a frame's columns of some kinds into one matrix; ``fit`` on the training rows, ``transform`` any."""

    def __init__(self, kinds, use, dense_tabular=False):
        self.columns = {kind: [c for c, k in kinds.items() if k == kind] for kind in use}
        self.dense_tabular = dense_tabular  # gbt: ordinal categories, raw numbers, one dense array

    def fit(self, frame):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

        cols = self.columns
        if cols.get("text"):
            self.tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000)
            self.tfidf.fit(_joined_text(frame, cols["text"]))
        if cols.get("numerical"):
            numbers = frame[cols["numerical"]].apply(lambda s: s.astype(float))
            self.means = numbers.mean()
            if not self.dense_tabular:
                self.scaler = StandardScaler().fit(numbers.fillna(self.means))
        if cols.get("categorical"):
            cats = frame[cols["categorical"]].astype(str)
            if self.dense_tabular:
                self.encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                              max_categories=250, dtype=np.float64).fit(cats)
            else:
                self.encoder = OneHotEncoder(handle_unknown="ignore").fit(cats)
        self.pixel_sizes = {column: _pixel_size(frame[column]) for column in cols.get("image", [])}
        return self

    def categorical_mask(self):
        return [False] * len(self.columns.get("numerical", [])) + [True] * len(self.columns.get("categorical", []))

    def transform(self, frame):
        import numpy as np
        import scipy.sparse as sp

        cols, blocks = self.columns, []
        if cols.get("text"):
            blocks.append(self.tfidf.transform(_joined_text(frame, cols["text"])))
        if cols.get("numerical"):
            numbers = frame[cols["numerical"]].apply(lambda s: s.astype(float))
            if self.dense_tabular:
                blocks.append(numbers.to_numpy())  # gradient boosting takes missing numbers as they are
            else:
                blocks.append(sp.csr_matrix(self.scaler.transform(numbers.fillna(self.means))))
        if cols.get("categorical"):
            cats = self.encoder.transform(frame[cols["categorical"]].astype(str))
            blocks.append(cats if self.dense_tabular else sp.csr_matrix(cats))
        for column in cols.get("image", []):
            size = self.pixel_sizes[column]
            images = np.stack([_pixels(p if isinstance(p, str) else "", size) for p in frame[column]])
            blocks.append(images if self.dense_tabular else sp.csr_matrix(images))
        if self.dense_tabular:
            return np.hstack(blocks)
        return sp.hstack(blocks, format="csr")


class PairFeatures:
    """Two text columns: char 2-4-gram TF-IDF of each (one vocabulary), their element-wise product and cosine."""

    def __init__(self, kinds):
        self.first, self.second = [c for c, k in kinds.items() if k == "text"][:2]

    def fit(self, frame):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=100_000)
        self.tfidf.fit(list(frame[self.first].fillna("").astype(str)) + list(frame[self.second].fillna("").astype(str)))
        return self

    def transform(self, frame):
        import numpy as np
        import scipy.sparse as sp

        a = self.tfidf.transform(frame[self.first].fillna("").astype(str))
        b = self.tfidf.transform(frame[self.second].fillna("").astype(str))
        product = a.multiply(b).tocsr()
        cosine = np.asarray(product.sum(axis=1))  # rows are L2-normalized
        return sp.hstack([product, sp.csr_matrix(cosine), sp.csr_matrix(cosine ** 2)], format="csr")


# ---------------------------------------------------------------------------------------------------- methods
def _linear(problem_type, seed):
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    if problem_type == "regression":
        return RidgeCV(alphas=RIDGE_ALPHAS)
    # saga: seconds on sparse TF-IDF where lbfgs takes minutes (18 classes, 100k+ bigram columns)
    return LogisticRegressionCV(Cs=list(LR_CS), cv=3, solver="saga", tol=1e-3, max_iter=1000, random_state=seed)


class Baseline:
    """A feature builder and an estimator; ``predict`` returns (values or class ids, probabilities or None)."""

    def __init__(self, features, estimator, problem_type):
        self.features, self.estimator, self.problem_type = features, estimator, problem_type

    def fit(self, frame, y):
        matrix = self.features.fit(frame).transform(frame)
        self.estimator.fit(matrix, y)
        return self

    def predict(self, frame):
        matrix = self.features.transform(frame)
        if self.problem_type == "regression":
            return self.estimator.predict(matrix), None
        proba = self.estimator.predict_proba(matrix)
        return proba.argmax(axis=1), proba


class Majority:
    def __init__(self, problem_type):
        self.problem_type = problem_type

    def fit(self, frame, y):
        import numpy as np

        if self.problem_type == "regression":
            self.value = float(np.mean(y))
        else:
            self.prior = np.bincount(y, minlength=int(y.max()) + 1) / len(y)
        return self

    def predict(self, frame):
        import numpy as np

        if self.problem_type == "regression":
            return np.full(len(frame), self.value), None
        proba = np.tile(self.prior, (len(frame), 1))
        return proba.argmax(axis=1), proba


def make_baseline(method, kinds, problem_type, seed):
    """The baseline ``method`` for columns of these kinds, or None where it does not apply."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    present = set(kinds.values())
    if method == "majority":
        return Majority(problem_type)
    if method == "tfidf-lr" and "text" in present:
        return Baseline(Features(kinds, ["text"]), _linear(problem_type, seed), problem_type)
    if method == "tfidf-pair" and list(kinds.values()).count("text") == 2:
        return Baseline(PairFeatures(kinds), _linear(problem_type, seed), problem_type)
    if method == "gbt" and present & {"numerical", "categorical"}:
        features = Features(kinds, ["numerical", "categorical"], dense_tabular=True)
        mask = features.categorical_mask()
        cls = HistGradientBoostingRegressor if problem_type == "regression" else HistGradientBoostingClassifier
        # early stopping on 10% of the rows: the default 100 rounds overfit these few hundred rows
        estimator = cls(categorical_features=mask, early_stopping=True, random_state=seed)
        return Baseline(features, estimator, problem_type)
    if method == "pixels-lr" and "image" in present:
        return Baseline(Features(kinds, ["image"]), _linear(problem_type, seed), problem_type)
    if method == "all-lr" and len(present) >= 2:
        return Baseline(Features(kinds, ["text", "numerical", "categorical", "image"]), _linear(problem_type, seed),
                        problem_type)
    return None


def encode_labels(train_labels, test_labels, problem_type):
    """Class ids in the library's order (sorted classes), or float values for regression."""
    import numpy as np

    if problem_type == "regression":
        return train_labels.astype(float).to_numpy(), test_labels.astype(float).to_numpy(), None
    classes = sorted(train_labels.unique())
    index = {c: i for i, c in enumerate(classes)}
    return (train_labels.map(index).to_numpy(dtype=np.int64), test_labels.map(index).to_numpy(dtype=np.int64),
            classes)


def score_all(metric_names, problem_type, y_true, predicted, proba):
    from automm_lite.metrics import compute_metric, get_metric

    scores = {}
    for name in metric_names:
        metric = get_metric(name, problem_type)
        if metric.needs_proba and proba is None:
            continue
        scores[metric.name] = compute_metric(metric, y_true, predicted, proba)
    return scores


def run_baseline(method, train, test, label, problem_type, metric_names, seed, threads=1):
    from threadpoolctl import threadpool_limits

    kinds = column_kinds(train, label)
    _pixels.cache_clear()  # each method decodes its own images (inside its fit and predict time)
    model = make_baseline(method, kinds, problem_type, seed)
    if model is None:
        return None
    y_train, y_test, _ = encode_labels(train[label], test[label], problem_type)
    features = train.drop(columns=label)
    # One thread by default: OpenMP (gradient boosting) slows down many times on a CPU other jobs share.
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the CV's weakest C
        start = time.perf_counter()
        model.fit(features, y_train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predicted, proba = model.predict(test.drop(columns=label))
        predict_s = time.perf_counter() - start
    chosen = getattr(model, "estimator", None)
    chosen = {"C": float(chosen.C_[0])} if hasattr(chosen, "C_") else {"alpha": float(chosen.alpha_)} if hasattr(
        chosen, "alpha_") else {"n_iter": int(chosen.n_iter_)} if hasattr(chosen, "n_iter_") else None
    return {"scores": score_all(metric_names, problem_type, y_test, predicted, proba), "fit_s": fit_s,
            "predict_s": predict_s, "columns": kinds, "chosen": chosen}


def run_default(train, test, label, problem_type, metric_names, seed, args, folder):
    from automm_lite import Predictor

    predictor = Predictor(label=label, path=folder, verbosity=1)
    start = time.perf_counter()
    predictor.fit(train, hyperparameters=args.hyperparameters or None, presets=args.presets,
                  time_limit=args.time_limit, seed=seed)
    fit_s = time.perf_counter() - start
    if predictor.problem_type != problem_type:
        raise RuntimeError(f"the predictor inferred {predictor.problem_type!r}, the task is {problem_type!r}")
    start = time.perf_counter()
    scores = predictor.evaluate(test, metrics=list(metric_names))
    predict_s = time.perf_counter() - start
    timing = getattr(scores, "timing", None)
    return {"scores": {k: float(v) for k, v in scores.items()}, "fit_s": fit_s, "predict_s": predict_s,
            "columns": predictor.column_types, "fit_summary": predictor.fit_summary(),
            "eval_metric": predictor.eval_metric, "evaluate_timing": _plain(timing),
            "total_parameters": predictor.total_parameters}


def _fit_trace(work_dir, name, lines=25):
    """The end of the fit log and of the per-step metrics of the fit ``name`` (finished, failed or still in its
    work folder): what a failed or killed fit had done."""
    import glob

    trace = {}
    for pattern, key in ((f"{name}.failed-fit.log", "fit_log"), (f".{name}*/fit.log", "fit_log"),
                         (f"{name}/fit.log", "fit_log"), (f".{name}*/logs/metrics.csv", "metrics"),
                         (f"{name}*/logs/metrics.csv", "metrics")):
        for path in sorted(glob.glob(os.path.join(work_dir, pattern))):
            try:
                with open(path, errors="replace") as file:
                    trace.setdefault(key, file.read().splitlines()[-lines:])
            except OSError:
                pass
    return trace


def _plain(value):
    """A JSON-friendly copy of a small object (dataclass, object with attributes, dict)."""
    import dataclasses

    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


# ---------------------------------------------------------------------------------------------------- report
def table(runs, order):
    """Markdown: one row per (task, method), scores mean ± std (population) over seeds."""
    import numpy as np

    lines = ["| task | method | metric | score (mean ± std) | seeds | fit s | predict ms/row | train / test rows |",
             "|---|---|---|---|---|---|---|---|"]
    for task in order:
        methods = list(dict.fromkeys(r["method"] for r in runs if r["task"] == task))
        for method in methods:
            rows = [r for r in runs if r["task"] == task and r["method"] == method]
            ok = [r for r in rows if r.get("score") is not None]
            metric = rows[0]["metric"]
            if not ok:
                error = rows[0].get("error", "no score")
                lines.append(f"| {task} | {method} | {metric} | error: {error[:80]} | {len(rows)} | | | |")
                continue
            scores = np.array([r["score"] for r in ok])
            fit = np.mean([r["fit_s"] for r in ok])
            ms = np.mean([r["predict_ms_per_row"] for r in ok])
            failed = f" ({len(rows) - len(ok)} failed)" if len(ok) < len(rows) else ""
            lines.append(f"| {task} | {method} | {metric} | {scores.mean():.3f} ± {scores.std():.3f} | "
                         f"{len(ok)}{failed} | {fit:.1f} | {ms:.3f} | {ok[0]['n_train']} / {ok[0]['n_test']} |")
    return "\n".join(lines)


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), metavar="TASK",
                        help=f"default: all of {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["default", "baselines"], metavar="METHOD",
                        choices=list(METHODS) + ["baselines"],
                        help=f"any of {', '.join(METHODS)}, or 'baselines' for all baselines (default: default "
                             "baselines)")
    parser.add_argument("--baselines-only", action="store_true", help="skip the Predictor (runs in seconds)")
    parser.add_argument("--presets", help="preset name passed to every Predictor.fit")
    parser.add_argument("--hyperparameters", nargs="+", default=[], metavar="KEY=VALUE",
                        help="dotted keys passed to every Predictor.fit, e.g. optimization.max_epochs=2")
    parser.add_argument("--time-limit", type=float, help="seconds per Predictor.fit (its time_limit)")
    parser.add_argument("--work-dir", help="folder of the predictors' fit folders (default: a temporary folder, "
                                           "removed at the end)")
    parser.add_argument("--baseline-threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the baselines (default 1: stable timings on a shared CPU)")
    parser.add_argument("--keep-models", action="store_true", help="keep each fitted predictor's folder")
    parser.add_argument("--out", default="results.json", help="JSON file of every per-seed result")
    args = parser.parse_args(argv)
    methods = []
    for method in args.methods:
        methods.extend(BASELINES if method == "baselines" else [method])
    if args.baselines_only:
        methods = [m for m in methods if m != "default"] or list(BASELINES)
    args.methods = list(dict.fromkeys(methods))
    return args


def main(argv=None):
    args = parse_args(argv)
    own_work_dir = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="automm_defaults_") if own_work_dir else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    start_all = time.perf_counter()
    runs = []
    meta = {"argv": sys.argv[1:], "methods": args.methods, "seeds": args.seeds, "presets": args.presets,
            "hyperparameters": args.hyperparameters, "time_limit": args.time_limit,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(), "git_commit": _git_commit(),
            "tasks": {name: " ".join(TASKS[name].__doc__.split()) for name in args.tasks}}

    def save():
        meta["total_s"] = time.perf_counter() - start_all
        with open(args.out, "w") as file:
            json.dump({"meta": meta, "runs": runs}, file, indent=1, default=str)

    interrupted = None
    try:
        for task, seed in itertools.product(args.tasks, args.seeds):
            if interrupted:
                break
            try:
                train, test, label, problem_type, metric_name = TASKS[task](seed)
            except Exception as error:  # noqa: BLE001 (a missing data package: say so, go on)
                print(f"[{task} seed {seed}] cannot load: {type(error).__name__}: {error}", file=sys.stderr)
                runs.append({"task": task, "method": "load", "seed": seed, "metric": "-", "score": None,
                             "error": f"{type(error).__name__}: {error}"})
                save()
                continue
            from automm_lite.metrics import DEFAULT_METRIC

            metric_names = list(dict.fromkeys([metric_name, DEFAULT_METRIC[problem_type]]))
            for method in args.methods:
                record = {"task": task, "method": method, "seed": seed, "metric": metric_name,
                          "problem_type": problem_type, "n_train": len(train), "n_test": len(test)}
                folder = os.path.join(work_dir, f"{task}-seed{seed}")
                started = time.perf_counter()
                try:
                    if method == "default":
                        result = run_default(train, test, label, problem_type, metric_names, seed, args, folder)
                    else:
                        result = run_baseline(method, train, test, label, problem_type, metric_names, seed,
                                              args.baseline_threads)
                except Exception as error:  # noqa: BLE001 (one failed fit must not lose the others)
                    result = {"error": f"{type(error).__name__}: {error}", "scores": {}}
                except BaseException as error:  # Ctrl-C; a `timeout` kill during a fit (Lightning's SIGTERM)
                    interrupted = error
                    result = {"error": f"interrupted ({type(error).__name__}) after "
                                       f"{time.perf_counter() - started:.0f} s", "scores": {}}
                finally:
                    if method == "default":
                        trace = _fit_trace(work_dir, os.path.basename(folder))
                        if not args.keep_models:
                            shutil.rmtree(folder, ignore_errors=True)
                if method == "default" and result is not None and "error" in result:
                    result["fit_trace"] = trace  # how far the failed fit got
                if result is None:  # the baseline does not apply to these columns
                    continue
                record.update(result)
                record["score"] = record["scores"].get(metric_name)
                if "predict_s" in record:
                    record["predict_ms_per_row"] = 1000 * record["predict_s"] / len(test)
                runs.append(record)
                save()
                shown = f"{record['score']:.4f}" if record["score"] is not None else record.get("error")
                timing = f"; fit {record['fit_s']:.1f} s" if "fit_s" in record else ""
                print(f"[{task} seed {seed}] {method}: {metric_name} {shown}{timing}", file=sys.stderr,
                      flush=True)
                if interrupted:
                    break
    finally:
        save()
        if own_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    settings = "default predictor" + (f", presets={args.presets}" if args.presets else "") + (
        f", hyperparameters {' '.join(args.hyperparameters)}" if args.hyperparameters else "") + (
        f", time_limit {args.time_limit:g} s" if args.time_limit else "")
    print(f"Methods: {', '.join(args.methods)}; seeds {args.seeds}" + (f"; {settings}" if "default" in args.methods
                                                                         else ""))
    print(table(runs, args.tasks))
    print(f"\nScores on each task's test split (std over seeds, ddof=0); predict ms/row: the test split's predict "
          f"(for the predictor: evaluate) time per row. {meta['machine']}; total "
          f"{time.perf_counter() - start_all:.0f} s. Raw results: {args.out}")
    if interrupted:
        print(f"Interrupted ({type(interrupted).__name__}): the runs after it were not made.")
        sys.exit(130)


if __name__ == "__main__":
    main()
