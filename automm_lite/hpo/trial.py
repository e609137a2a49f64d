"""One trial of a hyperparameter search: a whole fit of the searched predictor's class with the trial's sampled
keys (``TrialFit``, picklable), in this process or in a Ray worker (``fit_on_ray``)."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .settings import SearchRequest


@dataclass
class TrialFit:
    """How every trial of a search is fitted: a fresh predictor of the searched one's class, label and metric,
    fitted with the fixed keys and the trial's sampled ones on the same data. Picklable, so that a Ray worker
    fits its trials as this process would."""

    predictor_class: type
    label: str
    problem_type: str | None
    eval_metric: object
    verbosity: int
    request: SearchRequest
    trials_folder: Path
    deadline: float | None  # time.time() when the search's time_limit ends (None: no limit)
    teacher_outputs_folder: Path | None  # shared by trials that run one after another

    def folder(self, number: int) -> Path:
        return self.trials_folder / f"{number:03d}"

    def __call__(self, number: int, sampled: dict, report) -> dict:
        """Fit trial ``number`` with ``sampled`` keys; ``report(validation, step, score)`` hears every
        validation (True stops the fit there). Returns its tuning score, epochs and steps; raises the fit's
        error, its log moved into the trial's folder."""
        from ..logs import set_console_verbosity

        folder = self.folder(number)
        shutil.rmtree(folder, ignore_errors=True)  # a killed earlier attempt with this number
        remaining = None if self.deadline is None else max(1.0, self.deadline - time.time())
        verbosity = self.verbosity
        candidate = self.predictor_class(self.label, self.problem_type, self.eval_metric, path=str(folder),
                                         verbosity=verbosity if verbosity >= 3 else min(verbosity, 1))
        candidate._search_hooks = {"on_validation": report, "teacher_outputs_folder": self.teacher_outputs_folder}
        request = self.request
        try:
            candidate.fit(hyperparameters={**request.fixed, **sampled}, presets=request.presets,
                          time_limit=remaining, seed=request.seed, **request.fit_kwargs)
        except Exception:
            failed_log = folder.parent / f"{folder.name}.failed-fit.log"
            if failed_log.is_file():  # the trial's own log, kept beside the others'
                folder.mkdir(parents=True, exist_ok=True)
                os.replace(failed_log, folder / "fit.log")
            raise
        finally:
            set_console_verbosity(verbosity)
        summary = candidate.fit_summary()
        return {"score": summary[f"val_{candidate.eval_metric}"], "epochs": summary.get("epochs"),
                "steps": summary.get("steps")}

    def for_workers(self) -> "TrialFit":
        """This fit as other processes take it: each teacher as the folder it is saved in (loaded there), not as
        the loaded network."""
        from dataclasses import replace

        from ..io import METADATA_FILE

        def saved(teacher):
            path = teacher if isinstance(teacher, (str, os.PathLike)) else getattr(teacher, "path", None)
            return str(Path(path).resolve()) if path and (Path(path) / METADATA_FILE).is_file() else teacher

        teachers = self.request.fit_kwargs.get("teacher_predictor")
        if isinstance(teachers, (list, tuple)):
            teachers = [saved(t) for t in teachers]
        elif teachers is not None:
            teachers = saved(teachers)
        request = replace(self.request, teachers=[],
                          fit_kwargs={**self.request.fit_kwargs, "teacher_predictor": teachers})
        return replace(self, request=request)


def fit_on_ray(config: dict, fit: TrialFit, cwd: str) -> None:
    """One trial in a Ray worker: each validation reported to Ray's scheduler, then how the fit ended."""
    import socket

    from ray import tune

    from .ray_tune import ERROR, FINAL, in_driver_folder

    in_driver_folder(cwd)
    last, started = {"validation": 0, "step": 0}, time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def report(validation: int, step: int, score: float) -> bool:
        last.update(validation=validation, step=step)
        tune.report({"score": score, "validation": validation, "step": step, "fit_s": time.perf_counter() - started})
        return False  # Ray's scheduler stops a poor trial itself

    try:
        measured = fit(config["trial"], config["sampled"], report)
    except Exception as error:  # noqa: BLE001 (told to the study as a failed trial)
        tune.report({"score": float("nan"), "validation": 0, "step": last["step"],
                     ERROR: f"{type(error).__name__}: {error}", "fit_s": time.perf_counter() - started,
                     "worker": worker})
        return
    tune.report({**measured, **last, "fit_s": time.perf_counter() - started, "worker": worker, FINAL: True})
