"""A small teacher to search students of: a random 4-layer BERT (hidden 32, 4 heads), fitted on real BBC rows; a
throwaway PostgreSQL server for shared studies."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def search_teacher(bbc_short, make_tiny_encoder, tmp_path_factory):
    from automm_lite import Predictor

    train, _ = bbc_short
    folder = tmp_path_factory.mktemp("search_teacher")
    encoder = make_tiny_encoder(folder / "encoder", layers=4, hidden=32, heads=4)
    hyperparameters = {"model.hf_text.checkpoint_name": encoder, "model.hf_text.max_text_len": 32,
                       "optimization.max_epochs": 2, "optimization.learning_rate": 1e-3, "env.batch_size": 16,
                       "env.per_gpu_batch_size": 16, "optimization.top_k": 1}
    return Predictor("label", eval_metric="accuracy", path=str(folder / "teacher"), verbosity=0).fit(
        train, hyperparameters=hyperparameters)


# A flash distillation that takes a second: 3 steps per layer, 1 epoch; full fits of 1 epoch.
QUICK = {"flash": {"steps_per_layer": 3, "batch_size": 16},
         "hyperparameters": {"optimization.max_epochs": 1, "env.batch_size": 16, "env.per_gpu_batch_size": 16,
                             "optimization.top_k": 1}}


@pytest.fixture
def quick():
    return {key: dict(value) for key, value in QUICK.items()}


def _postgres_bin() -> "Path":
    from pathlib import Path

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("PostgreSQL is not installed: `bash scripts/install.sh --dev` installs Debian's postgresql.")
    return found[-1].parent


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server on a free loopback port, with a password; stopped and removed after the
    module's tests, whatever they did. As root it runs as the ``postgres`` user (the server refuses root)."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    binaries = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="automm_lite_pg_"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    data, password = folder / "data", "s3cret-pw"
    (folder / "pw").write_text(password)
    if as_user:
        shutil.chown(folder / "pw", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command):
        subprocess.run([*as_user, *map(str, command)], check=True, capture_output=True, timeout=120)

    try:
        run(binaries / "initdb", "-D", data, "-U", "automm", "--pwfile", folder / "pw", "-A", "scram-sha-256")
        run(binaries / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "-o",
            f"-p {port} -h 127.0.0.1 -k {folder}", "start")
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "automm",
                        "studies"], check=True, capture_output=True, timeout=60, env=env)
        yield f"postgresql://automm:{password}@127.0.0.1:{port}/studies"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
