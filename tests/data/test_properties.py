"""Property-based tests of the data layer (hypothesis): random frames of mixed kinds, missing values and odd
indexes are read, typed, encoded and predicted on without any error but the documented ones, and predictions
come back on exactly the input's index."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automm_lite import Predictor
from automm_lite.data.frames import labelled_rows
from automm_lite.data.preprocess import Preprocessor, infer_column_types, infer_problem_type
from automm_lite.exceptions import ConfigError, DataError

# docs/dev/reliability.md quotes these run sizes; derandomized, so CI runs the same examples each time.
FRAMES, PREDICT_FRAMES, LABEL_SETS = 200, 60, 200

WORDS = st.sampled_from(["red", "green", "blue", "fast", "slow", "cat", "dog", "", "  ", "12", "3.5", "x y z w"])
CELL = {
    "number": st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=32), st.integers(-1000, 1000)),
    "category": st.one_of(st.sampled_from(["a", "b", "c"]), st.none()),
    "text": st.one_of(st.lists(WORDS, min_size=0, max_size=6).map(" ".join), st.none()),
    "flag": st.booleans(),
}


@st.composite
def frames(draw, min_rows=2, max_rows=30):
    """A frame of 1-4 feature columns of random kinds (missing values included) and a label."""
    n = draw(st.integers(min_rows, max_rows))
    kinds = draw(st.lists(st.sampled_from(sorted(CELL)), min_size=1, max_size=4))
    data = {f"{kind}_{i}": draw(st.lists(CELL[kind], min_size=n, max_size=n)) for i, kind in enumerate(kinds)}
    data["label"] = draw(st.lists(st.one_of(st.sampled_from(["yes", "no", "maybe"]), st.none()), min_size=n,
                                  max_size=n))
    return pd.DataFrame(data, index=draw(indexes(n)))


def indexes(n):
    """Default, shuffled, duplicated, string and two-level indexes of ``n`` rows."""
    return st.sampled_from([
        pd.RangeIndex(n), pd.Index(np.random.default_rng(n).permutation(n) * 7), pd.Index([i // 2 for i in range(n)]),
        pd.Index([f"row-{i}" for i in range(n)]),
        pd.MultiIndex.from_arrays([[i % 3 for i in range(n)], [f"r{i}" for i in range(n)]]),
    ])


@settings(max_examples=FRAMES, deadline=None, derandomize=True, database=None)
@given(frames())
def test_random_frames_are_typed_and_encoded_or_refused_with_a_documented_error(frame):
    try:
        rows = labelled_rows(frame, "label", "train_data")
        kinds = infer_column_types(rows, "label")
        problem = infer_problem_type(rows["label"])
        pre = Preprocessor("label", problem, kinds).fit(rows)
        pre.check_values(rows)
        features = pre.transform(rows)
        ids = pre.encode_labels(rows["label"])
    except (DataError, ConfigError):
        return  # documented: too few rows or labels, no usable column, one class, ...
    assert features["n_rows"] == len(rows) == len(ids)
    for key in ("numerical", "categorical"):
        if key in features:
            assert len(features[key]) == len(rows) and np.isfinite(features[key]).all()
    if "text" in features:
        assert len(features["text"][0]) == len(rows)
    assert list(pre.decode_predictions(ids)) == list(rows["label"])  # labels round-trip
    again = Preprocessor.from_dict(pre.to_dict()).transform(rows)  # the saved state transforms alike
    for key in ("numerical", "categorical"):
        if key in features:
            assert np.array_equal(features[key], again[key])


@settings(max_examples=LABEL_SETS, deadline=None, derandomize=True, database=None)
@given(st.one_of(
    st.lists(st.integers(-5, 5), min_size=2, max_size=40),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=2, max_size=40),
    st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=2, max_size=40),
    st.lists(st.booleans(), min_size=2, max_size=40),
))
def test_labels_of_any_kind_round_trip_through_their_encoding(labels):
    series = pd.Series(labels, name="label")
    if series.nunique() < 2:
        with pytest.raises(DataError):
            infer_problem_type(series)
        return
    frame = pd.DataFrame({"x": np.arange(len(series), dtype=float) % 3, "label": series})
    problem = "binary" if series.nunique() == 2 else "multiclass"
    pre = Preprocessor("label", problem, {"x": "numerical"}).fit(frame)
    ids = pre.encode_labels(series)
    assert ids.min() >= 0 and ids.max() < len(pre.class_labels)
    assert list(pre.decode_predictions(ids)) == labels


@pytest.fixture(scope="module")
def mixed_predictor(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 80
    train = pd.DataFrame({"number_0": rng.normal(size=n), "category_1": rng.choice(["a", "b", "c"], n),
                          "flag_2": rng.choice([True, False], n), "label": rng.choice(["yes", "no", "maybe"], n)})
    return Predictor("label", path=str(tmp_path_factory.mktemp("props") / "p"), verbosity=0).fit(
        train, hyperparameters={"model.names": ["tabular_mlp"], "optimization.max_epochs": 1})


@settings(max_examples=PREDICT_FRAMES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_predict_returns_exactly_the_input_index(mixed_predictor, data):
    n = data.draw(st.integers(1, 40))
    frame = pd.DataFrame({
        "number_0": data.draw(st.lists(CELL["number"], min_size=n, max_size=n)),
        "category_1": data.draw(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "unseen"]), st.none()),
                                         min_size=n, max_size=n)),
        "flag_2": data.draw(st.lists(st.booleans(), min_size=n, max_size=n)),
    }, index=data.draw(indexes(n)))
    predicted = mixed_predictor.predict(frame)
    assert predicted.index.equals(frame.index) and len(predicted) == n
    assert set(predicted) <= {"yes", "no", "maybe"}
    proba = mixed_predictor.predict_proba(frame)
    assert proba.index.equals(frame.index) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
