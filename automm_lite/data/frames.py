"""The user's frames: read from a DataFrame or a file, checked for a usable label, split for tuning."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..exceptions import DataError

logger = logging.getLogger(__name__)


def read_data(data, what: str = "data"):
    """A DataFrame, or a path to a CSV or Parquet file, as a DataFrame with distinct string column names."""
    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        data = _read_file(Path(data), what)
    elif not isinstance(data, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame or a path to a CSV/Parquet file, not "
                        f"{type(data).__name__}.")
    if not all(isinstance(c, str) for c in data.columns):
        raise DataError(f"{what}: column names must be strings; found {list(data.columns)[:10]}. Rename "
                        "them, e.g. df.columns = df.columns.astype(str).")
    duplicated = sorted(set(data.columns[data.columns.duplicated()]))
    if duplicated:
        raise DataError(f"{what}: the column name(s) {duplicated} appear more than once; give each column its own "
                        "name, or keep the first: df = df.loc[:, ~df.columns.duplicated()].")
    return data


def _read_file(path: Path, what: str):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{what}: file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv", ".txt"):
        raise DataError(f"{what}: cannot read {str(path)!r}; give a .csv, .tsv or .parquet file or a DataFrame.")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as error:  # pyarrow's are ValueErrors
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV (UTF-8, a header row)"
        raise DataError(f"{what}: {str(path)!r} does not parse as {kind}: {error}") from None


def labelled_rows(data, label: str, what: str):
    """``data`` without the rows whose label is missing (with a warning), or a DataError naming what is wrong."""
    if label not in data.columns:
        raise DataError(f"{what} has no label column {label!r}; its columns are {list(data.columns)}.")
    if data.empty:
        raise DataError(f"{what} has no rows.")
    missing = data[label].isna()
    if missing.all():
        raise DataError(f"{what}: every value of the label column {label!r} is missing.")
    if missing.any():
        logger.warning("%s: dropping %d row(s) whose label is missing.", what, int(missing.sum()))
        data = data[~missing]
    if len(data) < 2:
        raise DataError(f"{what} has {len(data)} labelled row(s); at least 2 are needed.")
    _check_label_values(data[label], what)
    return data


def _check_label_values(values, what: str):
    """Labels must be hashable, of one kind (numbers or strings, not both) and finite."""
    import numpy as np

    kinds = {}
    for value in values:
        if isinstance(value, (list, tuple, dict, set, np.ndarray)):
            raise DataError(f"{what}: the label column {values.name!r} holds a {type(value).__name__} "
                            f"({value!r:.60}); a label is one value per row (a class or a number).")
        kind = "number" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else (
            "string" if isinstance(value, str) else type(value).__name__)
        kinds.setdefault(kind, value)
    if len(kinds) > 1:
        examples = ", ".join(f"{v!r} ({k})" for k, v in kinds.items())
        raise DataError(f"{what}: the label column {values.name!r} mixes kinds of values: {examples}. Make them one "
                        f"kind, e.g. df[{values.name!r}] = df[{values.name!r}].astype(str).")
    if "number" in kinds and not np.isfinite(values.astype("float64")).all():
        raise DataError(f"{what}: the label column {values.name!r} holds infinite values; replace or drop them, "
                        f"e.g. df = df[np.isfinite(df[{values.name!r}])].")


def default_holdout_frac(n_rows: int) -> float:
    """AutoGluon's rule: 10-20% of small data, 1-10% of large data."""
    if n_rows < 5000:
        return max(0.1, min(0.2, 500.0 / n_rows))
    return max(0.01, min(0.1, 2500.0 / n_rows))


def holdout_split(data, label: str, problem_type: str, holdout_frac: float | None, seed: int):
    """(training rows, tuning rows): a holdout of ``data``, stratified by class when every class can be.

    A class with a single row stays in training (with a warning): it cannot be both learnt and tuned on. Every
    class in the tuning rows is in the training rows too.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frac = holdout_frac or default_holdout_frac(len(data))
    if problem_type == "regression":
        return train_test_split(data, test_size=frac, random_state=seed)
    counts = data[label].value_counts()
    single = counts.index[counts < 2]
    kept = data[data[label].isin(single)]
    if len(single):
        logger.warning("%d class(es) of %r have a single row (e.g. %r): kept in training, not in the tuning rows. "
                       "Pass tuning_data=... to tune on them too.", len(single), label, single[0])
    rest = data[~data[label].isin(single)]
    n_classes = len(counts) - len(single)
    if n_classes == 0 or int(frac * len(rest)) < 1:
        raise DataError(f"train_data has too few rows per class of {label!r} to hold some out for tuning "
                        f"({len(data)} rows, {len(counts)} classes): pass tuning_data=..., or add rows.")
    stratify = rest[label] if int(frac * len(rest)) >= n_classes else None
    train, tuning = train_test_split(rest, test_size=frac, random_state=seed, stratify=stratify)
    unseen = ~tuning[label].isin(set(train[label]))  # unstratified: a class may have gone to tuning only
    train, tuning = pd.concat([train, tuning[unseen], kept]), tuning[~unseen]
    if tuning.empty:
        raise DataError(f"No tuning rows are left once every class of {label!r} is in training: pass "
                        "tuning_data=..., or add rows.")
    return train, tuning
