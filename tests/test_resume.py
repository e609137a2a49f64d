"""Kill and resume: a fit killed with SIGKILL continues from its last finished epoch to the very model an
uninterrupted fit gives, with or without a teacher; a resumed call must be the same fit."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError
from automm_lite.io import work_folder

KILLS_DURING_FIT = 3  # docs/dev/reliability.md quotes this
EPOCHS = 20  # enough that the kills, each up to 0.3 s after a new resume point, fall before the fit ends
WAIT = 600  # seconds a run may take to write its next resume point

# One fit (or, with "finish", Predictor.load(path, resume=True)) in its own process, as a user's script would run
# it; it writes the test rows' probabilities next to the predictor. The text column is of object dtype, which a
# Parquet file gives back as str: a replay from the stored files must still be the same fit.
FIT = """if True:
    import json, sys
    import numpy as np
    from automm_lite import Predictor
    from automm_lite.datasets import load_bbc_news
    train, test = load_bbc_news(short=True, seed=0)
    train = train.sample(160, random_state=0).astype({"text": object})
    args = json.loads(sys.argv[1])
    path, teacher = args.pop("path"), args.pop("teacher", None)
    if args.pop("finish", False):
        predictor = Predictor.load(path, verbosity=0, resume=True)
    else:
        predictor = Predictor("label", eval_metric="accuracy", path=path, verbosity=0).fit(
            train, seed=1, teacher_predictor=teacher, resume=True, **args)
    np.save(path + ".proba.npy", predictor.predict_proba(test.sample(60, random_state=0)).to_numpy())
"""


def fit_args(tiny_hp):
    return {**tiny_hp, "optimization.max_epochs": EPOCHS, "optimization.patience": EPOCHS}


def point_of(path):
    return work_folder(path) / "resume" / "last_epoch.ckpt"


def start(args, repo_root, stderr):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", FIT, json.dumps(args)], env=env, stderr=stderr)


def run_to_the_end(args, repo_root, tmp_path):
    """Run FIT with ``args`` to its end; returns the probabilities it wrote."""
    errors = tmp_path / "run.stderr"
    with open(errors, "w") as stderr:
        assert start(args, repo_root, stderr).wait(timeout=WAIT) == 0, errors.read_text()
    return np.load(args["path"] + ".proba.npy")


def kill_during_fit(path, hyperparameters, repo_root, rng, kills, teacher=None):
    """Start the fit in a subprocess and SIGKILL it at a random moment after each new resume point, ``kills``
    times; returns the epochs each killed run had finished."""
    import torch

    point, finished = point_of(path), []
    errors = Path(path).parent / f"{Path(path).name}.stderr"
    for _ in range(kills):
        before = point.stat().st_mtime_ns if point.exists() else None
        with open(errors, "w") as stderr:
            fit = start({"path": str(path), "hyperparameters": hyperparameters, "teacher": teacher}, repo_root,
                        stderr)
        deadline = time.monotonic() + WAIT
        while (not point.exists() or point.stat().st_mtime_ns == before) and fit.poll() is None:
            assert time.monotonic() < deadline, "no new resume point: " + errors.read_text()
            time.sleep(0.02)
        assert fit.poll() is None, errors.read_text()  # it must still be training when killed
        time.sleep(rng.uniform(0.0, 0.3))  # in the next epoch, or in the next resume point's write
        fit.send_signal(signal.SIGKILL)
        fit.wait()
        finished.append(int(torch.load(point, weights_only=True)["epoch"]) + 1)  # a whole point, no pickle
    assert not Path(path).exists()  # nothing saved before the fit ends
    return finished


@pytest.mark.slow
def test_a_fit_killed_again_and_again_resumes_to_the_uninterrupted_model(tiny_hp, repo_root, tmp_path):
    import pandas as pd

    hyperparameters = fit_args(tiny_hp)
    killed = tmp_path / "killed"
    finished = kill_during_fit(killed, hyperparameters, repo_root, random.Random(0), KILLS_DURING_FIT)
    assert finished == sorted(finished) and finished[-1] < EPOCHS, finished
    # finished from what the fit stored (its arguments, its frames as Parquet files), in a new process
    resumed = run_to_the_end({"path": str(killed), "finish": True}, repo_root, tmp_path)
    whole = run_to_the_end({"path": str(tmp_path / "whole"), "hyperparameters": hyperparameters}, repo_root,
                           tmp_path)
    np.testing.assert_array_equal(resumed, whole)
    log = (killed / "fit.log").read_text()
    assert log.count("Resuming the fit after epoch") == KILLS_DURING_FIT, log

    def steps(folder):
        return pd.read_csv(folder / "logs" / "metrics.csv").dropna(subset=["train_loss"])["step"].tolist()

    assert steps(killed) == steps(tmp_path / "whole")  # one training log across the runs, none of it lost
    assert not work_folder(killed).exists()  # the training state went with the finished fit
    assert not any(killed.rglob("*.ckpt"))


def test_a_killed_distillation_reuses_its_teacher_outputs(fitted_text_predictor, tiny_hp, repo_root, tmp_path):
    hyperparameters = {**fit_args(tiny_hp), "optimization.max_epochs": 3, "distiller.synthetic_rows": 1,
                       "distiller.teacher_check": False}  # the tiny teacher is below a linear model: distil anyway
    killed = tmp_path / "student"
    kill_during_fit(killed, hyperparameters, repo_root, random.Random(1), 1, teacher=fitted_text_predictor.path)
    assert (work_folder(killed) / "resume" / "teacher_outputs" / "outputs.json").is_file()
    args = {"hyperparameters": hyperparameters, "teacher": fitted_text_predictor.path}
    resumed = run_to_the_end({"path": str(killed), **args}, repo_root, tmp_path)  # fit(..., resume=True) again
    assert "read from the interrupted fit" in (killed / "fit.log").read_text()
    whole = run_to_the_end({"path": str(tmp_path / "whole"), **args}, repo_root, tmp_path)
    np.testing.assert_array_equal(resumed, whole)


@pytest.fixture
def interrupted(bbc_short, tiny_hp, repo_root, tmp_path):
    """A fit killed after its first epoch: (its path, its hyperparameters)."""
    hyperparameters = fit_args(tiny_hp)
    path = tmp_path / "interrupted"
    kill_during_fit(path, hyperparameters, repo_root, random.Random(2), 1)
    return path, hyperparameters


def test_a_resumed_call_must_be_the_same_fit(interrupted, bbc_short):
    path, hyperparameters = interrupted
    train = bbc_short[0].astype({"text": object})  # the interrupted fit's rows, as FIT reads them
    predictor = Predictor("label", eval_metric="accuracy", path=str(path), verbosity=0)
    with pytest.raises(ConfigError, match="started with other train_data: pass the same arguments"):
        predictor.fit(train.head(100), seed=1, hyperparameters=hyperparameters, resume=True)
    with pytest.raises(ConfigError, match="started with other hyperparameters, seed"):
        predictor.fit(train, seed=2, hyperparameters={**hyperparameters, "optim.lr": 1e-4}, resume=True)
    assert point_of(path).is_file()  # the mistakes cost the interrupted fit nothing
    with pytest.raises(ConfigError, match="resume must be True or False"):
        predictor.fit(train, seed=1, hyperparameters=hyperparameters, resume="yes")
    with pytest.raises(ConfigError, match="resume must be True or False"):
        Predictor.load(path, resume=1)


def test_a_fit_without_resume_starts_over(interrupted, bbc_short):
    path, hyperparameters = interrupted
    train, _ = bbc_short
    fitted = Predictor("label", eval_metric="accuracy", path=str(path), verbosity=0).fit(
        train, seed=1, hyperparameters={**hyperparameters, "optimization.max_epochs": 1})
    assert fitted.fit_summary()["epochs"] == 1
    assert "Resuming" not in (path / "fit.log").read_text()
    assert not work_folder(path).exists()


def test_resume_with_nothing_to_resume(fitted_text_predictor, bbc_short, tiny_hp, tmp_path):
    train, test = bbc_short
    loaded = Predictor.load(fitted_text_predictor.path, verbosity=0, resume=True)  # no interrupted fit: a load
    assert loaded.predict(test).equals(fitted_text_predictor.predict(test))
    fresh = Predictor("label", path=str(tmp_path / "fresh"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1}, resume=True)
    assert fresh.fit_summary()["epochs"] == 1
    off = Predictor("label", path=str(tmp_path / "off"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "env.resume_points": False})
    assert off.fit_summary()["epochs"] == 1
