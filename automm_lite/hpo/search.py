"""Hyperparameter search of ``Predictor.fit`` (AutoGluon's ``hyperparameter_tune_kwargs``) on Optuna: each trial
is a whole fit with sampled keys, the best one becomes the fitted predictor."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from ..exceptions import ConfigError, NotFittedError
from ..fit_resume import SEARCH_FOLDER
from .settings import SearchRequest
from .spaces import choice_value, describe
from .trial import TrialFit, fit_on_ray

logger = logging.getLogger("automm_lite")


class Search:
    """One search: its Optuna study in ``folder`` (or ``settings.storage``), trials fitted one after another."""

    def __init__(self, predictor, request: SearchRequest, folder: Path, metric, start: float):
        self.predictor = predictor
        self.request = request
        self.settings = request.settings
        self.folder = folder
        self.metric = metric  # the Metric scored on the tuning rows
        self.start = start
        (folder / "trials").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ study
    def study(self):
        import optuna

        from .study import open_storage, queue_grid

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        settings = self.settings
        own_file = settings.storage is None
        storage = open_storage(settings.storage, self.folder / "study.db", settings.heartbeat_s)
        pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.grace_period,
                                                         reduction_factor=settings.reduction_factor)
                  if settings.scheduler == "ASHA" else optuna.pruners.NopPruner())
        direction = "maximize" if self.metric.greater_is_better else "minimize"
        study = optuna.create_study(study_name=settings.study_name, storage=storage, direction=direction,
                                    pruner=pruner, load_if_exists=True)
        study.sampler = self._sampler(study)
        described = {"metric": self.metric.name, "searcher": settings.searcher,
                     "spaces": {k: optuna.distributions.distribution_to_json(d)
                                for k, d in self.request.spaces.items()},
                     "call": self.request.call}
        stored = study.user_attrs.get("search")
        where = "the search folder" if own_file else repr(_where(settings.storage))
        if stored is None:
            study.set_user_attr("search", described)
        elif {k: v for k, v in stored.items() if k != "call"} != {k: v for k, v in described.items() if k != "call"}:
            raise ConfigError(f"The study {settings.study_name!r} in {where} searched other spaces or another "
                              f"metric ({stored['metric']}, {sorted(stored['spaces'])}); resume it with those, or "
                              "use another path (or study_name).")
        elif stored.get("call") and described["call"] and stored["call"] != described["call"]:
            differ = sorted(k for k in set(stored["call"]) | set(described["call"])
                            if stored["call"].get(k) != described["call"].get(k))
            raise ConfigError(f"The study {settings.study_name!r} in {where} was started with other {', '.join(differ)}"
                              "; its trials would not compare with this call's: pass the same arguments, or use "
                              "another path (or study_name).")
        if own_file:  # the study in the search folder is this fit's alone: a trial still "running" was killed,
            # and is tried again with its values (as a shared database's heartbeats do)
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                if trial.params and settings.searcher != "grid":  # a grid queues its missing points itself
                    study.enqueue_trial(trial.params, skip_if_exists=False)
        if settings.searcher == "grid":
            queue_grid(study, {k: list(d.choices) for k, d in self.request.spaces.items()})
        return study

    def _sampler(self, study):
        """Seeded by the fit's seed in a new study of the search folder, by the seed and the trials there in a
        resumed one (so that it does not draw the first run's points again); in a shared storage at random, as
        workers that start together see the same empty study and must not draw the same points."""
        import optuna

        seed = self.request.seed
        if self.settings.storage is not None:
            seed = int(uuid.uuid4().int % (2**31))
        elif study.get_trials(deepcopy=False):
            seed += 7919 * len(study.get_trials(deepcopy=False))
        if self.settings.searcher == "bayes":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    # ------------------------------------------------------------------ trials
    def run(self):
        """Run the trials the study still lacks; return the study."""
        from tqdm.auto import tqdm

        from .study import ask, counted, fail_stale_trials, grid_size

        study = self.study()
        if self.settings.storage is None:  # other workers' trials may be running in a shared study's folder
            for stale in (self.folder / "trials").glob(".*.fitting"):  # the work folder of a killed trial
                shutil.rmtree(stale, ignore_errors=True)
        limit = self.settings.num_trials
        if self.settings.searcher == "grid":
            limit = min(limit, grid_size({k: d.choices for k, d in self.request.spaces.items()}))
        run_id = uuid.uuid4().hex
        fail_stale_trials(study)  # a killed worker's trial, failed and queued again, is still to run
        done = counted(study, run_id)
        if done:
            logger.info("The search resumes with %d of %d trials done.", done, limit)
        if self.settings.executor == "ray":
            self._run_on_ray(study, run_id, limit - done)
            return study
        bar = tqdm(total=limit, initial=min(done, limit), desc="hyperparameter search", unit="trial",
                   disable=self.predictor.verbosity < 2)
        time_limit = self.request.time_limit
        try:
            while True:
                fail_stale_trials(study)  # before counting: a dead worker's trial counts no more
                if counted(study, run_id) >= limit:
                    break
                spent = time.perf_counter() - self.start
                if time_limit is not None and spent > time_limit and _best(study) is not None:
                    logger.info("time_limit (%g s) reached: no more trials.", time_limit)
                    break
                self._run_one(study, ask(study), run_id)
                bar.update(1)
                best = _best(study)
                if best is not None:
                    bar.set_postfix_str(f"best {self.metric.name} {best.value:.4f} (trial {best.number})")
        finally:
            bar.close()
        return study

    def _run_on_ray(self, study, run_id: str, trials: int) -> None:
        """``trials`` trials on Ray (``hpo/ray_tune.py``), as many at once as the cluster holds."""
        from .ray_tune import DEFAULT_RESOURCES, ERROR, FINAL, WORKER_STOPPED, RayTrials, reported, run_trials

        fit = self.trial_fit().for_workers()

        def sample(trial) -> dict:
            trial.set_user_attr("run", run_id)
            trial.set_user_attr("folder", str(fit.folder(trial.number)))
            sampled = self._sample(trial)
            logger.info("Trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in sampled.items()))
            return {"trial": trial.number, "sampled": sampled}

        def finish(trial, result: dict, died: bool) -> None:
            outcome = {name: reported(result, name) for name in ("score", "epochs", "steps", "fit_s", "worker")}
            if not result.get(FINAL):  # its fit did not end: its work folder goes
                shutil.rmtree(self.folder / "trials" / f".{trial.number:03d}.fitting", ignore_errors=True)
                if ERROR in result:
                    outcome["error"] = result[ERROR]
                elif died:
                    outcome["error"] = WORKER_STOPPED
                else:  # stopped by Ray's ASHA where it stood
                    outcome.update(pruned_at_step=result.get("step"), pruned_at_validation=result.get("validation"),
                                   pruned_score=result.get("score"))
            self.finish(study, trial, outcome)

        settings = self.settings
        asha = (settings.grace_period, settings.reduction_factor) if settings.scheduler == "ASHA" else None
        run_trials(RayTrials(study=study, sample=sample, trainable=fit_on_ray,
                             payload={"fit": fit, "cwd": os.getcwd()}, finish=finish, metric="score",
                             mode="max" if self.metric.greater_is_better else "min", trials=trials,
                             resources=settings.resources_per_trial or DEFAULT_RESOURCES, folder=self.folder / "ray",
                             deadline=fit.deadline, asha=asha), settings.address)

    def _sample(self, trial) -> dict:
        from .spaces import suggest

        return {key: choice_value(d, suggest(trial, key, d)) for key, d in self.request.spaces.items()}

    def trial_fit(self) -> TrialFit:
        remaining = None if self.request.time_limit is None else \
            self.request.time_limit - (time.perf_counter() - self.start)
        shared_outputs = self.settings.executor == "local"  # parallel trials would write the cache at once
        return TrialFit(type(self.predictor), self.predictor.label, self.predictor._problem_type,
                        self.predictor._eval_metric, self.predictor.verbosity, self.request, self.folder / "trials",
                        None if remaining is None else time.time() + remaining,
                        self.folder / "teacher_outputs" if shared_outputs else None)

    def _run_one(self, study, trial, run_id: str) -> None:
        from .study import Heartbeat

        fit = self.trial_fit()
        trial.set_user_attr("run", run_id)
        trial.set_user_attr("folder", str(fit.folder(trial.number)))  # a shared study's trials are spread
        sampled = self._sample(trial)
        pruned = {}

        def report(validation: int, step: int, score: float) -> bool:
            trial.report(score, validation)
            if self.settings.scheduler == "ASHA" and trial.should_prune():
                pruned.update(validation=validation, step=step, score=score)
                return True
            return False

        logger.info("Trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in sampled.items()))
        started = time.perf_counter()
        try:
            with Heartbeat(study, trial):
                measured = fit(trial.number, sampled, report)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001 (a failed trial is recorded and the search goes on)
            self.finish(study, trial, {"error": f"{type(error).__name__}: {error}",
                                       "fit_s": time.perf_counter() - started})
            return
        self.finish(study, trial, {**measured, "fit_s": time.perf_counter() - started,
                                   **({"pruned_at_step": pruned["step"], "pruned_at_validation": pruned["validation"],
                                       "pruned_score": pruned["score"]} if pruned else {})})

    def finish(self, study, trial, outcome: dict) -> None:
        """Tell the study how ``trial`` ended: ``outcome`` holds its ``score`` (finished), ``pruned_at_step``
        (stopped by ASHA) or ``error`` (failed), with its ``fit_s``, ``epochs`` and ``steps``."""
        import optuna

        if "error" not in outcome and outcome.get("pruned_at_step") is None and outcome.get("score") is None:
            outcome = {**outcome, "error": "its tuning score is not a number"}  # e.g. NaN from a diverged fit
        for name in ("fit_s", "epochs", "steps", "score", "pruned_at_step", "pruned_at_validation", "worker"):
            if outcome.get(name) is not None:
                trial.set_user_attr(name, outcome[name])
        if "error" in outcome:
            trial.set_user_attr("error", str(outcome["error"])[:1000])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("Trial %d failed: %s", trial.number, outcome["error"])
            return
        if outcome.get("pruned_at_step") is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            logger.info("Trial %d stopped by ASHA at validation %s (step %s): tuning %s %.4f.", trial.number,
                        outcome["pruned_at_validation"], outcome["pruned_at_step"], self.metric.name,
                        outcome["pruned_score"])
        else:
            study.tell(trial, outcome["score"])
            logger.info("Trial %d: tuning %s %.4f, fit %.0f s.", trial.number, self.metric.name, outcome["score"],
                        outcome["fit_s"])
        self._keep_best(study)

    def _keep_best(self, study) -> None:
        """Keep whole only the trials that may be chosen (the best so far, and ``num_to_keep`` more); the others
        keep their log, metrics and summary."""
        import optuna

        ranked = _ranked(study)
        keep = {t.number for t in ranked[:1 + self.settings.num_to_keep]}  # the best and the runners-up
        own = self.own_trials(ranked)
        keep |= {own[0].number} if own else set()  # in a shared study, this worker's best too
        running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
        self.strip_all_but(keep | running)  # a parallel trial's folder may be saved and its score not told yet

    def strip_all_but(self, keep: set) -> None:
        """Strip the trial folders here whose number is not in ``keep`` to their log, metrics and summary."""
        for trial_folder in (self.folder / "trials").iterdir():
            if trial_folder.is_dir() and trial_folder.name.isdigit() and int(trial_folder.name) not in keep:
                strip_predictor(trial_folder)

    def own_trials(self, trials) -> list:
        """The trials fitted here (a shared study holds other workers' too)."""
        here = str(self.folder / "trials")
        return [t for t in trials if str(Path(t.user_attrs.get("folder", "")).parent) == here]

    def candidates(self, study) -> list:
        """``(trial, folder)`` of the finished trials whose predictor this process can load, best first: a trial's
        own folder, or the predictor a search saved it as (a trial another worker on another machine fitted, or
        whose folder has gone, is not one)."""
        from ..io import METADATA_FILE

        saved = study.user_attrs.get("saved_as", {})
        found = []
        for trial in _ranked(study):
            for folder in (trial.user_attrs.get("folder"), saved.get(str(trial.number))):
                if folder and (Path(folder) / METADATA_FILE).is_file():
                    found.append((trial, folder))
                    break
        return found

    # ------------------------------------------------------------------ result
    def results(self, study):
        """Every trial: its state, sampled values, tuning score, fit seconds, where ASHA stopped it."""
        import optuna
        import pandas as pd

        from .study import state_name

        rows = []
        for trial in study.get_trials(deepcopy=False):
            if trial.state == optuna.trial.TrialState.WAITING:
                continue
            attrs = trial.user_attrs
            state = state_name(trial)
            params = {k: choice_value(self.request.spaces[k], v) if k in self.request.spaces else v
                      for k, v in trial.params.items()}
            rows.append({"trial": trial.number, "state": state, **params,
                         f"val_{self.metric.name}": attrs.get("score"), "fit_s": attrs.get("fit_s"),
                         "epochs": attrs.get("epochs"), "steps": attrs.get("steps"),
                         "pruned_at_step": attrs.get("pruned_at_step"), "error": attrs.get("error"),
                         **({"worker": attrs.get("worker")} if self.settings.executor == "ray" else {})})
        return pd.DataFrame(rows)


def _where(storage) -> str:
    from .study import safe_url

    return safe_url(storage) if isinstance(storage, str) else type(storage).__name__


def _ranked(study) -> list:
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(done, key=lambda t: (-t.value if maximize else t.value, t.number))


def _best(study):
    ranked = _ranked(study)
    return ranked[0] if ranked else None


def strip_predictor(folder: Path) -> None:
    """Remove a trial's weights, keeping its ``fit.log``, its metrics (``logs/``) and its summary."""
    from ..io import METADATA_FILE

    metadata = folder / METADATA_FILE
    if metadata.is_file():
        summary = json.loads(metadata.read_text()).get("fit_summary", {})
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for item in list(folder.iterdir()):
        if item.name in ("fit.log", "logs", "summary.json"):
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def fit_with_search(predictor, request: SearchRequest, resume: bool, start: float):
    """Run the search for ``predictor`` (its ``path`` holds the study while it runs) and make the best trial the
    fitted predictor, saved at ``path`` with the search folder inside."""
    from ..io import fit_folder, save_atomically
    from ..metrics import DEFAULT_METRIC, get_metric
    from ..training.strategy import started_as_other_rank

    if started_as_other_rank():
        raise ConfigError("A hyperparameter search runs its trials from one process: start it without torchrun, "
                          "SLURM or env.strategy='ddp' (a trial may still train on env.num_processes CPU "
                          "processes with 'ddp_fork').")
    metric = get_metric(predictor._eval_metric or DEFAULT_METRIC[_problem_type(predictor, request)])
    with fit_folder(predictor.path, resume) as folder:
        predictor.path = str(folder.save_path)
        search = Search(predictor, request, folder.work_dir / SEARCH_FOLDER, metric, start)
        logger.info("Hyperparameter search: %s over %s; %s",
                    ", ".join(f"{k}={v}" for k, v in request.settings.as_dict().items() if v is not None),
                    ", ".join(f"{k}: {describe(d)}" for k, d in request.spaces.items()), folder.work_dir)
        study = search.run()
        results = search.results(study)
        results.to_csv(search.folder / "results.csv", index=False)
        best = None
        for trial, trial_folder in search.candidates(study):
            try:  # another worker may strip or move its trial meanwhile: the next one then
                adopt(predictor, type(predictor).load(trial_folder, verbosity=predictor.verbosity))
            except (OSError, ValueError) as error:
                logger.info("Trial %d cannot be loaded from %s (%s); trying the next.", trial.number, trial_folder,
                            error)
                continue
            best = trial
            break
        if best is None:
            top = _best(study)
            if top is not None:
                raise NotFittedError(
                    f"The study's finished trials were fitted elsewhere (their folders are not here); its best is "
                    f"trial {top.number} ({', '.join(f'{k}={v}' for k, v in top.params.items())}, tuning "
                    f"{metric.name} {top.value:.4f}): load the predictor its worker saved, or fit with these values.")
            errors = "; ".join(sorted(set(results.error.dropna()))) if "error" in results else ""
            raise NotFittedError(f"No trial of the search finished ({errors[:500] or 'all stopped early'}); see "
                                 f"{folder.save_path.parent / (folder.save_path.name + '.failed-fit.log')}.")
        if best.number != _best(study).number:
            logger.warning("The study's best trial %d was fitted by another worker whose folder is not here; this "
                           "predictor is trial %d, the best of those here.", _best(study).number, best.number)
        study.set_user_attr("saved_as", {**study.user_attrs.get("saved_as", {}),
                                         str(best.number): str(folder.save_path)})
        params = {k: choice_value(request.spaces[k], v) for k, v in best.params.items()}
        predictor._summary = {**predictor._summary, "training_time": time.perf_counter() - start,
                              "hpo": {**request.settings.as_dict(), "best_trial": best.number,
                                      "best_params": params, "metric": metric.name,
                                      "spaces": {k: describe(d) for k, d in request.spaces.items()},
                                      "trials": _records(results)}}
        logger.info("Best trial %d: %s; tuning %s %.4f.", best.number,
                    ", ".join(f"{k}={v}" for k, v in params.items()), metric.name, best.value)
        folder.log_handler.close()
        runners_up = [t.number for t in search.own_trials(_ranked(study)) if t.number != best.number]
        search.strip_all_but(set(runners_up[:request.settings.num_to_keep]))  # the chosen one is the predictor
        shutil.rmtree(search.folder / "teacher_outputs", ignore_errors=True)
        save_atomically(predictor, folder.save_path, staging=folder.work_dir)
    return predictor


def _records(frame) -> list:
    """The rows of a table as JSON-ready dicts, numbers kept exactly (NaN as None)."""
    import math

    def plain(value):
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and math.isnan(value) else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _problem_type(predictor, request: SearchRequest) -> str:
    from ..data.preprocess import infer_problem_type

    if predictor._problem_type:
        return predictor._problem_type
    if request.teachers:
        return request.teachers[0].problem_type
    return infer_problem_type(request.fit_kwargs["train_data"][predictor.label], predictor._eval_metric)


def adopt(predictor, fitted) -> None:
    """Make ``predictor`` the fitted predictor ``fitted`` (loaded from the chosen trial): its fitted attributes
    (trailing ``_``) and summary; the label, path, verbosity and constructor arguments stay ``predictor``'s."""
    for name, value in vars(fitted).items():
        if (name.endswith("_") and not name.startswith("__")) or name in ("_summary", "last_timing"):
            setattr(predictor, name, value)  # the fitted state; the constructor's arguments stay the caller's
    predictor._runner = None


def search_folder(path) -> Path | None:
    """The search folder of a saved predictor fitted by a search, or None."""
    folder = Path(path) / SEARCH_FOLDER
    return folder if (folder / "results.csv").is_file() else None

