"""The user's frames: read from a DataFrame or a file, checked for a usable label, split for tuning."""
import logging

import numpy as np
import pandas as pd
import pytest

from automm_lite.data.frames import holdout_split, labelled_rows, read_data
from automm_lite.exceptions import DataError


def small_frame(n=12):
    return pd.DataFrame({"text": [f"row number {i}" for i in range(n)], "x": np.arange(n) * 0.5,
                         "label": ["a", "b", "c"] * (n // 3)})


def test_read_data_reads_csv_tsv_and_parquet_files(tmp_path):
    frame = small_frame()
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_csv(tmp_path / "rows.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "rows.parquet")
    for name in ("rows.csv", "rows.tsv", "rows.parquet"):
        for path in (tmp_path / name, str(tmp_path / name)):  # a Path or a string
            pd.testing.assert_frame_equal(read_data(path), frame, check_dtype=False)
    assert read_data(frame) is frame  # a DataFrame is used as it is
    with_comma = pd.DataFrame({"text": ["one, two", "three"], "label": ["a", "b"]})
    with_comma.to_csv(tmp_path / "comma.tsv", sep="\t", index=False)
    assert read_data(tmp_path / "comma.tsv")["text"].tolist() == ["one, two", "three"]  # tabs split a .tsv


def test_read_data_names_what_it_cannot_read(tmp_path):
    with pytest.raises(DataError, match=r"train_data: file .*nothing\.csv.* does not exist"):
        read_data(tmp_path / "nothing.csv", "train_data")
    (tmp_path / "rows.xlsx").write_bytes(b"not a table")
    with pytest.raises(DataError, match=r"cannot read .*rows\.xlsx.*\.csv, \.tsv or \.parquet"):
        read_data(tmp_path / "rows.xlsx")
    with pytest.raises(DataError, match="DataFrame or a path.*not list"):
        read_data([1, 2, 3])
    with pytest.raises(DataError, match="column names must be strings.*astype"):
        read_data(pd.DataFrame({0: ["a", "b"], "label": ["x", "y"]}))
    with pytest.raises(DataError, match=r"column name\(s\) \['text'\] appear more than once.*duplicated"):
        read_data(pd.concat([small_frame(), small_frame()[["text"]]], axis=1), "train_data")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken\.parquet.* does not parse as Parquet"):
        read_data(tmp_path / "broken.parquet")
    (tmp_path / "broken.csv").write_bytes(b'a,b\n1,"never closed\n')
    with pytest.raises(DataError, match=r"broken\.csv.* does not parse as CSV"):
        read_data(tmp_path / "broken.csv")


def test_labelled_rows_drops_missing_labels_with_a_warning(package_log):
    frame = small_frame()
    frame.loc[[1, 4], "label"] = None
    kept = labelled_rows(frame, "label", "train_data")
    assert list(kept.index) == [i for i in range(12) if i not in (1, 4)]
    assert kept["label"].notna().all() and len(frame) == 12  # the caller's frame is left as it was
    warned = [r for r in package_log.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "train_data: dropping 2 row(s)" in warned[0].getMessage()
    package_log.clear()
    assert labelled_rows(small_frame(), "label", "train_data").equals(small_frame())
    assert not package_log.records  # nothing missing: nothing said


@pytest.mark.parametrize("frame,match", [
    (small_frame().rename(columns={"label": "target"}), "no label column 'label'"),
    (small_frame().iloc[:0], "has no rows"),
    (small_frame().assign(label=None), "every value of the label column 'label' is missing"),
    (small_frame(3).assign(label=["a", None, None]), "has 1 labelled row"),
    (small_frame(3).assign(label=[1, "b", 2]), r"mixes kinds of values: 1 \(number\), 'b' \(string\).*astype\(str\)"),
    (small_frame(3).assign(label=[[1], [2], [1]]), r"holds a list \(\[1\]\); a label is one value per row"),
    (small_frame(3).assign(label=[1.0, float("inf"), 2.0]), "infinite values"),
])
def test_labelled_rows_errors_name_the_problem(frame, match):
    with pytest.raises(DataError, match=match):
        labelled_rows(frame, "label", "train_data")


def test_holdout_split_is_stratified_by_class_and_reproducible():
    frame = pd.DataFrame({"x": np.arange(100), "label": ["a"] * 60 + ["b"] * 30 + ["c"] * 10})
    train, tuning = holdout_split(frame, "label", "multiclass", 0.2, seed=0)
    assert len(tuning) == 20 and len(train) == 80 and not set(train.index) & set(tuning.index)
    assert tuning["label"].value_counts().to_dict() == {"a": 12, "b": 6, "c": 2}  # the classes' shares, exactly
    again, _ = holdout_split(frame, "label", "multiclass", 0.2, seed=0)
    other, _ = holdout_split(frame, "label", "multiclass", 0.2, seed=1)
    assert list(again.index) == list(train.index) and list(other.index) != list(train.index)
    _, default = holdout_split(frame, "label", "multiclass", None, seed=0)
    assert len(default) == 20  # 100 rows: 20% held out by default
    numbers = pd.DataFrame({"x": np.arange(50), "y": np.linspace(0, 1, 50)})
    train, tuning = holdout_split(numbers, "y", "regression", 0.2, seed=0)  # no classes to stratify by
    assert len(tuning) == 10 and len(train) == 40


def test_holdout_split_keeps_a_class_with_a_single_row_in_training(package_log):
    frame = pd.DataFrame({"x": np.arange(21), "label": ["a"] * 10 + ["b"] * 10 + ["lonely"]})
    train, tuning = holdout_split(frame, "label", "multiclass", 0.2, seed=0)
    assert "lonely" in set(train.label) and "lonely" not in set(tuning.label) and len(train) + len(tuning) == 21
    assert set(tuning.label) == {"a", "b"} and (tuning.label.value_counts() == 2).all()  # the rest stratified
    assert "single row" in package_log.text and "kept in training" in package_log.text


def test_holdout_split_keeps_every_tuning_class_in_training():
    # 77 classes of 2-6 rows, too many to stratify a 10% holdout: no tuning class is missing from training
    rng = np.random.default_rng(0)
    labels = [f"intent{i}" for i in range(77) for _ in range(rng.integers(2, 7))]
    frame = pd.DataFrame({"x": np.arange(len(labels)), "label": labels})
    train, tuning = holdout_split(frame, "label", "multiclass", 0.1, seed=0)
    assert len(tuning) and set(tuning.label) <= set(train.label) and len(train) + len(tuning) == len(frame)
    with pytest.raises(DataError, match="too few rows per class.*tuning_data"):
        holdout_split(frame.drop_duplicates("label"), "label", "multiclass", 0.2, seed=0)
