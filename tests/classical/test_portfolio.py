"""The portfolio: a classical model beside the network, kept alone or blended when it helps on the tuning rows,
saved without pickle, switched off by model.names, and taught to a student through the teacher's soft targets."""
import json

import numpy as np
import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.classical import blend
from automm_lite.classical.portfolio import choose_network_weight
from automm_lite.metrics import get_metric


def test_the_blend_weight_is_chosen_on_the_tuning_rows():
    truth = np.array([0, 1, 1, 0])
    right = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    wrong = right[:, ::-1]
    accuracy = get_metric("accuracy")
    assert choose_network_weight(right, wrong, truth, accuracy, "multiclass") == (1.0, 1.0)
    assert choose_network_weight(wrong, right, truth, accuracy, "multiclass") == (0.0, 1.0)
    assert choose_network_weight(right, right, truth, accuracy, "multiclass")[0] == 1.0  # a tie keeps the network
    # a blend beats both: each model gets one row wrong, confidently on its own row only
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
    b = np.array([[0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
    weight, score = choose_network_weight(a, b, truth, accuracy, "multiclass")
    assert 0 < weight < 1 and score == 1.0
    assert choose_network_weight(a, b, truth, accuracy, "multiclass", ensemble="best")[0] in (0.0, 1.0)
    values = np.array([1.0, 2.0, 3.0])
    assert choose_network_weight(values + 1, values, values, get_metric("rmse", "regression"), "regression")[0] == 0
    assert np.allclose(blend(a, b, 0.25), 0.25 * a + 0.75 * b)
    assert blend(a, None, 1.0) is a and blend(None, b, 0.0) is b


@pytest.fixture(scope="module")
def reviews():
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews(seed=0)
    return train.sample(240, random_state=0), test.head(80)


@pytest.fixture(scope="module")
def portfolio_fit(reviews, tiny_hp, tmp_path_factory):
    train, _ = reviews
    path = tmp_path_factory.mktemp("portfolio") / "reviews"
    return Predictor(label="label", eval_metric="accuracy", path=str(path), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.classical.enabled": "auto"})


def test_the_portfolio_keeps_what_scores_best_and_saves_without_pickle(portfolio_fit, reviews):
    _, test = reviews
    predictor = portfolio_fit
    portfolio = predictor.fit_summary()["portfolio"]
    assert set(portfolio["tuning_scores"]) == {"network", "linear", "gbm"}
    # the tiny random network learns little in one epoch: a classical model is kept, alone or blended
    assert predictor.classical_ is not None and portfolio["network_weight"] < 1
    assert portfolio["tuning_score"] >= max(portfolio["tuning_scores"].values()) - 1e-9
    assert predictor.fit_summary()["val_accuracy"] == portfolio["tuning_score"]
    # the tuning rows were held out of train_data at random: the classical models were chosen on all 240 rows
    assert portfolio["classical_validation"] == "5-fold cross-validation of 240 rows"
    saved = json.loads((predictor.path and open(f"{predictor.path}/predictor.json").read()))
    assert saved["format_version"] == 3 and saved["classical"]["kind"] == predictor.classical_.kind
    for file in (p for p in __import__("pathlib").Path(predictor.path, "classical").rglob("*") if p.is_file()):
        assert file.suffix in (".json", ".safetensors", ".txt") and not file.read_bytes().startswith(b"\x80")
    again = Predictor.load(predictor.path, verbosity=0)
    pd.testing.assert_frame_equal(again.predict_proba(test), predictor.predict_proba(test))
    assert predictor.evaluate(test)["accuracy"] > 0.5
    assert predictor.last_timing.rows == len(test)


def test_model_names_or_the_key_leave_the_network_alone(reviews, tiny_hp, tmp_path):
    train, _ = reviews
    keys = {**tiny_hp, "optimization.max_epochs": 1, "model.classical.enabled": "auto"}
    named = Predictor(label="label", path=str(tmp_path / "named"), verbosity=0).fit(
        train, hyperparameters={**keys, "model.names": ["hf_text", "tabular_mlp"]})
    off = Predictor(label="label", path=str(tmp_path / "off"), verbosity=0).fit(
        train, hyperparameters={**keys, "model.classical.enabled": False})
    for predictor in (named, off):
        assert predictor.fit_summary()["portfolio"] is None and predictor.classical_ is None
        assert "classical" not in json.loads(open(f"{predictor.path}/predictor.json").read())


def test_a_portfolio_teacher_teaches_its_blended_probabilities(portfolio_fit, reviews):
    from automm_lite.distill.teacher import teacher_outputs

    _, test = reviews
    logits = teacher_outputs(portfolio_fit.as_teacher(), test)["teacher_logits"]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, portfolio_fit.predict_proba(test).to_numpy(), atol=1e-5)


def test_shuffled_labels_do_not_beat_the_majority_class(bbc_short, tiny_hp, tmp_path):
    train, test = bbc_short
    shuffled = train.assign(label=train["label"].sample(frac=1.0, random_state=1).to_numpy())
    predictor = Predictor(label="label", eval_metric="accuracy", path=str(tmp_path / "shuffled"), verbosity=0).fit(
        shuffled, hyperparameters={**tiny_hp, "optimization.max_epochs": 2, "model.classical.enabled": True})
    majority = test["label"].value_counts(normalize=True).max()
    # 60 test rows: one standard error of an accuracy near 0.25 is about 0.056
    assert predictor.evaluate(test)["accuracy"] < majority + 0.15


def test_the_blend_reaches_binary_chunked_and_regression_predictions(tiny_hp, tmp_path):
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews(seed=0)
    keys = {**tiny_hp, "optimization.max_epochs": 1, "model.classical.enabled": True}
    binary = train.assign(label=train["label"] == "positive").sample(200, random_state=0)
    predictor = Predictor(label="label", path=str(tmp_path / "binary"), verbosity=0).fit(binary,
                                                                                       hyperparameters=keys)
    assert predictor.classical_ is not None
    rows = test.head(30).drop(columns="label")
    proba = predictor.predict_proba(rows)
    positive = predictor.predict_proba(rows, as_multiclass=False)
    np.testing.assert_allclose(positive.to_numpy(), proba[predictor.positive_class].to_numpy())
    chunked = pd.concat(predictor.predict_iter(rows, chunk_size=7, proba=True))
    pd.testing.assert_frame_equal(chunked, proba)
    # regression: both outputs in the label's units; the linear model fits y = 3 x exactly and is kept
    rng = np.random.default_rng(0)
    numbers = pd.DataFrame({"x": rng.normal(size=160), "c": rng.choice(["a", "b"], 160)})
    numbers["y"] = 300 * numbers["x"] + 1000
    regression = Predictor(label="y", path=str(tmp_path / "regression"), verbosity=0).fit(
        numbers.iloc[:120], tuning_data=numbers.iloc[120:], hyperparameters=keys)
    assert regression.fit_summary()["portfolio"]["classical_validation"] == "40 tuning rows"  # the user's rows
    assert regression.fit_summary()["portfolio"]["network_weight"] < 1 and regression.classical_.kind == "linear"
    predicted = regression.predict(numbers.head(20))
    assert np.abs(predicted - numbers["y"].head(20)).max() < 0.2 * numbers["y"].std()
    assert regression.evaluate(numbers.head(40))["rmse"] < 0.2 * numbers["y"].std()
