"""Hyperparameter search of Predictor.fit on tiny random encoders and real BBC rows: the chosen trial is the
predictor, ASHA stops a poor trial, a teacher's outputs are computed once, a killed search resumes, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError
from automm_lite.presets import preset_search
from automm_lite.hpo.spaces import describe, split_spaces

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def one_layer_encoder(make_tiny_encoder, tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("one_layer"), layers=1)


@pytest.fixture
def fixed(tiny_hp):
    """A fit of seconds: the tiny encoder, 2 epochs of 16-row steps, the network alone."""
    return {key: value for key, value in tiny_hp.items() if not key.startswith("model.timm_image")}


def _fit(path, train, hyperparameters, tune, **kwargs):
    return Predictor("label", eval_metric="accuracy", path=str(path), verbosity=0).fit(
        train, hyperparameters=hyperparameters, hyperparameter_tune_kwargs=tune, **kwargs)


def test_the_best_of_three_trials_over_the_rate_and_the_backbone_is_the_fitted_predictor(
        bbc_short, fixed, tiny_text_dir, one_layer_encoder, tmp_path):
    train, test = bbc_short
    spaces = {"optim.lr": {"low": 1e-4, "high": 3e-3, "log": True},
              "model.hf_text.checkpoint_name": [tiny_text_dir, one_layer_encoder]}
    predictor = _fit(tmp_path / "searched", train, {**fixed, **spaces},
                     {"searcher": "random", "num_trials": 3})
    results = predictor.hpo_results
    assert list(results.state) == ["complete"] * 3 and list(results.trial) == [0, 1, 2]
    assert results["val_accuracy"].notna().all() and (results.fit_s > 0).all()
    assert results["optim.lr"].between(1e-4, 3e-3).all()
    assert set(results["model.hf_text.checkpoint_name"]) <= {tiny_text_dir, one_layer_encoder}
    summary = predictor.fit_summary()
    best = results.loc[results.val_accuracy.idxmax()]
    assert summary["hpo"]["best_trial"] == best.trial
    assert summary["val_accuracy"] == pytest.approx(best.val_accuracy)
    assert summary["hpo"]["best_params"] == {"optim.lr": best["optim.lr"],
                                             "model.hf_text.checkpoint_name": best["model.hf_text.checkpoint_name"]}
    assert predictor.config_.optimization.learning_rate == pytest.approx(best["optim.lr"])
    assert predictor.config_.model.hf_text.checkpoint_name.endswith(Path(best["model.hf_text.checkpoint_name"]).name)
    # The chosen trial is the predictor: a fit with its values and the same seed predicts the same.
    again = Predictor("label", eval_metric="accuracy", path=str(tmp_path / "again"), verbosity=0).fit(
        train, hyperparameters={**fixed, **summary["hpo"]["best_params"]})
    assert again.fit_summary()["val_accuracy"] == pytest.approx(best.val_accuracy)
    assert (again.predict(test) == predictor.predict(test)).all()
    loaded = Predictor.load(predictor.path, verbosity=0)
    assert (loaded.predict(test) == predictor.predict(test)).all()
    pd.testing.assert_frame_equal(loaded.hpo_results, results)
    # The search folder: the study, the table, each trial's log and summary, no second copy of the weights.
    folder = Path(predictor.path) / "hpo"
    assert pd.read_csv(folder / "results.csv").shape[0] == 3
    for trial in range(3):
        assert (folder / "trials" / f"{trial:03d}" / "fit.log").read_text()
        assert "val_accuracy" in json.loads((folder / "trials" / f"{trial:03d}" / "summary.json").read_text())
    assert not list(folder.glob("trials/*/model.safetensors"))
    assert (Path(predictor.path) / "fit.log").read_text().count("Trial ") >= 6  # a start and an end line each


def test_asha_stops_a_trial_set_up_to_be_poor_and_says_at_which_step(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    poor = {**fixed, "optimization.max_epochs": 3, "optim.lr": [3e-3, 1e-9]}  # the second point cannot learn
    predictor = _fit(tmp_path / "asha", train, poor, {"searcher": "grid", "scheduler": "ASHA", "grace_period": 2,
                                                        "num_trials": 5})
    results = predictor.hpo_results.set_index("trial")
    assert len(results) == 2  # the grid has two points
    assert results.loc[0, "state"] == "complete" and results.loc[1, "state"] == "pruned"
    full_steps = results.loc[0, "steps"]
    assert 0 < results.loc[1, "pruned_at_step"] < full_steps  # stopped at its second validation of three
    assert predictor.fit_summary()["hpo"]["best_params"] == {"optim.lr": 3e-3}
    assert "stopped by ASHA at validation 2" in (Path(predictor.path) / "fit.log").read_text()


def test_a_search_with_a_teacher_computes_the_teacher_outputs_once(bbc_short, fixed, fitted_text_predictor,
                                                                   tmp_path):
    train, _ = bbc_short
    student = {**fixed, "optimization.max_epochs": 1, "distiller.teacher_check": False,
               "optim.lr": [1e-3, 5e-4]}
    predictor = _fit(tmp_path / "student", train, student, {"searcher": "grid", "num_trials": 2},
                     teacher_predictor=fitted_text_predictor.path)
    log = (Path(predictor.path) / "fit.log").read_text()
    assert log.count("computed once") == 1
    assert log.count("read from the search's earlier trial") == 1
    assert list(predictor.hpo_results.state) == ["complete", "complete"]
    assert predictor.fit_summary()["teacher"] == str(fitted_text_predictor.path)
    assert not (Path(predictor.path) / "hpo" / "teacher_outputs").exists()  # the shared outputs go at the end


KILLED_SEARCH = """
import sys
sys.path.insert(0, {tests!r})
from automm_lite import Predictor
from automm_lite.datasets import load_bbc_news
train = load_bbc_news(short=True, seed=0)[0].sample(160, random_state=0)
Predictor("label", eval_metric="accuracy", path={path!r}, verbosity=0).fit(
    train, hyperparameters={hp!r}, hyperparameter_tune_kwargs={tune!r})
"""


def test_a_search_killed_after_its_first_trial_resumes_and_runs_only_the_rest(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    path = tmp_path / "killed"
    hp = {**fixed, "optimization.max_epochs": 3, "optim.lr": [1e-3, 2e-3, 3e-3]}
    tune = {"searcher": "grid", "num_trials": 3}
    script = KILLED_SEARCH.format(tests=str(Path(__file__).parent.parent), path=str(path), hp=hp, tune=tune)
    run = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    second = tmp_path / ".killed.fitting" / "hpo" / "trials" / ".001.fitting"  # the second trial's fit started
    try:
        deadline = time.time() + 180
        while not second.is_dir() and run.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert second.is_dir(), "the search did not reach its second trial"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    study = optuna.load_study(study_name="automm_lite_hpo",
                              storage=f"sqlite:///{tmp_path / '.killed.fitting' / 'hpo' / 'study.db'}")
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE
    predictor = _fit(path, train, hp, tune, resume=True)
    results = predictor.hpo_results.set_index("trial")
    assert results.loc[0, "fit_s"] == pytest.approx(first.user_attrs["fit_s"])  # not fitted again
    assert results.loc[1, "state"] == "interrupted"
    done = results[results.state == "complete"]
    assert len(done) == 3 and sorted(done["optim.lr"]) == [1e-3, 2e-3, 3e-3]  # the killed point again, once
    assert "The search resumes with 1 of 3 trials done" in (path / "fit.log").read_text()


def test_without_resume_a_killed_search_starts_over(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    hp, tune = {**fixed, "optimization.max_epochs": 1, "optim.lr": [1e-3]}, {"searcher": "grid"}
    stale = tmp_path / ".fresh.fitting" / "hpo"
    stale.mkdir(parents=True)
    optuna.create_study(study_name="automm_lite_hpo", storage=f"sqlite:///{stale / 'study.db'}").add_trial(
        optuna.trial.create_trial(params={}, distributions={}, value=0.0))
    predictor = _fit(tmp_path / "fresh", train, hp, tune)
    assert list(predictor.hpo_results.trial) == [0] and predictor.hpo_results.state[0] == "complete"


def test_search_spaces_in_every_spelling_are_read_as_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    fixed, spaces = split_spaces({
        "optim": {"lr": {"low": 1e-5, "high": 1e-3, "log": True}, "max_epochs": 3},
        "model.hf_text.checkpoint_name": ["minilm-l3", "minilm-l6"],
        "model.names": [["hf_text"], ["hf_text", "numerical_mlp"]],
        "optim.weight_decay": FloatDistribution(0.0, 0.1),
        "env.batch_size": "choice(8,16,32)",
        "optimization.patience": "randint(2,6)",
        "optimization.warmup_steps": "uniform(0,0.2)",
        "model.classical.kinds": ["linear"],  # a list-valued key: one value, not a choice
    })
    assert fixed == {"optim.max_epochs": 3, "model.classical.kinds": ["linear"]}
    assert spaces["optim.lr"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert spaces["model.hf_text.checkpoint_name"] == CategoricalDistribution(["minilm-l3", "minilm-l6"])
    assert spaces["model.names"].choices == ('["hf_text"]', '["hf_text", "numerical_mlp"]')
    assert spaces["env.batch_size"] == CategoricalDistribution([8, 16, 32])
    assert spaces["optimization.patience"] == IntDistribution(2, 5)  # randint's upper end excluded, as in Ray
    assert describe(spaces["optimization.patience"]) == "randint(2, 6)"
    assert describe(spaces["optim.lr"]) == "loguniform(1e-05, 0.001)"
    # the command line's "k=v" strings
    _, text = split_spaces(["optim.lr=loguniform(1e-5,1e-3)", "model.hf_text.checkpoint_name=choice(a,b)"])
    assert text["optim.lr"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert text["model.hf_text.checkpoint_name"].choices == ("a", "b")


def test_ranges_take_the_kind_of_their_key():
    from optuna.distributions import FloatDistribution, IntDistribution

    _, spaces = split_spaces({"optimization.warmup_steps": {"low": 0, "high": 1},
                              "env.batch_size": {"low": 8.0, "high": 64.0, "log": True}})
    assert spaces == {"optimization.warmup_steps": FloatDistribution(0.0, 1.0),
                      "env.batch_size": IntDistribution(8, 64, log=True)}
    for bad, message in (({"env.batch_size": {"low": 8, "high": 9.5}}, "whole numbers"),
                         ({"model.hf_text.checkpoint_name": {"low": 1, "high": 2}}, "give a list of choices")):
        with pytest.raises(ConfigError, match=message):
            split_spaces(bad)


def test_autogluon_space_objects_are_read_without_autogluon():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    # AutoGluon's own classes, as ``autogluon.common.space`` defines them (what is read: the class name, the bounds)
    def space_class(name, **attributes):
        return type(name, (), {"__module__": "autogluon.common.space.space", **attributes})

    Real = space_class("Real", __init__=lambda self, lower, upper, log=False: self.__dict__.update(
        lower=lower, upper=upper, log=log))
    Int = space_class("Int", __init__=lambda self, lower, upper: self.__dict__.update(lower=lower, upper=upper))
    Categorical = space_class("Categorical", __init__=lambda self, *data: self.__dict__.update(data=list(data)))
    _, spaces = split_spaces({"optim.lr": Real(1e-5, 1e-3, log=True), "optimization.patience": Int(2, 5),
                              "model.hf_text.checkpoint_name": Categorical("minilm-l3", "minilm-l6")})
    assert spaces == {"optim.lr": FloatDistribution(1e-5, 1e-3, log=True),
                      "optimization.patience": IntDistribution(2, 5),  # both ends included, as in AutoGluon
                      "model.hf_text.checkpoint_name": CategoricalDistribution(["minilm-l3", "minilm-l6"])}


def test_num_to_keep_keeps_the_runners_up_whole_and_a_plain_resume_names_the_search(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    hp = {**fixed, "optimization.max_epochs": 1, "optim.lr": [1e-3, 2e-3, 3e-3]}
    predictor = _fit(tmp_path / "kept", train, hp, {"searcher": "grid", "num_to_keep": 1})
    results, best = predictor.hpo_results, predictor.fit_summary()["hpo"]["best_trial"]
    whole = sorted(int(p.parent.name) for p in (tmp_path / "kept" / "hpo").glob("trials/*/model.safetensors"))
    ranked = results[results.state == "complete"].sort_values(["val_accuracy", "trial"], ascending=[False, True])
    assert whole == [int(ranked.trial.iloc[1])] and whole[0] != best  # the runner-up; the best is the predictor
    assert Predictor.load(tmp_path / "kept" / "hpo" / "trials" / f"{whole[0]:03d}", verbosity=0).predict(train).size
    # a killed search's folder, continued without its spaces: named as a search, not a bare missing file
    stale = tmp_path / ".other.fitting" / "hpo"
    stale.mkdir(parents=True)
    optuna.create_study(study_name="automm_lite_hpo", storage=f"sqlite:///{stale / 'study.db'}")
    with pytest.raises(ConfigError, match="is a hyperparameter search"):
        _fit(tmp_path / "other", train, {**fixed, "optimization.max_epochs": 1}, None, resume=True)


def test_ray_tune_spaces_are_read_when_ray_is_installed():
    tune = pytest.importorskip("ray.tune")
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    _, spaces = split_spaces({"optim.lr": tune.loguniform(1e-5, 1e-3), "env.batch_size": tune.choice([8, 16]),
                              "optimization.patience": tune.randint(2, 6),
                              "optimization.warmup_steps": tune.uniform(0.0, 0.2),
                              "optimization.max_epochs": tune.qrandint(2, 10, 2)})
    assert spaces == {"optim.lr": FloatDistribution(1e-5, 1e-3, log=True),
                      "env.batch_size": CategoricalDistribution([8, 16]),
                      "optimization.patience": IntDistribution(2, 5),
                      "optimization.warmup_steps": FloatDistribution(0.0, 0.2),
                      "optimization.max_epochs": IntDistribution(2, 10, step=2)}


def test_hpo_presets_search_the_rate_and_batch_size_and_a_users_key_wins():
    plain, spaces, tune = preset_search("medium_quality_hpo")
    assert plain == ["medium_quality"] and tune["scheduler"] == "ASHA"
    assert set(spaces) == {"optimization.learning_rate", "env.batch_size"}
    from automm_lite.hpo.settings import read_search

    fixed, searched, settings, presets = read_search({"optim.lr": 1e-3}, "medium_quality_hpo", None, False)
    assert fixed == {"optim.lr": 1e-3} and set(searched) == {"env.batch_size"}  # the user's rate, not a space
    assert settings.num_trials == 8 and presets == ["medium_quality"]


@pytest.mark.parametrize("hyperparameters, tune, message", [
    ({"optim.lr": [1e-3, 1e-4]}, None, "pass hyperparameter_tune_kwargs"),
    ({"optim.lr": 1e-3}, {"num_trials": 2}, "no hyperparameter is a search space"),
    ({"optim.lr": [1e-3, 1e-4]}, {"searcher": "hyperband"}, "searcher 'hyperband' is not known"),
    ({"optim.lr": [1e-3, 1e-4]}, {"scheduler": "PBT"}, "scheduler 'PBT' is not known"),
    ({"optim.lr": [1e-3, 1e-4]}, {"num_trials": 0}, "num_trials'] must be a whole number >= 1"),
    ({"optim.lr": [1e-3, 1e-4]}, {"num_trial": 2}, "Unknown hyperparameter_tune_kwargs ['num_trial']"),
    ({"optim.lr": [1e-3, 1e-4]}, {"executor": "slurm"}, "executor 'slurm' is not known"),
    ({"optim.lrr": [1e-3, 1e-4]}, {"num_trials": 2}, "Unknown hyperparameter 'optim.lrr'"),
    ({"optim.lr": {"low": 1e-3, "high": 1e-5}}, {"num_trials": 2}, "low 0.001 > high 1e-05"),
    ({"optim.lr": []}, {"num_trials": 2}, "empty choice"),
    ({"optim.lr": "uniform(1e-3)"}, {"num_trials": 2}, "takes two numbers"),
    ({"optim.lr": {"low": 1e-5, "high": 1e-3}}, {"searcher": "grid"}, "searcher='grid' needs lists of choices"),
    ({"env.batch_size": [8, -1]}, {"num_trials": 2}, "env.batch_size=-1 is invalid"),
    ({"distiller.temperature": [1, 2]}, {"num_trials": 2}, "needs a teacher"),
])
def test_bad_search_input_fails_before_any_trial(bbc_short, hyperparameters, tune, message, tmp_path):
    train, _ = bbc_short
    with pytest.raises(ConfigError) as error:
        _fit(tmp_path / "bad", train, hyperparameters, tune)
    assert message in str(error.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_command_line_searches_with_the_text_form(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    keys = [f"{k}={v}" for k, v in fixed.items()] + ["optimization.max_epochs=1", "optim.lr=loguniform(1e-4,1e-2)"]
    run = subprocess.run([sys.executable, "-m", "automm_lite.cli", "fit", str(tmp_path / "train.csv"), "--label",
                          "label", "--path", str(tmp_path / "cli"), "--verbosity", "0", "--hpo",
                          "num_trials=2,searcher=random", "--hyperparameters", *keys],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "optim.lr" in run.stdout and "complete" in run.stdout
    summary = json.loads(run.stdout[run.stdout.index("{"):])
    assert summary["hpo"]["searcher"] == "random" and summary["hpo"]["spaces"] == {
        "optim.lr": "loguniform(0.0001, 0.01)"}
    assert Predictor.load(tmp_path / "cli", verbosity=0).hpo_results.shape[0] == 2


SHARED_WORKER = """
import sys
from automm_lite import Predictor
from automm_lite.datasets import load_bbc_news
train = load_bbc_news(short=True, seed=0)[0].sample(160, random_state=0)
Predictor("label", eval_metric="accuracy", path=sys.argv[1], verbosity=0).fit(
    train, hyperparameters={hp!r}, hyperparameter_tune_kwargs={tune!r}, seed=int(sys.argv[2]))
"""


def test_two_processes_share_one_postgresql_study_and_no_trial_runs_twice(postgres_url, fixed, tmp_path):
    hp = {**fixed, "optimization.max_epochs": 1, "optim.lr": {"low": 1e-4, "high": 3e-3, "log": True}}
    tune = {"searcher": "random", "num_trials": 4, "storage": postgres_url, "study_name": "shared"}
    script = SHARED_WORKER.format(hp=hp, tune=tune)
    # the same call in both (the same seed: the second worker must not draw the first one's points again)
    workers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"worker{i}"), "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4 and len(study.trials) <= 5  # two workers may ask at the same moment once
    # every trial was fitted by one worker, in its own folder, at values no other trial had
    folders = [t.user_attrs["folder"] for t in study.trials]
    assert len(set(folders)) == len(folders)
    assert {Path(f).parent.parent.parent.name for f in folders} <= {".worker0.fitting", ".worker1.fitting"}
    rates = [t.params["optim.lr"] for t in study.trials]
    assert len(set(rates)) == len(rates)
    password = postgres_url.split(":")[2].split("@")[0]
    assert not any(password in output for output in outputs)
    for i in range(2):
        predictor = Predictor.load(tmp_path / f"worker{i}", verbosity=0)
        assert sorted(predictor.hpo_results.trial) == sorted(t.number for t in study.trials)  # the whole table
        assert predictor.fit_summary()["hpo"]["storage"].startswith("postgresql://automm:***@127.0.0.1")
        for written in ("predictor.json", "fit.log", "README.md"):
            assert password not in (tmp_path / f"worker{i}" / written).read_text()


def test_a_killed_workers_trial_is_failed_and_retried_once_by_another(postgres_url, bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    hp = {**fixed, "optimization.max_epochs": 10, "optim.lr": [1e-3, 2e-3]}  # a trial of seconds: killed in it
    tune = {"searcher": "grid", "num_trials": 2, "storage": postgres_url, "study_name": "killed",
            "heartbeat_s": 1}
    run = subprocess.Popen([sys.executable, "-c", SHARED_WORKER.format(hp=hp, tune=tune), str(tmp_path / "gone"),
                            "0"], start_new_session=True)
    started = tmp_path / ".gone.fitting" / "hpo" / "trials" / ".000.fitting"
    try:
        deadline = time.time() + 120
        while not started.is_dir() and run.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert started.is_dir(), "the first worker did not start its trial"
        time.sleep(2)  # a heartbeat or two recorded
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    time.sleep(4)  # past the grace period (3 heartbeats)
    with pytest.raises(ConfigError, match="was started with other hyperparameters"):  # its trials would not compare
        _fit(tmp_path / "other", train, {**hp, "optimization.max_epochs": 1}, tune)
    predictor = _fit(tmp_path / "survivor", train, hp, tune)  # the same call
    results = predictor.hpo_results.set_index("trial")
    assert results.loc[0, "state"] == "interrupted"
    retried = results[results.state == "complete"]
    assert sorted(retried["optim.lr"]) == [1e-3, 2e-3]  # the killed point again, once, and the other point
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    assert [t.system_attrs.get("failed_trial") for t in study.trials].count(0) == 1


def test_an_unreachable_database_is_named_without_its_password(bbc_short, fixed, tmp_path):
    train, _ = bbc_short
    url = "postgresql://someone:hunter2-secret@127.0.0.1:9/nowhere"
    with pytest.raises(ConfigError) as error:
        _fit(tmp_path / "p", train, {**fixed, "optim.lr": [1e-3]}, {"storage": url})
    assert "127.0.0.1" in str(error.value) and "hunter2" not in str(error.value)
    assert not (tmp_path / "p").exists()
