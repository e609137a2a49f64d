"""Training on several CPU processes with Lightning's DDP (gloo): the same model as one process, validation over
every tuning row once, one writer, a second DDP fit in the same process, Lightning's ``ddp`` strategy (the
script re-run) and two torchrun "nodes" on 127.0.0.1, a failing process that ends the fit with its error, and
the device keys' errors."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor
from automm_lite.exceptions import ConfigError

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]  # each test starts processes: none may hang the suite

# Without dropout, the two processes' averaged gradient is the one process's (each step's rows split in two
# halves), so the models differ only by the order of float sums: the tuning scores within one row.
SAME_STEPS = {"optimization.max_epochs": 3, "env.batch_size": 16, "model.tabular_mlp.dropout": 0.0,
              "model.fusion_mlp.dropout": 0.0, "model.classical.enabled": False}


@pytest.fixture(autouse=True)
def temporary_files_of_the_test(tmp_path_factory, monkeypatch):
    """torch's process launchers leave error files (and torchrun its folders) in the temporary directory: here,
    one that pytest cleans up."""
    import tempfile

    folder = str(tmp_path_factory.mktemp("temporary"))
    monkeypatch.setattr(tempfile, "tempdir", folder)
    monkeypatch.setenv("TMPDIR", folder)


@pytest.fixture(scope="module")
def digit_table():
    """scikit-learn's 8x8 digits as 64 number columns: 400 training rows (80 of them tuning), 200 test rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data[:600], columns=[f"p{i}" for i in range(64)]).assign(label=digits.target[:600])
    return frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)


def test_two_cpu_processes_train_the_model_of_one(tmp_path, digit_table):
    train, test = digit_table
    threads = torch.get_num_threads()
    one = Predictor("label", path=tmp_path / "one", verbosity=0).fit(
        train, hyperparameters={**SAME_STEPS, "env.per_gpu_batch_size": 16})
    two = Predictor("label", path=tmp_path / "two", verbosity=0).fit(
        train, hyperparameters={**SAME_STEPS, "env.num_processes": 2, "env.per_gpu_batch_size": 8})
    summary, tuning_rows = two.fit_summary(), two.fit_summary()["n_tuning_rows"]
    assert two.config_.env.num_processes == 2 and summary["steps"] == one.fit_summary()["steps"]
    assert abs(summary["val_accuracy"] - one.fit_summary()["val_accuracy"]) <= 1 / tuning_rows + 1e-9
    assert summary["val_accuracy"] > 0.5  # it learned (10 classes)
    assert abs(two.evaluate(test)["accuracy"] - one.evaluate(test)["accuracy"]) <= 0.02
    # After the fit this process predicts, saves and reloads alone; the folder was written once.
    again = Predictor.load(tmp_path / "two", verbosity=0)
    assert (again.predict(test) == two.predict(test)).all()
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]
    assert torch.get_num_threads() == threads  # the processes' share of the cores was this process's for a while
    # A second DDP fit in the same process (another seed) works as the first.
    second = Predictor("label", path=tmp_path / "second", verbosity=0).fit(
        train, seed=1, hyperparameters={**SAME_STEPS, "env.num_processes": 2, "env.per_gpu_batch_size": 8})
    assert second.fit_summary()["val_accuracy"] > 0.5


def test_every_process_takes_its_share_of_rows_and_batches(monkeypatch):
    from automm_lite.data import batching

    orders = {}
    for rank in (0, 1, 2):
        monkeypatch.setattr(batching, "_rank_and_world", lambda rank=rank: (rank, 3))
        sampler = batching.EpochShuffle(10, seed=7, world_size=3)
        sampler.set_epoch(2)
        orders[rank] = list(sampler)
        assert len(orders[rank]) == len(sampler) == 4
    taken = sorted(i for order in orders.values() for i in order)
    assert set(taken) == set(range(10)) and len(taken) == 12  # every row, two repeated to even the shares
    monkeypatch.setattr(batching, "_rank_and_world", lambda: (0, 1))
    whole = batching.EpochShuffle(10, seed=7)
    whole.set_epoch(2)
    assert [orders[r][i] for i in range(3) for r in (0, 1, 2)] == list(whole)[:9]  # the one-process order, dealt
    batches = [np.array([0, 1]), np.array([2, 3]), np.array([4])]
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(batching, "_rank_and_world", lambda rank=rank: (rank, 2))
        shares[rank] = [b.tolist() for b in batching.ShardedBatches(batches, world_size=2)]
    assert shares == {0: [[0, 1], [4]], 1: [[2, 3], [0, 1]]}  # as many batches each; the repeat is dropped later
    assert [b.tolist() for b in batching.ShardedBatches(batches)] == [[0, 1], [2, 3], [4]]  # planned: 1 process
    for rank in (0, 1, 2):  # fewer batches (and rows) than processes: each still gets one, or no step would match
        monkeypatch.setattr(batching, "_rank_and_world", lambda rank=rank: (rank, 3))
        assert len(list(batching.ShardedBatches(batches[:1], world_size=3))) == 1
        assert len(list(batching.EpochShuffle(2, seed=0, world_size=3))) == 1


def _run_script(tmp_path, body: str, command_prefix=(), env_extra=None, n_copies=1):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    # A fresh shell's environment: an earlier fit of this test process left Lightning's MASTER_PORT and the like
    launcher = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "RANK", "OMP_NUM_THREADS"}
    env = {**{k: v for k, v in os.environ.items() if k not in launcher}, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    runs = [subprocess.Popen([*command_prefix(i), str(script)] if callable(command_prefix)
                             else [sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(n_copies)]
    outputs = [run.communicate(timeout=360) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-3000:]
    return "".join(out for out, _ in outputs)


SCRIPT = """
    import os
    import pandas as pd
    from sklearn.datasets import load_digits
    from automm_lite import Predictor

    digits = load_digits()
    train = pd.DataFrame(digits.data[:300], columns=[f"p{{i}}" for i in range(64)]).assign(label=digits.target[:300])
    hp = {{"optimization.max_epochs": 2, "env.batch_size": 16, "model.classical.enabled": False, {keys}}}
    for name in ("first", "second"):
        predictor = Predictor("label", path=name, verbosity=0).fit(train, hyperparameters=hp)
        predictor.save(name + "-copy")
        rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0"
        print("rank", rank, name, predictor.fit_summary()["val_accuracy"], flush=True)
"""


def _ranks_agree(output: str, ranks: int):
    lines = sorted(line.split() for line in output.splitlines() if line.startswith("rank "))
    assert len(lines) == 2 * ranks, output
    for name in ("first", "second"):
        scores = {line[3] for line in lines if line[2] == name}
        assert len(scores) == 1, lines  # every process ends with the same model


def test_ddp_strategy_reruns_the_script_and_only_rank_zero_writes(tmp_path):
    """``env.strategy=ddp`` (Lightning's launcher re-runs the command line for rank 1): both fits of the script
    train on both processes, which end with the same model; only rank 0 writes folders."""
    output = _run_script(tmp_path, SCRIPT.format(keys='"env.num_processes": 2, "env.strategy": "ddp"'))
    _ranks_agree(output, 2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["first", "first-copy", "second",
                                                                         "second-copy"]


def test_two_torchrun_nodes_on_loopback(tmp_path):
    """The same script as two single-process "nodes" (``torchrun --nnodes 2`` on 127.0.0.1, ``env.num_nodes=2``)."""
    port = str(29500 + os.getpid() % 1000)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--master-addr", "127.0.0.1", "--master-port", port]
    output = _run_script(tmp_path, SCRIPT.format(keys='"env.num_nodes": 2'),
                         command_prefix=lambda node: [*torchrun, "--node-rank", str(node)], n_copies=2)
    _ranks_agree(output, 2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["first", "first-copy", "second",
                                                                         "second-copy"]


def test_a_failing_process_ends_the_fit_with_its_error(tmp_path, digit_table, monkeypatch):
    """Rank 1 raises in its third step: the fit raises that error soon (not after gloo's wait), and the
    predictor saved before in the folder still loads."""
    from automm_lite.training.system import LitSystem

    train, _ = digit_table
    hp = {**SAME_STEPS, "optimization.max_epochs": 1}
    Predictor("label", path=tmp_path / "model", verbosity=0).fit(train, hyperparameters=hp)
    step = LitSystem.training_step

    def failing_step(self, batch, batch_idx):
        if self.global_rank == 1 and batch_idx == 2:
            raise RuntimeError("rank 1 cannot go on")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(LitSystem, "training_step", failing_step)  # forked: the processes have it too
    start = time.perf_counter()
    with pytest.raises(Exception, match="rank 1 cannot go on"):
        Predictor("label", path=tmp_path / "model", verbosity=0).fit(
            train, hyperparameters={**hp, "env.num_processes": 2, "env.per_gpu_batch_size": 8})
    assert time.perf_counter() - start < 60
    assert Predictor.load(tmp_path / "model", verbosity=0).fit_summary()["epochs"] >= 1


@pytest.mark.parametrize("keys, message", [
    ({"env.strategy": "dp"}, "env.strategy"),
    ({"env.num_processes": 0}, "env.num_processes"),
    ({"env.accelerator": "tpu"}, "env.accelerator"),
    ({"env.accelerator": "gpu", "env.num_gpus": 0}, "num_gpus=0"),
])
def test_device_keys_that_cannot_work_fail_before_any_work(digit_table, keys, message):
    with pytest.raises(ConfigError, match=message):
        Predictor("label", verbosity=0).fit(digit_table[0], hyperparameters=keys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the errors for a machine without a GPU")
@pytest.mark.parametrize("keys, message", [
    ({"env.num_gpus": 2}, "torch sees 0 GPU"),
    ({"env.accelerator": "gpu"}, "sees no CUDA GPU"),
])
def test_gpu_keys_on_a_machine_without_one(digit_table, keys, message):
    with pytest.raises(ConfigError, match=message):
        Predictor("label", verbosity=0).fit(digit_table[0], hyperparameters=keys)


def test_two_processes_from_a_notebook(tmp_path):
    """In a Jupyter kernel (where Lightning allows only forked processes) the default strategy trains 2 CPU
    processes, and the kernel's predictor predicts afterwards."""
    import nbformat
    from nbclient import NotebookClient

    cell = textwrap.dedent("""
        import pandas as pd
        from sklearn.datasets import load_digits
        from automm_lite import Predictor

        digits = load_digits()
        table = pd.DataFrame(digits.data[:300], columns=[f"p{i}" for i in range(64)]).assign(label=digits.target[:300])
        predictor = Predictor("label", path="model", verbosity=0).fit(table, hyperparameters={
            "env.num_processes": 2, "optimization.max_epochs": 2, "model.classical.enabled": False})
        print(predictor.config_.env.num_processes, (predictor.predict(table) == table["label"]).mean() > 0.5)
    """)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert notebook.cells[0].outputs[-1]["text"].split() == ["2", "True"]


def test_a_ddp_fit_killed_on_one_rank_resumes(tmp_path, digit_table, monkeypatch):
    """Rank 1 fails in the second epoch; ``resume=True`` continues from the resume point rank 0 wrote after the
    first epoch, on 2 processes again, and ends with the model of an uninterrupted fit."""
    from automm_lite.training.system import LitSystem

    train, _ = digit_table
    hp = {**SAME_STEPS, "env.num_processes": 2, "env.per_gpu_batch_size": 8}
    whole = Predictor("label", path=tmp_path / "whole", verbosity=0).fit(train, hyperparameters=hp)
    step = LitSystem.training_step

    def failing_step(self, batch, batch_idx):
        if self.global_rank == 1 and self.current_epoch == 1 and batch_idx == 2:
            raise RuntimeError("rank 1 killed")
        return step(self, batch, batch_idx)

    with monkeypatch.context() as patch:
        patch.setattr(LitSystem, "training_step", failing_step)
        with pytest.raises(Exception, match="rank 1 killed"):
            Predictor("label", path=tmp_path / "resumed", verbosity=0).fit(train, hyperparameters=hp)
    resumed = Predictor("label", path=tmp_path / "resumed", verbosity=0).fit(train, hyperparameters=hp,
                                                                           resume=True)
    assert "Resuming the fit after epoch 1" in (tmp_path / "resumed" / "fit.log").read_text()
    assert resumed.fit_summary()["steps"] == whole.fit_summary()["steps"]
    assert resumed.fit_summary()["val_accuracy"] == pytest.approx(whole.fit_summary()["val_accuracy"], abs=1e-9)


def test_distillation_under_ddp_logs_the_terms_of_one_process(tmp_path, digit_table):
    """A student distilled on 2 processes: the teacher's outputs computed once in the fit's process, the same
    loss terms logged as on one process, and the tuning score of the one-process student within one row."""
    import pandas as pd

    train, _ = digit_table
    teacher = Predictor("label", path=tmp_path / "teacher", verbosity=0).fit(train, hyperparameters=SAME_STEPS)
    students = {}
    for n in (1, 2):
        students[n] = Predictor("label", path=tmp_path / f"student{n}", verbosity=0).fit(
            train, teacher_predictor=teacher, hyperparameters={
                **SAME_STEPS, "model.tabular_mlp.hidden_size": 64, "env.num_processes": n,
                "env.per_gpu_batch_size": 16 // n, "distiller.teacher_check": False})  # distil whatever it scores
    logged = {n: {c for c in pd.read_csv(tmp_path / f"student{n}" / "logs" / "metrics.csv").columns
                  if c.startswith("train_")} for n in (1, 2)}
    assert logged[1] == logged[2] and len(logged[1]) >= 3, logged  # the loss and at least two terms
    one, two = (students[n].fit_summary() for n in (1, 2))
    assert one["distillation_recipe"] == two["distillation_recipe"]
    assert abs(one["val_accuracy"] - two["val_accuracy"]) <= 1 / one["n_tuning_rows"] + 1e-9
