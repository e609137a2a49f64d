"""What both workers measure, the same way: the standard library and pandas only, so that AutoGluon's
environment and ours can both import it without importing each other's library."""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
import traceback

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(path: str) -> float:
    """Size of the files below ``path`` in MiB (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if not os.path.islink(os.path.join(root, f)))
    return total / 2 ** 20


def timed(call):
    """``(result, seconds)`` of ``call()``."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def one_row_ms(predict_one, frame, n_rows: int, warm_up: int = 2) -> float:
    """Median milliseconds of ``predict_one`` on single-row frames (the first ``n_rows`` rows of ``frame``,
    after ``warm_up`` untimed calls: the first call of a predictor builds what later calls reuse)."""
    for i in range(warm_up):
        predict_one(frame.iloc[[i % len(frame)]])
    seconds = []
    for i in range(min(n_rows, len(frame))):
        _, s = timed(lambda: predict_one(frame.iloc[[i]]))
        seconds.append(s)
    return 1000 * statistics.median(seconds)


def accuracy(predictions, labels) -> float:
    """Share of rows whose prediction equals the label, both compared as strings (each library returns its own
    label dtype)."""
    predictions = [str(p) for p in predictions]
    labels = [str(v) for v in labels]
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def run_job(measure, argv=None) -> int:
    """A worker's main: read the job JSON (argv[1]), call ``measure(job, result)`` and write the result JSON
    (argv[2]) whatever happens; an exception is kept in the result's ``error`` and the exit status is 1."""
    argv = sys.argv if argv is None else argv
    with open(argv[1]) as f:
        job = json.load(f)
    result = {k: job[k] for k in ("library", "setup", "task", "row", "seed")}
    status = 0
    try:
        measure(job, result)
    except Exception:  # the runner reports the failed row and goes on with the others
        result["error"] = traceback.format_exc(limit=6)
        status = 1
    result["peak_rss_mb"] = peak_rss_mb()
    with open(argv[2], "w") as f:
        json.dump(result, f, indent=1, default=str)
    return status


def read_frames(job):
    """The job's train, tuning and test frames (CSV files the runner wrote once for both libraries)."""
    import pandas as pd

    def read(path):
        return None if path is None else pd.read_csv(path, keep_default_na=False, na_values=[""])
    return read(job["train"]), read(job["tuning"]), read(job["test"])
