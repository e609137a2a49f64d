"""Batch prediction of Parquet files (``predict_dataset``): every input file gives an output file of the same
name, its rows in the input's order and under the input's index. On Ray, Ray Data shares the files out to a pool
of workers that each hold the loaded predictor (``map_batches`` with an actor pool); locally, this process
predicts them one after another."""
from __future__ import annotations

import glob
import logging
import os
import socket
import time
from pathlib import Path

from .exceptions import ConfigError, DataError
from .files import atomic_path

logger = logging.getLogger("automm_lite")

EXECUTORS = ("local", "ray")


def predict_dataset(predictor, source, destination, executor="local", proba=False, address=None, num_workers=None,
                    resources_per_worker=None):
    """Predict every Parquet file of ``source`` into a file of the same name in ``destination``.

    Parameters
    ----------
    predictor : str or Path
        The folder of a saved predictor (each worker loads it from there: on a cluster, a folder every node sees).
    source : str, Path or list
        A folder (its ``*.parquet`` files), a glob pattern (``"in/*.parquet"``), one file, or a list of files.
    destination : str or Path
        The output folder (made if missing). Each output is written whole or not at all; one already there is
        replaced.
    executor : {"local", "ray"}
        ``local``: the files one after another in this process. ``ray``: in parallel on a Ray cluster
        (``pip install 'automm_lite[ray]'``).
    proba : bool
        Write class probabilities (one column per class, as ``predict_proba``) instead of the labels.
    address : str, optional
        The Ray cluster (e.g. ``"ray://head:10001"``, ``"auto"``); without it a local one is started on this
        machine's CPUs and stopped after.
    num_workers : int, optional
        Ray workers holding a loaded predictor (default: as many as the cluster's CPUs hold, at most one per
        file).
    resources_per_worker : dict, optional
        What each Ray worker asks for, e.g. ``{"cpu": 2, "gpu": 1}``; default one CPU.

    Returns
    -------
    DataFrame
        One row per input file, in input order: ``source``, ``output``, ``rows``, ``seconds`` (its prediction,
        reading and writing) and ``worker`` (the host and process that predicted it).

    Raises
    ------
    ConfigError
        A bad executor, worker count or resource, or two inputs with the same file name.
    DataError
        No Parquet file in ``source``, or a file without the predictor's columns (named before any prediction).
    """
    import pandas as pd

    from .hpo.settings import check_resources_per_trial
    from .io import METADATA_FILE

    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r}: 'local' (this process) or 'ray' (a Ray cluster).")
    if executor == "local" and (address is not None or num_workers is not None or resources_per_worker is not None):
        raise ConfigError("address, num_workers and resources_per_worker are for executor='ray'; pass "
                          "executor='ray' too, or leave them out.")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 1):
        raise ConfigError(f"num_workers must be a whole number >= 1, got {num_workers!r}.")
    resources = check_resources_per_trial(resources_per_worker) or {"cpu": 1}
    folder = Path(predictor).resolve()
    if not (folder / METADATA_FILE).is_file():
        raise ConfigError(f"predictor must be the folder of a saved predictor; {str(predictor)!r} holds none "
                          f"({METADATA_FILE} is missing).")
    files = _parquet_files(source)
    names = [f.name for f in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"Two inputs are named {repeated[0]!r}: their outputs would have the same name in "
                          f"{destination}; rename one or predict them into different folders.")
    _check_columns(folder, files)
    out = Path(destination).resolve()
    if any(f.parent == out for f in files):
        raise ConfigError(f"destination {str(destination)!r} holds the input files: each would be replaced by its "
                          "predictions; write them to another folder.")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [{"source": str(f), "output": str(out / f.name)} for f in files]
    started = time.perf_counter()
    if executor == "local":
        from .predictor import Predictor

        loaded = Predictor.load(folder, verbosity=0)
        done = [predict_file(loaded, job["source"], job["output"], proba) for job in jobs]
    else:
        done = _on_ray(str(folder), jobs, proba, address, num_workers, resources)
    table = pd.DataFrame(done)[["source", "output", "rows", "seconds", "worker"]]
    logger.info("Predicted %d rows of %d files in %.1f s (%s).", table.rows.sum(), len(table),
                time.perf_counter() - started, executor)
    return table


def _parquet_files(source) -> list:
    if isinstance(source, (list, tuple)):
        files = [Path(s) for s in source]
    elif Path(source).is_dir():
        files = sorted(Path(source).glob("*.parquet")) + sorted(Path(source).glob("*.pq"))
    elif any(ch in str(source) for ch in "*?["):
        files = [Path(f) for f in sorted(glob.glob(str(source)))]
    else:
        files = [Path(source)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"No such Parquet file: {missing[0]!r}.")
    if not files:
        raise DataError(f"No Parquet file in {str(source)!r}: give a folder of .parquet files, a pattern such as "
                        "'in/*.parquet', or a list of files.")
    return [f.resolve() for f in files]


def _check_columns(folder: Path, files: list) -> None:
    """Every file has the predictor's feature columns (read from the Parquet schemas, not the rows)."""
    import json

    import pyarrow.parquet as pq

    from .io import METADATA_FILE

    metadata = json.loads((folder / METADATA_FILE).read_text())
    label = metadata.get("label")
    needed = [c for c in metadata.get("preprocessor", {}).get("column_types", {}) if c != label]
    for path in files:
        try:
            names = set(pq.read_schema(path).names)
        except Exception as error:  # noqa: BLE001 (pyarrow's errors: a file that is not Parquet)
            raise DataError(f"{str(path)!r} cannot be read as Parquet: {error}.") from None
        lacking = [c for c in needed if c not in names]
        if lacking:
            raise DataError(f"{str(path)!r} lacks the predictor's column(s) {lacking}; it has {sorted(names)}.")


def predict_file(predictor, source: str, output: str, proba: bool) -> dict:
    """Predict one Parquet file into ``output`` (written to a temporary file beside it, then renamed)."""
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_parquet(source)  # with the index pandas stored
    result = predictor.predict_proba(frame) if proba else predictor.predict(frame).to_frame()
    result.columns = [str(c) for c in result.columns]
    with atomic_path(output) as temporary:
        result.to_parquet(temporary)
    return {"source": source, "output": output, "rows": len(result), "seconds": time.perf_counter() - started,
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


class FileWorker:
    """A Ray Data worker: loads the predictor once, then predicts the files it is handed."""

    def __init__(self, predictor: str, proba: bool):
        from .predictor import Predictor

        self.predictor, self.proba = Predictor.load(predictor, verbosity=0), proba

    def __call__(self, batch):
        import pandas as pd

        return pd.DataFrame([predict_file(self.predictor, source, output, self.proba)
                             for source, output in zip(batch["source"], batch["output"])])


def _on_ray(predictor: str, jobs: list, proba: bool, address, num_workers, resources: dict) -> list:
    from .hpo.ray_tune import check_cluster, connected

    with connected(address):
        import ray

        check_cluster(resources)
        if num_workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)
            num_workers = max(1, min(len(jobs), int(cpus // max(resources.get("cpu", 1), 1e-9)) or 1))
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the table in input order
        context.enable_progress_bars = False
        # A block per file, one file at a time per worker: a free worker takes the next file.
        pool = ray.data.ActorPoolStrategy(size=min(num_workers, len(jobs)), max_tasks_in_flight_per_actor=1)
        rows = ray.data.from_items(jobs, override_num_blocks=len(jobs)).map_batches(
            FileWorker, fn_constructor_args=(predictor, proba), batch_size=1, batch_format="pandas", compute=pool,
            num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0)).take_all()
    order = {job["source"]: i for i, job in enumerate(jobs)}
    return sorted(rows, key=lambda row: order[row["source"]])
