"""The student search's study, on a real Optuna study in a SQLite file: opened and resumed with its settings checked,
its sampler, a repeated point's result reused, the trial table, a trial's measurements checked."""
import math

import optuna
import pytest

from automm_lite.exceptions import ConfigError
from automm_lite.search.study import (STUDY_NAME, best_so_far, make_sampler, objective_values, open_study,
                                      reuse_duplicate, trial_rows)

SETTINGS = {"objectives": ["accuracy", "latency"], "metric": "accuracy", "space": {"num_layers": "{}"}}
DIRECTIONS = ["maximize", "minimize"]


def _open(tmp_path, settings=SETTINGS, directions=DIRECTIONS, grid=None, storage=None):
    return open_study(storage, tmp_path, directions, make_sampler("random", 0), settings, grid, verbosity=0)


def test_a_study_is_made_in_the_search_folder_and_opened_again(tmp_path):
    study = _open(tmp_path)
    study.tell(study.ask(), [0.9, 3.0])
    again = _open(tmp_path)
    assert (tmp_path / "study.db").is_file() and again.study_name == STUDY_NAME
    assert [t.values for t in again.get_trials()] == [[0.9, 3.0]]


def test_a_study_made_for_other_settings_or_directions_is_refused(tmp_path):
    _open(tmp_path)
    with pytest.raises(ConfigError, match="other objectives, metric or search space"):
        _open(tmp_path, settings={**SETTINGS, "metric": "f1"})
    with pytest.raises(ConfigError, match="other objectives"):
        _open(tmp_path, directions=["minimize", "minimize"])


def test_a_trial_left_running_in_the_folders_own_study_is_failed_when_it_opens_again(tmp_path):
    study = _open(tmp_path)
    study.ask()  # a process killed mid-trial leaves it running
    states = [t.state for t in _open(tmp_path).get_trials()]
    assert states == [optuna.trial.TrialState.FAIL]


def test_grid_points_are_queued_once(tmp_path):
    grid = {"num_layers": [1, 2]}
    _open(tmp_path, grid=grid)
    study = _open(tmp_path, grid=grid)  # opened again: the same points are not queued twice
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.system_attrs["fixed_params"]["num_layers"] for t in waiting) == [1, 2]


def test_the_samplers_by_name_and_a_sampler_object_as_it_is():
    assert isinstance(make_sampler("tpe", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("nsga2", 0), optuna.samplers.NSGAIISampler)
    assert isinstance(make_sampler("grid", 0), optuna.samplers.RandomSampler)
    mine = optuna.samplers.RandomSampler(seed=1)
    assert make_sampler(mine, 0) is mine


def test_a_point_already_scored_is_told_its_result_and_marked_a_duplicate(tmp_path):
    study = _open(tmp_path)
    first = study.ask({"num_layers": optuna.distributions.IntDistribution(1, 4)})
    first.set_user_attr("tuning_score", 0.8)
    study.tell(first, [0.8, 2.0])
    point = lambda params, shape: tuple(sorted(params.items()))  # noqa: E731
    second = study.ask({"num_layers": optuna.distributions.IntDistribution(1, 4)})
    same = point(first.params, None)
    assert reuse_duplicate(study, second, same, point)
    told = study.get_trials()[second.number]
    assert told.values == [0.8, 2.0] and told.user_attrs["duplicate_of"] == first.number
    assert told.user_attrs["fit_s"] == 0.0 and told.user_attrs["tuning_score"] == 0.8
    third = study.ask()
    assert not reuse_duplicate(study, third, (("num_layers", 99),), point)


def test_the_trial_table_names_each_state(tmp_path):
    study = _open(tmp_path, grid={"num_layers": [3]})
    done = study.ask({"num_layers": optuna.distributions.IntDistribution(1, 4)})  # the queued point
    done.set_user_attr("latency_ms", 2.5)
    study.tell(done, [0.7, 2.5])
    failed = study.ask()
    failed.set_user_attr("error", "ValueError: no")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # no error recorded: it was interrupted
    slow = study.ask()
    study.tell(slow, state=optuna.trial.TrialState.PRUNED)
    rows = trial_rows(study, ["latency_ms"])
    assert [r["state"] for r in rows] == ["complete", "failed", "interrupted", "over budget"]
    assert rows[0]["latency_ms"] == 2.5 and rows[1]["error"] == "ValueError: no"
    assert rows[0]["num_layers"] == 3  # the queued grid point ran first; none is left waiting in the table


@pytest.mark.parametrize("metrics, message", [
    ([0.9], "must return a dict"),
    ({"accuracy": 0.9}, "every objective: latency"),
    ({"accuracy": "high", "latency": 1.0}, "not a number"),
    ({"accuracy": math.nan, "latency": 1.0}, "cannot be scored"),
])
def test_a_trials_measurements_must_be_finite_numbers_for_every_objective(metrics, message):
    with pytest.raises(ConfigError, match=message):
        objective_values(metrics, ["accuracy", "latency"])


def test_extra_measurements_are_kept_and_need_not_be_finite():
    assert objective_values({"accuracy": 1, "latency": 2, "note": math.inf}, ["accuracy", "latency"]) == {
        "accuracy": 1.0, "latency": 2.0, "note": math.inf}


def test_the_progress_note(tmp_path):
    study = _open(tmp_path)
    assert best_so_far(study, "accuracy", True) == "no finished trial yet"
    for score, latency in ((0.7, 3.0), (0.9, 5.0)):
        trial = study.ask()
        trial.set_user_attr("tuning_score", score)
        trial.set_user_attr("latency_ms", latency)
        study.tell(trial, [score, latency])
    assert best_so_far(study, "accuracy", True) == "best accuracy 0.9000, fastest 3.00 ms"
    assert best_so_far(study, "rmse", False) == "best rmse 0.7000, fastest 3.00 ms"
