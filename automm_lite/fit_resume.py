"""What a fit keeps in its work folder so that it can be continued after a kill: a fingerprint of its arguments
(a resumed fit must be the same fit) and the arguments themselves (``Predictor.load(path, resume=True)`` replays
the call). The training state itself is the training package's (``training/resume.py``).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .exceptions import ConfigError
from .files import atomic_path

logger = logging.getLogger("automm_lite")

RESUME_FOLDER = "resume"      # inside the fit's work folder
FINGERPRINT_FILE = "fingerprint.json"
CALL_FILE = "call.json"       # the fit's arguments, with its frames beside it as Parquet files
FRAMES = ("train_data", "tuning_data", "unlabeled_data")
SEARCH_FOLDER = "hpo"          # a hyperparameter search's study, trials and results, inside the fit's folder


def frame_digest(frame) -> str | None:
    """A hash of a frame's columns, types, index and values."""
    import pandas as pd

    if frame is None:
        return None
    digest = hashlib.sha256(json.dumps([list(map(str, frame.columns)), list(map(str, frame.dtypes))]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def teacher_stamp(path) -> list:
    """A teacher's folder and a hash of its ``predictor.json`` (a teacher fitted again there is another one)."""
    path = Path(path).resolve()
    metadata = path / "predictor.json"
    return [str(path), hashlib.sha256(metadata.read_bytes()).hexdigest() if metadata.is_file() else None]


def fingerprint(request, label, problem_type, eval_metric) -> dict:
    """What makes two fits the same fit: the data, the resolved config, the seed, the task and the teachers (the
    time limit may change between an interrupted fit and its continuation)."""
    from .metrics import get_metric

    config = json.dumps(request.config.to_dict(), sort_keys=True, default=str)
    return {"train_data": frame_digest(request.train), "tuning_data": frame_digest(request.tuning),
            "unlabeled_data": frame_digest(request.unlabeled),
            "hyperparameters": hashlib.sha256(config.encode()).hexdigest(), "seed": request.seed,
            "label": label, "problem_type": problem_type,
            "eval_metric": None if eval_metric is None else get_metric(eval_metric, problem_type).name,
            "column_types": json.dumps(request.column_types, sort_keys=True, default=str),
            "holdout_frac": request.holdout_frac,
            "teacher_predictor": [teacher_stamp(t.path) for t in request.teachers]}


def resume_folder(work_dir: Path) -> Path:
    return Path(work_dir) / RESUME_FOLDER


def has_resume_state(work_dir: Path) -> bool:
    """Whether an interrupted fit in ``work_dir`` left something to continue from: a finished epoch's resume
    point, the teacher outputs it computed, or a hyperparameter search's study."""
    from .distill.teacher import OUTPUTS_LIST
    from .training.resume import RESUME_FILE, TEACHER_OUTPUTS

    folder = resume_folder(work_dir)
    if (Path(work_dir) / SEARCH_FOLDER / "study.db").is_file():
        return True
    return (folder / FINGERPRINT_FILE).is_file() and (
        (folder / RESUME_FILE).is_file() or (folder / TEACHER_OUTPUTS / OUTPUTS_LIST).is_file())


def check_same_fit(work_dir: Path, current: dict) -> None:
    """Raise if the interrupted fit in ``work_dir`` was started with other arguments than ``current``."""
    if not (resume_folder(work_dir) / FINGERPRINT_FILE).is_file():
        raise ConfigError(f"The interrupted fit in {work_dir} is a hyperparameter search: continue it with the same "
                          "hyperparameters (their search spaces) and hyperparameter_tune_kwargs, and resume=True; "
                          "or pass resume=False to start over.")
    stored = json.loads((resume_folder(work_dir) / FINGERPRINT_FILE).read_text())

    def same(name):  # a frame's digest as passed, or as read back from the file stored for the replay
        kept = stored.get(name)
        return current[name] in kept if name in FRAMES and isinstance(kept, list) else kept == current[name]

    changed = [name for name in current if not same(name)]
    if changed:
        raise ConfigError(f"The interrupted fit in {work_dir} was started with other {', '.join(changed)}: pass "
                          "the same arguments to continue it, or resume=False to start over.")


def record_fit(work_dir: Path, current: dict, call: dict, frames: dict) -> None:
    """Write the fingerprint, and the call with its frames for ``Predictor.load(path, resume=True)``. A call whose
    frames cannot be written as Parquet can still be continued by calling ``fit(..., resume=True)`` again."""
    import pandas as pd

    folder = resume_folder(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    current = dict(current)
    try:
        for name, frame in frames.items():
            if frame is not None:
                frame.to_parquet(folder / f"{name}.parquet")
                # a file may give back other dtypes (object -> str): the replayed frame is the same fit
                current[name] = [current[name], frame_digest(pd.read_parquet(folder / f"{name}.parquet"))]
        _write_json(folder / CALL_FILE, call)
    except Exception as error:  # noqa: BLE001 (pyarrow raises many kinds for a column it cannot store)
        logger.warning("This fit can be continued with fit(..., resume=True) only, not Predictor.load(path, "
                       "resume=True): its arguments could not be stored (%s: %s).", type(error).__name__, error)
        (folder / CALL_FILE).unlink(missing_ok=True)
    _write_json(folder / FINGERPRINT_FILE, current)


@dataclass
class ResumePlan:
    """What a fit to a folder does to be continued after a kill: its fingerprint (None when its arguments cannot be
    hashed) and whether it records its call and resume points."""

    same_fit: dict | None
    record: bool


def plan_resume(request, label, problem_type, eval_metric, path, resume: bool) -> ResumePlan:
    """Resume points need a path to come back to (not the default timestamped one) and data that can be hashed;
    a fit that cannot have them says so and runs without."""
    record = bool(request.config.env.resume_points and path is not None)
    same_fit = None
    if record or resume:
        try:
            same_fit = fingerprint(request, label, problem_type, eval_metric)
        except Exception as error:  # noqa: BLE001 (cells pandas cannot hash: lists, dicts, ...)
            logger.warning("This fit cannot be resumed after a kill: its arguments cannot be fingerprinted "
                           "(%s: %s).", type(error).__name__, error)
            record = False
    return ResumePlan(same_fit, record)


def begin_or_continue(plan: ResumePlan, work_dir: Path, resuming: bool, call: dict, request) -> None:
    """Continuing: check that this is the interrupted fit. Starting: record the call (its teachers as their
    folders) and the frames, so that ``Predictor.load(path, resume=True)`` can replay it."""
    if resuming:
        if plan.same_fit is None:
            raise ConfigError("resume=True, but these arguments cannot be compared with the interrupted fit's (see "
                              "the warning); pass resume=False to start over.")
        check_same_fit(work_dir, plan.same_fit)
    elif plan.record:
        call = {**call, "teacher_predictor": [path for path, _ in plan.same_fit["teacher_predictor"]] or None}
        record_fit(work_dir, plan.same_fit, call, {"train_data": request.train, "tuning_data": request.tuning,
                                                   "unlabeled_data": request.unlabeled})


def stored_call(work_dir: Path) -> dict:
    """The arguments of the interrupted fit in ``work_dir``, its frames read back (no pickle)."""
    import pandas as pd

    folder = resume_folder(work_dir)
    if not (folder / CALL_FILE).is_file():
        raise ConfigError(f"The interrupted fit in {work_dir} did not store its arguments (see its fit.log): call "
                          "fit(..., resume=True) with the same arguments to continue it.")
    call = json.loads((folder / CALL_FILE).read_text())
    for name in FRAMES:
        file = folder / f"{name}.parquet"
        call[name] = pd.read_parquet(file) if file.is_file() else None
    return call


def _write_json(path: Path, values: dict) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(values, default=str))
