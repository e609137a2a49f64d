"""AutoDistiller on tiny random models: the search, its table and plot, resuming, the rules, user callables."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automm_lite import AutoDistiller, Predictor
from automm_lite.exceptions import ConfigError, DataError, NotFittedError
from automm_lite.search.study import STUDY_NAME

SPACE = {"num_layers": [1, 2], "layer_choice": ["spread"], "num_attention_heads": [2, 4],
         "intermediate_size": [16, 64]}


def test_a_three_trial_search_writes_its_table_and_plot_and_returns_a_student(search_teacher, bbc_short, quick,
                                                                            tmp_path):
    train, test = bbc_short
    search = AutoDistiller(search_teacher, search_space=SPACE, n_trials=3, path=str(tmp_path / "search"),
                           verbosity=0, **quick).fit(train)
    results = search.results_
    assert list(results.state) == ["complete"] * 3
    for column in ("trial", "shape", "num_layers", "num_attention_heads", "intermediate_size", "tuning_score",
                   "latency_ms", "rows_per_s", "parameters", "fit_s", "on_front"):
        assert results[column].notna().all(), column
    assert (results.latency_ms > 0).all() and (results.rows_per_s > 0).all()
    # A student is smaller than the teacher, and its parameter count follows its shape.
    assert (results.parameters < search_teacher.total_parameters).all()
    assert pd.read_csv(tmp_path / "search" / "results.csv").shape[0] == 3
    assert (tmp_path / "search" / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "search" / "search.log").read_text().count("Trial ") >= 3
    # The front: no finished trial dominates one of its points, and every point off it is dominated.
    front = search.pareto_front_
    values = results[["tuning_score", "latency_ms"]].to_numpy()
    for _, row in results.iterrows():
        beaten = [(s >= row.tuning_score and lat <= row.latency_ms) and (s > row.tuning_score or lat < row.latency_ms)
                  for s, lat in values]
        assert row.on_front == (not any(beaten))
    assert set(front.trial) == set(results.trial[results.on_front])
    assert search.best_trial_ in set(front.trial)
    assert search.best_params_ == {k: results.set_index("trial").loc[search.best_trial_, k] for k in SPACE}
    assert len(search.best_predictor_.predict(test)) == len(test)
    assert search.plot(tmp_path / "again.png").endswith("again.png")
    # the chosen student's equal-compute control: its network without the teacher, the same rows and steps
    control, chosen = search.fit_control(), search.best_predictor_.fit_summary()
    assert control.fit_summary()["distillation_recipe"] is None and control.fit_summary()["teacher"] is None
    assert control.fit_summary()["steps"] == chosen["steps"]
    assert control.config_.model.hf_text.checkpoint_name == search.best_predictor_.config_.model.hf_text.checkpoint_name
    assert search.fit_control().path == control.path  # trained once, then loaded


def test_pruned_students_load_and_predict_without_the_teacher_or_the_search_folder(search_teacher, bbc_short, quick,
                                                                                  tmp_path):
    import shutil

    train, test = bbc_short
    search = AutoDistiller(search_teacher, search_space={"num_layers": [1], "num_attention_heads": [2]}, n_trials=1,
                           path=str(tmp_path / "search"), refit=False, verbosity=0, **quick).fit(train)
    saved = search.results_.predictor.iloc[0]
    expected = search.best_predictor_.predict_proba(test)
    moved = tmp_path / "elsewhere"
    shutil.copytree(saved, moved)
    shutil.rmtree(tmp_path / "search")  # the teacher's encoder and the pruned student folder go with it
    student = Predictor.load(moved, verbosity=0)
    assert student.model_.text_backbone.encoder.config.num_attention_heads == 2
    assert student.model_.text_backbone.encoder.config.hidden_size == 16
    np.testing.assert_allclose(student.predict_proba(test).to_numpy(), expected.to_numpy(), atol=1e-5)


def test_a_bad_search_space_fails_before_any_trial(search_teacher, bbc_short, tmp_path):
    train, _ = bbc_short
    with pytest.raises(ConfigError, match="its num_layers is 4"):
        AutoDistiller(search_teacher, search_space={"num_layers": [2, 9]}, path=str(tmp_path / "s")).fit(train)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("arguments, message", [
    ({"teacher": "not/a/folder"}, "not/a/folder"),
    ({"teacher": 3}, "teacher_predictor must be a fitted Predictor"),
    ({"n_trials": 0}, "n_trials"),
    ({"objectives": ("accuracy", "speed")}, "objectives"),
    ({"sampler": "bayes"}, "sampler='bayes' is invalid"),
    ({"time_limit": 0}, "time_limit"),
    ({"latency_budget_ms": -1}, "latency_budget_ms"),
    ({"inference_mode": "fp16"}, "inference_mode"),
    ({"keep": "best"}, "keep"),
    ({"flash": {"step": 3}}, "Unknown flash setting"),
    ({"hyperparameters": {"optim.lr": "fast"}}, "optim.lr"),
    ({"hyperparameters": {"model.hf_text.checkpoint_name": "minilm-l3"}}, "model_builder"),
    ({"model_builder": lambda params, folder: "x"}, "needs its own search_space"),
    ({"sampler": "grid", "search_space": {"num_layers": {"low": 1, "high": 2}}}, "grid"),
    ({"seed": -1}, "seed"),
    ({"seed": "0"}, "seed"),
    ({"storage": 5}, "storage"),
    ({"flash": {"batch_size": 0}}, "batch_size"),
    ({"flash": {"learning_rate": -1e-3}}, "learning_rate"),
    ({"flash": {"attention_weight": 0, "hidden_weight": 0}}, "nothing to learn"),
    ({"search_space": {"num_layers": [1], "model.hf_text.checkpoint_name": ["x"]}}, "cannot be a search dimension"),
])
def test_bad_arguments_fail_before_any_work(search_teacher, bbc_short, tmp_path, arguments, message):
    train, _ = bbc_short
    arguments = {"teacher": search_teacher, "path": str(tmp_path / "s"), **arguments}
    with pytest.raises((ConfigError, DataError), match=message):
        AutoDistiller(**arguments).fit(train)
    assert not (tmp_path / "s").exists()


def test_a_user_model_builder_train_func_and_eval_func_are_used(search_teacher, bbc_short, make_tiny_encoder, quick,
                                                                tmp_path):
    train, _ = bbc_short
    built, trained = [], []

    def model_builder(params, folder):
        built.append(params)
        if params["depth"] == 3:
            raise RuntimeError("this family has no 3-layer model")
        return make_tiny_encoder(folder / "encoder", layers=params["depth"], hidden=16, heads=2)

    def eval_func(model, tuning):
        return {"accuracy": model.evaluate(tuning)["accuracy"], "latency": float(model.total_parameters)}

    search = AutoDistiller(search_teacher, search_space={"depth": [1, 2, 3]}, n_trials=3, sampler="grid",
                           path=str(tmp_path / "own"), model_builder=model_builder, eval_func=eval_func, verbosity=0,
                           **quick)
    search.fit(train)
    assert sorted(p["depth"] for p in built[:3]) == [1, 2, 3]
    results = search.results_.set_index("depth")
    assert results.loc[3, "state"] == "failed" and "no 3-layer model" in results.loc[3, "error"]
    assert results.loc[1, "latency_ms"] < results.loc[2, "latency_ms"]  # eval_func's "latency" is what was stored
    assert search.best_predictor_ is not None

    def train_func(student, train_data, tuning_data, folder):
        trained.append(student)
        return {"layers": 1}

    custom = AutoDistiller(search_teacher, search_space={"depth": [1]}, n_trials=1, path=str(tmp_path / "custom"),
                           model_builder=lambda params, folder: f"student-{params['depth']}",
                           train_func=train_func, eval_func=lambda model, tuning: {"accuracy": 0.5, "latency": 1.0},
                           verbosity=0).fit(train)
    assert trained == ["student-1"] and custom.best_predictor_ is None and custom.best_params_ == {"depth": 1}


def test_the_latency_budget_picks_the_most_accurate_student_within_it(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    search = AutoDistiller(search_teacher, search_space=SPACE, n_trials=4, sampler="random", refit=False,
                           keep="front", path=str(tmp_path / "budget"), verbosity=0, **quick).fit(train)
    results = search.results_
    budget = float(results.latency_ms.median())
    search.latency_budget_ms = budget
    within = results[results.latency_ms <= budget]
    best = within.sort_values(["tuning_score", "latency_ms"], ascending=[False, True]).trial.iloc[0]
    assert search._choose() == best
    search.latency_budget_ms = float(results.latency_ms.min()) / 10
    with pytest.warns(UserWarning, match="No student is within"):
        assert search._choose() in set(search.pareto_front_.trial)
    # keep="front": the folders of trials off the front (and not chosen) are gone.
    kept = {int(p.name) for p in (tmp_path / "budget" / "trials").iterdir()}
    assert kept == set(search.pareto_front_.trial) | {search.best_trial_}


def test_time_limit_stops_between_trials(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    search = AutoDistiller(search_teacher, search_space=SPACE, n_trials=5, time_limit=1e-3, refit=False,
                           path=str(tmp_path / "t"), verbosity=0, **quick)
    search.fit(train)  # over the limit before the first trial: that one still runs, no other
    assert list(search.results_.state) == ["complete"] and search.best_predictor_ is not None


def test_a_search_killed_mid_trial_resumes_without_redoing_finished_trials(search_teacher, bbc_short, quick,
                                                                          tmp_path):
    train, _ = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    marker = tmp_path / "second-trial-started"
    arguments = dict(search_space=SPACE, n_trials=3, path=str(tmp_path / "search"), refit=False, verbosity=0,
                     **quick)
    script = f"""
import json, pathlib, time
from automm_lite.search.autodistill import AutoDistiller
run_one = AutoDistiller._run_one
def slow_second(self, study, trial):
    if trial.number == 1:
        pathlib.Path({str(marker)!r}).write_text("started")
        time.sleep(300)
    return run_one(self, study, trial)
AutoDistiller._run_one = slow_second
arguments = json.loads({json.dumps(json.dumps(arguments))})
AutoDistiller({search_teacher.path!r}, **arguments).fit({str(tmp_path / "train.csv")!r})
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.communicate()[0].decode()[-3000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = (tmp_path / "search" / "trials" / "000" / "predictor" / "model.safetensors").stat().st_mtime_ns

    resumed = AutoDistiller(search_teacher, **arguments).fit(train)
    states = dict(zip(resumed.results_.trial, resumed.results_.state))
    assert states == {0: "complete", 1: "interrupted", 2: "complete", 3: "complete"}
    assert (tmp_path / "search" / "trials" / "000" / "predictor" / "model.safetensors").stat().st_mtime_ns == first
    log = (tmp_path / "search" / "search.log").read_text()
    assert log.count("Trial 0:") == 1 and log.count("Trial 2:") == 1
    # Run again: the study is complete, nothing more runs.
    again = AutoDistiller(search_teacher, **arguments).fit(train)
    assert len(again.results_) == 4


def test_the_command_line_search(search_teacher, bbc_short, tmp_path):
    train, _ = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "space.yaml").write_text("num_layers: [1]\nnum_attention_heads: [2, 4]\n")
    command = [sys.executable, "-m", "automm_lite.cli", "search", "--teacher", search_teacher.path,
               str(tmp_path / "train.csv"), "--config", str(tmp_path / "space.yaml"), "--n-trials", "2",
               "--path", str(tmp_path / "cli"), "--no-refit", "--verbosity", "0", "--hyperparameters",
               "optimization.max_epochs=1", "env.batch_size=16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tuning_score" in done.stdout and "Chosen: trial" in done.stdout
    assert (tmp_path / "cli" / "front.png").is_file()
    bad = subprocess.run([*command[:7], "--config", str(tmp_path / "nope.yaml")], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_a_latency_budget_skips_training_students_that_are_too_slow(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    search = AutoDistiller(search_teacher, search_space={"num_layers": [1, 4]}, n_trials=2, sampler="grid",
                           latency_budget_ms=1e-3, refit=False, path=str(tmp_path / "b"), verbosity=0, **quick)
    with pytest.raises(NotFittedError, match="No student was within latency_budget_ms=0.001"):
        search.fit(train)  # nothing is fast enough: every student is timed, none trained
    states = [t.state.name for t in search.study_.trials]
    assert states == ["PRUNED", "PRUNED"] and all(t.user_attrs["latency_ms"] > 1e-3 for t in search.study_.trials)
    assert not any((tmp_path / "b" / "trials" / f"{n:03d}" / "predictor").exists() for n in (0, 1))


def test_a_point_sampled_again_reuses_its_result(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    search = AutoDistiller(search_teacher, search_space={"num_layers": [1]}, n_trials=2, refit=False,
                           path=str(tmp_path / "d"), verbosity=0, **quick).fit(train)
    first, second = search.results_.iloc[0], search.results_.iloc[1]
    assert second.duplicate_of == 0 and second.tuning_score == first.tuning_score and second.fit_s == 0
    assert list(search.results_.on_front) == [True, False]


def test_a_student_that_cannot_be_scored_fails_and_a_rerun_tries_again(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    arguments = dict(search_space={"num_layers": [1, 2]}, n_trials=2, sampler="grid", refit=False,
                     path=str(tmp_path / "nan"), verbosity=0, **quick)
    nan = AutoDistiller(search_teacher, eval_func=lambda model, tuning: {"accuracy": float("nan"), "latency": 1.0},
                        **arguments)
    with pytest.raises(NotFittedError, match="Every trial failed.*accuracy is nan"):
        nan.fit(train)
    assert list(nan.study_.trials[i].state.name for i in (0, 1)) == ["FAIL", "FAIL"]
    fixed = AutoDistiller(search_teacher, **arguments).fit(train)  # the earlier run's failures do not count
    assert sorted(fixed.results_.state) == ["complete", "complete", "failed", "failed"]


def test_a_grid_resumes_with_the_points_it_has_not_run(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    arguments = dict(search_space={"num_layers": [1, 2]}, sampler="grid", refit=False, path=str(tmp_path / "g"),
                     verbosity=0, **quick)
    first = AutoDistiller(search_teacher, n_trials=1, **arguments).fit(train)
    assert list(first.results_.num_layers) == [1] and set(first.results_.state) == {"complete"}
    second = AutoDistiller(search_teacher, n_trials=2, **arguments).fit(train)
    assert sorted(second.results_.num_layers) == [1, 2] and len(second.results_) == 2
    with pytest.raises(ConfigError, match="made for other objectives"):
        AutoDistiller(search_teacher, n_trials=2, objectives=("accuracy", "parameters"), **arguments).fit(train)


def test_a_latency_budget_with_distillation_keys_in_the_space(search_teacher, bbc_short, quick, tmp_path):
    train, _ = bbc_short
    search = AutoDistiller(search_teacher, search_space={"num_layers": [1], "distiller.temperature": [2.0]},
                           n_trials=1, latency_budget_ms=1e6, refit=False, path=str(tmp_path / "k"), verbosity=0,
                           **quick).fit(train)
    assert list(search.results_.state) == ["complete"]
    assert search.best_predictor_.config_.distiller.temperature == 2.0


def test_two_processes_share_one_postgresql_study(search_teacher, bbc_short, quick, postgres_url, tmp_path):
    import optuna

    train, _ = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    storage = postgres_url
    n_trials = 4

    def worker(name, seconds_per_trial):
        arguments = dict(search_space={"num_layers": [1, 2], "num_attention_heads": [1, 2, 4]}, n_trials=n_trials,
                         storage=storage, path=str(tmp_path / name), refit=False, verbosity=0, seed=len(name),
                         sampler="random", **quick)
        # The first worker waits 8 s after each of its trials, so that the second starts while trials are still to
        # run (after, not before: a point the other worker trained meanwhile would be reused, not trained).
        script = f"""
import json, time
from automm_lite.search.autodistill import AutoDistiller
run_one = AutoDistiller._run_one
def slow(self, study, trial):
    result = run_one(self, study, trial)
    time.sleep({seconds_per_trial})
    return result
AutoDistiller._run_one = slow
arguments = json.loads({json.dumps(json.dumps(arguments))})
AutoDistiller({search_teacher.path!r}, **arguments).fit({str(tmp_path / "train.csv")!r})
"""
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    first = worker("a", 8)
    deadline = time.time() + 300
    while not (tmp_path / "a" / "trials").is_dir() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # the study exists once the first worker trains its first trial
    second = worker("bb", 0)
    outputs = [process.communicate(timeout=600)[0].decode()[-3000:] for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # each worker stops once the study holds n_trials finished ones; both may finish one more at the end
    assert n_trials <= len(done) <= n_trials + 1, [t.state for t in study.trials]
    trained_by = {Path(t.user_attrs["predictor"]).parts[-4] for t in done if t.user_attrs.get("predictor")
                  and "duplicate_of" not in t.user_attrs}
    assert trained_by == {"a", "bb"}, trained_by
