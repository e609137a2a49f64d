"""AutoDistiller: a search over student shapes cut from a fitted teacher, each trained by a short flash
distillation and scored on tuning accuracy and measured latency; the chosen student then gets the full recipe."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from datetime import datetime
from pathlib import Path

from ..exceptions import ConfigError, NotFittedError
from .flash import FlashDistillation, check_flash_settings
from .space import SearchSpace, TeacherShape
from .study import STUDY_NAME as _STUDY_NAME, objective_values

logger = logging.getLogger("automm_lite")

# Objective name -> (results column, larger is better); "accuracy" is the teacher's eval_metric, whatever it is.
OBJECTIVES = {"accuracy": ("tuning_score", None), "latency": ("latency_ms", False),
              "throughput": ("rows_per_s", True), "parameters": ("parameters", False)}
SAMPLERS = ("tpe", "random", "grid", "nsga2")
STUDY_NAME = _STUDY_NAME  # the study's name in its storage (optuna.load_study), also here for scripts


class AutoDistiller:
    """Search for a small, fast student of a fitted teacher (Intel's AutoDistillation, on Optuna).

    Each trial samples a student shape (which teacher layers, how many heads, how wide), cuts it from the
    teacher's fine-tuned weights by structured pruning, trains it briefly (flash distillation: the student's
    layers taught one by one to match their teacher layers, then a short regular distillation), and measures its
    tuning score and its one-row latency on this machine. The study is stored (SQLite in the search folder by
    default), so running the same search again resumes it.

    Parameters
    ----------
    teacher : Predictor or str
        A fitted predictor with a BERT-like text encoder (or the folder of a saved one).
    search_space : dict or str, optional
        Dimension -> choices (see :class:`~automm_lite.search.space.SearchSpace`), or a YAML/JSON file. Default:
        derived from the teacher (fewer layers and how they are picked, a quarter/half/all of the heads and of
        the feed-forward neurons).
    n_trials : int
        Trials the study holds in the end: finished ones of an earlier run count, so a rerun runs the rest.
    objectives : tuple of str
        From ``accuracy`` (the teacher's ``eval_metric`` on the tuning rows), ``latency`` (one-row predict
        p50, ms), ``throughput`` (batch rows/s), ``parameters``.
    sampler : {"tpe", "random", "grid", "nsga2"} or optuna.samplers.BaseSampler
    seed : int
        Seeds the sampler and every trial's fit.
    storage : str, optional
        An Optuna storage URL (e.g. ``postgresql://...`` to share one study between processes or machines).
        Default ``sqlite:///<path>/study.db``.
    time_limit : float, optional
        Seconds from the start of ``fit``; no trial starts after this (a running one finishes; a study with no
        finished trial still runs one). The chosen student's full fit comes after.
    latency_budget_ms : float, optional
        Pick the most accurate student whose latency is within this; without it (or if none is), the knee of
        the front.
    inference_mode : {"32", "bf16", "int8", "onnx"}
        How each student is timed (``optimize_for_inference``), and how the chosen one is returned.
    path : str, optional
        The search folder; default ``automm_lite_search/<timestamp>``. Pass the same one to resume.
    hyperparameters : dict, optional
        The students' fit keys (e.g. ``optim.lr``, ``distiller.*``). Default: the teacher's ``max_text_len`` and
        ``max_epochs``. The chosen student is trained with them in full; trials with ``flash["epochs"]``.
    flash : dict, optional
        Flash distillation settings: ``steps_per_layer`` (20), ``attention_weight`` (1), ``hidden_weight`` (1),
        ``learning_rate`` (3e-4) and ``batch_size`` (32) of the layer-by-layer transfer; ``epochs`` (1) of the
        short regular distillation. ``steps_per_layer=0`` skips the transfer.
    refit : bool
        Train the chosen student with the full recipe (``hyperparameters``), from its layer-transferred encoder
        (not with a user ``train_func``: its model is returned as it is).
    keep : {"all", "front"}
        Keep every trial's predictor, or only those on the front (and the chosen one).
    model_builder : callable, optional
        ``model_builder(params, folder) -> checkpoint or dict``: the student for the sampled ``params``, as a
        text checkpoint (name or folder, for ``model.hf_text.checkpoint_name``) or a dict of fit hyperparameters.
    train_func : callable, optional
        ``train_func(student, train_data, tuning_data, folder) -> model``: train what ``model_builder`` returned.
        Default: flash distillation into a Predictor.
    eval_func : callable, optional
        ``eval_func(model, tuning_data) -> dict`` with a value per objective name. Default: tuning score, latency,
        throughput and parameters of a Predictor, measured as ``compare_predictors`` does.
    verbosity : int
        2 shows a progress bar over trials; trials' own fits stay quiet below 3.
    executor : {"local", "ray"}
        ``local`` runs the trials one after another here; ``ray`` runs them in parallel on a Ray cluster (Ray Tune
        with its Optuna searcher on this study; ``pip install 'automm_lite[ray]'``). Trials that run side by
        side on one machine time each other's latency: give each whole CPUs (``resources_per_trial``).
    address : str, optional
        The Ray cluster to run on (``executor="ray"``), e.g. ``"ray://head:10001"`` or ``"auto"``; without it a
        local one is started on this machine and stopped after. ``path`` must be a folder every node sees.
    resources_per_trial : dict, optional
        What each Ray trial asks for, e.g. ``{"cpu": 2, "gpu": 1}``; default one CPU.
    """

    def __init__(self, teacher, search_space=None, n_trials=20, objectives=("accuracy", "latency"),
                 sampler="tpe", seed=0, storage=None, time_limit=None, latency_budget_ms=None, inference_mode="32",
                 path=None, hyperparameters=None, flash=None, refit=True, keep="all", model_builder=None,
                 train_func=None, eval_func=None, verbosity=2, executor="local", address=None,
                 resources_per_trial=None):
        self.teacher = teacher
        self.search_space = search_space
        self.n_trials = n_trials
        self.objectives = objectives
        self.sampler = sampler
        self.seed = seed
        self.storage = storage
        self.time_limit = time_limit
        self.latency_budget_ms = latency_budget_ms
        self.inference_mode = inference_mode
        self.path = path
        self.hyperparameters = hyperparameters
        self.flash = flash
        self.refit = refit
        self.keep = keep
        self.model_builder = model_builder
        self.train_func = train_func
        self.eval_func = eval_func
        self.verbosity = verbosity
        self.executor = executor
        self.address = address
        self.resources_per_trial = resources_per_trial

    # ------------------------------------------------------------------ checks
    def _check_arguments(self) -> None:
        """Every argument a user can get wrong, before any trial (or teacher pass) runs."""
        import dataclasses

        import optuna

        from ..config import argument_error, check_arguments
        from ..predictor import Predictor, load_teacher
        from .flash import AutoDistillerArguments

        teacher = Predictor.load(self.teacher, verbosity=0) if isinstance(self.teacher, (str, Path)) else \
            self.teacher
        load_teacher(teacher)  # a ConfigError unless a fitted Predictor
        self.teacher_ = teacher
        check_arguments(AutoDistillerArguments, {f.name: getattr(self, f.name)
                                                 for f in dataclasses.fields(AutoDistillerArguments)}, "AutoDistiller")
        # What the declarations cannot say: distinct names, and objects of Optuna's own types.
        objectives = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives)
        if not objectives or any(o not in OBJECTIVES for o in objectives) or len(set(objectives)) != len(objectives):
            raise argument_error("AutoDistiller", "objectives", self.objectives,
                                 f"distinct names from {', '.join(OBJECTIVES)}")
        self.objectives_ = objectives
        if not (self.sampler in SAMPLERS or isinstance(self.sampler, optuna.samplers.BaseSampler)):
            raise argument_error("AutoDistiller", "sampler", self.sampler,
                                 f"one of {', '.join(SAMPLERS)}, or an optuna sampler")
        if self.storage is not None and not isinstance(self.storage, (str, optuna.storages.BaseStorage)):
            raise argument_error("AutoDistiller", "storage", self.storage,
                                 "an Optuna storage URL (e.g. 'sqlite:///study.db'), an Optuna storage, or None")
        self.flash_ = check_flash_settings(self.flash or {})
        self._check_executor()
        encoder = self._teacher_encoder()
        if encoder is None and self.model_builder is None:
            raise ConfigError("The built-in student builder prunes the teacher's text encoder, and this teacher has "
                              "none; pass model_builder=... to search your own students.")
        if self.model_builder is None:
            from ..checkpoints.pruning import MODEL_TYPES

            if encoder.config.model_type not in MODEL_TYPES:
                raise ConfigError(f"The built-in student builder prunes BERT-like encoders ({', '.join(MODEL_TYPES)});"
                                  f" the teacher's is {encoder.config.model_type!r}. Pass model_builder=....")
        shape = TeacherShape.of(encoder.config) if self.model_builder is None else None
        if self.search_space is None and self.model_builder is not None:
            raise ConfigError("A custom model_builder needs its own search_space: the default one describes pruned "
                              "teachers.")
        self.space_ = SearchSpace(self.search_space, shape, free_names=self.model_builder is not None)
        self._hyperparameters = self._student_hyperparameters()
        if self.sampler == "grid":
            self.space_.grid()  # ranges cannot be a grid: fail now

    def _check_executor(self) -> None:
        from ..hpo.settings import check_ray_arguments

        if self.executor not in ("local", "ray"):
            raise ConfigError(f"executor {self.executor!r}: 'local' (one trial after another here) or 'ray'.")
        self.resources_ = check_ray_arguments(self.executor, self.address, self.resources_per_trial)
        if self.executor == "ray" and self._teacher_folder() is None:
            raise ConfigError("executor='ray' loads the teacher in each worker from its folder, and this teacher "
                              "has none: save it first (teacher.save(path)) or pass its folder.")

    def _teacher_folder(self) -> str | None:
        from ..io import METADATA_FILE

        folder = self.teacher if isinstance(self.teacher, (str, Path)) else getattr(self.teacher_, "path", None)
        return str(Path(folder).resolve()) if folder and (Path(folder) / METADATA_FILE).is_file() else None

    def _teacher_encoder(self):
        backbone = self.teacher_.model_.text_backbone
        return None if backbone is None else backbone.encoder

    def _student_hyperparameters(self) -> dict:
        """The students' fit keys: the teacher's text length and epochs unless given, checked now."""
        from ..config import apply_overrides

        teacher = self.teacher_.config_
        base = {"model.hf_text.max_text_len": teacher.model.hf_text.max_text_len,
                "optimization.max_epochs": teacher.optimization.max_epochs}
        given = dict(self.hyperparameters or {})
        if "model.hf_text.checkpoint_name" in given:
            raise ConfigError("hyperparameters must not name model.hf_text.checkpoint_name: each trial's student is "
                              "the search's (use model_builder to search your own).")
        merged = {**base, **given}
        apply_overrides(teacher, merged, allow_distiller=True)  # a ConfigError names a bad key or value
        return merged

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, tuning_data=None, unlabeled_data=None):
        """Run the search (or resume it) and set ``results_``, ``pareto_front_``, ``best_params_`` and
        ``best_predictor_``.

        Parameters
        ----------
        train_data : DataFrame or path
            Labelled rows with the teacher's label and feature columns.
        tuning_data : DataFrame or path, optional
            Rows every trial is scored on; a holdout of ``train_data`` (the same for every trial) when not given.
        unlabeled_data : DataFrame or path, optional
            Rows without labels: the teacher labels them for every student (transfer rows) and the layer-by-layer
            transfer learns on them too.

        Returns
        -------
        AutoDistiller
            ``self``.
        """
        from ..data.frames import holdout_split, labelled_rows, read_data
        from ..logs import add_log_file, remove_log_file, set_console_verbosity

        start = time.perf_counter()
        set_console_verbosity(self.verbosity)
        self._check_arguments()
        label = self.teacher_.label
        train = labelled_rows(read_data(train_data, "train_data"), label, "train_data")
        tuning = None if tuning_data is None else labelled_rows(read_data(tuning_data, "tuning_data"), label,
                                                                "tuning_data")
        unlabeled = None if unlabeled_data is None else read_data(unlabeled_data, "unlabeled_data")
        for frame, what in ((train, "train_data"), (tuning, "tuning_data"), (unlabeled, "unlabeled_data")):
            if frame is not None:
                self.teacher_.preprocessor_.check_columns(frame, need_label=what != "unlabeled_data")
        if tuning is None:
            train, tuning = holdout_split(train, label, self.teacher_.problem_type, None, self.seed)
        folder = Path(self.path or f"automm_lite_search/{datetime.now().strftime('%Y%m%d_%H%M%S')}").resolve()
        self._prepare({"train": train, "tuning": tuning, "unlabeled": unlabeled}, folder)
        handler = add_log_file(folder / "search.log")
        try:
            study = self._study()
            self.study_ = study
            self.teacher_scores_ = self._measure_teacher()
            set_console_verbosity(self.verbosity)
            logger.info("Search %s: %d trials, objectives %s, teacher %s %.4f at %.2f ms", folder, self.n_trials,
                        ", ".join(self.objectives_), self.teacher_.eval_metric, self.teacher_scores_["score"],
                        self.teacher_scores_["latency_ms"])
            self._run_trials(study, start)
            self._collect(study)
            self._choose_and_refit()
            self._write_results()
        finally:
            remove_log_file(handler)
            set_console_verbosity(self.verbosity)
        return self

    def _prepare(self, data: dict, folder: Path) -> None:
        """The rows and the folder every trial uses (here, or in a Ray worker)."""
        (folder / "trials").mkdir(parents=True, exist_ok=True)
        self._data, self.path_ = data, folder
        self._flash = FlashDistillation(self.teacher_, self.space_, self._data, folder, self._hyperparameters,
                                        self.flash_, self.inference_mode, self.latency_budget_ms, self.seed,
                                        self.verbosity)

    def _study(self):
        import optuna

        from .study import make_sampler, open_study

        directions = ["maximize" if self._maximize(name) else "minimize" for name in self.objectives_]
        settings = {"objectives": list(self.objectives_), "metric": self.teacher_.eval_metric,
                    "space": {name: optuna.distributions.distribution_to_json(d)
                              for name, d in self.space_.distributions.items()}}
        return open_study(self.storage, self.path_, directions, make_sampler(self.sampler, self.seed), settings,
                          self.space_.grid() if self.sampler == "grid" else None, self.verbosity)

    def _maximize(self, objective: str) -> bool:
        from ..metrics import get_metric

        column, larger = OBJECTIVES[objective]
        if larger is None:
            return get_metric(self.teacher_.eval_metric, self.teacher_.problem_type).greater_is_better
        return larger

    def _measure_teacher(self) -> dict:
        metrics = self._flash.evaluate(self.teacher_, self._data["tuning"], set_mode=False)
        return {"score": metrics["accuracy"], "latency_ms": metrics["latency"], "rows_per_s": metrics["throughput"],
                "parameters": metrics["parameters"]}

    # ------------------------------------------------------------------ trials
    def _run_trials(self, study, start: float) -> None:
        import uuid

        from tqdm.auto import tqdm

        from ..hpo.study import ask, counted, grid_size
        from .study import best_so_far

        limit = self.n_trials
        if self.sampler == "grid":
            limit = min(limit, grid_size(self.space_.grid()))
        self._run_id = uuid.uuid4().hex  # failures of an earlier run do not count: a rerun tries again
        done = counted(study, self._run_id)
        if self.executor == "ray":
            self._run_on_ray(study, start, limit - done)
            return
        bar = tqdm(total=limit, initial=min(done, limit), desc="student search", unit="trial",
                   disable=self.verbosity < 2)
        try:
            while counted(study, self._run_id) < limit:
                over = self.time_limit is not None and time.perf_counter() - start > self.time_limit
                if over and counted(study, self._run_id) > 0:  # with nothing finished yet, one trial still runs
                    logger.info("time_limit (%g s) reached: no more trials.", self.time_limit)
                    break
                trial = ask(study)  # a killed worker's trial (shared storage) is failed and queued again first
                self._run_one(study, trial)
                bar.update(1)
                bar.set_postfix_str(best_so_far(study, self.teacher_.eval_metric, self._maximize("accuracy")))
        finally:
            bar.close()

    def _run_one(self, study, trial) -> None:
        from ..hpo.study import Heartbeat

        from ..logs import set_console_verbosity

        beating = Heartbeat(study, trial).start()  # a killed worker's trial is noticed by the others
        try:
            params = self._start_trial(study, trial)
            if params is None:
                return
            outcome = self._trial_work(trial.number, params)
        except Exception as error:  # a failed trial is recorded and the search goes on
            outcome = {"error": f"{type(error).__name__}: {error}"}
        finally:
            beating.stop()
            set_console_verbosity(self.verbosity)  # the trial's own fits set the console to theirs
        self._finish_trial(study, trial, outcome)

    def _start_trial(self, study, trial) -> dict | None:
        """The trial's sampled point (its student's shape recorded), or None when the study has already scored
        that point (its result is reused, nothing is trained)."""
        trial.set_user_attr("run", self._run_id)
        params = self.space_.suggest(trial)
        shape = self.space_.student(params) if self.model_builder is None else None
        trial.set_user_attr("shape", str(shape) if shape else json.dumps(params, default=str))
        if self._reuse_duplicate(study, trial, params):
            shutil.rmtree(self.path_ / "trials" / f"{trial.number:03d}", ignore_errors=True)
            return None
        return params

    def _trial_work(self, number: int, params: dict) -> dict:
        """Build, train and measure trial ``number``'s student (here, or in a Ray worker): its objective values,
        ``fit_s`` and predictor folder, or ``over_budget`` with its latency when it was too slow to train."""
        folder = self.path_ / "trials" / f"{number:03d}"
        shutil.rmtree(folder, ignore_errors=True)  # a killed earlier attempt with this number
        folder.mkdir(parents=True)
        fit_start = time.perf_counter()
        student = (self.model_builder or self._flash.build)(params, folder)
        builtin = self.train_func is None and self.eval_func is None
        if builtin and self.latency_budget_ms is not None:
            over = self._flash.too_slow(student, folder)
            if over is not None:
                return {"over_budget": over}
        model = (self.train_func or self._flash.train)(student, self._data["train"], self._data["tuning"], folder)
        fit_seconds = time.perf_counter() - fit_start
        metrics = objective_values((self.eval_func or self._flash.evaluate)(model, self._data["tuning"]),
                                    self.objectives_)
        return {"metrics": metrics, "fit_s": fit_seconds,
                "predictor": str(folder / "predictor") if (folder / "predictor").is_dir() else None}

    def _finish_trial(self, study, trial, outcome: dict) -> None:
        """Tell the study how the trial ended (``_trial_work``'s outcome, or ``error``)."""
        import optuna

        if "error" in outcome:
            trial.set_user_attr("error", outcome["error"])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("Trial %d failed: %s", trial.number, outcome["error"])
            return
        if "over_budget" in outcome:
            latency, parameters = outcome["over_budget"]
            trial.set_user_attr("latency_ms", latency)
            trial.set_user_attr("parameters", parameters)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            logger.info("Trial %d: %s takes %.2f ms, over latency_budget_ms=%g: not trained.", trial.number,
                        trial.user_attrs["shape"], latency, self.latency_budget_ms)
            return
        metrics = outcome["metrics"]
        for name, value in metrics.items():
            trial.set_user_attr(OBJECTIVES.get(name, (name,))[0], value)
        trial.set_user_attr("fit_s", outcome["fit_s"])
        trial.set_user_attr("predictor", outcome["predictor"])
        if outcome.get("worker"):
            trial.set_user_attr("worker", outcome["worker"])
        study.tell(trial, [metrics[name] for name in self.objectives_])
        logger.info("Trial %d: %s -> %s %.4f, %.2f ms, %.0f rows/s, %.1fM parameters, fit %.0f s", trial.number,
                    trial.user_attrs["shape"], self.teacher_.eval_metric, metrics.get("accuracy", float("nan")),
                    metrics.get("latency", float("nan")), metrics.get("throughput", float("nan")),
                    metrics.get("parameters", float("nan")) / 1e6, outcome["fit_s"])

    def _run_on_ray(self, study, start: float, trials: int) -> None:
        """``trials`` trials in parallel on Ray (``hpo/ray_tune.py``); each worker rebuilds this search from its
        arguments and the teacher's folder."""
        from ..hpo.ray_tune import DEFAULT_RESOURCES, ERROR, FINAL, WORKER_STOPPED, RayTrials, run_trials

        if self.model_builder is None:
            self._flash.teacher_encoder_dir()  # written once here, not by parallel workers at once
        worker = {"arguments": {**{name: getattr(self, name) for name in _ARGUMENTS}, "storage": None,
                                "teacher": self._teacher_folder(), "executor": "local", "address": None,
                                "resources_per_trial": None, "path": str(self.path_)},
                  "data": self._data, "cwd": os.getcwd()}

        def sample(trial) -> dict:
            params = self._start_trial(study, trial)
            return {"trial": trial.number, "params": params, "duplicate": params is None}

        def finish(trial, result: dict, died: bool) -> None:
            if result.get(FINAL):  # Ray's results are flat: the outcome as _trial_work gave it
                outcome = {"over_budget": tuple(result["over_budget"])} if result.get("over_budget") else {
                    "metrics": {name: result[name] for name in result["metric_names"]}, "fit_s": result["fit_s"],
                    "predictor": result["predictor"], "worker": result["worker"]}
            else:
                outcome = {"error": result.get(ERROR, WORKER_STOPPED)}
            self._finish_trial(study, trial, outcome)

        names = list(self.objectives_)
        deadline = None if self.time_limit is None else time.time() + self.time_limit - (time.perf_counter() - start)
        run_trials(RayTrials(study=study, sample=sample, trainable=distill_trial_on_ray, payload={"worker": worker},
                             finish=finish, metric=names,
                             mode=["max" if self._maximize(name) else "min" for name in names], trials=trials,
                             resources=self.resources_ or DEFAULT_RESOURCES, folder=self.path_ / "ray",
                             deadline=deadline), self.address)

    def _reuse_duplicate(self, study, trial, params: dict) -> bool:
        """A point the study has already scored (samplers repeat points of small spaces): its result again,
        at no cost."""
        from .study import reuse_duplicate

        def point(trial_params, shape):  # two layer choices can pick the same layers: the same student
            return (shape, tuple(sorted(SearchSpace.fit_keys(trial_params).items()))) if self.model_builder is None \
                else tuple(sorted(trial_params.items()))

        return reuse_duplicate(study, trial, point(params, trial.user_attrs.get("shape")), point)

    # ------------------------------------------------------------------ results
    def _collect(self, study) -> None:
        import pandas as pd

        from .front import non_dominated
        from .study import trial_rows

        results = pd.DataFrame(trial_rows(study, [column for column, _ in OBJECTIVES.values()]))
        if results.empty:
            raise NotFittedError("The search ran no trial (time_limit too short?); nothing to choose from.")
        done = (results.state == "complete") & results.duplicate_of.isna()
        columns = [OBJECTIVES[name][0] for name in self.objectives_]
        maximize = [self._maximize(name) for name in self.objectives_]
        results["on_front"] = False
        if done.any():
            values = results.loc[done, columns].to_numpy(dtype=float)
            results.loc[done, "on_front"] = non_dominated(values, maximize)
        self.results_ = results
        self.pareto_front_ = results[results.on_front].sort_values(columns[-1]).reset_index(drop=True)
        self._columns, self._maximize_flags = columns, maximize
        if not done.any():
            slow = results[results.state == "over budget"]
            if len(slow):
                raise NotFittedError(f"No student was within latency_budget_ms={self.latency_budget_ms:g} (the "
                                     f"fastest took {slow.latency_ms.min():.2f} ms): raise the budget, or search "
                                     "smaller students.")
            errors = "; ".join(sorted(set(results.error.dropna())))[:500]
            raise NotFittedError(f"Every trial failed ({errors}); see {self.path_ / 'search.log'}.")

    def _choose(self) -> int:
        """The chosen trial: the most accurate within ``latency_budget_ms``, else the knee of the front."""
        from .front import knee

        done = self.results_[(self.results_.state == "complete") & self.results_.duplicate_of.isna()]
        if self.latency_budget_ms is not None:
            within = done[done.latency_ms <= self.latency_budget_ms]
            if len(within):
                ascending = not self._maximize("accuracy")
                ranked = within.sort_values(["tuning_score", "latency_ms"], ascending=[ascending, True])
                return int(ranked.trial.iloc[0])
            warnings.warn(f"No student is within latency_budget_ms={self.latency_budget_ms} (fastest: "
                          f"{done.latency_ms.min():.2f} ms); choosing the knee of the front instead.", stacklevel=3)
        front = self.pareto_front_
        return int(front.trial.iloc[knee(front[self._columns].to_numpy(dtype=float), self._maximize_flags)])

    def _choose_and_refit(self) -> None:
        from ..predictor import Predictor

        chosen = self._choose()
        self.best_trial_ = chosen
        row = self.results_[self.results_.trial == chosen].iloc[0]
        self.best_params_ = dict(self.study_.trials[chosen].params)
        if self.refit and self.train_func is None:
            predictor = self.fit_trial(chosen)
        elif row.predictor:
            predictor = Predictor.load(row.predictor, verbosity=self.verbosity)
        else:
            predictor = None  # a user train_func's model: not a Predictor folder
        if predictor is not None:
            self._flash.set_inference_mode(predictor)
        self.best_predictor_ = predictor
        (self.path_ / "best.json").write_text(json.dumps({"trial": chosen, "params": self.best_params_},
                                                         default=str))
        if self.keep == "front":
            keep = set(self.pareto_front_.trial) | {chosen}
            for other in self.results_.trial:
                if other not in keep:
                    shutil.rmtree(self.path_ / "trials" / f"{other:03d}", ignore_errors=True)

    def fit_trial(self, trial: int):
        """Train one finished trial's student with the full recipe (``hyperparameters``), starting from its
        layer-transferred encoder; what ``refit`` does for the chosen trial.

        Parameters
        ----------
        trial : int
            A trial number of ``results_``.

        Returns
        -------
        Predictor
            Saved at ``<search folder>/trials/<trial>/best``; loaded from there if it is already trained.
        """
        from ..predictor import Predictor

        if not hasattr(self, "results_"):
            raise NotFittedError("The search has not run: call fit(train_data) first.")
        if trial not in set(self.results_.trial[self.results_.state == "complete"]):
            raise ConfigError(f"Trial {trial!r} is not a finished trial of this search; finished: "
                              f"{sorted(self.results_.trial[self.results_.state == 'complete'])}.")
        folder = self.path_ / "trials" / f"{trial:03d}"
        if (folder / "best" / "predictor.json").is_file():
            return Predictor.load(folder / "best", verbosity=self.verbosity)
        params = self.study_.trials[trial].params
        logger.info("Full distillation of trial %d (%s)", trial, self.study_.trials[trial].user_attrs.get("shape"))
        if self.model_builder is None and (folder / "student" / "config.json").is_file():
            student = {"model.hf_text.checkpoint_name": str(folder / "student"), **SearchSpace.fit_keys(params)}
        else:  # the student folder is gone (keep="front") or is the user's to build
            folder.mkdir(parents=True, exist_ok=True)
            student = (self.model_builder or self._flash.build)(params, folder)
            if self.model_builder is None:
                self._flash.transfer_layers(student["model.hf_text.checkpoint_name"])
        return self._flash.train(student, self._data["train"], self._data["tuning"], folder, full=True)

    def fit_control(self):
        """The chosen student's equal-compute control: the same student network (its layer-transferred encoder)
        trained without the teacher on the same rows and optimizer steps as its full distillation (gold-labelled
        copies; as many more epochs for rows only the teacher labels). The teacher's gain is the chosen student's
        score minus the control's.

        Returns
        -------
        Predictor
            Saved at ``<search folder>/trials/<trial>/control``; loaded from there if it is already trained.
        """
        from ..predictor import Predictor
        from ..reports.distill_table import control_hyperparameters

        student = getattr(self, "best_predictor_", None)
        if student is None or not (self.path_ / "trials" / f"{self.best_trial_:03d}" / "best").is_dir():
            raise NotFittedError("No chosen student was trained in full: call fit(train_data) with refit=True "
                                 "first.")
        folder = self.path_ / "trials" / f"{self.best_trial_:03d}" / "control"
        if (folder / "predictor.json").is_file():
            return Predictor.load(folder, verbosity=self.verbosity)
        keys = control_hyperparameters(student, self._flash.hyperparameters, self.teacher_)
        teacher = self.teacher_
        return Predictor(teacher.label, teacher.problem_type, teacher.eval_metric, path=str(folder),
                         verbosity=self.verbosity if self.verbosity >= 3 else 0).fit(
            self._data["train"], self._data["tuning"], hyperparameters=keys, seed=self.seed)

    def _write_results(self) -> None:
        self.results_.to_csv(self.path_ / "results.csv", index=False)
        try:
            self.plot(self.path_ / "front.png")
        except Exception as error:  # e.g. a user eval_func without latency: the table is still there
            logger.warning("No plot: %s: %s", type(error).__name__, error)

    def plot(self, path=None) -> str:
        """Save tuning score against latency (every trial, the front, the teacher, the chosen student) as PNG.

        Parameters
        ----------
        path : str, optional
            Default ``<search folder>/front.png``.

        Returns
        -------
        str
            The PNG's path.
        """
        from .front import plot_front

        if not hasattr(self, "results_"):
            raise NotFittedError("The search has not run: call fit(train_data) first.")
        title = (f"{len(self.results_[self.results_.state == 'complete'])} students of the teacher, timed with "
                 f"inference mode {self.inference_mode}")
        return plot_front(self.results_, "tuning_score", self.teacher_scores_, getattr(self, "best_trial_", None),
                          path or self.path_ / "front.png", title, f"tuning {self.teacher_.eval_metric}")


_ARGUMENTS = ("teacher", "search_space", "n_trials", "objectives", "sampler", "seed", "storage", "time_limit",
              "latency_budget_ms", "inference_mode", "path", "hyperparameters", "flash", "refit", "keep",
              "model_builder", "train_func", "eval_func", "verbosity", "executor", "address", "resources_per_trial")


def distill_trial_on_ray(config: dict, worker: dict) -> None:
    """One AutoDistiller trial in a Ray worker: the search rebuilt from its arguments, the student built, trained
    and measured, and reported with its objective values."""
    import os
    import socket

    from ray import tune

    from ..hpo.ray_tune import ERROR, FINAL, in_driver_folder
    from ..logs import set_console_verbosity

    in_driver_folder(worker["cwd"])
    arguments = worker["arguments"]
    nothing = {name: float("nan") for name in ((arguments["objectives"],) if isinstance(arguments["objectives"], str)
                                               else arguments["objectives"])}
    if config["duplicate"]:  # its result was reused when it was drawn
        tune.report({**nothing, FINAL: True})
        return
    try:
        search = AutoDistiller(**{**arguments, "verbosity": min(arguments["verbosity"], 1)})
        search._check_arguments()
        search._prepare(worker["data"], Path(arguments["path"]))
        outcome = search._trial_work(config["trial"], config["params"])
    except Exception as error:  # noqa: BLE001 (told to the study as a failed trial)
        tune.report({**nothing, ERROR: f"{type(error).__name__}: {error}"})
        return
    finally:
        set_console_verbosity(arguments["verbosity"])
    metrics = outcome.pop("metrics", {})
    tune.report({**nothing, **metrics, **outcome, "metric_names": list(metrics),
                 "worker": f"{socket.gethostname()}:{os.getpid()}", FINAL: True})
