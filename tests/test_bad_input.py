"""Bad input, each case its own test: a typed error whose message names the bad value and the fix, raised before
any model is built, and nothing left on disk.

Every case is a function of ``Case`` (frames, fitted predictors, a folder to fit into). The manual's Errors page
(docs/guide/errors.md) counts this table.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError, DataError, NotFittedError


@dataclass
class Case:
    train: pd.DataFrame          # BBC-short text rows
    test: pd.DataFrame
    table: pd.DataFrame          # numbers, categories and a class label
    hp: dict                     # a fit that takes seconds
    text: Predictor              # fitted on ``train``
    tabular: Predictor           # fitted on ``table``
    regression: Predictor        # fitted on ``table``'s numbers
    folder: Path                 # where a case writes: empty after every case

    def fit(self, data, label="label", predictor_args=None, **kwargs):
        kwargs.setdefault("hyperparameters", self.hp)
        return Predictor(label, path=str(self.folder / "model"), verbosity=0, **(predictor_args or {})).fit(
            data, **kwargs)


def small_table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(size=n), "shop": rng.choice(["a", "b", "c"], n),
                         "label": rng.choice(["yes", "no"], n)})


TABULAR_HP = {"model.names": ["tabular_mlp"], "optimization.max_epochs": 1, "env.batch_size": 16,
              "env.per_gpu_batch_size": 16}


@pytest.fixture(scope="module")
def fitted_tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input")
    table = small_table()
    tabular = Predictor("label", path=str(folder / "tabular"), verbosity=0).fit(table, hyperparameters=TABULAR_HP)
    numbers = table.assign(label=np.random.default_rng(1).normal(size=len(table)))
    regression = Predictor("label", path=str(folder / "regression"), verbosity=0).fit(
        numbers, hyperparameters=TABULAR_HP)
    return table, tabular, regression


@pytest.fixture
def case(bbc_short, tiny_hp, fitted_text_predictor, fitted_tables, tmp_path):
    train, test = bbc_short
    table, tabular, regression = fitted_tables
    folder = tmp_path / "out"
    folder.mkdir()
    yield Case(train, test.head(20), table, {**tiny_hp, "optimization.max_epochs": 1}, fitted_text_predictor,
               tabular, regression, folder)
    assert list(folder.iterdir()) == [], "a failed call left files behind"


def saved_copy(predictor, folder) -> Path:
    copy = folder.parent / "copy"
    shutil.copytree(predictor.path, copy)
    return copy


def edit_json(folder: Path, change):
    file = folder / "predictor.json"
    metadata = json.loads(file.read_text())
    change(metadata)
    file.write_text(json.dumps(metadata))
    return folder


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder.parent / name
    path.write_bytes(content)
    return path


CASES = {
    # ---------------------------------------------------------------- the training frame
    "label column missing": (lambda c: c.fit(c.train.drop(columns="label")), DataError,
                             r"no label column 'label'; its columns are \['text'\]"),
    "label column all missing": (lambda c: c.fit(c.train.assign(label=np.nan)), DataError,
                                 "every value of the label column 'label' is missing"),
    "label with one class": (lambda c: c.fit(c.train.assign(label="sports")), DataError,
                             "1 distinct value.*at least 2"),
    "label mixing numbers and strings": (
        lambda c: c.fit(c.train.assign(label=[1 if i % 2 else "tech" for i in range(len(c.train))])), DataError,
        r"mixes kinds of values.*astype\(str\)"),
    "unhashable labels": (lambda c: c.fit(c.train.assign(label=[[i % 2] for i in range(len(c.train))])), DataError,
                          "holds a list.*one value per row"),
    "infinite regression label": (
        lambda c: c.fit(c.table.assign(label=[np.inf] + [1.5] * (len(c.table) - 1)), hyperparameters=TABULAR_HP),
        DataError, "infinite values.*np.isfinite"),
    "empty frame": (lambda c: c.fit(c.train.iloc[:0]), DataError, "train_data has no rows"),
    "one labelled row": (lambda c: c.fit(c.train.head(1)), DataError, "1 labelled row.*at least 2"),
    "duplicate column names": (lambda c: c.fit(pd.concat([c.train, c.train[["text"]]], axis=1)), DataError,
                               r"\['text'\] appear more than once.*duplicated"),
    "non-string column names": (lambda c: c.fit(c.train.set_axis([0, "label"], axis=1)), DataError,
                                "column names must be strings.*astype"),
    "label name not a string": (lambda c: c.fit(c.train, label=0), DataError, "label must be a column name"),
    "a Series instead of a frame": (lambda c: c.fit(c.train.text), DataError, "DataFrame or a path.*not Series"),
    "a list of rows": (lambda c: c.fit(c.train.to_dict("records")), DataError, "DataFrame or a path.*not list"),
    "a dict of columns": (lambda c: c.fit(c.train.to_dict("list")), DataError, "DataFrame or a path.*not dict"),
    "a numpy array": (lambda c: c.fit(c.train.to_numpy()), DataError, "DataFrame or a path.*not ndarray"),
    "only a blank text column": (lambda c: c.fit(c.train.assign(text="  ")), DataError,
                                 "No usable feature column besides the label"),
    "infinite number in a feature": (
        lambda c: c.fit(c.table.assign(amount=[np.inf] + list(c.table.amount[1:])), hyperparameters=TABULAR_HP),
        DataError, r"column 'amount' holds infinite values.*replace\(\[np.inf"),
    "text forced to be numbers": (lambda c: c.fit(c.train, column_types={"text": "numerical"}), DataError,
                                  "column 'text' is read as numbers.*column_types"),
    "column_types names no column": (lambda c: c.fit(c.train, column_types={"body": "text"}), DataError,
                                     "column_types names 'body', which is not a column"),
    "column_types with a bad kind": (lambda c: c.fit(c.train, column_types={"text": "words"}), DataError,
                                     "'words' is not a column kind"),
    # ---------------------------------------------------------------- the files
    "training file missing": (lambda c: c.fit(str(c.folder.parent / "nothing.csv")), DataError,
                              "nothing.csv' does not exist"),
    "a CSV that does not parse": (lambda c: c.fit(write(c.folder, "bad.csv", b'text,label\n"open,1\n')), DataError,
                                  "bad.csv' does not parse as CSV"),
    "a Parquet file that does not parse": (lambda c: c.fit(write(c.folder, "bad.parquet", b"PAR1 no")), DataError,
                                           "bad.parquet' does not parse as Parquet"),
    "a CSV separated by semicolons": (
        lambda c: c.fit(write(c.folder, "rows.csv", c.train.to_csv(sep=";", index=False).encode())), DataError,
        r"seem separated by ';'.*sep=';'"),
    "a file of another kind": (lambda c: c.fit(write(c.folder, "rows.xlsx", b"x")), DataError,
                               r"give a \.csv, \.tsv or \.parquet file"),
    # ---------------------------------------------------------------- arguments and hyperparameters
    "a string for a number": (lambda c: c.fit(c.train, hyperparameters={**c.hp, "optimization.max_epochs": "3x"}),
                              ConfigError, "optimization.max_epochs='3x' is invalid: expected a number"),
    "a negative size": (lambda c: c.fit(c.train, hyperparameters={**c.hp, "env.batch_size": -4}), ConfigError,
                        r"env.batch_size=-4 is invalid: expected a value in \[1, inf\)"),
    "a nan learning rate": (lambda c: c.fit(c.train, hyperparameters={**c.hp, "optim.lr": float("nan")}),
                            ConfigError, "optim.lr=nan is invalid: expected a finite number"),
    "a boolean for an int": (lambda c: c.fit(c.train, hyperparameters={**c.hp, "optimization.max_epochs": True}),
                             ConfigError, "max_epochs=True is invalid"),
    "a misspelled key": (lambda c: c.fit(c.train, hyperparameters={**c.hp, "optim.lrr": 1e-3}), ConfigError,
                         "optim.lrr.*Did you mean.*optim.lr"),
    "an unknown metric": (lambda c: c.fit(c.train, predictor_args={"eval_metric": "acuracy"}), ConfigError,
                          "Unknown metric 'acuracy'.*accuracy"),
    "a regression metric of class labels": (lambda c: c.fit(c.train, predictor_args={"eval_metric": "rmse"}),
                                            DataError, "eval_metric='rmse' scores a regression.*'accuracy'"),
    "a metric of another problem type": (
        lambda c: c.fit(c.train, predictor_args={"eval_metric": "rmse", "problem_type": "multiclass"}),
        ConfigError, "rmse"),
    "an unknown preset": (lambda c: c.fit(c.train, presets="quickest"), ConfigError,
                          "Unknown preset 'quickest'; choose one of"),
    "an unknown problem type": (lambda c: c.fit(c.train, predictor_args={"problem_type": "ranking"}), ConfigError,
                                "problem_type='ranking' is invalid: expected one of 'binary'"),
    "time_limit of zero": (lambda c: c.fit(c.train, time_limit=0), ConfigError,
                           r"time_limit=0 is invalid: expected a value in \(0, inf\) or None"),
    "time_limit as text": (lambda c: c.fit(c.train, time_limit="1h"), ConfigError, "time_limit='1h'"),
    "a negative seed": (lambda c: c.fit(c.train, seed=-1), ConfigError,
                        r"seed=-1 is invalid: expected a value in \[0, inf\)"),
    "holdout_frac above 1": (lambda c: c.fit(c.train, holdout_frac=1.5), ConfigError,
                             r"holdout_frac=1.5 is invalid: expected a value in \(0, 1\) or None"),
    "a bad layers spec": (
        lambda c: c.fit(c.train, hyperparameters={**c.hp, "model.hf_text.checkpoint_name": "minilm-l6:layers=9"}),
        ConfigError, "layer 9 is out of range.*0..5"),
    "a hub checkpoint offline": (
        lambda c: c.fit(c.train, hyperparameters={**c.hp, "model.hf_text.checkpoint_name": "no-org/no-such-model"}),
        ConfigError, "(?s)Could not load the text checkpoint 'no-org/no-such-model'.*hub is offline.*offline zoo "
                     "name"),
    # ---------------------------------------------------------------- tuning rows
    "tuning labels not in training": (lambda c: c.fit(c.train, tuning_data=c.test.assign(label="weather")),
                                      DataError, r"\['weather'\].*not seen in training"),
    "tuning rows without a feature column": (lambda c: c.fit(c.train, tuning_data=c.test.drop(columns="text")),
                                             DataError, r"lacks column\(s\) \['text'\]"),
    # ---------------------------------------------------------------- teachers
    "a teacher that is not a predictor": (lambda c: c.fit(c.train, teacher_predictor=42), ConfigError,
                                          "fitted Predictor or the folder of a saved one, not int"),
    "an unfitted teacher": (lambda c: c.fit(c.train, teacher_predictor=Predictor("label")), ConfigError,
                            "teacher_predictor is not fitted"),
    "a teacher folder that is not a predictor": (
        lambda c: c.fit(c.train, teacher_predictor=str(c.folder.parent / "nowhere")), DataError,
        "is not a saved automm_lite predictor"),
    "a teacher of another label": (lambda c: c.fit(c.table.rename(columns={"label": "y"}), label="y",
                                                   teacher_predictor=c.tabular, hyperparameters=TABULAR_HP),
                                   ConfigError, "teacher predicts column 'label' but the student predicts 'y'"),
    "a teacher of another problem type": (lambda c: c.fit(c.table, teacher_predictor=c.regression,
                                                          hyperparameters=TABULAR_HP),
                                          ConfigError, "The teacher does regression, but the label column "
                                                       "'label' holds"),
    "a teacher of other classes": (lambda c: c.fit(c.table.assign(label=c.table.label.map({"yes": "y", "no": "n"})),
                                                   teacher_predictor=c.tabular, hyperparameters=TABULAR_HP),
                                   ConfigError, "class"),
    "unlabeled rows without a teacher": (lambda c: c.fit(c.train, unlabeled_data=c.test), ConfigError,
                                         "unlabeled_data is labelled by a teacher"),
    "unlabeled rows with other columns": (
        lambda c: c.fit(c.train, teacher_predictor=c.text, unlabeled_data=pd.DataFrame({"body": ["a b c"] * 4})),
        DataError, r"lacks column\(s\) \['text'\]"),
    "a distiller key without a teacher": (
        lambda c: c.fit(c.train, hyperparameters={**c.hp, "distiller.temperature": 2}), ConfigError,
        "distiller.*teacher"),
    # ---------------------------------------------------------------- predict and evaluate
    "predict before fit": (lambda c: Predictor("label").predict(c.test), NotFittedError, "not fitted yet"),
    "predict without a feature column": (lambda c: c.text.predict(c.test.drop(columns="text")), DataError,
                                         r"lacks column\(s\) \['text'\]"),
    "predict with no rows": (lambda c: c.text.predict(c.test.iloc[:0]), DataError, "no rows to predict"),
    "predict with text in a number column": (
        lambda c: c.tabular.predict(c.table.assign(amount=["12 euros"] + list(c.table.amount[1:]))), DataError,
        "column 'amount' is read as numbers.*'12 euros'.*column_types"),
    "predict with infinite numbers": (lambda c: c.tabular.predict(c.table.assign(amount=-np.inf)), DataError,
                                      "'amount' holds infinite values"),
    "evaluate with labels never seen": (lambda c: c.text.evaluate(c.test.assign(label="weather")), DataError,
                                        r"\['weather'\].*not seen in training; known classes"),
    "evaluate without the label column": (lambda c: c.text.evaluate(c.test.drop(columns="label")), DataError,
                                          r"lacks column\(s\) \['label'\]"),
    "evaluate a regression on text labels": (lambda c: c.regression.evaluate(c.table), DataError,
                                             "non-numeric values"),
    "evaluate with infinite regression labels": (
        lambda c: c.regression.evaluate(c.table.assign(label=[np.inf] + [0.5] * (len(c.table) - 1))), DataError,
        "holds infinite values"),
    "predict_proba of a regression": (lambda c: c.regression.predict_proba(c.table), DataError,
                                      "predict_proba needs a classification predictor"),
    "evaluate with an unknown metric": (lambda c: c.text.evaluate(c.test, metrics="f2"), ConfigError,
                                        "Unknown metric 'f2'"),
    # ---------------------------------------------------------------- saved folders
    "load a folder that is not a predictor": (lambda c: Predictor.load(c.folder.parent / "nowhere"), DataError,
                                              "no predictor.json inside"),
    "load a newer format": (
        lambda c: Predictor.load(edit_json(saved_copy(c.text, c.folder), lambda m: m.update(format_version=99))),
        DataError, "saved by a newer automm_lite.*upgrade"),
    "load a truncated predictor.json": (
        lambda c: Predictor.load(write(saved_copy(c.text, c.folder) / "x", "predictor.json", b'{"format_v').parent),
        DataError, "is not valid JSON.*damaged"),
    "load a foreign predictor.json": (
        lambda c: Predictor.load(edit_json(saved_copy(c.text, c.folder), lambda m: m.pop("preprocessor"))),
        DataError, r"lacks \['preprocessor'\]"),
    "load a folder without its encoder files": (
        lambda c: Predictor.load(_without(saved_copy(c.text, c.folder), "hf_text")), DataError,
        "lacks hf_text/.*damaged"),
    "load weights of another predictor": (
        lambda c: Predictor.load(_swap_weights(saved_copy(c.text, c.folder), c.tabular)), DataError,
        "does not hold this predictor's weights"),
    "load truncated weights": (
        lambda c: Predictor.load(_truncate_weights(saved_copy(c.text, c.folder))), DataError,
        "does not hold this predictor's weights"),
    "save over a folder that is not a predictor": (lambda c: c.text.save(_precious(c.folder)), DataError,
                                                   "exists and is not a saved predictor"),
}


def _without(folder: Path, name: str) -> Path:
    shutil.rmtree(folder / name)
    return folder


def _swap_weights(folder: Path, other) -> Path:
    shutil.copy(Path(other.path) / "model.safetensors", folder / "model.safetensors")
    return folder


def _truncate_weights(folder: Path) -> Path:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return folder


def _precious(folder: Path) -> Path:
    target = folder.parent / "thesis"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    return target


def test_the_table_has_at_least_40_distinct_cases_and_the_manual_counts_them(repo_root):
    import re

    assert len(CASES) >= 40 and len({fn for fn, _, _ in CASES.values()}) == len(CASES)
    errors_page = (repo_root / "docs" / "guide" / "errors.md").read_text()
    counted = re.search(r"tries (\d+) such mistakes", errors_page).group(1)
    assert int(counted) == len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_typed_error_naming_the_fix(name, case, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    call, error, message = CASES[name]
    with pytest.raises(error, match=message):
        call(case)


def test_odd_values_are_read_by_the_documented_policy(fitted_text_predictor, fitted_tables, bbc_short, package_log):
    """Blank text is empty text, unseen or missing categories are one unknown category, missing numbers are the
    training mean, extra columns are ignored: each read as it is, the first two with a warning that counts them."""
    _, test = bbc_short
    table, tabular, _ = fitted_tables
    blank = test.head(6).assign(text=[None, "", "   ", *test.text[3:6]])
    fitted_text_predictor.predict(blank)
    assert "column 'text' has no text in 3 of 6 row(s)" in package_log.text
    assert fitted_text_predictor.predict(blank.fillna("")).equals(fitted_text_predictor.predict(blank))
    package_log.clear()
    unseen = table.head(8).assign(shop=["zzz", "a", None, "b", "zzz", "c", "a", "b"])
    predicted = tabular.predict(unseen)
    assert "column 'shop' has 2 value(s) not seen in training (e.g. 'zzz')" in package_log.text
    assert predicted.equals(tabular.predict(unseen.assign(shop=[None, "a", None, "b", None, "c", "a", "b"])))
    mean = tabular.predict(table.head(4).assign(amount=np.nan))
    assert mean.index.equals(table.head(4).index) and mean.notna().all()
    extra = tabular.predict(table.head(8).assign(note="ignored", label="also ignored"))
    assert extra.equals(tabular.predict(table.head(8)))
