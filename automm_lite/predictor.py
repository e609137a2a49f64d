"""Predictor: the user's entry point. It checks arguments and orchestrates the other modules; no math here."""
from __future__ import annotations

import contextlib
import logging
import shutil
import time

from .config import Config, apply_overrides
from .exceptions import ConfigError, DataError, NotFittedError
from .logs import add_log_file, remove_log_file, set_console_verbosity
from .metrics import DEFAULT_METRIC, get_metric
from .preprocess import PROBLEM_TYPES, Preprocessor, infer_column_types, infer_problem_type
from .presets import preset_overrides
from .user_data import holdout_split, labelled_rows, read_data

logger = logging.getLogger("automm_lite")


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

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, tuning_data=None, hyperparameters=None, presets=None, time_limit=None, seed=0,
            column_types=None, holdout_frac=None, teacher_predictor=None, unlabeled_data=None):
        """Train a model on ``train_data``; returns ``self``.

        Parameters
        ----------
        train_data : DataFrame or path to CSV/Parquet
        tuning_data : DataFrame or path, optional
            Validation rows for early stopping and checkpoint selection; a stratified holdout of
            ``train_data`` when not given.
        hyperparameters : dict, list of "k=v" or "k=v k=v" str, optional
            Dotted keys, e.g. ``{"model.hf_text.checkpoint_name": "minilm-l3", "optim.lr": 1e-4}``
            (``automm-lite keys`` lists them all).
        presets : str, optional
            ``medium_quality`` (fast), ``high_quality`` (default), ``best_quality``, ``multilingual``.
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
        """
        start = time.perf_counter()
        set_console_verbosity(self.verbosity)
        teachers = []
        if teacher_predictor is not None:
            from .distill.teacher import load_teachers
            teachers = load_teachers(teacher_predictor)
            set_console_verbosity(self.verbosity)  # loading the teacher set the console to its verbosity
        teacher = teachers[0] if teachers else None
        train, tuning, unlabeled, config = self._check_fit_arguments(
            train_data, tuning_data, unlabeled_data, hyperparameters, presets, time_limit, seed, holdout_frac,
            teacher is not None)
        from .io import check_save_path

        from datetime import datetime

        stamp = datetime.now().strftime("%Y%m%d_%H%M%S_%f")
        save_path = check_save_path(self.path or f"automm_lite_models/{stamp}")
        self.path = str(save_path)
        work_dir = save_path.parent / f".{save_path.name}.fitting"
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        handler = add_log_file(work_dir / "fit.log")
        try:
            return self._fit(train, tuning, config, teachers, unlabeled, seed, time_limit, column_types,
                             holdout_frac, start, save_path, work_dir, handler)
        except (ConfigError, DataError):
            raise  # a user mistake, named in the message: no log file to keep
        except BaseException:
            # The fit folder goes away; its log is what tells the user what happened, so it stays (when it can:
            # nothing here may hide the original error).
            kept = save_path.parent / f"{save_path.name}.failed-fit.log"
            handler.flush()
            with contextlib.suppress(OSError):
                shutil.copyfile(work_dir / "fit.log", kept)
                logger.error("The fit stopped with an error; its log is kept at %s", kept)
            raise
        finally:
            remove_log_file(handler)
            shutil.rmtree(work_dir, ignore_errors=True)

    def _fit(self, train, tuning, config, teachers, unlabeled, seed, time_limit, column_types, holdout_frac, start,
             save_path, work_dir, handler):
        """The fit itself, once the arguments are checked and the fit folder (with its log file) exists."""
        from .fitting import fit_model

        teacher = teachers[0] if teachers else None
        self.config_ = config
        self.problem_type_ = self._problem_type or (teacher.problem_type if teacher is not None else
                                                    infer_problem_type(train[self.label], self._eval_metric))
        self.eval_metric_ = get_metric(self._eval_metric or DEFAULT_METRIC[self.problem_type_],
                                       self.problem_type_).name
        self._check_loss(config)
        if teacher is not None:
            from .distill.teacher import check_teacher_task
            for each in teachers:
                check_teacher_task(each, self.label, self.problem_type_, train.columns)
        kinds = infer_column_types(train, self.label, column_types)
        if tuning is None:
            train, tuning = holdout_split(train, self.label, self.problem_type_, holdout_frac, seed)
        self.preprocessor_ = Preprocessor(self.label, self.problem_type_, kinds, config.data.numerical_scaler,
                                          config.data.numerical_label_preprocessing).fit(train)
        self.preprocessor_.check_columns(tuning, need_label=True)
        self.preprocessor_.encode_labels(tuning[self.label])  # unseen or missing tuning labels: fail now
        if unlabeled is not None:
            self.preprocessor_.check_columns(unlabeled)
        from .distill.teacher import class_alignment
        alignments = [class_alignment(each.class_labels, self.preprocessor_.class_labels) for each in teachers]
        logger.info("Problem type: %s; metric: %s; columns: %s; %d training and %d tuning rows.",
                    self.problem_type_, self.eval_metric_,
                    ", ".join(f"{c} ({k})" for c, k in kinds.items() if k != "ignore"), len(train), len(tuning))
        result = fit_model(self, train, tuning, seed, time_limit, work_dir, list(zip(teachers, alignments)),
                           unlabeled)
        self.model_, self.backbone_names_, self.schema_ = result["model"], result["names"], result["schema"]
        self._summary = {f"val_{self.eval_metric_}": result["val_score"],
                         "training_time": time.perf_counter() - start, "n_train_rows": len(train),
                         "n_tuning_rows": len(tuning), "checkpoints_averaged": result["averaged"],
                         "epochs": result["epochs"], "steps": result["steps"], "seed": seed,
                         "n_rows_trained": result["n_rows_trained"],
                         "teacher": None if teacher is None else str(teacher.path) if len(teachers) == 1
                         else [str(each.path) for each in teachers]}
        logger.info("Fitted in %.1f s; tuning %s = %.4f. Saved to %s", self._summary["training_time"],
                    self.eval_metric_, result["val_score"], save_path)
        handler.close()
        from .io import save_atomically
        save_atomically(self, save_path, staging=work_dir)
        save_path.with_name(f"{save_path.name}.failed-fit.log").unlink(missing_ok=True)  # an earlier failure's
        return self

    def _check_fit_arguments(self, train_data, tuning_data, unlabeled_data, hyperparameters, presets, time_limit,
                             seed, holdout_frac, has_teacher=False):
        """Every check a user can fail, before any model is built."""
        if not isinstance(self.label, str):
            raise DataError(f"label must be a column name (str), not {self.label!r}.")
        if self._problem_type is not None and self._problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type={self._problem_type!r} is not supported; use one of {PROBLEM_TYPES} "
                              "or None to infer it.")
        if self._eval_metric is not None:
            get_metric(self._eval_metric, self._problem_type)
        if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
            raise ConfigError(f"time_limit={time_limit!r} must be a positive number of seconds (or None).")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed={seed!r} must be a non-negative int.")
        if holdout_frac is not None and not (isinstance(holdout_frac, float) and 0 < holdout_frac < 1):
            raise ConfigError(f"holdout_frac={holdout_frac!r} must be a float between 0 and 1.")
        config = apply_overrides(apply_overrides(Config(), preset_overrides(presets), has_teacher), hyperparameters,
                                 allow_distiller=has_teacher)
        if config.model.hf_text.checkpoint_name.startswith("teacher:") and not has_teacher:
            raise ConfigError(f"model.hf_text.checkpoint_name={config.model.hf_text.checkpoint_name!r} builds the "
                              "student from teacher layers: pass teacher_predictor=... too.")
        train = labelled_rows(read_data(train_data, "train_data"), self.label, "train_data")
        tuning = None
        if tuning_data is not None:
            tuning = labelled_rows(read_data(tuning_data, "tuning_data"), self.label, "tuning_data")
        unlabeled = None
        if unlabeled_data is not None:
            if not has_teacher:
                raise ConfigError("unlabeled_data is labelled by a teacher: pass teacher_predictor=... too, or drop "
                                  "it.")
            unlabeled = read_data(unlabeled_data, "unlabeled_data")
            unlabeled = unlabeled.drop(columns=[self.label], errors="ignore").reset_index(drop=True)
        return train, tuning, unlabeled, config

    def _check_loss(self, config):
        loss = config.optimization.loss_function
        if self.problem_type_ != "regression" and loss not in ("auto", "cross_entropy"):
            raise ConfigError(f"optimization.loss_function={loss!r} is for regression; a {self.problem_type_} "
                              "problem takes 'auto' or 'cross_entropy'.")

    # ------------------------------------------------------------------ predict
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("This Predictor is not fitted yet: call fit(train_data) or Predictor.load(path).")

    def _run(self, data, outputs=("logits",), need_label=False):
        """Preprocess, batch and run the model; records ``last_timing``."""
        from .cpu_memory import keep_freed_memory
        from .data import build_dataset, inference_batching
        from .inference import make_timing, model_device, run_model

        self._check_fitted()
        set_console_verbosity(self.verbosity)  # the console follows the verbosity of the predictor at work
        start = time.perf_counter()
        data = read_data(data)
        if data.empty:
            raise DataError("The data has no rows to predict.")
        self.preprocessor_.check_columns(data, need_label=need_label)
        set_up = time.perf_counter()
        runner, _ = self._inference_runner()  # one-time set-up (compile, export) is logged, not timed per call
        start += time.perf_counter() - set_up
        if self.config_.env.keep_freed_memory and model_device(runner).type == "cpu":
            keep_freed_memory()
        dataset = build_dataset(self.model_, self.preprocessor_.transform(data),
                                self.config_.model.hf_text.max_text_len)
        env = self.config_.env
        rows, tokens = inference_batching(env, model_device(runner).type == "cuda")  # onnxruntime: its own device
        result, latencies = run_model(runner, dataset, rows, outputs, tokens)
        self.last_timing = make_timing(len(data), time.perf_counter() - start, latencies)
        if self.verbosity >= 2:
            logger.info("Inference: %s", self.last_timing)
        return data, result

    def _inference_runner(self):
        """The model as ``env.inference_*`` ask, built once and reused, and the InferenceMode actually used."""
        from .inference_setup import inference_runner

        return inference_runner(self)

    @property
    def inference_mode(self) -> str:
        """How predict runs, e.g. ``"32"``, ``"bf16+compile"`` or ``"onnx/int8"``: what ``optimize_for_inference``
        asked for, or the fallback this machine runs instead. Cheap: it builds nothing; a compile that fails shows
        here once ``optimize_for_inference`` or the first predict has tried it."""
        from .inference_setup import current_mode

        self._check_fitted()
        return str(current_mode(self))

    def optimize_for_inference(self, precision="bf16", backend="torch", check_data=None, max_score_drop=0.005,
                               compile=False):
        """Make predict faster: a bf16 text encoder, int8 weights, onnxruntime, a compiled encoder; returns ``self``.

        The choice is stored in the config (``env.inference_precision``, ``env.inference_backend``,
        ``env.inference_compile``), so a saved predictor keeps it. Choices the hardware cannot run fast fall back
        to float32 (or to not compiling) with a warning; ``inference_mode`` tells what runs.

        Parameters
        ----------
        precision : {"32", "bf16", "int8"}
        backend : {"torch", "onnx"}
            ``onnx`` exports the model in memory and runs it with onnxruntime (``int8`` then uses onnxruntime's
            dynamic quantization).
        check_data : DataFrame or path, optional
            Labelled rows, scored in float32 on torch and in the new mode: the score change and the speed-up are
            logged and kept in ``inference_check_``. A drop of more than ``max_score_drop`` raises a warning.
        max_score_drop : float
            Tolerated loss of ``eval_metric`` (in its own units) before warning.
        compile : bool
            Run the text encoder through ``torch.compile`` (torch backend, precision 32 or bf16). It compiles
            here, once (seconds to a minute), and again at the first predict of a reloaded predictor. A CPU needs
            a C++ compiler; without one inference runs uncompiled, with a warning.
        """
        from .inference_setup import optimize_predictor

        self._check_fitted()
        optimize_predictor(self, precision, backend, check_data, max_score_drop, compile)
        return self

    def export_onnx(self, path):
        """Write the model as an ONNX file (dynamic rows and tokens) and return its path.

        Inputs are the tokenized text (``hf_text.input_ids``, ``hf_text.attention_mask`` and, for BERT-likes,
        ``hf_text.token_type_ids``) and the preprocessed ``numerical``/``categorical`` arrays; outputs are
        ``logits`` and ``features``. ``optimize_for_inference(backend="onnx")`` uses the same export.
        """
        from .inference_setup import export_onnx_file

        self._check_fitted()
        return export_onnx_file(self, path)

    def _proba_and_values(self, data, need_label=False):
        import numpy as np

        data, result = self._run(data, need_label=need_label)
        logits = result["logits"]
        if self.problem_type_ == "regression":
            return data, None, self.preprocessor_.decode_predictions(logits[:, 0])
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba = shifted / shifted.sum(axis=1, keepdims=True)
        return data, proba, self.preprocessor_.decode_predictions(proba.argmax(axis=1))

    def predict(self, data):
        """Predicted labels (or values) as a pandas Series with the same index as ``data``."""
        import pandas as pd

        data, _, values = self._proba_and_values(data)
        return pd.Series(values, index=data.index, name=self.label)

    def predict_proba(self, data, as_multiclass=True):
        """Class probabilities: a DataFrame with one column per class (``class_labels`` order).

        With ``as_multiclass=False`` a binary predictor returns the positive class's probability as a Series.
        """
        import pandas as pd

        self._check_fitted()
        if self.problem_type_ == "regression":
            raise DataError("predict_proba needs a classification predictor; this one does regression: use "
                            "predict.")
        data, proba, _ = self._proba_and_values(data)
        if not as_multiclass and self.problem_type_ == "binary":
            return pd.Series(proba[:, 1], index=data.index, name=self.positive_class)
        return pd.DataFrame(proba, index=data.index, columns=self.class_labels)

    def evaluate(self, data, metrics=None, return_pred=False):
        """Score the predictor on labelled ``data``.

        Parameters
        ----------
        data : DataFrame or path
        metrics : str or list of str, optional
            Default: the predictor's ``eval_metric``.
        return_pred : bool
            Also return the predictions (a Series like ``predict``).

        Returns
        -------
        Scores
            ``{metric: value}``; ``scores.timing`` says how long it took (also in ``last_timing``).
        """
        import pandas as pd

        from .metrics import compute_metric

        self._check_fitted()
        names = [self.eval_metric_] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        chosen = [get_metric(name, self.problem_type_) for name in names]
        data = read_data(data)
        self.preprocessor_.check_columns(data, need_label=True)
        if self.problem_type_ == "regression":  # check the labels before spending time on inference
            truth = pd.to_numeric(data[self.label], errors="coerce").to_numpy()
            if pd.isna(truth).any():
                raise DataError(f"The label column {self.label!r} has missing or non-numeric values; a regression "
                                "predictor is evaluated on numbers only.")
        else:
            truth = self.preprocessor_.encode_labels(data[self.label])
        data, proba, values = self._proba_and_values(data, need_label=True)
        predicted = values if self.problem_type_ == "regression" else proba.argmax(axis=1)
        scores = Scores({m.name: compute_metric(m, truth, predicted, proba) for m in chosen})
        scores.timing = self.last_timing
        if self.verbosity >= 2:
            logger.info("Scores: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        if return_pred:
            return scores, pd.Series(values, index=data.index, name=self.label)
        return scores

    def extract_embedding(self, data, as_pandas=False):
        """The vector each row gets just before the output layer (rows x features)."""
        import pandas as pd

        data, result = self._run(data, outputs=("features",))
        return pd.DataFrame(result["features"], index=data.index) if as_pandas else result["features"]

    # ------------------------------------------------------------------ state
    def fit_summary(self) -> dict:
        """Validation score, training time and the shape of the fit."""
        self._check_fitted()
        return dict(self._summary)

    @property
    def problem_type(self):
        return getattr(self, "problem_type_", self._problem_type)

    @property
    def eval_metric(self):
        return getattr(self, "eval_metric_", self._eval_metric)

    @property
    def class_labels(self):
        """Classes in the column order of ``predict_proba`` (None for regression)."""
        self._check_fitted()
        return None if self.problem_type_ == "regression" else list(self.preprocessor_.class_labels)

    @property
    def positive_class(self):
        self._check_fitted()
        return self.class_labels[1] if self.problem_type_ == "binary" else None

    @property
    def column_types(self):
        self._check_fitted()
        return dict(self.preprocessor_.column_types)

    @property
    def total_parameters(self) -> int:
        self._check_fitted()
        return sum(p.numel() for p in self.model_.parameters())

    @property
    def trainable_parameters(self) -> int:
        self._check_fitted()
        return sum(p.numel() for p in self.model_.parameters() if p.requires_grad)

    @property
    def model_size(self) -> float:
        """Size of the model weights in megabytes."""
        self._check_fitted()
        return sum(p.numel() * p.element_size() for p in self.model_.parameters()) / 1e6

    def save(self, path):
        """Save to the folder ``path`` atomically (JSON + safetensors + tokenizer files, no pickle)."""
        from .io import save_atomically

        self._check_fitted()
        self.path = str(save_atomically(self, path))
        return self.path

    @classmethod
    def load(cls, path, verbosity=2):
        """Load a predictor saved by ``fit`` or ``save`` (works offline; never unpickles)."""
        from .fitting import restore_model
        from .inference_setup import onnx_backend_or_torch
        from .io import read_metadata

        metadata = read_metadata(path)
        predictor = cls(metadata["label"], metadata["problem_type"], metadata["eval_metric"], str(path),
                        verbosity)
        set_console_verbosity(verbosity)
        predictor.config_ = Config.from_dict(metadata["config"])
        predictor.problem_type_ = metadata["problem_type"]
        predictor.eval_metric_ = metadata["eval_metric"]
        predictor.preprocessor_ = Preprocessor.from_dict(metadata["preprocessor"])
        predictor.backbone_names_, predictor.schema_ = metadata["backbones"], metadata["schema"]
        predictor._summary = metadata["fit_summary"]
        predictor.model_ = restore_model(predictor.config_, metadata["backbones"], metadata["schema"], path)
        onnx_backend_or_torch(predictor)
        return predictor

    def __repr__(self):
        state = f"fitted, {self.problem_type_}, {self.eval_metric_}" if hasattr(self, "model_") else "not fitted"
        return f"Predictor(label={self.label!r}, {state})"
