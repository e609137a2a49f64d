"""The user's frames: read from a DataFrame or a file, checked for a usable label, split for tuning."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import _key, check_arguments
from ..exceptions import ConfigError, DataError

logger = logging.getLogger(__name__)
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = (*PARQUET_SUFFIXES, ".csv", ".tsv", ".txt")


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


def _readable_table(path: Path, what: str) -> str:
    """The suffix of a table file that exists, has a known kind and (for CSV) commas; else a DataError."""
    if not path.is_file():
        raise DataError(f"{what}: file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{what}: cannot read {str(path)!r}; give a .csv, .tsv or .parquet file or a DataFrame.")
    if suffix in (".csv", ".txt"):
        _check_separator(path, what)
    return suffix


def _read_file(path: Path, what: str):
    import pandas as pd

    suffix = _readable_table(path, what)
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as error:  # pyarrow's are ValueErrors
        kind = "Parquet" if suffix in PARQUET_SUFFIXES else "CSV (UTF-8, a header row)"
        raise DataError(f"{what}: {str(path)!r} does not parse as {kind}: {error}") from None


def _check_separator(path: Path, what: str):
    """A header row without commas but with another separator: say so, not "no label column" later."""
    with open(path, encoding="utf-8", errors="replace") as file:
        header = file.readline()
    other = next((sep for sep in (";", "\t", "|") if sep in header), None)
    if "," not in header and other is not None:
        raise DataError(f"{what}: the header of {str(path)!r} ({header.strip()[:60]!r}) has no commas: its columns "
                        f"seem separated by {other!r}. Read it with pd.read_csv(path, sep={other!r}) and pass the "
                        "DataFrame.")


@dataclass
class ChunkArguments:
    """How data is read a chunk at a time, declared as the config's keys are."""

    chunk_size: int | None = _key(None, "Rows per chunk; None = the frames as they come (a file: 100,000 rows)",
                                  ge=1)


def iter_chunks(data, chunk_size: int | None, what: str = "data"):
    """The rows of ``data`` a chunk at a time, as DataFrames of at most ``chunk_size`` rows (None: as they come).

    ``data`` is a DataFrame, a CSV/Parquet path (read a chunk at a time, never whole) or an iterable of
    DataFrames. The chunks keep the index a whole read would give.
    """
    import pandas as pd

    check_arguments(ChunkArguments, {"chunk_size": chunk_size}, where=f"reading {what}")
    if isinstance(data, (str, os.PathLike)):
        yield from _file_chunks(Path(data), chunk_size or 100_000, what)
        return
    if isinstance(data, pd.DataFrame):
        frames = [data]
    elif hasattr(data, "__iter__") and not isinstance(data, (dict, pd.Series)):
        frames = data
    else:
        read_data(data, what)  # the error that names what a frame may be
        return
    for frame in frames:
        frame = read_data(frame, what)
        step = chunk_size or max(len(frame), 1)
        for start in range(0, len(frame), step):
            yield frame.iloc[start:start + step]


def _file_chunks(path: Path, chunk_size: int, what: str):
    import pandas as pd

    suffix = _readable_table(path, what)
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            file = pq.ParquetFile(path)
            index = (file.schema_arrow.pandas_metadata or {}).get("index_columns", [{"kind": "range"}])
            ranged = next((c for c in index if isinstance(c, dict) and c.get("kind") == "range"), None)
            done = 0
            for batch in file.iter_batches(batch_size=chunk_size):
                frame = batch.to_pandas()  # a stored index (named columns) comes back with the rows
                if ranged is not None or not index:  # a range index is metadata only: continue it
                    step = (ranged or {}).get("step", 1)
                    begin = (ranged or {}).get("start", 0) + done * step
                    frame.index = pd.RangeIndex(begin, begin + len(frame) * step, step,
                                                name=(ranged or {}).get("name"))
                done += len(frame)
                yield read_data(frame, what)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            for frame in pd.read_csv(path, sep=sep, chunksize=chunk_size):
                yield read_data(frame, what)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        if isinstance(error, (DataError, ConfigError)):  # ConfigError is a ValueError too
            raise
        raise DataError(f"{what}: {str(path)!r} does not parse: {error}") from None


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
    check_label_values(data[label], what)
    return data


def check_label_values(values, what: str):
    """Labels must be hashable, of one kind (numbers or strings, not both) and finite."""
    import numpy as np

    values = values.dropna()  # missing labels are the callers' to drop or refuse
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
    counts = counts[counts > 0]  # a categorical label lists its unused categories too
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
