"""The user's frames: read from a DataFrame or a file, checked for a usable label, split for tuning."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..exceptions import DataError

logger = logging.getLogger(__name__)


def read_data(data, what: str = "data"):
    """A DataFrame, or a path to a CSV or Parquet file, as a DataFrame."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise DataError(f"{what}: file {str(path)!r} does not exist.")
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        raise DataError(f"{what}: cannot read {str(path)!r}; give a .csv, .tsv or .parquet file or a DataFrame.")
    raise DataError(f"{what} must be a pandas DataFrame or a path to a CSV/Parquet file, not "
                    f"{type(data).__name__}.")


def labelled_rows(data, label: str, what: str):
    """``data`` without the rows whose label is missing (with a warning), or a DataError naming what is wrong."""
    if not all(isinstance(c, str) for c in data.columns):
        raise DataError(f"{what}: column names must be strings; found {list(data.columns)[:10]}. Rename "
                        "them, e.g. df.columns = df.columns.astype(str).")
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
    return data


def default_holdout_frac(n_rows: int) -> float:
    """AutoGluon's rule: 10-20% of small data, 1-10% of large data."""
    if n_rows < 5000:
        return max(0.1, min(0.2, 500.0 / n_rows))
    return max(0.01, min(0.1, 2500.0 / n_rows))


def holdout_split(data, label: str, problem_type: str, holdout_frac: float | None, seed: int):
    """(training rows, tuning rows): a holdout of ``data``, stratified by class when every class can be."""
    from sklearn.model_selection import train_test_split

    frac = holdout_frac or default_holdout_frac(len(data))
    stratify = None
    if problem_type != "regression":
        counts = data[label].value_counts()
        if counts.min() < 2:
            raise DataError(f"Class {counts.idxmin()!r} of {label!r} has a single row, too few to hold some "
                            "out for tuning: pass tuning_data=..., or add rows of that class.")
        if int(frac * len(data)) >= len(counts):
            stratify = data[label]
    return train_test_split(data, test_size=frac, random_state=seed, stratify=stratify)
