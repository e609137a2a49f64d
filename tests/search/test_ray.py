"""Searches and predictions on a real Ray cluster: a head node started by ``ray start`` on loopback (stopped after),
trials of the predictor's search and of the AutoDistiller run in parallel on it, Ray's ASHA stops a poor trial, a
failed trial is recorded, Ray Data predicts Parquet files as ``predict`` does."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError, DataError

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """A two-CPU Ray head node on 127.0.0.1, as `ray start --head` starts one on a real cluster (in the foreground,
    so that stopping it stops this cluster's processes only); stopped after."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="ray_", dir="/tmp")  # Ray's sockets need a short path
    port = _free_port()
    env = {**os.environ, "RAY_worker_niceness": "0"}  # loopback, no token: tests/conftest.py
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _HEAD["session"] = head.pid  # the session of the cluster's processes (start_new_session)
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head node did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
        try:
            head.wait(timeout=15)
        except subprocess.TimeoutExpired:  # what is left of it
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


_HEAD = {}


def _overlap(first_log: Path, second_log: Path) -> bool:
    """Whether two fit calls ran at the same time: each ends with "Fitted in <s> s", logged at its end."""
    import datetime
    import re

    def span(log):
        last = log.read_text().strip().splitlines()[-1]
        end = datetime.datetime.strptime(last[:23], "%Y-%m-%d %H:%M:%S,%f")
        return end - datetime.timedelta(seconds=float(re.search(r"Fitted in ([0-9.]+) s", last).group(1))), end

    (start_a, end_a), (start_b, end_b) = span(first_log), span(second_log)
    return start_b < end_a and start_a < end_b


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fixed(tiny_hp):
    return {key: value for key, value in tiny_hp.items() if not key.startswith("model.timm_image")}


def _search(path, train, hyperparameters, tune):
    return Predictor("label", eval_metric="accuracy", path=str(path), verbosity=0).fit(
        train, hyperparameters=hyperparameters, hyperparameter_tune_kwargs={"executor": "ray", **tune})


def test_two_trials_run_at_once_on_the_cluster_and_the_best_is_the_predictor(ray_address, bbc_short, fixed,
                                                                              tmp_path):
    import optuna

    train, test = bbc_short
    predictor = _search(tmp_path / "searched", train, {**fixed, "optim.lr": [3e-3, 1e-3]},
                        {"searcher": "grid", "num_trials": 2, "address": ray_address})
    results = predictor.hpo_results
    assert list(results.state) == ["complete", "complete"] and results.val_accuracy.notna().all()
    study = optuna.load_study(study_name="automm_lite_hpo",
                              storage=f"sqlite:///{Path(predictor.path) / 'hpo' / 'study.db'}")
    trials = Path(predictor.path) / "hpo" / "trials"
    assert _overlap(trials / "000" / "fit.log", trials / "001" / "fit.log")  # the two fits ran at once
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # in two worker processes
    best = results.loc[results.val_accuracy.idxmax()]
    assert predictor.fit_summary()["hpo"]["best_trial"] == best.trial
    assert predictor.fit_summary()["hpo"]["executor"] == "ray"
    # The chosen trial is the predictor, as with the local executor: a local fit of its values predicts the same.
    again = Predictor("label", eval_metric="accuracy", path=str(tmp_path / "again"), verbosity=0).fit(
        train, hyperparameters={**fixed, "optim.lr": best["optim.lr"]})
    assert (again.predict(test) == predictor.predict(test)).all()
    assert (Predictor.load(predictor.path, verbosity=0).predict(test) == predictor.predict(test)).all()
    assert not (Path(predictor.path) / "hpo" / "ray").exists()
    assert not ray.is_initialized()  # this process connected for the search only


def test_rays_asha_stops_a_poor_trial_and_a_failed_trial_is_recorded(ray_address, bbc_short, fixed,
                                                                     tiny_text_dir, tmp_path):
    train, _ = bbc_short
    # One trial at a time (2 CPUs each), in grid order (the encoders, then the rates): the good rate reaches ASHA's
    # rung before the poor one.
    spaces = {"optimization.max_epochs": 3, "optim.lr": [3e-3, 1e-9],
              "model.hf_text.checkpoint_name": [tiny_text_dir, str(tmp_path / "no_such_encoder")]}
    predictor = _search(tmp_path / "asha", train, {**fixed, **spaces},
                        {"searcher": "grid", "scheduler": "ASHA", "grace_period": 2, "num_trials": 3,
                         "address": ray_address, "resources_per_trial": {"cpu": 2}})
    results = predictor.hpo_results.set_index("trial")
    assert results.loc[0, "state"] == "complete"
    assert results.loc[1, "state"] == "pruned" and results.loc[1, "pruned_at_step"] > 0
    assert results.loc[2, "state"] == "failed" and "no_such_encoder" in results.loc[2, "error"]
    assert predictor.fit_summary()["hpo"]["best_trial"] == 0
    assert not list((Path(predictor.path) / "hpo" / "trials").glob(".*.fitting"))


def test_a_trial_whose_worker_is_killed_is_failed_and_the_search_goes_on(ray_address, bbc_short, fixed, tmp_path):
    import threading

    train, _ = bbc_short
    started = tmp_path / ".killed.fitting" / "hpo" / "trials" / ".000.fitting" / "fit.log"  # trial 0 is fitting
    killed = []

    def kill_the_first_trials_worker():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not started.is_file():
            time.sleep(0.2)
        listed = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
        for pid, session, command in (line.split(None, 2) for line in listed.splitlines() if line.strip()):
            if int(session) == _HEAD["session"] and "ray::ImplicitFunc" in command:  # this cluster's trial
                os.kill(int(pid), signal.SIGKILL)
                killed.append(pid)

    killer = threading.Thread(target=kill_the_first_trials_worker, daemon=True)
    killer.start()
    predictor = _search(tmp_path / "killed", train, {**fixed, "optimization.max_epochs": 4, "optim.lr": [3e-3, 1e-3]},
                        {"searcher": "grid", "num_trials": 2, "address": ray_address,
                         "resources_per_trial": {"cpu": 2}})  # one trial at a time
    killer.join(timeout=10)
    assert killed, "no Ray worker was found to kill"
    results = predictor.hpo_results.set_index("trial")
    assert results.loc[0, "state"] == "failed" and "Ray worker stopped" in results.loc[0, "error"]
    assert results.loc[1, "state"] == "complete" and predictor.fit_summary()["hpo"]["best_trial"] == 1
    assert not list((Path(predictor.path) / "hpo" / "trials").glob(".*.fitting"))


def test_resources_no_node_holds_and_ray_settings_without_ray_are_named(ray_address, bbc_short, fixed, tmp_path,
                                                                       capsys):
    train, _ = bbc_short
    with pytest.raises(ConfigError, match="fits no node"):
        _search(tmp_path / "big", train, {**fixed, "optim.lr": [3e-3, 1e-3]},
                {"num_trials": 2, "address": ray_address, "resources_per_trial": {"cpu": 64}})
    with pytest.raises(ConfigError, match="for executor='ray'"):
        Predictor("label", path=str(tmp_path / "local")).fit(
            train, hyperparameters={**fixed, "optim.lr": [3e-3, 1e-3]},
            hyperparameter_tune_kwargs={"address": ray_address})
    with pytest.raises(ConfigError, match="'gpus' is not 'cpu' or 'gpu'"):
        _search(tmp_path / "bad", train, {**fixed, "optim.lr": [3e-3, 1e-3]}, {"resources_per_trial": {"gpus": 1}})
    from automm_lite.cli import main

    train.to_csv(tmp_path / "train.csv", index=False)
    assert main(["fit", str(tmp_path / "train.csv"), "--label", "label", "--executor", "ray"]) == 2
    assert "pass --hpo too" in capsys.readouterr().err
    # Without Ray installed, executor='ray' names the extra, before any work.
    script = textwrap.dedent("""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        import pandas as pd
        from automm_lite import Predictor
        from automm_lite.exceptions import ConfigError
        frame = pd.DataFrame({"text": ["a b", "c d"] * 4, "label": [0, 1] * 4})
        try:
            Predictor("label").fit(frame, hyperparameters={"optim.lr": [1e-3, 1e-4]},
                                   hyperparameter_tune_kwargs={"executor": "ray"})
        except ConfigError as error:
            print(error)
    """)
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
    assert "pip install 'automm_lite[ray]'" in shown.stdout, shown.stderr[-2000:]


def test_an_autodistiller_search_runs_two_students_at_once_on_the_cluster(ray_address, search_teacher, bbc_short,
                                                                          quick, tmp_path):
    import optuna

    from automm_lite import AutoDistiller
    from automm_lite.search.study import STUDY_NAME

    train, test = bbc_short
    search = AutoDistiller(search_teacher, search_space={"num_layers": [1, 2], "num_attention_heads": [2]},
                           n_trials=2, sampler="grid", refit=False, path=str(tmp_path / "search"), verbosity=0,
                           executor="ray", address=ray_address, **quick).fit(train)
    results = search.results_.set_index("trial")
    assert list(results.state) == ["complete", "complete"]
    assert results.tuning_score.notna().all() and (results.latency_ms > 0).all()
    assert results.loc[0, "parameters"] < results.loc[1, "parameters"]  # one layer against two
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}")
    # Two workers at once: reused workers fit one trial after another, so a second worker means a second slot.
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    # Each trial's student was saved by its worker and loads here, as with the local executor.
    for folder in results.predictor:
        assert len(Predictor.load(folder, verbosity=0).predict(test.head(8))) == 8
    assert search.best_predictor_ is not None
    # Run again with one more trial: the sampler draws a point the study has scored, whose result is reused.
    again = AutoDistiller(search_teacher, search_space={"num_layers": [1, 2], "num_attention_heads": [2]},
                          n_trials=3, sampler="random", refit=False, path=str(tmp_path / "search"), verbosity=0,
                          executor="ray", address=ray_address, **quick).fit(train)
    third = again.results_.set_index("trial").loc[2]
    assert third.state == "complete" and third.duplicate_of in (0, 1) and third.fit_s == 0
    with pytest.raises(ConfigError, match="for executor='ray'"):
        AutoDistiller(search_teacher, address=ray_address, path=str(tmp_path / "local")).fit(train)


def _parquet_folder(test, folder: Path) -> Path:
    """The test rows as three Parquet files of uneven sizes, under an index of their own (not 0..n)."""
    folder.mkdir()
    frame = test.drop(columns=["label"]).set_index(pd.Index(range(1000, 1000 + 3 * len(test), 3), name="row_id"))
    for number, part in enumerate((frame.iloc[:20], frame.iloc[20:25], frame.iloc[25:])):
        part.to_parquet(folder / f"part-{number}.parquet")
    return folder


def test_ray_data_predicts_a_parquet_folder_exactly_as_predict(ray_address, fitted_text_predictor, bbc_short,
                                                              tmp_path):
    from automm_lite import predict_dataset

    _, test = bbc_short
    source = _parquet_folder(test, tmp_path / "in")
    table = predict_dataset(fitted_text_predictor.path, str(source / "*.parquet"), tmp_path / "out",
                            executor="ray", address=ray_address, num_workers=2)
    assert list(table.rows) == [20, 5, len(test) - 25] and table.worker.str.contains(":").all()
    for number in range(3):
        given = pd.read_parquet(source / f"part-{number}.parquet")
        written = pd.read_parquet(tmp_path / "out" / f"part-{number}.parquet")
        pd.testing.assert_frame_equal(written, fitted_text_predictor.predict(given).to_frame())
    # Probabilities from the command line on Ray (a folder in, a folder out; without --address, on a local cluster
    # the command starts and stops) are the local executor's.
    local = predict_dataset(fitted_text_predictor.path, source, tmp_path / "local", proba=True)
    assert local.worker.nunique() == 1
    shown = subprocess.run([sys.executable, "-m", "automm_lite.cli", "predict", fitted_text_predictor.path,
                            str(source), "--output", str(tmp_path / "cli"), "--proba", "--executor", "ray",
                            "--num-workers", "1"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "3 files" in shown.stdout
    for number in range(3):
        on_ray = pd.read_parquet(tmp_path / "cli" / f"part-{number}.parquet")
        pd.testing.assert_frame_equal(on_ray, pd.read_parquet(tmp_path / "local" / f"part-{number}.parquet"))
        assert list(on_ray.columns) == [str(c) for c in fitted_text_predictor.class_labels]
    with pytest.raises(ConfigError, match="holds the input files"):
        predict_dataset(fitted_text_predictor.path, source, source)
    with pytest.raises(DataError, match="lacks the predictor's column"):
        pd.DataFrame({"other": ["x"]}).to_parquet(tmp_path / "bad.parquet")
        predict_dataset(fitted_text_predictor.path, tmp_path / "bad.parquet", tmp_path / "never")
    assert not (tmp_path / "never").exists()
