import json

import numpy as np
import pandas as pd
import pytest

from automm_lite.data.preprocess import Preprocessor, infer_column_types, infer_problem_type
from automm_lite.exceptions import DataError


@pytest.mark.parametrize("values,metric,expected", [
    (["yes", "no"] * 10, None, "binary"),
    ([0, 1] * 10, None, "binary"),
    (["a", "b", "c"] * 10, None, "multiclass"),
    ([1, 2, 3, 4] * 10, None, "multiclass"),
    (list(np.linspace(0, 1, 40)), None, "regression"),
    (list(range(200)), None, "regression"),
    (["0", "1", "2", 3, 4, 5] * 5, None, "multiclass"),
    ([1, 2, 3, 4] * 10, "rmse", "regression"),
])
def test_problem_type(values, metric, expected):
    assert infer_problem_type(pd.Series(values, name="y"), metric) == expected


def test_problem_type_needs_two_values():
    with pytest.raises(DataError, match="at least 2"):
        infer_problem_type(pd.Series(["a"] * 5, name="y"))


def frame(n=60):
    rng = np.random.default_rng(0)
    words = ["the market rose sharply today", "a new phone was launched", "the team won the final match"]
    return pd.DataFrame({
        "text": [f"{words[i % 3]} number {i}" for i in range(n)],
        "city": ["paris", "rome", "oslo"] * (n // 3),
        "price": rng.normal(size=n),
        "rating": ([1, 2, 3, 4, 5] * n)[:n],
        "empty": [None] * n,
        "constant": ["x"] * n,
        "row_id": list(range(100, 100 + n)),
        "code": [f"id{i:04d}" for i in range(n)],
        "numbers_as_text": [str(float(i) * 1.5) for i in range(n)],
        "label": ["a", "b", "c"] * (n // 3),
    })


def test_column_kinds_and_dropped_columns():
    kinds = infer_column_types(frame(), "label")
    assert kinds == {"text": "text", "city": "categorical", "price": "numerical", "rating": "categorical",
                     "empty": "ignore", "constant": "ignore", "row_id": "ignore", "code": "ignore",
                     "numbers_as_text": "numerical"}


def test_text_without_spaces_between_words_is_text():
    """Chinese and Japanese sentences have one space-separated "word"; their characters count (two a word), so
    they are read as text, while short names in those scripts stay categories."""
    from automm_lite.datasets import load_multilingual_pairs

    for language in ("japanese", "chinese"):
        pairs, _, _ = load_multilingual_pairs(languages=[language], seed=0)
        kinds = infer_column_types(pairs.drop(columns="language").head(60), "label")
        assert kinds == {"sentence1": "text", "sentence2": "text"}, (language, kinds)
    cities = pd.DataFrame({"city": ["東京", "大阪", "京都"] * 10, "label": [0, 1] * 15})
    assert infer_column_types(cities, "label") == {"city": "categorical"}


def test_column_types_override_and_errors():
    kinds = infer_column_types(frame(), "label", {"rating": "numerical", "text": "ignore"})
    assert kinds["rating"] == "numerical" and kinds["text"] == "ignore"
    with pytest.raises(DataError, match="nosuch"):
        infer_column_types(frame(), "label", {"nosuch": "text"})
    with pytest.raises(DataError, match="'video' is not a column kind"):
        infer_column_types(frame(), "label", {"text": "video"})
    with pytest.raises(DataError, match="No usable"):
        infer_column_types(frame()[["empty", "label"]], "label")


def test_preprocessor_transform_encode_and_json_round_trip():
    data = frame()
    kinds = infer_column_types(data, "label")
    pre = Preprocessor("label", "multiclass", kinds).fit(data)
    new = data.head(3).copy()
    new.loc[new.index[0], "city"] = "tokyo"          # unseen category -> 0
    new.loc[new.index[1], "price"] = np.nan          # missing number -> the training mean (0 after scaling)
    features = pre.transform(new)
    assert features["categorical"].shape == (3, 2) and features["categorical"][0, 0] == 0
    assert features["numerical"][1, 0] == 0.0
    assert features["text"][0][0].startswith("the market") and features["text"][1] is None
    assert pre.class_labels == ["a", "b", "c"]
    assert list(pre.encode_labels(pd.Series(["c", "a"]))) == [2, 0]
    with pytest.raises(DataError, match="not seen"):
        pre.encode_labels(pd.Series(["z"]))
    clone = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    again = clone.transform(new)
    assert np.array_equal(again["numerical"], features["numerical"])
    assert list(clone.decode_predictions([0, 2])) == ["a", "c"]


def test_two_text_columns_become_a_pair_and_missing_columns_are_named():
    data = pd.DataFrame({"q": ["how are you today friend"] * 4, "a": ["i am fine thank you"] * 4,
                         "label": [0, 1, 0, 1]})
    pre = Preprocessor("label", "binary", {"q": "text", "a": "text"}).fit(data)
    first, second = pre.transform(data)["text"]
    assert first[0].startswith("how") and second[0].startswith("i am")
    with pytest.raises(DataError, match="'a'"):
        pre.transform(data[["q"]])


def test_regression_label_is_scaled_and_restored():
    data = pd.DataFrame({"x": np.arange(30.0), "label": np.arange(30.0) * 10 + 5})
    pre = Preprocessor("label", "regression", {"x": "numerical"}).fit(data)
    encoded = pre.encode_labels(data["label"])
    assert abs(encoded.mean()) < 1e-6 and abs(encoded.std() - 1) < 1e-3
    assert np.allclose(pre.decode_predictions(encoded), data["label"], atol=1e-3)
    with pytest.raises(DataError, match="numeric"):
        Preprocessor("label", "regression", {"x": "numerical"}).fit(data.assign(label=["a"] * 30))
