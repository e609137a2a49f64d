import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError, DataError, NotFittedError


@pytest.fixture
def fitted(fitted_text_predictor):
    """The session's shared fitted text predictor (one epoch); a test that changes one works on a copy."""
    return fitted_text_predictor


def test_fit_returns_self_and_sets_fitted_state(text_predictor_fit):
    built, fitted = text_predictor_fit
    assert fitted is built and isinstance(fitted, Predictor)  # fit returns the predictor itself, now fitted
    assert fitted.problem_type == "multiclass" and fitted.eval_metric == "accuracy"
    assert fitted.class_labels == sorted(fitted.class_labels) and len(fitted.class_labels) == 5
    # a plain fit freezes nothing and keeps float32 weights
    assert fitted.total_parameters == fitted.trainable_parameters > 0
    assert fitted.model_size == pytest.approx(fitted.total_parameters * 4 / 1e6)
    summary = fitted.fit_summary()
    assert 0 <= summary["val_accuracy"] <= 1 and summary["training_time"] > 0 and summary["n_train_rows"] == 128
    assert summary["epochs"] == 1 and summary["steps"] == 128 // 16  # one epoch of 16-row batches


def test_not_fitted_errors():
    predictor = Predictor(label="label")
    for call in (lambda: predictor.predict(pd.DataFrame({"text": ["x"]})), predictor.fit_summary,
                 lambda: predictor.class_labels, lambda: predictor.save("somewhere"),
                 lambda: predictor.inference_mode, lambda: predictor.optimize_for_inference("bf16")):
        with pytest.raises(NotFittedError, match="fit"):
            call()
    # both bases: `except ValueError` and `except AttributeError` (hasattr, getattr with a default) both catch it
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_predictions_keep_the_index_and_agree_with_proba(fitted, bbc_short):
    _, test = bbc_short
    test = test.copy()
    test.index = [f"row{i}" for i in range(len(test))][::-1]
    labels = fitted.predict(test)
    proba = fitted.predict_proba(test)
    assert list(labels.index) == list(test.index) and list(proba.index) == list(test.index)
    assert list(proba.columns) == fitted.class_labels
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba.idxmax(axis=1) == labels).all()
    assert fitted.last_timing.rows == len(test) and fitted.last_timing.seconds > 0


def test_evaluate_metrics_forms_and_timing(fitted, bbc_short):
    _, test = bbc_short
    default = fitted.evaluate(test)
    assert list(default) == ["accuracy"] and default == {"accuracy": default["accuracy"]}
    assert default.timing.rows == len(test) and default.timing.rows_per_second > 0
    assert list(fitted.evaluate(test, metrics="f1_macro")) == ["f1_macro"]
    scores, predictions = fitted.evaluate(test, metrics=["accuracy", "balanced_accuracy"], return_pred=True)
    assert scores["accuracy"] == pytest.approx((predictions == test["label"]).mean())
    with pytest.raises(ConfigError, match="multiclass"):
        fitted.evaluate(test, metrics="rmse")


def test_embeddings(fitted, bbc_short):
    _, test = bbc_short
    emb = fitted.extract_embedding(test.head(7))
    assert emb.shape == (7, 32)
    assert list(fitted.extract_embedding(test.head(3), as_pandas=True).index) == list(test.head(3).index)


def test_bad_data_errors_name_the_problem(fitted, bbc_short):
    _, test = bbc_short
    with pytest.raises(DataError, match="'text'"):
        fitted.predict(test.drop(columns=["text"]))
    with pytest.raises(DataError, match="not seen"):
        fitted.evaluate(test.assign(label="weather"))
    with pytest.raises(DataError, match="DataFrame"):
        fitted.predict([1, 2, 3])
    with pytest.raises(DataError, match="does not exist"):
        fitted.predict("/no/such/file.csv")


def test_fit_argument_errors_come_before_training(bbc_short):
    train, _ = bbc_short
    with pytest.raises(DataError, match="'target'"):
        Predictor(label="target").fit(train)
    with pytest.raises(ConfigError, match="optim.lr"):
        Predictor(label="label").fit(train, hyperparameters={"optim.lrr": 1e-4})
    with pytest.raises(ConfigError, match="problem_type"):
        Predictor(label="label", problem_type="ranking").fit(train)
    with pytest.raises(ConfigError, match="time_limit"):
        Predictor(label="label").fit(train, time_limit=-5)
    with pytest.raises(ConfigError, match="regression"):
        Predictor(label="label").fit(train, hyperparameters={"optim.loss_func": "mae"})


def test_save_load_round_trip_in_a_fresh_process(fitted, fresh_copy, bbc_short, tmp_path):
    _, test = bbc_short
    fresh_copy(fitted).save(tmp_path / "copy")  # save moves a predictor to its new folder: not the shared one
    moved = shutil.copytree(tmp_path / "copy", tmp_path / "elsewhere" / "moved")  # a copied folder is portable
    test.to_csv(tmp_path / "test.csv", index=False)
    script = (f"import pandas as pd; from automm_lite import Predictor; "
              f"p = Predictor.load({str(moved)!r}, verbosity=0); "
              f"p.predict_proba({str(tmp_path / 'test.csv')!r}).to_csv({str(tmp_path / 'out.csv')!r}, index=False)")
    subprocess.run([sys.executable, "-c", script], check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    again = pd.read_csv(tmp_path / "out.csv")
    mine = fitted.predict_proba(pd.read_csv(tmp_path / "test.csv"))
    assert np.allclose(again.to_numpy(), mine.to_numpy(), atol=1e-6)
    files = {p.name for p in (tmp_path / "copy").iterdir()}
    assert {"predictor.json", "model.safetensors", "README.md", "hf_text"} <= files
    for folder in (tmp_path / "copy", Path(fitted.path)):  # nothing pickled anywhere, logs included
        assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pt", ".ckpt")]
    assert "Predictor.load" in (tmp_path / "copy" / "README.md").read_text()


def test_a_predictor_saved_in_format_1_loads_and_predicts_the_same(fitted, fresh_copy, bbc_short, tmp_path):
    """Format 1 (before `auto` had one spelling): -1 GPUs, 0 threads, None / "" for the automatic choices."""
    import json

    _, test = bbc_short
    folder = Path(fresh_copy(fitted).save(tmp_path / "old"))
    metadata = json.loads((folder / "predictor.json").read_text())
    assert metadata["format_version"] == 3
    metadata["format_version"] = 1
    config = metadata["config"]
    config["env"].update(num_gpus=-1, num_threads=0, inference_batch_tokens=None)
    config["model"]["hf_text"]["freeze_word_embeddings"] = None
    config["distiller"].update(soft_label_loss_type="", softmax_regression_loss_type="mse")
    (folder / "predictor.json").write_text(json.dumps(metadata))
    old = Predictor.load(folder, verbosity=0)
    assert (old.config_.env.num_gpus, old.config_.env.inference_batch_tokens) == ("auto", "auto")
    assert np.array_equal(old.predict_proba(test).to_numpy(), fitted.predict_proba(test).to_numpy())
    metadata["format_version"] = 4
    (folder / "predictor.json").write_text(json.dumps(metadata))
    with pytest.raises(DataError, match="newer automm_lite"):
        Predictor.load(folder)


def test_a_fit_in_a_fresh_process_prints_no_library_chatter(bbc_short, tiny_hp, tmp_path):
    """Lightning, imported by the first fit of a process, sets its own log level; the fit quiets it again."""
    train, _ = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    script = (f"from automm_lite import Predictor; "
              f"Predictor(label='label', path={str(tmp_path / 'p')!r}, verbosity=1).fit({str(tmp_path / 'train.csv')!r}, "
              f"hyperparameters={ {**tiny_hp, 'optimization.max_epochs': 1}!r})")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr
    for chatter in ("GPU available", "TPU available", "Trainer.fit", "litlogger"):
        assert chatter not in said, said[-2000:]
    assert (tmp_path / "p" / "predictor.json").is_file()


def test_load_rejects_what_is_not_a_predictor(tmp_path):
    with pytest.raises(DataError, match="predictor.json"):
        Predictor.load(tmp_path)


@pytest.mark.parametrize("with_teacher", [False, True])
def test_same_seed_same_predictions(bbc_short, tiny_hp, fitted_text_predictor, tmp_path, with_teacher):
    # with a teacher: the default recipe's synthetic rows, and layer-wise terms (passed: 128 rows get none)
    train, test = bbc_short
    teacher = {"teacher_predictor": fitted_text_predictor} if with_teacher else {}
    keys = {**tiny_hp, "optimization.max_epochs": 1 if not with_teacher else 4}
    if with_teacher:
        keys.update({"distiller.hidden_state_loss_weight": 1.0, "distiller.hidden_state_loss_type": "mse",
                     "distiller.attention_loss_weight": 1.0,
                     "distiller.teacher_check": False})  # the tiny teacher is below a linear model: distil anyway
    fits = [Predictor(label="label", path=str(tmp_path / f"r{i}"), verbosity=0).fit(
        train, hyperparameters=keys, seed=3, **teacher) for i in range(2)]
    runs = [fit.predict_proba(test) for fit in fits]
    assert np.array_equal(runs[0].to_numpy(), runs[1].to_numpy())
    if with_teacher:
        recipe = fits[0].fit_summary()["distillation_recipe"]
        assert recipe["keys"]["distiller.synthetic_rows"] == 3 and "attention_loss_weight" in recipe["reasons"][-1]
    other = Predictor(label="label", path=str(tmp_path / "other"), verbosity=0).fit(
        train, hyperparameters=keys, seed=4, **teacher).predict_proba(test)
    assert not np.array_equal(other.to_numpy(), runs[0].to_numpy())  # the seed is what decides


def test_binary_proba_and_csv_input(tiny_hp, tmp_path):
    from automm_lite.datasets import load_multilingual_pairs

    train, val, test = load_multilingual_pairs(languages=["english"], seed=0)
    train.sample(96, random_state=0).to_csv(tmp_path / "train.csv", index=False)
    predictor = Predictor(label="label", path=str(tmp_path / "pairs"), verbosity=0).fit(
        str(tmp_path / "train.csv"), tuning_data=val.head(40),
        hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    assert predictor.problem_type == "binary" and predictor.eval_metric == "roc_auc"
    assert predictor.column_types["sentence1"] == "text" and predictor.column_types["sentence2"] == "text"
    positive = predictor.predict_proba(test.head(10), as_multiclass=False)
    assert isinstance(positive, pd.Series) and positive.name == predictor.positive_class == 1
    assert np.allclose(positive, predictor.predict_proba(test.head(10))[1])


def test_regression_on_real_tabular_data(tmp_path):
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    predictor = Predictor(label="target", path=str(tmp_path / "reg"), verbosity=0).fit(
        data.iloc[:350], hyperparameters={"optimization.max_epochs": 30, "optim.lr": 3e-3})
    assert predictor.problem_type == "regression" and predictor.eval_metric == "rmse"
    assert predictor.class_labels is None
    scores = predictor.evaluate(data.iloc[350:], metrics=["rmse", "r2"])
    assert scores["r2"] > 0.2
    with pytest.raises(DataError, match="predict"):
        predictor.predict_proba(data.iloc[350:])


def test_time_limit_stops_training(bbc_short, tiny_hp, tmp_path):
    train, _ = bbc_short
    predictor = Predictor(label="label", path=str(tmp_path / "t"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1000}, time_limit=3)
    summary = predictor.fit_summary()
    assert summary["epochs"] < 1000
    # 1000 epochs take minutes; stopped at the limit, the whole fit (set-up and saving included) takes seconds. The
    # margin is for a slow, shared machine.
    assert summary["training_time"] < 3 + 60, summary["training_time"]


def test_import_is_light():
    code = "import sys, automm_lite; print(any(m in sys.modules for m in ('torch', 'transformers', 'lightning', 'pandas')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_bf16_training_accumulation_and_fit_log(bbc_short, tiny_hp, tmp_path):
    train, test = bbc_short
    predictor = Predictor(label="label", path=str(tmp_path / "bf16"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "env.precision": "bf16-mixed",
                                "env.batch_size": 32, "env.per_gpu_batch_size": 8})
    assert predictor.fit_summary()["steps"] == 4  # 128 rows / (8 per step x 4 accumulated)
    assert np.isfinite(predictor.predict_proba(test).to_numpy()).all()
    assert "Problem type: multiclass" in (tmp_path / "bf16" / "fit.log").read_text()
    assert (tmp_path / "bf16" / "logs" / "metrics.csv").is_file()


def test_text_categorical_and_numerical_columns_are_all_used(tiny_hp, tmp_path):
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews()
    predictor = Predictor(label="label", path=str(tmp_path / "drug"), verbosity=0).fit(
        train.sample(200, random_state=0), hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    assert predictor.class_labels == ["negative", "neutral", "positive"]
    assert set(predictor.model_.backbones) == {"hf_text", "tabular_mlp"}
    kinds = predictor.column_types
    assert kinds["review"] == "text" and kinds["drug"] == "categorical" and kinds["useful_count"] == "numerical"
    rows = test.head(20)
    base = predictor.predict_proba(rows).to_numpy()
    for column, value in (("useful_count", 10_000), ("condition", "Depression"), ("review", "terrible")):
        changed = predictor.predict_proba(rows.assign(**{column: value})).to_numpy()
        assert not np.allclose(base, changed), column


def test_first_time_student_build_does_not_change_the_fit(bbc_short, tiny_hp, tmp_path, monkeypatch):
    """A zoo conversion on first use must not consume the fit's random numbers."""
    train, test = bbc_short
    hp = {**tiny_hp, "optimization.max_epochs": 1,
          "model.hf_text.checkpoint_name": f"{tiny_hp['model.hf_text.checkpoint_name']}:layers=1"}
    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path / "cache"))
    first = Predictor(label="label", path=str(tmp_path / "a"), verbosity=0).fit(train, hyperparameters=hp)
    second = Predictor(label="label", path=str(tmp_path / "b"), verbosity=0).fit(train, hyperparameters=hp)
    assert np.array_equal(first.predict_proba(test).to_numpy(), second.predict_proba(test).to_numpy())


def test_review_cases_fail_early_and_clearly(fitted, bbc_short, tmp_path):
    train, test = bbc_short
    other = tmp_path / "my_project"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a saved predictor"):
        fitted.save(other)
    with pytest.raises(DataError, match="not a saved predictor"):
        Predictor(label="label", path=str(other)).fit(train)
    assert (other / "thesis.tex").read_text() == "precious"
    with pytest.raises(DataError, match="no rows"):
        fitted.predict(test.iloc[:0])
    with pytest.raises(DataError, match="one class"):
        Predictor(label="label", problem_type="multiclass").fit(train.assign(label="x"))
    with pytest.raises(ConfigError, match="tabular_mlp"):
        Predictor(label="label").fit(train, hyperparameters={"model.names": ["tabular_mlp"]})
    with pytest.raises(DataError, match="not seen"):
        Predictor(label="label").fit(train, tuning_data=test.assign(label="weather"))


def test_regression_scores_are_in_label_units_and_int_float_categories_match(tmp_path):
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"c": rng.integers(0, 3, 200), "x": rng.normal(size=200)})
    data["y"] = 1000 * data.x + 300 * data.c
    predictor = Predictor(label="y", path=str(tmp_path / "r"), verbosity=0).fit(
        data, hyperparameters={"optimization.max_epochs": 20, "optim.lr": 3e-3, "model.classical.enabled": False})
    tuning_rmse = predictor.fit_summary()["val_rmse"]  # the network's (a linear model would fit y exactly)
    assert tuning_rmse > 10  # in the label's units (std ~1000), not standardised ones
    as_float = data.head(5).astype({"c": "float64"})
    assert np.allclose(predictor.predict(as_float), predictor.predict(data.head(5)))
    with pytest.raises(DataError, match="numeric"):
        predictor.evaluate(data.head(5).assign(y=np.nan))


def test_default_save_folder(bbc_short, tiny_hp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    predictor = Predictor(label="label", verbosity=0).fit(bbc_short[0], hyperparameters={
        **tiny_hp, "optimization.max_epochs": 1})
    folder = Path(predictor.path)
    assert folder.parent == tmp_path / "automm_lite_models" and "%" not in folder.name
    assert (folder / "predictor.json").is_file()


def test_a_user_mistake_found_during_fit_leaves_nothing_behind(bbc_short, tiny_hp, tmp_path):
    train, _ = bbc_short
    with pytest.raises(ConfigError, match="no_such_model"):
        Predictor(label="label", path=str(tmp_path / "bad"), verbosity=0).fit(
            train, hyperparameters={**tiny_hp, "model.hf_text.checkpoint_name": str(tmp_path / "no_such_model")})
    assert list(tmp_path.iterdir()) == []  # no predictor, no fit folder, no log: the message says it all


def test_a_failed_save_raises_its_own_error_and_keeps_the_log(bbc_short, tiny_hp, tmp_path, monkeypatch):
    import automm_lite.io

    def full_disk(predictor, folder):
        raise OSError(28, "No space left on device")

    train, _ = bbc_short
    monkeypatch.setattr(automm_lite.io, "write_predictor", full_disk)
    with pytest.raises(OSError, match="No space left"):
        Predictor(label="label", path=str(tmp_path / "p"), verbosity=0).fit(
            train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    assert "Fitted in" in (tmp_path / "p.failed-fit.log").read_text()
    assert not (tmp_path / "p").exists() and not (tmp_path / ".p.fitting").exists()


def test_save_keeps_the_fit_log_and_metrics(fitted, fresh_copy, tmp_path):
    own = fresh_copy(fitted)
    own.save(tmp_path / "own")  # a folder of its own, to save over (the shared predictor's folder stays as it is)
    own.save(own.path)  # over its own folder
    assert own.path == str(tmp_path / "own")
    assert (Path(own.path) / "fit.log").is_file() and (Path(own.path) / "logs" / "metrics.csv").is_file()
    copy = Predictor.load(own.path, verbosity=0)
    copy.save(tmp_path / "elsewhere")
    assert "Problem type" in (tmp_path / "elsewhere" / "fit.log").read_text()
    assert (tmp_path / "elsewhere" / "logs" / "metrics.csv").is_file()
