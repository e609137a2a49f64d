"""Resume points: the training state at the end of every epoch, so that a fit that was killed can continue.

A resume point is Lightning's own checkpoint (weights, optimizer, scheduler, loop progress, early stopping, the
soup's kept weights, the time limit's clock) plus the random states that decide what comes next (the shuffle
order, dropout). It is written to a temporary file and renamed over the last one, so a kill at any moment leaves
the previous point whole. It holds tensors, numbers and strings only, and is read back with
``weights_only=True``: nothing in it can run code.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from ..files import atomic_path

logger = logging.getLogger("automm_lite")

RESUME_FILE = "last_epoch.ckpt"
HISTORY_FILE = "metrics.csv"  # the training log up to the point, across all runs of the fit
TEACHER_OUTPUTS = "teacher_outputs"  # the folder of the teacher outputs a fit stored, beside the points


class ResumePoints(Callback):
    """Write a resume point to ``folder`` at the end of every training epoch.

    Parameters
    ----------
    folder : Path
    history : DataFrame, optional
        The training log's rows of the runs before this one (a resumed fit), kept with every point.
    """

    def __init__(self, folder: Path, history=None):
        self.folder = Path(folder)
        self.history = history
        self._should_stop = False
        self._stop_when_resumed = False

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.save()  # the training log up to this point is kept with it, whatever comes next
            write_merged_log(self.folder / HISTORY_FILE, self.history, Path(trainer.logger.log_dir) / "metrics.csv")
        self._should_stop = bool(trainer.should_stop)  # early stopping decided in this epoch's validation
        target = self.folder / RESUME_FILE
        if not trainer.is_global_zero:  # a call on every process (some strategies gather); the first one writes
            trainer.save_checkpoint(target)
            return
        with atomic_path(target) as temporary:  # the previous point stays whole until the new one is
            trainer.save_checkpoint(temporary)

    def on_train_start(self, trainer, pl_module):
        if self._stop_when_resumed:  # killed after early stopping decided: the resumed fit trains no more
            trainer.should_stop = True

    def state_dict(self) -> dict:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "should_stop": self._should_stop,
                 "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                           "has_gauss": int(has_gauss), "gauss": float(gauss)},
                 "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                             n["gauss"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        self._stop_when_resumed = bool(state.get("should_stop", False))


def write_merged_log(target: Path, earlier, metrics_file: Path) -> None:
    """Write the ``earlier`` rows of the training log, then those of ``metrics_file`` (the current run's), to
    ``target`` (atomically: it may be the resume point's copy)."""
    import pandas as pd

    parts = [rows for rows in (earlier, pd.read_csv(metrics_file) if metrics_file.is_file() else None)
             if rows is not None and len(rows)]
    if not parts:
        return
    with atomic_path(target) as temporary:
        pd.concat(parts, ignore_index=True).to_csv(temporary, index=False)


def resume_point(folder: Path | None) -> Path | None:
    """The last complete resume point in ``folder``, if there is one."""
    if folder is None:
        return None
    path = Path(folder) / RESUME_FILE
    return path if path.is_file() else None


def read_point(point: Path) -> tuple:
    """(epochs finished, optimizer steps done) of the resume point at ``point``; a DataError if it is damaged."""
    from ..exceptions import DataError

    try:
        state = torch.load(point, map_location="cpu", weights_only=True, mmap=True)
        return int(state["epoch"]) + 1, int(state["global_step"])
    except Exception as error:  # whatever a damaged file raises: the message says what to do
        raise DataError(f"The resume point {point} cannot be read ({type(error).__name__}: {error}); pass "
                        "resume=False to start the fit over.") from None


def kept_metrics(folder: Path, step: int):
    """The training log's rows before optimizer step ``step`` (the resume point's), as the runs so far wrote them
    with their points; None when there are none. (The resumed fit's logger starts its file anew.)"""
    import pandas as pd

    history = Path(folder) / HISTORY_FILE
    if not history.is_file():
        return None
    rows = pd.read_csv(history)
    return rows[rows["step"] < step] if "step" in rows else None
