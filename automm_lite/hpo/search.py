"""Hyperparameter search of ``Predictor.fit`` (AutoGluon's ``hyperparameter_tune_kwargs``) on Optuna: each trial
is a whole fit with sampled keys, the best one becomes the fitted predictor."""
from __future__ import annotations

import json
import logging
import numbers
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import ConfigError, NotFittedError
from ..fit_resume import SEARCH_FOLDER
from .spaces import choice_value, describe, extremes, split_spaces

logger = logging.getLogger("automm_lite")

SEARCHERS = {"random": "random", "bayes": "bayes", "tpe": "bayes", "auto": "bayes", "grid": "grid"}
SCHEDULERS = {"fifo": "FIFO", "asha": "ASHA", "none": "FIFO"}
EXECUTORS = ("local",)
STUDY_NAME = "automm_lite_hpo"
TUNE_DEFAULTS = {"searcher": "bayes", "scheduler": "FIFO", "num_trials": 8, "storage": None, "executor": "local",
                 "study_name": STUDY_NAME, "num_to_keep": 0, "grace_period": 1, "reduction_factor": 3,
                 "heartbeat_s": 10}


@dataclass
class TuneSettings:
    """The checked ``hyperparameter_tune_kwargs``."""

    searcher: str = "bayes"
    scheduler: str = "FIFO"
    num_trials: int = 8
    storage: object = None
    executor: str = "local"
    study_name: str = STUDY_NAME
    num_to_keep: int = 0
    grace_period: int = 1
    reduction_factor: int = 3
    heartbeat_s: int = 10

    @classmethod
    def read(cls, kwargs) -> "TuneSettings":
        """``hyperparameter_tune_kwargs`` as settings; a ConfigError names a bad one before any trial."""
        if isinstance(kwargs, str):  # the command line's "num_trials=8,searcher=bayes"
            kwargs = _read_text_settings(kwargs)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"hyperparameter_tune_kwargs must be a dict such as {{'num_trials': 8, 'searcher': "
                              f"'bayes', 'scheduler': 'ASHA'}}, not {type(kwargs).__name__}.")
        unknown = sorted(set(kwargs) - set(TUNE_DEFAULTS))
        if unknown:
            raise ConfigError(f"Unknown hyperparameter_tune_kwargs {unknown}; valid: {', '.join(TUNE_DEFAULTS)}.")
        merged = {**TUNE_DEFAULTS, **kwargs}
        searcher = SEARCHERS.get(str(merged["searcher"]).lower())
        if searcher is None:
            raise ConfigError(f"searcher {merged['searcher']!r} is not known; use 'random', 'bayes' (Optuna's TPE) "
                              "or 'grid'.")
        scheduler = SCHEDULERS.get(str(merged["scheduler"]).lower())
        if scheduler is None:
            raise ConfigError(f"scheduler {merged['scheduler']!r} is not known; use 'FIFO' (every trial runs to "
                              "its end) or 'ASHA' (poor trials stopped at a validation).")
        if merged["executor"] not in EXECUTORS:
            raise ConfigError(f"executor {merged['executor']!r} is not known; use one of {', '.join(EXECUTORS)}.")
        for name, least in (("num_trials", 1), ("num_to_keep", 0), ("grace_period", 1), ("reduction_factor", 2),
                            ("heartbeat_s", 1)):
            value = merged[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ConfigError(f"hyperparameter_tune_kwargs['{name}'] must be a whole number >= {least}, got "
                                  f"{value!r}.")
        storage = merged["storage"]
        if storage is not None and not isinstance(storage, str) and \
                type(storage).__module__.split(".")[0] != "optuna":
            raise ConfigError(f"storage must be an Optuna storage URL (e.g. 'sqlite:///study.db') or an Optuna "
                              f"storage, not {type(storage).__name__}.")
        if not isinstance(merged["study_name"], str) or not merged["study_name"]:
            raise ConfigError(f"study_name must be a non-empty string, got {merged['study_name']!r}.")
        return cls(searcher, scheduler, int(merged["num_trials"]), storage, merged["executor"],
                   merged["study_name"], int(merged["num_to_keep"]), int(merged["grace_period"]),
                   int(merged["reduction_factor"]), int(merged["heartbeat_s"]))

    def as_dict(self) -> dict:
        """The settings to log and keep in the fit summary (a database URL without its password)."""
        from .study import safe_url

        storage = safe_url(self.storage) if isinstance(self.storage, str) else \
            None if self.storage is None else type(self.storage).__name__
        return {"searcher": self.searcher, "scheduler": self.scheduler, "num_trials": self.num_trials,
                "storage": storage,
                "executor": self.executor, "study_name": self.study_name}


def _read_text_settings(text: str) -> dict:
    import yaml

    settings = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"--hpo: {part[:40]!r} is not name=value; e.g. num_trials=8,searcher=bayes.")
        name, value = part.split("=", 1)
        try:
            settings[name.strip()] = yaml.safe_load(value.strip())
        except yaml.YAMLError:
            settings[name.strip()] = value.strip()
    return settings


@dataclass
class SearchRequest:
    """What a searched fit was asked: the fixed keys, the spaces, the settings and the fit's other arguments."""

    fixed: dict
    spaces: dict
    settings: TuneSettings
    fit_kwargs: dict  # the other arguments of each trial's fit
    presets: object = None
    time_limit: float | None = None
    seed: int = 0
    teachers: list = field(default_factory=list)
    call: dict | None = None  # a fingerprint of the data and fixed arguments: a resumed or shared study's must match


def read_search(hyperparameters, presets, hyperparameter_tune_kwargs, has_teacher: bool) -> tuple:
    """``(fixed keys, spaces, settings or None, the preset trials use)`` of a fit's arguments, checked: a space
    whose values are no value of its key, or spaces without ``hyperparameter_tune_kwargs``, is a ConfigError."""
    from ..config import Config, apply_overrides, canonical_key, value_kind
    from ..presets import preset_search

    base_preset, preset_raw, preset_tune = preset_search(presets)
    preset_spaces = split_spaces(preset_raw)[1]
    fixed, spaces = split_spaces(hyperparameters)
    given = {canonical_key(k) for k in [*fixed, *spaces]}
    spaces = {**{k: v for k, v in preset_spaces.items() if canonical_key(k) not in given}, **spaces}
    for key in spaces:  # an unknown key is named before anything else is said of its space
        if value_kind(key) is None:
            apply_overrides(Config(), {key: None})
    tune = hyperparameter_tune_kwargs
    if tune is None and preset_tune is not None:
        tune = preset_tune
    if spaces and tune is None:
        named = ", ".join(f"{k}: {describe(d)}" for k, d in list(spaces.items())[:3])
        raise ConfigError(f"hyperparameters hold search spaces ({named}): pass hyperparameter_tune_kwargs="
                          "{'num_trials': 8, 'searcher': 'bayes', 'scheduler': 'ASHA'} to search them, or give one "
                          "value per key.")
    if tune is None:
        return fixed, {}, None, presets
    settings = TuneSettings.read(tune)
    if not spaces:
        raise ConfigError("hyperparameter_tune_kwargs is given, but no hyperparameter is a search space: give one, "
                          "e.g. hyperparameters={'optim.lr': {'low': 1e-5, 'high': 1e-3, 'log': True}} (or "
                          "tune.loguniform(1e-5, 1e-3)), or drop hyperparameter_tune_kwargs.")
    for key, distribution in spaces.items():
        for value in extremes(distribution):
            apply_overrides(Config(), {key: value}, allow_distiller=has_teacher)  # a ConfigError names it
    if settings.searcher == "grid":
        from optuna.distributions import CategoricalDistribution

        ranged = [k for k, d in spaces.items() if not isinstance(d, CategoricalDistribution)]
        if ranged:
            raise ConfigError(f"searcher='grid' needs lists of choices; {', '.join(ranged)} "
                              f"{'is a range' if len(ranged) == 1 else 'are ranges'}: give choices, or use "
                              "searcher='bayes' or 'random'.")
    return fixed, spaces, settings, base_preset


def first_point(spaces: dict) -> dict:
    """One value of every space (a range's low end): to check the fit's other arguments before any trial."""
    return {key: extremes(d)[0] for key, d in spaces.items()}


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

    def _sample(self, trial) -> dict:
        from .spaces import suggest

        return {key: choice_value(d, suggest(trial, key, d)) for key, d in self.request.spaces.items()}

    def _run_one(self, study, trial, run_id: str) -> None:
        import optuna

        from ..logs import set_console_verbosity
        from .study import Heartbeat

        folder = self.folder / "trials" / f"{trial.number:03d}"
        shutil.rmtree(folder, ignore_errors=True)  # a killed earlier attempt with this number
        trial.set_user_attr("run", run_id)
        trial.set_user_attr("folder", str(folder))  # where its predictor is (a shared study's trials are spread)
        sampled = self._sample(trial)
        pruned = {}

        def report(validation: int, step: int, score: float) -> bool:
            trial.report(score, validation)
            if self.settings.scheduler == "ASHA" and trial.should_prune():
                pruned.update(validation=validation, step=step, score=score)
                return True
            return False

        remaining = None
        if self.request.time_limit is not None:
            remaining = max(1.0, self.request.time_limit - (time.perf_counter() - self.start))
        logger.info("Trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in sampled.items()))
        started = time.perf_counter()
        verbosity = self.predictor.verbosity
        candidate = type(self.predictor)(self.predictor.label, self.predictor._problem_type,
                                         self.predictor._eval_metric, path=str(folder),
                                         verbosity=verbosity if verbosity >= 3 else min(verbosity, 1))
        candidate._search_hooks = {"on_validation": report,
                                   "teacher_outputs_folder": self.folder / "teacher_outputs"}
        try:
            with Heartbeat(study, trial):
                candidate.fit(hyperparameters={**self.request.fixed, **sampled}, presets=self.request.presets,
                              time_limit=remaining, seed=self.request.seed, **self.request.fit_kwargs)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001 (a failed trial is recorded and the search goes on)
            failed_log = folder.parent / f"{folder.name}.failed-fit.log"
            if failed_log.is_file():  # the trial's own log, kept beside the others'
                folder.mkdir(parents=True, exist_ok=True)
                os.replace(failed_log, folder / "fit.log")
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
            trial.set_user_attr("fit_s", time.perf_counter() - started)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("Trial %d failed: %s: %s", trial.number, type(error).__name__, error)
            return
        finally:
            set_console_verbosity(verbosity)
        summary = candidate.fit_summary()
        score = summary[f"val_{candidate.eval_metric}"]
        trial.set_user_attr("fit_s", time.perf_counter() - started)
        trial.set_user_attr("epochs", summary.get("epochs"))
        trial.set_user_attr("steps", summary.get("steps"))
        trial.set_user_attr("score", score)
        if pruned:
            trial.set_user_attr("pruned_at_step", pruned["step"])
            trial.set_user_attr("pruned_at_validation", pruned["validation"])
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            logger.info("Trial %d stopped by ASHA at validation %d (step %d): tuning %s %.4f.", trial.number,
                        pruned["validation"], pruned["step"], self.metric.name, pruned["score"])
        else:
            study.tell(trial, score)
            logger.info("Trial %d: tuning %s %.4f, fit %.0f s.", trial.number, self.metric.name, score,
                        time.perf_counter() - started)
        self._keep_best(study)

    def _keep_best(self, study) -> None:
        """Keep whole only the trials that may be chosen (the best so far, and ``num_to_keep`` more); the others
        keep their log, metrics and summary."""
        ranked = _ranked(study)
        keep = {t.number for t in ranked[:1 + self.settings.num_to_keep]}  # the best and the runners-up
        own = self.own_trials(ranked)
        keep |= {own[0].number} if own else set()  # in a shared study, this worker's best too
        self.strip_all_but(keep)

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

        rows = []
        for trial in study.get_trials(deepcopy=False):
            if trial.state == optuna.trial.TrialState.WAITING:
                continue
            attrs = trial.user_attrs
            state = trial.state.name.lower()
            if state == "fail":
                state = "failed" if "error" in attrs else "interrupted"
            params = {k: choice_value(self.request.spaces[k], v) if k in self.request.spaces else v
                      for k, v in trial.params.items()}
            rows.append({"trial": trial.number, "state": state, **params,
                         f"val_{self.metric.name}": attrs.get("score"), "fit_s": attrs.get("fit_s"),
                         "epochs": attrs.get("epochs"), "steps": attrs.get("steps"),
                         "pruned_at_step": attrs.get("pruned_at_step"), "error": attrs.get("error")})
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

