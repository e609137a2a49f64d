"""Classical models on real data: scores above the majority class, save/load round trips without pickle, odd
values at predict time, and no signal from shuffled labels."""
import json

import numpy as np
import pandas as pd
import pytest

from automm_lite.classical import (
    CLASSICAL_KINDS,
    ClassicalModel,
    applicable_kinds,
    fit_classical,
    load_classical,
)
from automm_lite.data.preprocess import Preprocessor, infer_column_types, infer_problem_type
from automm_lite.datasets import load_bbc_news, load_digit_images, load_drug_reviews
from automm_lite.exceptions import ConfigError, DataError
from automm_lite.metrics import compute_metric, get_metric

SAVED_SUFFIXES = {".json", ".safetensors", ".txt"}


def sample(frame, n, seed=0):
    """A stratified sample of ``n`` rows (every class keeps its share)."""
    share = n / len(frame)
    return (frame.groupby("label", group_keys=False).sample(frac=share, random_state=seed)
            .sample(frac=1.0, random_state=seed).reset_index(drop=True))


def split(frame, tuning_share=0.25, seed=0):
    tuning = frame.groupby("label", group_keys=False).sample(frac=tuning_share, random_state=seed)
    return frame.drop(tuning.index).reset_index(drop=True), tuning.reset_index(drop=True)


def preprocessor_for(train, problem_type=None):
    kinds = infer_column_types(train, "label")
    return Preprocessor("label", problem_type or infer_problem_type(train["label"]), kinds).fit(train)


def majority_accuracy(train, test):
    return float((test["label"] == train["label"].mode()[0]).mean())


def accuracy(pre, model, frame):
    return float((model.predict_output(frame).argmax(axis=1) == pre.encode_labels(frame["label"])).mean())


def assert_probabilities(output, n_rows, n_classes):
    assert output.dtype == np.float64 and output.shape == (n_rows, n_classes)
    assert np.isfinite(output).all() and (output >= 0).all()
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-9)


def assert_round_trip(model, folder, frame):
    model.save(folder)
    assert {p.suffix for p in folder.iterdir()} <= SAVED_SUFFIXES
    for path in folder.iterdir():  # pickle streams (protocol 2 and up) open with the PROTO opcode
        assert not path.read_bytes().startswith(b"\x80"), path.name
    loaded = load_classical(folder)
    assert isinstance(loaded, ClassicalModel) and loaded.kind == model.kind
    np.testing.assert_allclose(loaded.predict_output(frame), model.predict_output(frame), rtol=1e-12, atol=0)
    return loaded


@pytest.fixture(scope="module")
def bbc():
    train, test = load_bbc_news(short=True)
    train, tuning = split(sample(train, 800))
    return train, tuning, sample(test, 300)


@pytest.fixture(scope="module")
def drug_binary():
    train, test = load_drug_reviews()
    keep = [frame[frame["label"] != "neutral"].reset_index(drop=True) for frame in (train, test)]
    return (*split(keep[0]), keep[1])


@pytest.fixture(scope="module")
def drug_binary_models(drug_binary):
    train, tuning, _ = drug_binary
    pre = preprocessor_for(train)
    assert pre.problem_type == "binary" and applicable_kinds(pre.column_types) == ["linear", "gbm"]
    return pre, {kind: fit_classical(kind, pre, train, tuning, "roc_auc", seed=0)[:2] for kind in CLASSICAL_KINDS}


def test_applicable_kinds():
    assert applicable_kinds({"review": "text"}) == ["linear"]
    assert applicable_kinds({"image": "image", "id": "ignore"}) == ["linear"]
    assert applicable_kinds({"review": "text", "count": "numerical"}) == ["linear", "gbm"]
    assert applicable_kinds({"drug": "categorical"}) == ["linear", "gbm"]
    assert applicable_kinds({"id": "ignore"}) == []


def test_text_topics_well_above_the_majority_class_and_saved_without_pickle(bbc, tmp_path):
    train, tuning, test = bbc
    pre = preprocessor_for(train)
    model, score, tuning_output = fit_classical("linear", pre, train, tuning, "accuracy", seed=0)
    truth = pre.encode_labels(tuning["label"])
    # the tuning rows were passed (not cross-validated): they choose, and the model never sees them
    assert score == pytest.approx(float((tuning_output.argmax(axis=1) == truth).mean()))
    assert accuracy(pre, model, tuning) == pytest.approx(score)
    assert accuracy(pre, model, test) > 0.8 > majority_accuracy(train, test) + 0.5
    assert_probabilities(model.predict_output(test), len(test), len(pre.class_labels))
    assert_round_trip(model, tmp_path / "linear", test)
    assert sum(p.stat().st_size for p in (tmp_path / "linear").iterdir()) < 5e6


def test_shuffled_labels_score_near_the_majority_class(bbc, drug_binary):
    train, tuning, test = bbc
    rng = np.random.default_rng(0)
    shuffled = [frame.assign(label=rng.permutation(frame["label"].to_numpy())) for frame in (train, tuning)]
    pre = preprocessor_for(shuffled[0])
    model, *_ = fit_classical("linear", pre, *shuffled, "accuracy", seed=0)
    assert accuracy(pre, model, test) < majority_accuracy(train, test) + 0.1

    train, tuning, test = drug_binary
    shuffled = [frame.assign(label=rng.permutation(frame["label"].to_numpy())) for frame in (train, tuning)]
    pre = preprocessor_for(shuffled[0])
    model, *_ = fit_classical("gbm", pre, *shuffled, "roc_auc", seed=0)
    truth = pre.encode_labels(test["label"])
    assert compute_metric(get_metric("roc_auc"), truth, None, model.predict_output(test)) < 0.62


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_binary_reviews_each_kind(drug_binary, drug_binary_models, kind, tmp_path):
    _, tuning, test = drug_binary
    pre, models = drug_binary_models
    model, score = models[kind]
    assert model.kind == kind
    roc_auc = get_metric("roc_auc", "binary")
    output = model.predict_output(test)
    assert_probabilities(output, len(test), 2)
    assert 0.7 < score <= 1.0
    assert compute_metric(roc_auc, pre.encode_labels(test["label"]), None, output) > 0.7  # majority class: 0.5
    loaded = assert_round_trip(model, tmp_path / kind, test)
    assert loaded.params == model.params and loaded.tuning_score == pytest.approx(score)


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_unseen_categories_and_missing_values_at_predict(drug_binary, drug_binary_models, kind):
    _, _, test = drug_binary
    odd = test.head(20).copy()
    odd["drug"] = "a drug never seen"
    odd.loc[odd.index[:10], ["condition", "useful_count", "review", "year"]] = np.nan
    output = drug_binary_models[1][kind][0].predict_output(odd)
    assert_probabilities(output, len(odd), 2)


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_a_class_absent_from_the_training_rows_keeps_its_column(kind, tmp_path):
    train, test = load_drug_reviews()
    pre = preprocessor_for(train)  # knows all three classes
    assert pre.class_labels == ["negative", "neutral", "positive"]
    fit_rows, tuning = split(train[train["label"] != "neutral"].reset_index(drop=True))
    model, *_ = fit_classical(kind, pre, fit_rows, tuning, "accuracy", seed=0)
    output = model.predict_output(test)
    assert_probabilities(output, len(test), 3)
    assert output[:, 1].max() < 0.05
    assert_round_trip(model, tmp_path / kind, test)


def test_digit_pixels_match_a_logistic_regression_on_raw_pixels(tmp_path):
    train, test = load_digit_images()
    train, tuning = split(sample(train, 700))
    pre = preprocessor_for(train)
    assert applicable_kinds(pre.column_types) == ["linear"]
    model, score, _ = fit_classical("linear", pre, train, tuning, "accuracy", seed=0)
    assert score > 0.85 and accuracy(pre, model, test) > 0.88
    missing = test.head(5).assign(image=[None, "/no/such/file.png", *test["image"].head(3)])
    assert_probabilities(model.predict_output(missing), 5, 10)
    assert_round_trip(model, tmp_path / "digits", test.head(50))


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_regression_predicts_in_the_label_units(kind, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "label"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, tuning, test = frame.iloc[:260], frame.iloc[260:340], frame.iloc[340:]
    pre = preprocessor_for(train, "regression")
    assert pre.column_types["sex"] == "categorical"
    model, score, tuning_output = fit_classical(kind, pre, train, tuning, "rmse", seed=0)
    output = model.predict_output(test)
    assert output.dtype == np.float64 and output.shape == (len(test),)
    rmse = float(np.sqrt(np.mean((output - test["label"].to_numpy()) ** 2)))
    assert score == pytest.approx(float(np.sqrt(np.mean((tuning_output - tuning["label"]) ** 2))))
    assert rmse < 0.85 * float(np.std(test["label"] - train["label"].mean()))  # the mean's rmse
    assert abs(output.mean() - train["label"].mean()) < 30  # label units, not the preprocessor's scaled ones
    assert_round_trip(model, tmp_path / kind, test)


def test_wrong_kinds_and_metrics_are_refused(drug_binary, bbc):
    train, tuning, _ = bbc
    pre = preprocessor_for(train)
    with pytest.raises(ConfigError, match="cannot read"):
        fit_classical("gbm", pre, train, tuning, "accuracy", seed=0)
    with pytest.raises(ConfigError, match="Unknown classical"):
        fit_classical("forest", pre, train, tuning, "accuracy", seed=0)
    with pytest.raises(ConfigError, match="does not apply"):
        fit_classical("linear", pre, train, tuning, "rmse", seed=0)
    with pytest.raises(DataError, match="lacks column"):
        fit_classical("linear", pre, train.drop(columns="text"), tuning, "accuracy", seed=0)


def test_missing_or_damaged_files_raise_a_clear_error(drug_binary, drug_binary_models, tmp_path):
    _, models = drug_binary_models
    with pytest.raises(DataError, match="not a folder"):
        load_classical(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no classical.json"):
        load_classical(tmp_path / "empty")
    for kind, damage, match in [("linear", ("classical.json", "{not json"), "not valid JSON"),
                                ("linear", ("classical.safetensors", "garbage"), "damaged"),
                                ("gbm", ("booster.txt", "tree\nnot a model"), "damaged"),
                                ("gbm", ("booster.txt", None), "lacks booster.txt")]:
        folder = tmp_path / f"{kind}-{damage[0]}-{damage[1] is None}"
        models[kind][0].save(folder)
        if damage[1] is None:
            (folder / damage[0]).unlink()
        else:
            (folder / damage[0]).write_text(damage[1])
        with pytest.raises(DataError, match=match):
            load_classical(folder)
    folder = tmp_path / "format"
    models["linear"][0].save(folder)
    settings = json.loads((folder / "classical.json").read_text())
    (folder / "classical.json").write_text(json.dumps({**settings, "format_version": 99}))
    with pytest.raises(DataError, match="format 99"):
        load_classical(folder)


def test_no_training_rows_are_needed_at_predict(drug_binary, drug_binary_models, tmp_path):
    """What is saved is small against the training text: vocabularies and weights, not rows."""
    train, _, test = drug_binary
    model = drug_binary_models[1]["gbm"][0]
    model.save(tmp_path / "gbm")
    settings = (tmp_path / "gbm" / "classical.json").read_text()
    assert train["review"].iloc[0] not in settings
    assert isinstance(load_classical(tmp_path / "gbm").predict_output(pd.DataFrame(test)), np.ndarray)


def test_sentence_pairs_are_read_by_how_they_match(tmp_path):
    """Two text columns: the linear model also reads how they match (shared character n-grams and their cosine),
    with or without the words of each (the better on the tuning rows), beats chance on unseen questions, and
    saves without pickle."""
    from automm_lite.datasets import load_multilingual_pairs

    train, val, test = load_multilingual_pairs(languages=["english", "german", "spanish"], seed=0)
    train, val, test = (frame.drop(columns="language") for frame in (train, val, test))
    pre = preprocessor_for(train)
    model, score, _ = fit_classical("linear", pre, train, val, "accuracy", seed=0)
    assert model.features.pairs is not None and model.features.pairs.columns == ["sentence1", "sentence2"]
    assert model.features.each_text == (model.features.text != [])
    assert accuracy(pre, model, test) > 0.55 and score > 0.55  # balanced classes: chance is 0.5
    assert_round_trip(model, tmp_path / "pairs", test)
    from automm_lite.classical.features import FeatureBuilder

    match_only = FeatureBuilder(pre, "linear", each_text=False).fit(train)
    restored = FeatureBuilder.restore(pre, *match_only.state())
    assert restored.text == [] and restored.pairs.columns == ["sentence1", "sentence2"]
    assert (restored.transform(test) != match_only.transform(test)).nnz == 0
    assert match_only.transform(test).shape[1] < model.features.transform(test).shape[1] or not model.features.text


def test_validation_folds_cross_validate_a_random_holdout_and_keep_a_chosen_one(bbc):
    from automm_lite.classical.portfolio import CV_FOLDS, validation_folds

    train, tuning, _ = bbc
    rows = pd.concat([train, tuning], ignore_index=True)
    pre = preprocessor_for(train)
    folds = validation_folds(pre, rows, len(train), seed=0, cross_validate=True)
    assert len(folds) == CV_FOLDS
    validated = np.concatenate([valid for _, valid in folds])
    assert sorted(validated) == list(range(len(rows)))  # every row validated once
    shares = [rows["label"].iloc[valid].value_counts(normalize=True) for _, valid in folds]
    overall = rows["label"].value_counts(normalize=True)
    assert all((share - overall).abs().max() < 0.02 for share in shares)  # stratified
    for kept, n_train in ((validation_folds(pre, rows, len(train), seed=0, cross_validate=False), len(train)),
                          (validation_folds(pre, rows.iloc[:8], 6, seed=0, cross_validate=True), 6)):  # few rows
        assert len(kept) == 1 and list(kept[0][0]) == list(range(n_train))  # the training rows, then the tuning
    rare = rows.assign(label=["rare" if i < 3 else label for i, label in enumerate(rows["label"])])
    rare_pre = preprocessor_for(rare)
    assert len(validation_folds(rare_pre, rare, len(train), seed=0, cross_validate=True)) == 1  # 3 rows < 5 folds


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_the_chosen_candidate_is_refitted_on_every_row(kind):
    from automm_lite.classical.base import label_targets
    from automm_lite.classical.features import FeatureBuilder
    from automm_lite.classical.gbm import fit_gbm
    from automm_lite.classical.linear import fit_linear

    train, _ = load_drug_reviews()
    train = train.assign(label=np.log1p(train.pop("useful_count").astype(float)).to_numpy(),
                         sentiment=train["label"])
    fit_rows, tuning = train.iloc[:500], train.iloc[500:650]
    pre = preprocessor_for(fit_rows, "regression")
    model, score, tuning_output = fit_classical(kind, pre, fit_rows, tuning, "rmse", seed=0, cross_validate=True)
    rows = pd.concat([fit_rows, tuning], ignore_index=True)
    features = FeatureBuilder(pre, kind, svd_components=model.features.svd_components).fit(rows, seed=0)
    fit_one = fit_linear if kind == "linear" else fit_gbm
    again = fit_one(pre, features, features.transform(rows), label_targets(pre, rows), model.params, 0)
    np.testing.assert_allclose(model.predict_output(tuning), again.predict_output(tuning), rtol=1e-6)
    # the tuning output came from the folds that did not see those rows: worse than the refitted model's there
    truth = tuning["label"].to_numpy()
    assert np.sqrt(np.mean((tuning_output - truth) ** 2)) > np.sqrt(np.mean((model.predict_output(tuning) - truth) ** 2))
    assert 0.6 < score < 1.2  # rmse in log1p units; the mean predicts with about 1.1
