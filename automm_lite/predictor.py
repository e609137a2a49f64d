"""Predictor: the user's entry point. It checks arguments and orchestrates the other modules; no math here."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

from .config import apply_overrides, canonical_key
from .data.frames import check_label_values, holdout_split, read_data
from .data.preprocess import Preprocessor
from .exceptions import ConfigError, DataError, NotFittedError
from .fit_request import FitRequest, check_fit_arguments, resolve_task
from .logs import set_console_verbosity
from .metrics import get_metric

logger = logging.getLogger("automm_lite")
# The inference settings ``optimize_for_inference(check_data=...)`` compares a new mode against.
FLOAT32_TORCH = {"env.inference_precision": "32", "env.inference_backend": "torch", "env.inference_compile": False}


class Scores(dict):
    """``{metric: value}`` as returned by ``evaluate``; ``.timing`` holds how long the call took."""

    timing = None


class Predictor:
    """Fit a model on a pandas DataFrame and predict one of its columns.

    Parameters
    ----------
    label : str
        Name of the column to predict.
    problem_type : {"binary", "multiclass", "regression"}, optional
        Inferred from the label column (and ``eval_metric``) when not given.
    eval_metric : str, optional
        Metric for model selection and ``evaluate``; default roc_auc (binary), accuracy (multiclass), rmse
        (regression).
    path : str, optional
        Folder the fitted predictor is saved to; default ``automm_lite_models/<timestamp>``.
    verbosity : int
        0 silent, 1 warnings, 2 progress and results (default), 3+ debugging detail.
    """

    def __init__(self, label, problem_type=None, eval_metric=None, path=None, verbosity=2):
        self.label = label
        self._problem_type = problem_type
        self._eval_metric = eval_metric
        self.path = path
        self.verbosity = verbosity
        self.last_timing = None
        self._runner = None
        self._runner_lock = threading.Lock()
        self.classical_, self.network_weight_ = None, 1.0  # the portfolio's classical model and the blend
        self._writes = True  # False in a process that is a rank other than 0 of a DDP fit: rank 0 writes
        self._search_hooks = {}  # a search's trial: its scheduler's report and the shared teacher outputs

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, tuning_data=None, hyperparameters=None, presets=None, time_limit=None, seed=0,
            column_types=None, holdout_frac=None, teacher_predictor=None, unlabeled_data=None, resume=False,
            hyperparameter_tune_kwargs=None):
        """Train a model on ``train_data``.

        Parameters
        ----------
        train_data : DataFrame or str
            Labelled rows, or the path of a CSV or Parquet file of them.
        tuning_data : DataFrame or path, optional
            Validation rows for early stopping and checkpoint selection; a stratified holdout of
            ``train_data`` when not given.
        hyperparameters : dict, list of "k=v" or "k=v k=v" str, optional
            Dotted keys, e.g. ``{"model.hf_text.checkpoint_name": "minilm-l3", "optim.lr": 1e-4}``
            (``automm-lite keys`` lists them all).
        presets : str, optional
            ``medium_quality`` (quicker), ``high_quality`` (the defaults), ``best_quality``, ``fast`` (low latency),
            ``multilingual`` (guide: Defaults that fit the data); ``medium_quality_hpo``, ``high_quality_hpo``,
            ``best_quality_hpo`` search around their preset (see ``hyperparameter_tune_kwargs``).
        time_limit : float, optional
            Seconds of training at most.
        seed : int
            Same seed, same data, same machine: same predictions.
        column_types : dict, optional
            Force column kinds, e.g. ``{"zip": "categorical", "notes": "ignore"}``.
        holdout_frac : float, optional
            Fraction of ``train_data`` held out for tuning when ``tuning_data`` is None.
        teacher_predictor : Predictor or str, or a list of them, optional
            A fitted predictor (or the folder of a saved one) to distill from: this predictor becomes its student.
            The teacher's outputs are computed once for all training rows, not at every step. With several
            teachers the soft targets are their average; the first one also provides the features and layers
            that the feature and layer-wise terms match.
        unlabeled_data : DataFrame or path, optional
            Extra rows without labels (needs a teacher): the teacher labels them and the student learns from
            those soft targets too.
        resume : bool
            Continue the fit to this ``path`` that was killed or stopped by an error, from the end of its last
            finished epoch (``env.resume_points``), with the teacher outputs it had computed; the arguments must be
            the same (a ConfigError names the ones that differ). With nothing to continue, the fit starts anew.
            Without it, an interrupted fit to this path is discarded. A search continues with its finished trials.
        hyperparameter_tune_kwargs : dict, optional
            Search the keys of ``hyperparameters`` that hold search spaces (``tune.loguniform(1e-5, 1e-3)``,
            ``{"low": 1e-5, "high": 1e-3, "log": True}``, a list of choices, ``"choice(a,b)"``): ``searcher``
            (``bayes``, ``random``, ``grid``), ``scheduler`` (``FIFO``, ``ASHA``), ``num_trials`` (8), ``storage``
            (an Optuna storage URL; default SQLite in the predictor's folder), ``study_name``, ``num_to_keep``
            (runner-up trials kept whole, 0), ``grace_period`` and ``reduction_factor`` (ASHA's, 1 and 3),
            ``executor`` (``local``, or ``ray`` with ``address`` and ``resources_per_trial``: trials in parallel
            on a Ray cluster). Each trial is a whole fit; the best on the tuning rows becomes this predictor,
            every trial is listed in ``hpo_results`` (guide: Hyperparameter search, On a Ray cluster).

        Returns
        -------
        Predictor
            This predictor, fitted and, with a ``path``, saved there.

        Raises
        ------
        ConfigError
            A key, value or argument that does not exist or does not fit the others, before any model is built.
        DataError
            Data that cannot be learned from as given: a missing label column, labels of mixed kinds, a file
            that does not parse, and the other cases of the guide's Errors page.

        Examples
        --------
        >>> from automm_lite import Predictor
        >>> from automm_lite.datasets import load_bbc_news
        >>> train, test = load_bbc_news()
        >>> predictor = Predictor(label="label").fit(train, hyperparameters={"optim.max_epochs": 2})
        >>> predictor.evaluate(test)  # doctest: +SKIP
        {'accuracy': 0.95}
        """
        start = time.perf_counter()
        set_console_verbosity(self.verbosity)
        if teacher_predictor is not None:  # folders read once: a search's trials reuse these predictors
            teacher_predictor = _read_teachers(teacher_predictor)
        teachers = load_teachers(teacher_predictor) if teacher_predictor is not None else []
        set_console_verbosity(self.verbosity)  # loading a teacher set the console to its verbosity
        if not isinstance(resume, bool):
            raise ConfigError(f"resume must be True or False, got {resume!r}.")
        from .hpo.settings import read_search

        fixed, spaces, tune, trial_presets = read_search(hyperparameters, presets, hyperparameter_tune_kwargs,
                                                         bool(teachers))
        if tune is not None:
            return self._fit_searched(fixed, spaces, tune, trial_presets, start, teacher_predictor, teachers,
                                      train_data, tuning_data, unlabeled_data, time_limit, seed, holdout_frac,
                                      column_types, resume)
        request = check_fit_arguments(self.label, self._problem_type, self._eval_metric, train_data, tuning_data,
                                      unlabeled_data, hyperparameters, presets, time_limit, seed, holdout_frac,
                                      column_types, teachers)
        from .fit_resume import begin_or_continue, plan_resume, resume_folder
        from .io import fit_folder, save_atomically
        from .training.strategy import started_as_other_rank, world_size

        if started_as_other_rank():  # a DDP fit, or a one-process fit in each process of such a script
            if resume:  # its own resume point is not rank 0's: the processes would not take the same steps
                raise ConfigError("resume=True continues a DDP fit only where the fit's process starts the others "
                                  "(env.strategy='ddp_fork' or 'ddp_spawn'), not under torchrun, SLURM or "
                                  "env.strategy='ddp'; pass resume=False to start over.")
            return self._fit_as_other_rank(request, start)
        self._writes = True
        plan = plan_resume(request, self.label, self._problem_type, self._eval_metric, self.path, resume)
        with fit_folder(self.path, resume) as folder:
            self.path = str(folder.save_path)
            resuming = folder.resuming
            # The arguments Predictor.load(path, resume=True) replays (the frames are stored beside them).
            call = {"label": self.label, "problem_type": self._problem_type, "eval_metric": self._eval_metric,
                    "hyperparameters": hyperparameters, "presets": presets, "time_limit": request.time_limit,
                    "seed": request.seed, "column_types": column_types, "holdout_frac": request.holdout_frac}
            begin_or_continue(plan, folder.work_dir, resuming, call, request)
            # Under DDP every process takes resume points: writing one is a step that all of them take together.
            several = world_size(request.config.env) > 1
            points = resume_folder(folder.work_dir) if plan.record or resuming or several else None
            self._fit(request, folder.work_dir, start, points)
            folder.log_handler.close()
            if points is not None:
                shutil.rmtree(points, ignore_errors=True)  # the saved predictor holds no training state
            save_atomically(self, folder.save_path, staging=folder.work_dir)
        return self

    def _fit_searched(self, fixed, spaces, tune, trial_presets, start, teacher_predictor, teachers, train_data,
                      tuning_data, unlabeled_data, time_limit, seed, holdout_frac, column_types, resume):
        """A hyperparameter search (``hpo.search``): the arguments checked with one point of the spaces before
        any trial, then every trial fitted on the same frames."""
        from .hpo.search import fit_with_search
        from .hpo.settings import SearchRequest, first_point

        request = check_fit_arguments(self.label, self._problem_type, self._eval_metric, train_data, tuning_data,
                                      unlabeled_data, {**fixed, **first_point(spaces)}, trial_presets, time_limit,
                                      seed, holdout_frac, column_types, teachers)
        if "env.resume_points" not in {canonical_key(k) for k in fixed}:
            fixed = {**fixed, "env.resume_points": False}  # a killed trial is fitted again, not resumed
        fit_kwargs = {"train_data": request.train, "tuning_data": request.tuning, "column_types": column_types,
                      "holdout_frac": holdout_frac, "teacher_predictor": teacher_predictor,
                      "unlabeled_data": request.unlabeled}
        from .fit_resume import fingerprint

        try:  # the same data and fixed arguments, or a resumed (or shared) study's trials would not compare
            call = json.loads(json.dumps(fingerprint(request, self.label, self._problem_type, self._eval_metric),
                                         default=str))
        except Exception as error:  # noqa: BLE001 (cells pandas cannot hash)
            logger.warning("This search's arguments cannot be fingerprinted (%s: %s): a resumed search cannot "
                           "check that they are the same.", type(error).__name__, error)
            call = None
        search = SearchRequest(fixed, spaces, tune, fit_kwargs, trial_presets, time_limit, seed, teachers, call)
        return fit_with_search(self, search, resume, start)

    def _fit_as_other_rank(self, request: FitRequest, start: float):
        """The fit in a process that torchrun, SLURM or the ``ddp`` strategy started as a rank other than 0: it
        trains with the others in a private work folder and writes nothing where rank 0 writes (``save`` does
        nothing either); it ends with the same predictor, in memory."""
        target, self._writes = self.path, False
        with tempfile.TemporaryDirectory(prefix="automm_lite_rank_") as work_dir:
            self._fit(request, Path(work_dir), start, Path(work_dir) / "resume")  # rank 0 writes the points
        self.path = target
        return self

    def _fit(self, request: FitRequest, work_dir, start: float, resume_dir=None):
        """The fit itself, once the arguments are checked: the task, the data split, the preprocessing, the
        model; sets the fitted attributes."""
        from .training.fit import fit_model

        train, config, teachers = request.train, request.config, request.teachers
        self.config_ = config
        self.problem_type_, self.eval_metric_, kinds = resolve_task(request, self.label, self._problem_type,
                                                                    self._eval_metric)
        tuning = request.tuning
        if tuning is None:
            train, tuning = holdout_split(train, self.label, self.problem_type_, request.holdout_frac, request.seed)
        self.preprocessor_ = Preprocessor(self.label, self.problem_type_, kinds, config.data.numerical_scaler,
                                          config.data.numerical_label_preprocessing).fit(train)
        self.preprocessor_.check_values(train, "train_data")
        self.preprocessor_.check_columns(tuning, need_label=True)
        self.preprocessor_.check_values(tuning, "tuning_data")
        self.preprocessor_.encode_labels(tuning[self.label])  # unseen or missing tuning labels: fail now
        if request.unlabeled is not None:
            self.preprocessor_.check_values(request.unlabeled, "unlabeled_data")
        teachers = [teacher.aligned_to(self.preprocessor_) for teacher in teachers]
        logger.info("Problem type: %s; metric: %s; columns: %s; %d training and %d tuning rows.",
                    self.problem_type_, self.eval_metric_,
                    ", ".join(f"{c} ({k})" for c, k in kinds.items() if k != "ignore"), len(train), len(tuning))
        result = fit_model(config, self.preprocessor_, train, tuning, self.eval_metric_, seed=request.seed,
                           work_dir=work_dir, time_limit=request.time_limit, verbosity=self.verbosity,
                           teachers=teachers, unlabeled=request.unlabeled, recipe=request.recipe,
                           resume_dir=resume_dir, explicit_keys=request.explicit_keys, **self._search_hooks)
        self.config_ = result.config  # with the keys the budget rule and the distillation recipe chose
        self.model_, self.backbone_names_, self.schema_ = result.model, result.backbone_names, result.schema
        self._runner, self.classical_, self.network_weight_ = None, None, 1.0
        portfolio = self._fit_portfolio(config, train, tuning, result.val_score, request, teachers, start)
        paths = [str(teacher.path) for teacher in teachers]
        self._summary = {f"val_{self.eval_metric_}": result.val_score if portfolio is None else portfolio.score,
                         "training_time": time.perf_counter() - start, "n_train_rows": len(train),
                         "n_tuning_rows": len(tuning), "seed": request.seed, **result.summary(),
                         "teacher": None if not paths else paths[0] if len(paths) == 1 else paths,
                         "portfolio": None if portfolio is None else portfolio.as_dict()}
        logger.info("Fitted in %.1f s; tuning %s = %.4f. Saved to %s", self._summary["training_time"],
                    self.eval_metric_, self._summary[f"val_{self.eval_metric_}"], self.path)

    def _fit_portfolio(self, config, train, tuning, network_score, request, teachers, start):
        """The classical models beside the fitted network (``model.classical.*``): the best kept, alone or
        blended with the network, if it helps on the tuning rows; None when the portfolio is off. Cross-validated
        over training and tuning rows where the tuning rows were held out of ``train_data`` at random."""
        from .classical import fit_portfolio

        classical = config.model.classical
        enabled = classical.enabled if classical.enabled != "auto" else not (config.model.names or teachers)
        if not enabled:
            return None
        if request.time_limit is not None and time.perf_counter() - start > request.time_limit:
            logger.info("No classical model: the time limit (%g s) is spent.", request.time_limit)
            return None
        verbosity, self.verbosity = self.verbosity, min(self.verbosity, 1)  # no inference lines for this pass
        try:
            network = self._network_output(self._run(tuning)[1])
        finally:
            self.verbosity = verbosity
            set_console_verbosity(verbosity)
        try:
            portfolio = fit_portfolio(classical.kinds, self.preprocessor_, train, tuning, self.eval_metric_,
                                      request.seed, network, network_score, classical.ensemble,
                                      cross_validate=request.tuning is None)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 (the fitted network is kept whatever a classical fit does)
            warnings.warn(f"The classical model could not be fitted ({type(error).__name__}: {error}); the predictor "
                          "keeps the network alone. Pass model.classical.enabled=false to skip it.", stacklevel=3)
            return None
        self.classical_, self.network_weight_ = portfolio.classical, portfolio.network_weight
        return portfolio

    # ------------------------------------------------------------------ predict
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("This Predictor is not fitted yet: call fit(train_data) or Predictor.load(path).")

    def _run(self, data, outputs=("logits",), need_label=False):
        """Preprocess, batch and run the model; returns the rows, the outputs and this call's timing (also kept
        as ``last_timing``: with calls from several threads, the latest to finish)."""
        from .data.batching import build_dataset
        from .inference.runner import make_timing

        self._check_fitted()
        set_console_verbosity(self.verbosity)  # the console follows the verbosity of the predictor at work
        start = time.perf_counter()
        data = read_data(data)
        if data.empty:
            raise DataError("The data has no rows to predict.")
        self.preprocessor_.check_columns(data, need_label=need_label)
        self.preprocessor_.check_values(data)
        result, latencies = {}, []
        if outputs != ("logits",) or self.network_weight_ > 0:  # a classical model alone needs no network pass
            set_up = time.perf_counter()
            runner = self._inference_runner()  # one-time set-up (compile, export) is logged, not timed per call
            start += time.perf_counter() - set_up
            dataset = build_dataset(self.model_, self.preprocessor_.transform(data))
            result, latencies = runner.run(dataset, self.config_.env, outputs)
        if "logits" in outputs and self.classical_ is not None:
            result["classical"] = self.classical_.predict_output(data)
        timing = make_timing(len(data), time.perf_counter() - start, latencies)
        self.last_timing = timing
        if self.verbosity >= 2:
            logger.info("Inference: %s", timing)
        return data, result, timing

    def _inference_runner(self):
        """The InferenceRunner for the current model and ``env.inference_*`` settings, built once and reused."""
        from .inference.modes import InferenceRunner

        with self._runner_lock:  # concurrent first calls build (export, compile) it once
            if self._runner is None or not self._runner.matches(self.model_, self.config_.env):
                self._runner = InferenceRunner.build(self.model_, self.config_.env)
            return self._runner

    @property
    def inference_mode(self) -> str:
        """How predict runs, e.g. ``"32"``, ``"bf16+compile"`` or ``"onnx/int8"``: what ``optimize_for_inference``
        asked for, or the fallback this machine runs instead. Cheap: it builds nothing; a compile that fails shows
        here once ``optimize_for_inference`` or the first predict has tried it."""
        from .inference.modes import InferenceRunner

        self._check_fitted()
        if self._runner is not None and self._runner.matches(self.model_, self.config_.env):
            return str(self._runner.mode)
        return str(InferenceRunner.planned_mode(self.model_, self.config_.env))

    def optimize_for_inference(self, precision="bf16", backend="torch", check_data=None, max_score_drop=0.005,
                               compile=False):
        """Make predict faster: bf16 encoders, int8 weights, onnxruntime, compiled encoders.

        The choice is stored in the config (``env.inference_precision``, ``env.inference_backend``,
        ``env.inference_compile``), so a saved predictor keeps it. Choices the hardware cannot run fast fall back
        to float32 (or to not compiling) with a warning; ``inference_mode`` tells what runs. A failure leaves the
        predictor as it was.

        Parameters
        ----------
        precision : {"32", "bf16", "int8"}
            Number format of the encoders' matrix products: float32, bfloat16 (on CPUs with bf16 instructions,
            and GPUs), or int8 weights (dynamic quantization of the linear layers).
        backend : {"torch", "onnx"}
            ``onnx`` exports the model in memory and runs it with onnxruntime (``int8`` then uses onnxruntime's
            dynamic quantization).
        check_data : DataFrame or path, optional
            Labelled rows, scored in float32 on torch and in the new mode: the score change and the speed-up are
            logged and kept in ``inference_check_``. A drop of more than ``max_score_drop`` raises a warning.
        max_score_drop : float
            Tolerated loss of ``eval_metric`` (in its own units) before warning.
        compile : bool
            Run the text encoder and the image network through ``torch.compile`` (torch backend, precision 32
            or bf16). It compiles here, once (seconds to a minute), and again at the first predict of a reloaded
            predictor. A CPU needs a C++ compiler; without one inference runs uncompiled, with a warning.

        Returns
        -------
        Predictor
            This predictor; ``inference_mode`` says what its predict now runs.

        Raises
        ------
        ConfigError
            A precision or backend that does not exist, or ``compile`` that is not a bool.
        """
        self._check_fitted()
        if not isinstance(compile, bool):
            raise ConfigError(f"compile must be True or False, got {compile!r}.")
        choice = {"env.inference_precision": str(precision).lower(), "env.inference_backend": str(backend).lower(),
                  "env.inference_compile": compile}
        new_config = apply_overrides(self.config_, choice)
        if check_data is not None:
            check_data = read_data(check_data, "check_data")
            self.preprocessor_.check_columns(check_data, need_label=True)
        old_config, old_runner = self.config_, self._runner
        try:
            if check_data is None:
                self.config_ = new_config
                mode = self._inference_runner().mode  # export / quantize / compile now, not in the first predict
                logger.info("Inference now runs as %s; pass check_data= to measure its score and speed change.", mode)
                return self
            self.config_ = apply_overrides(old_config, FLOAT32_TORCH)
            before = self._quiet_warm_evaluate(check_data)
            self.config_ = new_config
            mode = self._inference_runner().mode
            after = self._quiet_warm_evaluate(check_data)
        except BaseException:
            self.config_, self._runner = old_config, old_runner
            raise
        metric = self.eval_metric_
        change = after[metric] - before[metric]
        loss = -change if get_metric(metric, self.problem_type_).greater_is_better else change
        self.inference_check_ = {"mode": str(mode), "metric": metric, "before": before[metric],
                                 "after": after[metric], "change": change,
                                 "speedup": before.timing.seconds / after.timing.seconds}
        logger.info("Inference %s: %s %.4f -> %.4f (%+.4f) at %.2fx the float32 speed", mode, metric,
                    before[metric], after[metric], change, self.inference_check_["speedup"])
        if loss > max_score_drop:
            warnings.warn(f"Inference as {mode} changed {metric} from {before[metric]:.4f} to {after[metric]:.4f} "
                          f"on check_data, more than max_score_drop={max_score_drop}; call "
                          "optimize_for_inference(precision='32') to go back.", stacklevel=2)
        return self

    def _quiet_warm_evaluate(self, data) -> "Scores":
        """``evaluate`` after a short warm-up (kernel selection and caches of first calls are not the model's
        speed), without console lines."""
        from .reports.compare import warm_evaluate

        verbosity, self.verbosity = self.verbosity, min(self.verbosity, 1)
        try:
            return warm_evaluate(self, data)
        finally:
            self.verbosity = verbosity
            set_console_verbosity(verbosity)

    def export_onnx(self, path):
        """Write the model as an ONNX file (dynamic rows and tokens).

        Inputs are each backbone's tensors, named ``<backbone>.<input>``: the tokenized text
        (``hf_text.input_ids``, ``hf_text.attention_mask`` and, for BERT-likes, ``hf_text.token_type_ids``) and the
        preprocessed ``tabular_mlp.numerical``/``tabular_mlp.categorical`` arrays; outputs are ``logits`` and
        ``features``. ``optimize_for_inference(backend="onnx")`` uses the same export.

        Parameters
        ----------
        path : str or Path
            The file to write.

        Returns
        -------
        str
            The path of the written file.
        """
        from .inference.onnx import export_file

        self._check_fitted()
        return export_file(self.model_, path)

    def as_teacher(self):
        """This fitted predictor as the ``Teacher`` view that a student's fit distils from.

        Returns
        -------
        automm_lite.distill.teacher.Teacher
            The model, preprocessing and inference settings, read-only; ``fit(teacher_predictor=...)`` takes the
            predictor itself, so few scripts need this.
        """
        from .distill.teacher import Teacher

        self._check_fitted()
        return Teacher(self.model_, self.preprocessor_, self.config_.env, self.path,
                       optimization=self.config_.optimization, classical=self.classical_,
                       network_weight=self.network_weight_)

    def _proba_and_values(self, data, need_label=False):
        from .classical import blend

        data, result, timing = self._run(data, need_label=need_label)
        output = blend(self._network_output(result), result.get("classical"), self.network_weight_)
        if self.problem_type_ == "regression":
            return data, None, output, timing
        return data, output, self.preprocessor_.decode_predictions(output.argmax(axis=1)), timing

    def _network_output(self, result):
        """The network's probabilities (or values in the label's units) from its raw outputs; None when it did
        not run (a classical model alone)."""
        from .classical.base import softmax

        logits = result.get("logits")
        if logits is None:
            return None
        if self.problem_type_ == "regression":
            return self.preprocessor_.decode_predictions(logits[:, 0])
        return softmax(logits)

    def predict(self, data, chunk_size=None):
        """Predicted labels (or values) as a pandas Series with the same index as ``data``.

        Parameters
        ----------
        data : DataFrame, str or iterable of DataFrame
            The rows to predict (their label column, if any, is ignored): a frame, the path of a CSV or Parquet
            file, or an iterable of frames.
        chunk_size : int, optional
            Read and predict this many rows at a time, so memory stays bounded by the chunk however large the
            file; the result is the same (but a CSV's column types are guessed per chunk: a code column that is
            all digits in one chunk reads as numbers there). An iterable of DataFrames is predicted a frame at a
            time anyway.

        Returns
        -------
        pandas.Series
            One label per row (a value in the label's units for regression), named after the label column.
        """
        import pandas as pd

        if chunk_size is None and not _is_stream(data):
            data, _, values, _ = self._proba_and_values(data)
            return pd.Series(values, index=data.index, name=self.label)
        return _joined(self.predict_iter(data, chunk_size))

    def predict_proba(self, data, as_multiclass=True, chunk_size=None):
        """Class probabilities of each row.

        Parameters
        ----------
        data : DataFrame, str or iterable of DataFrame
            The rows, as in :meth:`predict`.
        as_multiclass : bool
            With False, a binary predictor returns the positive class's probability alone, as a Series.
        chunk_size : int, optional
            Rows read and predicted at a time, as in :meth:`predict`.

        Returns
        -------
        pandas.DataFrame or pandas.Series
            One column per class, in ``class_labels`` order, on ``data``'s index (a Series for
            ``as_multiclass=False``).

        Raises
        ------
        DataError
            For a regression predictor: use :meth:`predict`.
        """
        import pandas as pd

        self._check_fitted()
        if self.problem_type_ == "regression":
            raise DataError("predict_proba needs a classification predictor; this one does regression: use "
                            "predict.")
        if chunk_size is not None or _is_stream(data):
            return _joined(self.predict_iter(data, chunk_size, proba=True, as_multiclass=as_multiclass))
        data, proba, _, _ = self._proba_and_values(data)
        if not as_multiclass and self.problem_type_ == "binary":
            return pd.Series(proba[:, 1], index=data.index, name=self.positive_class)
        return pd.DataFrame(proba, index=data.index, columns=self.class_labels)

    def predict_iter(self, data, chunk_size=10_000, proba=False, as_multiclass=True):
        """Predictions a chunk at a time, as they are made.

        Write each chunk out to predict a file of any size in bounded memory.

        Parameters
        ----------
        data : DataFrame, str or iterable of DataFrame
            A frame, a CSV or Parquet path read a chunk at a time, or an iterable of frames (a chunk each).
        chunk_size : int
            Rows per chunk of a frame or a file.
        proba : bool
            Yield class probabilities (as :meth:`predict_proba`) instead of labels.
        as_multiclass : bool
            With ``proba`` on a binary predictor: False yields the positive class's probability alone.

        Yields
        ------
        pandas.Series or pandas.DataFrame
            The predictions of one chunk, on its rows' index.

        Examples
        --------
        >>> for i, part in enumerate(predictor.predict_iter("big.csv", chunk_size=50_000)):  # doctest: +SKIP
        ...     part.to_csv("predictions.csv", mode="a", header=i == 0)
        """
        from .data.frames import iter_chunks

        self._check_fitted()
        for chunk in iter_chunks(data, chunk_size):
            yield self.predict_proba(chunk, as_multiclass) if proba else self.predict(chunk)

    def evaluate(self, data, metrics=None, return_pred=False):
        """Score the predictor on labelled ``data``.

        Parameters
        ----------
        data : DataFrame or str
            Labelled rows, or the path of a CSV or Parquet file of them.
        metrics : str or list of str, optional
            Default: the predictor's ``eval_metric``.
        return_pred : bool
            Also return the predictions (a Series like ``predict``).

        Returns
        -------
        Scores
            ``{metric: value}``; ``scores.timing`` says how long it took (also in ``last_timing``). With
            ``return_pred``, a tuple of the scores and the predictions.
        """
        import pandas as pd

        from .metrics import compute_metric

        self._check_fitted()
        names = [self.eval_metric_] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        chosen = [get_metric(name, self.problem_type_) for name in names]
        data = read_data(data)
        self.preprocessor_.check_columns(data, need_label=True)
        check_label_values(data[self.label], "data")
        if self.problem_type_ == "regression":  # check the labels before spending time on inference
            truth = pd.to_numeric(data[self.label], errors="coerce").to_numpy()
            if pd.isna(truth).any():
                raise DataError(f"The label column {self.label!r} has missing or non-numeric values; a regression "
                                "predictor is evaluated on numbers only.")
        else:
            truth = self.preprocessor_.encode_labels(data[self.label])
        data, proba, values, timing = self._proba_and_values(data, need_label=True)
        predicted = values if self.problem_type_ == "regression" else proba.argmax(axis=1)
        scores = Scores({m.name: compute_metric(m, truth, predicted, proba) for m in chosen})
        scores.timing = timing
        if self.verbosity >= 2:
            logger.info("Scores: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        if return_pred:
            return scores, pd.Series(values, index=data.index, name=self.label)
        return scores

    def extract_embedding(self, data, as_pandas=False):
        """The vector each row gets just before the output layer.

        Parameters
        ----------
        data : DataFrame or str
            The rows, or the path of a CSV or Parquet file of them.
        as_pandas : bool
            Return a DataFrame on ``data``'s index instead of an array.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            Rows x features, float32.
        """
        import pandas as pd

        data, result, _ = self._run(data, outputs=("features",))
        return pd.DataFrame(result["features"], index=data.index) if as_pandas else result["features"]

    # ------------------------------------------------------------------ state
    def fit_summary(self) -> dict:
        """What the fit did and chose.

        Returns
        -------
        dict
            The tuning score (``val_<metric>``), training time, epochs and steps, parameters, the budget the
            defaults chose and why (``budget``), the advice when the fit ended still improving (``advice``), the
            portfolio (``portfolio``), and with a teacher the recipe and its reasons (``distillation_recipe``).
        """
        self._check_fitted()
        return dict(self._summary)

    @property
    def hpo_results(self):
        """Every trial of the hyperparameter search that fitted this predictor (state, sampled values, tuning
        score, fit seconds, the step where ASHA stopped it), as a DataFrame; None without a search."""
        import pandas as pd

        self._check_fitted()
        search = self._summary.get("hpo")
        return None if search is None else pd.DataFrame(search["trials"])

    @property
    def problem_type(self):
        """``"binary"``, ``"multiclass"`` or ``"regression"``: as passed, or as inferred by the fit."""
        return getattr(self, "problem_type_", self._problem_type)

    @property
    def eval_metric(self):
        """The metric that selects the model and that ``evaluate`` reports by default."""
        return getattr(self, "eval_metric_", self._eval_metric)

    @property
    def class_labels(self):
        """Classes in the column order of ``predict_proba`` (None for regression)."""
        self._check_fitted()
        return None if self.problem_type_ == "regression" else list(self.preprocessor_.class_labels)

    @property
    def positive_class(self):
        """The class whose probability a binary predictor's scores rank by (the second of ``class_labels``);
        None for other problem types."""
        self._check_fitted()
        return self.class_labels[1] if self.problem_type_ == "binary" else None

    @property
    def column_types(self):
        """The kind each column was read as: ``text``, ``image``, ``numerical``, ``categorical`` or ``ignore``."""
        self._check_fitted()
        return dict(self.preprocessor_.column_types)

    @property
    def total_parameters(self) -> int:
        """Number of weights of the network."""
        self._check_fitted()
        return sum(p.numel() for p in self.model_.parameters())

    @property
    def trainable_parameters(self) -> int:
        """Number of weights the fit trained (the others were frozen)."""
        self._check_fitted()
        return sum(p.numel() for p in self.model_.parameters() if p.requires_grad)

    @property
    def model_size(self) -> float:
        """Size of the model weights in megabytes."""
        self._check_fitted()
        return sum(p.numel() * p.element_size() for p in self.model_.parameters()) / 1e6

    def save(self, path):
        """Save to a folder, atomically: JSON, safetensors and tokenizer files, no pickle.

        The new folder is written beside ``path`` and swapped in at once, so a kill leaves the old version or the
        new one, never a mix.

        Parameters
        ----------
        path : str or Path
            The folder; what it held is replaced.

        Returns
        -------
        str
            The folder's path.
        """
        from .io import save_atomically

        self._check_fitted()
        if not self._writes:
            logger.info("Not saved by this process (a rank other than 0 of a DDP fit): rank 0 saves.")
            return str(path)
        self.path = str(save_atomically(self, path))
        return self.path

    @classmethod
    def load(cls, path, verbosity=2, resume=False):
        """Load a predictor saved by ``fit`` or ``save`` (works offline; never unpickles).

        Parameters
        ----------
        path : str or Path
            The saved predictor's folder.
        verbosity : int
            As in :class:`Predictor`.
        resume : bool
            If a fit to ``path`` was killed (or stopped by an error) after its first epoch, finish it first, with
            the arguments and data it stored, from the end of its last finished epoch; then return the fitted
            predictor. With no interrupted fit there, the saved predictor is loaded as usual.

        Returns
        -------
        Predictor
            The fitted predictor.

        Raises
        ------
        DataError
            A folder that is not a saved predictor, or is damaged (a truncated file, weights of another model).
        """
        from .io import read_predictor, work_folder

        if not isinstance(resume, bool):
            raise ConfigError(f"resume must be True or False, got {resume!r}.")
        if resume:
            from .fit_resume import has_resume_state, stored_call

            work_dir = work_folder(path)
            if has_resume_state(work_dir):
                call = stored_call(work_dir)
                predictor = cls(call.pop("label"), call.pop("problem_type"), call.pop("eval_metric"), str(path),
                                verbosity)
                return predictor.fit(**call, resume=True)
            logger.info("No interrupted fit to %s: loading the saved predictor.", path)
        return read_predictor(cls, path, verbosity)

    def __repr__(self):
        state = f"fitted, {self.problem_type_}, {self.eval_metric_}" if hasattr(self, "model_") else "not fitted"
        return f"Predictor(label={self.label!r}, {state})"


def _is_stream(data) -> bool:
    """An iterable of frames (not a frame, a path or something else read whole)."""
    import pandas as pd

    return (hasattr(data, "__iter__") and not isinstance(data, (pd.DataFrame, pd.Series, str, os.PathLike, dict))
            and not hasattr(data, "shape"))


def _joined(parts):
    import pandas as pd

    parts = list(parts)
    if not parts:
        raise DataError("The data has no rows to predict.")
    return pd.concat(parts)


def _read_teachers(teacher_predictor):
    """``teacher_predictor`` with each folder of a saved predictor loaded (other values are left for
    ``load_teacher`` to check)."""
    def read(teacher):
        return Predictor.load(teacher, verbosity=0) if isinstance(teacher, (str, os.PathLike)) else teacher

    if isinstance(teacher_predictor, (list, tuple)):
        return [read(teacher) for teacher in teacher_predictor]
    return read(teacher_predictor)


def load_teacher(teacher_predictor):
    """The Teacher view of a fitted Predictor or of the folder of a saved one; a clear error otherwise."""
    if isinstance(teacher_predictor, (str, os.PathLike)):
        return Predictor.load(teacher_predictor, verbosity=0).as_teacher()
    if not isinstance(teacher_predictor, Predictor):
        raise ConfigError(f"teacher_predictor must be a fitted Predictor or the folder of a saved one, not "
                          f"{type(teacher_predictor).__name__}.")
    if not hasattr(teacher_predictor, "model_"):
        raise ConfigError("teacher_predictor is not fitted: fit it first (teacher.fit(train_df)) or pass the path "
                          "of a saved predictor.")
    return teacher_predictor.as_teacher()


def load_teachers(teacher_predictor) -> list:
    """``load_teacher`` for one teacher or each of a list of them (the first is the primary teacher)."""
    if isinstance(teacher_predictor, (list, tuple)):
        if not teacher_predictor:
            raise ConfigError("teacher_predictor is an empty list: pass one or more fitted predictors (or the "
                              "folders of saved ones), or None to train without a teacher.")
        return [load_teacher(each) for each in teacher_predictor]
    return [load_teacher(teacher_predictor)]
