"""What the data is: problem type, column kinds, label encoding and the per-row feature arrays (JSON-serializable)."""
from __future__ import annotations

import logging
import os

from ..exceptions import DataError
from .images import count_unreadable, is_missing, looks_like_images

logger = logging.getLogger("automm_lite")

COLUMN_KINDS = ("text", "image", "categorical", "numerical", "ignore")
PROBLEM_TYPES = ("binary", "multiclass", "regression")
NUMBER_CLIP = 100.0  # standardized numbers are kept within this many training standard deviations


def _plain(value):
    """numpy scalar -> Python scalar, so class labels survive JSON unchanged."""
    return value.item() if hasattr(value, "item") else value


def category_key(value) -> str:
    """A category as text, the same whether pandas read the column as int or float (3 and 3.0 -> "3")."""
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def infer_problem_type(label, eval_metric: str | None = None) -> str:
    """Binary / multiclass / regression from the label values (a regression-only metric forces regression)."""
    import pandas as pd

    from ..metrics import get_metric

    label = label.dropna()
    if eval_metric is not None and get_metric(eval_metric).problem_types == ("regression",):
        text = label[pd.to_numeric(label, errors="coerce").isna()]
        if len(text):
            raise DataError(f"eval_metric={eval_metric!r} scores a regression, but the label column {label.name!r} "
                            f"holds {text.iloc[0]!r}: pass a classification metric (e.g. 'accuracy'), or numbers.")
        return "regression"
    n_unique = label.nunique()
    if n_unique < 2:
        raise DataError(f"The label column {label.name!r} has {n_unique} distinct value(s); at least 2 are needed.")
    if n_unique == 2:
        return "binary"
    if not pd.api.types.is_numeric_dtype(label) or pd.api.types.is_bool_dtype(label):
        return "multiclass"
    is_whole = bool((label.astype(float) % 1 == 0).all())
    # AutoGluon's rule of thumb: few distinct whole numbers are classes, anything else is a quantity.
    if is_whole and n_unique <= 1000 and (n_unique <= 20 or n_unique / len(label) <= 0.05):
        return "multiclass"
    return "regression"


def _looks_numeric(values) -> bool:
    import pandas as pd
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def infer_column_types(data, label: str, column_types: dict | None = None) -> dict:
    """Kind of every feature column: text, categorical, numerical, or ignore (with the reason logged).

    Parameters
    ----------
    data : pandas.DataFrame
    label : str
        The label column (not a feature).
    column_types : dict, optional
        ``{column: kind}`` to force a kind; kind is one of text, categorical, numerical, ignore.
    """
    column_types = dict(column_types or {})
    for column, kind in column_types.items():
        if column not in data.columns:
            raise DataError(f"column_types names {column!r}, which is not a column of the data; columns are: "
                            f"{list(data.columns)}.")
        if kind not in COLUMN_KINDS:
            raise DataError(f"column_types[{column!r}] = {kind!r} is not a column kind; use one of {COLUMN_KINDS}.")
    kinds = {}
    n_rows = len(data)
    for column in data.columns:
        if column == label:
            continue
        if column in column_types:
            kinds[column] = column_types[column]
            continue
        values = data[column].dropna()
        reason = None
        if values.empty:
            reason = "it is empty"
        elif looks_like_images(column, values):  # before the value count: every file may have one name
            kinds[column] = "image"
            continue
        elif values.astype(str).nunique() == 1:
            reason = "it holds one value only"
        kinds[column] = "ignore" if reason else _infer_kind(values, n_rows)
        if kinds[column] == "ignore":
            reason = reason or "it looks like a row id (a distinct value on every row)"
            logger.info("Column %r is not used: %s. Force it with column_types={%r: ...}.", column, reason, column)
    if not any(kind != "ignore" for kind in kinds.values()):
        raise DataError(f"No usable feature column besides the label {label!r}; columns: {list(data.columns)}.")
    return kinds


# Scripts written without spaces between words (Chinese, Japanese kana and kanji, Thai): two of their
# characters count as a word.
_UNSPACED = r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def _mean_words(strings) -> float:
    """Mean words per value: runs between spaces, plus half the characters of scripts without spaces."""
    return float((strings.str.split().str.len() + strings.str.count(_UNSPACED) / 2).mean())


def _infer_kind(values, n_rows: int) -> str:
    import pandas as pd

    n_unique = values.astype(str).nunique()
    all_distinct = n_unique == len(values) and len(values) >= 20
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        whole = bool((values.astype(float) % 1 == 0).all())
        if whole and all_distinct and (values.sort_values().diff().dropna() == 1).all():
            return "ignore"
        return "categorical" if n_unique < min(20, 0.1 * n_rows) and whole else "numerical"
    strings = values.astype(str)
    if n_unique < min(20, 0.1 * n_rows):
        return "categorical"
    if _looks_numeric(strings):
        return "numerical"
    if _mean_words(strings) >= 3:
        return "text"
    if all_distinct:
        return "ignore"
    return "categorical"


class Preprocessor:
    """Turns a DataFrame into model inputs (text, scaled numbers, category ids, encoded labels).

    Everything learned in ``fit`` is plain JSON (``to_dict``/``from_dict``), so saving never pickles.
    """

    def __init__(self, label: str, problem_type: str, column_types: dict, numerical_scaler="standard",
                 label_scaler="standardscaler"):
        self.label = label
        self.problem_type = problem_type
        self.column_types = dict(column_types)
        self.numerical_scaler = numerical_scaler
        self.label_scaler = label_scaler
        self.state = {}

    def columns(self, kind: str) -> list[str]:
        return [c for c, k in self.column_types.items() if k == kind]

    @property
    def class_labels(self):
        return self.state.get("classes")

    @property
    def label_scale(self):
        """(mean, std) of a regression label's training scaling; None for classification."""
        if self.problem_type != "regression":
            return None
        return self.state["label_mean"], self.state["label_std"]

    def fit(self, data) -> "Preprocessor":
        import pandas as pd

        state = {"numerical": {}, "categorical": {}}
        label = data[self.label]
        if self.problem_type == "regression":
            values = pd.to_numeric(label, errors="coerce")
            if values.isna().any():
                bad = label[values.isna()].iloc[0]
                raise DataError(f"A regression label must be numeric; column {self.label!r} holds {bad!r}. Pass "
                                "problem_type='multiclass' if the labels are classes.")
            scale = self.label_scaler == "standardscaler"
            state["label_mean"] = float(values.mean()) if scale else 0.0
            state["label_std"] = (float(values.std(ddof=0)) or 1.0) if scale else 1.0
        else:
            uniques = [_plain(v) for v in label.dropna().unique()]
            if len({type(v) for v in uniques}) > 1:  # e.g. ['0', '1', 2]: compare as text
                uniques = sorted({str(v) for v in uniques})
            state["classes"] = sorted(uniques)
            if len(state["classes"]) < 2:
                raise DataError(f"The label column {self.label!r} holds one class only ({state['classes']}); a "
                                "classifier needs at least 2.")
            if self.problem_type == "binary" and len(state["classes"]) != 2:
                raise DataError(f"problem_type='binary' needs exactly 2 classes in {self.label!r}; found "
                                f"{len(state['classes'])}: {state['classes'][:10]}.")
        for column in self.columns("numerical"):
            values = pd.to_numeric(data[column], errors="coerce")
            std = float(values.std(ddof=0)) if self.numerical_scaler == "standard" else 1.0
            mean = float(values.mean()) if self.numerical_scaler == "standard" else 0.0
            state["numerical"][column] = [0.0 if pd.isna(mean) else mean, std if std and not pd.isna(std) else 1.0]
        for column in self.columns("categorical"):
            state["categorical"][column] = sorted({category_key(v) for v in data[column].dropna()})
        self.state = state
        return self

    def check_columns(self, data, need_label: bool = False):
        """Raise a DataError naming any feature (or label) column the data lacks."""
        needed = [c for c, k in self.column_types.items() if k != "ignore"] + ([self.label] if need_label else [])
        missing = [c for c in needed if c not in data.columns]
        if missing:
            raise DataError(f"The data lacks column(s) {missing} that the predictor was fitted with; it has "
                            f"{list(data.columns)}.")

    def check_values(self, data, what: str = "data"):
        """The documented policy for odd values, before any model runs (the columns are checked first).

        Errors: a number column with values that are not numbers (it held numbers at fit), or with infinite
        ones. Read as they are, with a warning that counts them: missing, empty or blank text (empty text),
        missing numbers (the training mean), missing and unseen categories (one "unknown" category).
        """
        import numpy as np
        import pandas as pd

        self.check_columns(data)
        for column in self.columns("numerical"):
            values = data[column]
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna()]
            if len(bad):
                raise DataError(f"{what}: column {column!r} is read as numbers (as fitted), but holds {bad.iloc[0]!r}"
                                f"{f' and {len(bad) - 1} more values that are not numbers' if len(bad) > 1 else ''}"
                                f". Pass numbers (a missing value reads as the training mean), or fit again with "
                                f"column_types={{{column!r}: 'categorical'}} (or 'text').")
            if np.isinf(numbers.to_numpy(dtype="float64")).any():
                raise DataError(f"{what}: column {column!r} holds infinite values; replace them, e.g. "
                                f"df[{column!r}] = df[{column!r}].replace([np.inf, -np.inf], np.nan) (a missing "
                                "value reads as the training mean).")
        for column in self.columns("image"):
            unreadable = count_unreadable(data[column])
            if unreadable == len(data):
                raise DataError(f"{what}: column {column!r} has no image in any of its {len(data)} row(s) (missing "
                                f"values or paths that are not files, e.g. {data[column].iloc[0]!r}); pass paths "
                                f"that exist (relative ones are read from {os.getcwd()!r}) or image bytes.")
            if unreadable:
                logger.warning("%s: column %r has no image in %d of %d row(s) (missing, or not a file); they are "
                               "read as zero images.", what, column, unreadable, len(data))
        for column in self.columns("text"):
            blank = data[column].isna() | data[column].astype(str).str.strip().eq("")
            if blank.any():
                logger.warning("%s: column %r has no text in %d of %d row(s) (missing, empty or blank); they are "
                               "read as empty text.", what, column, int(blank.sum()), len(data))
        for column, categories in self.state["categorical"].items():
            known = set(categories)
            values = data[column].dropna()
            unseen = [v for v in values if category_key(v) not in known]
            if unseen:
                logger.warning("%s: column %r has %d value(s) not seen in training (e.g. %r); they are read as "
                               "one unknown category, like a missing value.", what, column, len(unseen), unseen[0])

    def transform(self, data) -> dict:
        """Feature arrays for every row: ``text`` (list of 1- or 2-tuples), ``numerical``, ``categorical``."""
        import numpy as np
        import pandas as pd

        self.check_columns(data)
        features = {"n_rows": len(data)}
        text_columns = self.columns("text")
        if text_columns:
            texts = [data[c].fillna("").astype(str).tolist() for c in text_columns]
            # One text column -> single sequence; two or more -> a pair (the rest joined into the second part).
            first = texts[0]
            second = [" ".join(parts) for parts in zip(*texts[1:])] if len(texts) > 1 else None
            features["text"] = (first, second)
        image_columns = self.columns("image")
        if image_columns:
            features["image"] = [[None if is_missing(v) else v for v in data[c].tolist()] for c in image_columns]
        if self.state["numerical"]:
            columns = []
            for column, (mean, std) in self.state["numerical"].items():
                values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype="float64")
                # missing -> the mean; beyond NUMBER_CLIP standard deviations -> the bound, which the model's
                # float32 layers can take (an extreme value would overflow them into NaN outputs)
                columns.append(np.clip(np.nan_to_num((values - mean) / std, nan=0.0), -NUMBER_CLIP, NUMBER_CLIP))
            features["numerical"] = np.stack(columns, axis=1).astype("float32")
        if self.state["categorical"]:
            columns = []
            for column, categories in self.state["categorical"].items():
                index = {c: i + 1 for i, c in enumerate(categories)}  # 0 = unseen or missing
                values = data[column]
                columns.append([0 if pd.isna(v) else index.get(category_key(v), 0) for v in values])
            features["categorical"] = np.asarray(columns, dtype="int64").T
        return features

    def cardinalities(self) -> list[int]:
        return [len(c) + 1 for c in self.state["categorical"].values()]

    def encode_labels(self, labels):
        """Gold labels -> class ids (classification) or scaled floats (regression)."""
        import numpy as np
        import pandas as pd

        if labels.isna().any():
            raise DataError(f"The label column {self.label!r} has {int(labels.isna().sum())} missing value(s); "
                            "drop those rows first.")
        if self.problem_type == "regression":
            values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype="float64")
            return ((values - self.state["label_mean"]) / self.state["label_std"]).astype("float32")
        classes = self.state["classes"]
        as_text = isinstance(classes[0], str)
        index = {c: i for i, c in enumerate(classes)}
        keys = [str(_plain(v)) if as_text else _plain(v) for v in labels]
        unknown = sorted({str(k) for k in keys if k not in index})
        if unknown:
            raise DataError(f"Label value(s) {unknown[:5]} in {self.label!r} were not seen in training; known "
                            f"classes: {classes}.")
        return np.asarray([index[k] for k in keys], dtype="int64")

    def decode_predictions(self, outputs):
        """Model outputs (class ids or scaled values) -> labels in the user's terms."""
        import numpy as np
        if self.problem_type == "regression":
            return np.asarray(outputs, dtype="float64") * self.state["label_std"] + self.state["label_mean"]
        classes = np.asarray(self.state["classes"], dtype=object)
        return classes[np.asarray(outputs, dtype="int64")]

    def to_dict(self) -> dict:
        return {"label": self.label, "problem_type": self.problem_type, "column_types": self.column_types,
                "numerical_scaler": self.numerical_scaler, "label_scaler": self.label_scaler, "state": self.state}

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessor":
        pre = cls(values["label"], values["problem_type"], values["column_types"], values["numerical_scaler"],
                  values["label_scaler"])
        pre.state = values["state"]
        return pre
