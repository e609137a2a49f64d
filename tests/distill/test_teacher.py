"""Distillation through Predictor.fit on tiny random encoders: checks, cache, every term, tokenizers, teacher
layers, several teachers, the bf16 teacher pass, regression."""
import re

import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor
from automm_lite.distill.teacher import class_alignment, teacher_outputs
from automm_lite.exceptions import ConfigError, DataError


@pytest.fixture
def teacher(fitted_text_predictor):
    """The session's shared fitted text predictor, as the teacher (distillation reads it, never changes it)."""
    return fitted_text_predictor


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, make_tiny_encoder):
    """A narrower, shallower random student with the same tokenizer (so matchers are needed)."""
    return make_tiny_encoder(tmp_path_factory.mktemp("student"), layers=1, hidden=16, heads=2)


def logged_terms(folder):
    """The loss terms a fit logged (``train_*`` columns with a value) in ``folder/logs/metrics.csv``."""
    metrics = pd.read_csv(folder / "logs" / "metrics.csv")
    return {c for c in metrics.columns if c.startswith("train_") and metrics[c].notna().any()}


def log_message(folder, start):
    """The message in ``folder/fit.log`` that starts with ``start`` (with its continuation lines)."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", (folder / "fit.log").read_text())
    found = [record for record in records if f" {start}" in record]
    assert len(found) == 1, (start, found)
    return found[0]


def student_hp(tiny_hp, student_dir, **extra):
    """A tiny student's keys; the tiny teachers here score below a linear model on the gold labels, so the teacher
    check is off: these tests distil anyway (test_teacher_check.py tests the check)."""
    return {**tiny_hp, "model.hf_text.checkpoint_name": student_dir, "optimization.max_epochs": 1,
            "distiller.teacher_check": False, **extra}


def test_distiller_keys_and_unlabeled_data_need_a_teacher(bbc_short, tiny_hp):
    train, _ = bbc_short
    with pytest.raises(ConfigError, match="teacher"):
        Predictor(label="label").fit(train, hyperparameters={**tiny_hp, "distiller.temperature": 2})
    with pytest.raises(ConfigError, match="teacher_predictor"):
        Predictor(label="label").fit(train, hyperparameters=tiny_hp, unlabeled_data=train)
    with pytest.raises(ConfigError, match="teacher_predictor"):
        Predictor(label="label").fit(train, hyperparameters={**tiny_hp, "model.hf_text.checkpoint_name":
                                                             "teacher:layers=0"})


def test_teacher_mismatches_are_named_before_training(teacher, bbc_short, tiny_hp):
    train, _ = bbc_short
    with pytest.raises(ConfigError, match="not fitted"):
        Predictor(label="label").fit(train, teacher_predictor=Predictor(label="label"))
    with pytest.raises(ConfigError, match="'topic'.*'label'|'label'.*'topic'"):
        Predictor(label="topic").fit(train.rename(columns={"label": "topic"}), teacher_predictor=teacher)
    with pytest.raises(ConfigError, match="binary"):
        Predictor(label="label", problem_type="binary").fit(train, teacher_predictor=teacher)
    with pytest.raises(DataError, match="'text'"):
        Predictor(label="label").fit(train.rename(columns={"text": "body"}), teacher_predictor=teacher)
    with pytest.raises(ConfigError, match="different classes"):
        fewer = train[train.label != "tech"]
        Predictor(label="label").fit(fewer, teacher_predictor=teacher, hyperparameters=tiny_hp)
    with pytest.raises(ConfigError, match="Predictor"):
        Predictor(label="label").fit(train, teacher_predictor=42)


def test_class_order_is_aligned():
    assert class_alignment(["a", "b", "c"], ["a", "b", "c"]) is None
    assert list(class_alignment(["b", "a"], ["a", "b"])) == [1, 0]
    assert class_alignment([0, 1], ["0", "1"]) is None
    assert class_alignment(None, None) is None


def test_cached_teacher_outputs_equal_live_teacher_outputs(teacher, bbc_short):
    _, test = bbc_short
    rows = test.head(9)
    cached = teacher_outputs(teacher.as_teacher(), rows, hidden_layers=[0, 2], attention_layers=[1])
    live = teacher.model_.backbones["hf_text"]
    logits = teacher.predict_proba(rows).to_numpy()
    assert np.allclose(torch.softmax(torch.from_numpy(cached["teacher_logits"]), 1).numpy(), logits, atol=1e-5)
    assert np.allclose(cached["teacher_features"], teacher.extract_embedding(rows), atol=1e-5)
    tokens = live.tokenizer(rows.text.tolist()[0], truncation=True, max_length=32, return_tensors="pt")
    assert live.encoder.config._attn_implementation == "sdpa"  # the teacher is left on fast attention
    live.encoder.set_attn_implementation("eager")  # attention maps need the eager kernel
    with torch.inference_mode():
        out = live.encoder(**tokens, output_hidden_states=True, output_attentions=True)
    live.encoder.set_attn_implementation("sdpa")
    n = tokens["input_ids"].shape[1]
    assert np.allclose(cached["teacher_hidden_2"][0, :n], out.hidden_states[2][0].numpy(), atol=2e-2)
    assert np.allclose(cached["teacher_attention_1"][0, :, :n, :n], out.attentions[0][0].numpy(), atol=2e-3)
    assert cached["teacher_hidden_2"].dtype == np.float16


def test_distilled_student_with_every_term_trains_saves_and_loads_without_teacher(teacher, bbc_short, tiny_hp,
                                                                                    student_dir, tmp_path):
    train, test = bbc_short
    keys = {"distiller.hidden_state_loss_weight": 1.0, "distiller.attention_loss_weight": 1.0,
            "distiller.embedding_loss_weight": 0.1, "distiller.output_feature_loss_type": "cosine",
            "distiller.softmax_regression_weight": 0.5, "distiller.rkd_distance_loss_weight": 0.1,
            "distiller.rkd_angle_loss_weight": 0.1, "distiller.t2_scaling": True,
            "data.augment_copies": 1}
    student = Predictor(label="label", path=str(tmp_path / "s"), verbosity=0).fit(
        train, teacher_predictor=teacher, unlabeled_data=test.drop(columns="label").head(20),
        hyperparameters=student_hp(tiny_hp, student_dir, **keys))
    summary = student.fit_summary()
    assert summary["n_rows_trained"] == 2 * 128 + 20 and summary["teacher"] == teacher.path
    logged = logged_terms(tmp_path / "s")
    for term in ("train_hard_label", "train_soft_label", "train_output_feature", "train_softmax_regression",
                 "train_rkd_distance", "train_rkd_angle"):
        assert term in logged, logged
    assert any("hidden" in c for c in logged) and any("attention" in c for c in logged)
    assert student.total_parameters < teacher.total_parameters
    loaded = Predictor.load(tmp_path / "s", verbosity=0)  # no teacher, no matcher needed
    assert (loaded.predict(test) == student.predict(test)).all()
    assert not any("matcher" in k or "objective" in k for k in loaded.model_.state_dict())


def test_different_tokenizers_distill_logits_and_features(teacher, bbc_short, tiny_hp, tmp_path_factory, tmp_path,
                                                         make_tiny_encoder):
    train, test = bbc_short
    other = make_tiny_encoder(tmp_path_factory.mktemp("me5_tok"), layers=1, hidden=16, vocab_source="me5-small")
    student = Predictor(label="label", path=str(tmp_path / "s"), verbosity=0).fit(
        train, teacher_predictor=teacher,
        hyperparameters=student_hp(tiny_hp, other, **{"distiller.hidden_state_loss_weight": 1.0}))
    assert student.model_.backbones["hf_text"].tokenizer.vocab_size != teacher.model_.backbones["hf_text"].tokenizer.vocab_size
    logged = logged_terms(tmp_path / "s")
    assert {"train_hard_label", "train_soft_label", "train_output_feature"} <= logged, logged
    assert not [c for c in logged if c.startswith(("train_hidden", "train_attention", "train_embedding"))], logged
    skipped = log_message(tmp_path / "s", "Hidden-state, attention and embedding terms are skipped:")
    assert "different tokenizers" in skipped, skipped
    assert "hidden" not in log_message(tmp_path / "s", "Distillation objective:")
    assert len(student.predict(test)) == len(test)


def test_student_from_teacher_layers_and_teacher_path(teacher, bbc_short, tiny_hp, tmp_path):
    train, _ = bbc_short
    student = Predictor(label="label", path=str(tmp_path / "s"), verbosity=0).fit(
        train, teacher_predictor=teacher.path,
        hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.hf_text.checkpoint_name": "teacher:layers=1,0",
                         "distiller.teacher_check": False})
    assert student.model_.backbones["hf_text"].encoder.config.num_hidden_layers == 2
    with pytest.raises(ConfigError, match="layer 5"):
        Predictor(label="label", verbosity=0).fit(train, teacher_predictor=teacher, hyperparameters={
            **tiny_hp, "model.hf_text.checkpoint_name": "teacher:layers=5"})


def test_regression_distillation(tmp_path):
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    hp = {"optimization.max_epochs": 5, "optim.lr": 3e-3}
    teacher = Predictor(label="target", path=str(tmp_path / "t"), verbosity=0).fit(data.iloc[:300], hyperparameters=hp)
    student = Predictor(label="target", path=str(tmp_path / "s"), verbosity=0).fit(
        data.iloc[:300], teacher_predictor=teacher,
        hyperparameters={**hp, "model.tabular_mlp.hidden_size": 16, "distiller.output_feature_loss_weight": 0.1,
                         "distiller.teacher_check": False})
    assert student.problem_type == "regression" and np.isfinite(student.evaluate(data.iloc[300:])["rmse"])
    logged = logged_terms(tmp_path / "s")
    assert {"train_hard_label", "train_soft_label", "train_output_feature"} <= logged, logged
    objective = log_message(tmp_path / "s", "Distillation objective:")
    assert re.search(r"soft_label\(T=[0-9.]+, mse\)", objective), objective  # a teacher's numbers: matched by MSE
    assert "cross_entropy" not in objective, objective


def test_average_soft_targets_is_the_mean_softened_distribution():
    from automm_lite.distill.teacher import average_soft_targets

    a, b = np.array([[2.0, 0.0, -1.0]]), np.array([[0.0, 3.0, 1.0]])
    T = 2.0
    soft = lambda z: np.exp(z / T) / np.exp(z / T).sum()
    averaged = average_soft_targets([a, b], T, average_probabilities=True)
    assert np.allclose(soft(averaged[0]), (soft(a[0]) + soft(b[0])) / 2, atol=1e-6)
    assert np.allclose(average_soft_targets([a, b], T, average_probabilities=False), (a + b) / 2)
    assert np.allclose(average_soft_targets([a], T, True), a - np.log(np.exp(a / T).sum()) * T, atol=1e-5)


def test_several_teachers(teacher, bbc_short, tiny_hp, student_dir, tmp_path):
    train, test = bbc_short
    other = Predictor(label="label", eval_metric="accuracy", path=str(tmp_path / "t2"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1}, seed=1)
    student = Predictor(label="label", path=str(tmp_path / "s"), verbosity=0).fit(
        train, hyperparameters=student_hp(tiny_hp, student_dir), teacher_predictor=[teacher, str(other.path)])
    assert student.fit_summary()["teacher"] == [str(teacher.path), str(other.path)]
    assert "Outputs of 2 teacher(s)" in (tmp_path / "s" / "fit.log").read_text()
    assert student.predict(test).isin(teacher.class_labels).all()
    with pytest.raises(ConfigError, match="empty list"):
        Predictor(label="label").fit(train, teacher_predictor=[])
    with pytest.raises(ConfigError, match="not fitted"):
        Predictor(label="label").fit(train, teacher_predictor=[teacher, Predictor(label="label")])


def check_bf16_teacher_pass(teacher, rows, native_bf16, log):
    """bf16 where the CPU has native bf16 matmuls; elsewhere float32 (the same numbers) and a warning."""
    view = teacher.as_teacher()
    exact = teacher_outputs(view, rows, hidden_layers=[1], attention_layers=[1])
    log.clear()
    fast = teacher_outputs(view, rows, hidden_layers=[1], attention_layers=[1], precision="bf16")
    warned = [r.getMessage() for r in log.records if "teacher_precision='bf16'" in r.getMessage()]
    assert set(fast) == set(exact)
    for name in exact:
        assert fast[name].dtype == exact[name].dtype
        assert np.abs(fast[name].astype(np.float32) - exact[name].astype(np.float32)).max() < 0.1, name
    if native_bf16:
        assert not warned, warned
        assert not np.array_equal(fast["teacher_logits"], exact["teacher_logits"])  # it did run in bf16
    else:
        assert len(warned) == 1 and "runs in float32" in warned[0], warned
        for name in exact:
            assert np.array_equal(fast[name], exact[name]), name  # it ran in float32, as the warning says


def test_bf16_teacher_pass_on_this_cpu(teacher, bbc_short, package_log):
    from automm_lite.inference.modes import bf16_supported

    check_bf16_teacher_pass(teacher, bbc_short[1].head(9), bf16_supported(torch.device("cpu")), package_log)


def test_bf16_teacher_pass_on_each_kind_of_cpu(teacher, bbc_short, cpu_kind, package_log):
    check_bf16_teacher_pass(teacher, bbc_short[1].head(9), cpu_kind.native_bf16, package_log)


def test_a_teacher_pass_of_many_batches_shows_a_progress_bar_from_verbosity_2(teacher, bbc_short, capsys,
                                                                                monkeypatch):
    from automm_lite.distill import teacher as teacher_module

    view, rows = teacher.as_teacher(), bbc_short[1].head(9)
    teacher_outputs(view, rows, verbosity=2)
    assert "teacher outputs" not in capsys.readouterr().err  # 9 rows are one batch: over at once
    monkeypatch.setattr(teacher_module, "BAR_FROM_BATCHES", 1)
    teacher_outputs(view, rows, verbosity=1)
    assert "teacher outputs" not in capsys.readouterr().err
    teacher_outputs(view, rows, verbosity=2)
    shown = capsys.readouterr().err
    assert "teacher outputs" in shown and "9/9" in shown, shown
